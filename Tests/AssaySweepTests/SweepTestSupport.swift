import AssayBackends
import AssayCore
import AssayEngine
import AssayServer
import AssayStore
import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

/// Answers like a model that knows every gold answer: by the item the request is for (its
/// `X-Client-Request-Id`, `<suite>/<item>/<sample>`), since some MMStar questions share their text
/// and differ only in the image the fixture lacks. `truncate` marks items whose answer is cut off.
struct AnswerKeyResponder: ChatResponder {
    /// Item id → answer text.
    var answers: [String: String]
    var truncate: Set<String> = []
    /// Seeds seen per item (to check `--samples` draws).
    let seeds = Locked<[String: [UInt64]]>([:])

    func reply(to request: OpenAIWire.ChatRequest, context: ChatRequestContext) async -> ChatReply {
        let parts = (context.clientRequestID ?? "").split(separator: "/")
        guard parts.count >= 3 else { return .failure(status: 400, message: "no X-Client-Request-Id") }
        let item = parts[1..<(parts.count - 1)].joined(separator: "/")
        if let seed = request.seed { seeds.withLock { $0[item, default: []].append(seed) } }
        guard let answer = answers[item] else { return .failure(status: 400, message: "unknown item \(item)") }
        return .completion(text: answer, finishReason: truncate.contains(item) ? "length" : "stop",
                           promptTokens: (request.messages.last?.text.count ?? 0) / 4, completionTokens: 1)
    }
}

/// The MMStar fixture (1,500 questions, text only) as an items JSONL and an answer key.
struct MMStarFixture {
    let suite: Suite
    let itemsFile: URL
    /// Item id → an answer naming the gold letter.
    let answers: [String: String]
    let count: Int

    static func make(in directory: URL) throws -> MMStarFixture {
        let source = try Fixtures.require("benchmarks/mmstar/llava_next_yi_34b_MMStar.converted.jsonl")
        let catalog = try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory)
        let suite = try catalog.suite("mmstar")
        var rows: [[String: Any]] = []
        let text = try String(contentsOf: source, encoding: .utf8)
        for line in text.split(separator: "\n") where !line.isEmpty {
            guard var row = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            row.removeValue(forKey: "prediction")  // the items, not a model's predictions
            rows.append(row)
        }
        let items = directory.appendingPathComponent("MMStar.jsonl")
        try Fixtures.writeJSONL(rows, to: items)
        let loaded = try suite.loadItems(from: try DatasetFile.read(items), images: .keep)
        var answers: [String: String] = [:]
        for item in loaded.map(\.item) {
            answers[item.id] = "The answer is (\(item.answer))."
        }
        return MMStarFixture(suite: suite, itemsFile: items, answers: answers, count: loaded.count)
    }
}

/// Starts a server, runs the body, always shuts the server down.
func withServer<T>(
    models: [String] = ["test-model"], apiKey: String? = nil, responder: any ChatResponder, faults: FaultPlan? = nil,
    port: Int = 0, _ body: (ChatCompletionsServer) async throws -> T
) async throws -> T {
    let server = try await ChatCompletionsServer.start(port: port, models: models, apiKey: apiKey, responder: responder, faults: faults)
    do {
        let result = try await body(server)
        await server.shutdown()
        return result
    } catch {
        await server.shutdown()
        throw error
    }
}

func backend(_ url: String, model: String = "test-model", concurrency: Int = 16, timeout: Double = 10,
             maxAttempts: Int = 8, apiKey: String? = nil) throws -> OpenAICompatibleBackend {
    try OpenAICompatibleBackend(.init(
        baseURLs: [url], model: model, apiKey: apiKey, timeout: timeout, maxAttempts: maxAttempts,
        initialBackoff: 0.02, maxBackoff: 0.2, maxConcurrency: concurrency))
}

/// Responses of a run's suite read straight from SQLite.
func storedResponses(_ store: Store, run: String, suite: String) throws -> [ResponseRecord] {
    try store.responses(runID: try store.requireRun(run).id, suiteID: suite)
}

/// A free TCP port on 127.0.0.1 that nothing listens on (bound, then released).
func closedPort() async throws -> Int {
    let server = try await HTTPServer.start { _ in .text(200, "") }
    let port = server.port
    await server.shutdown()
    return port
}

/// The `assay` executable built beside the test bundle.
func assayExecutable() throws -> URL {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("assay")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory.deleteLastPathComponent()
    }
    throw XCTSkip("the assay executable is not built beside the tests (build with --build-tests)")
}

/// A running `assay` child process with its output captured to files.
final class AssayProcess: @unchecked Sendable {
    let process = Process()
    let stdout: URL
    let stderr: URL

    init(_ arguments: [String], environment: [String: String] = [:], logs: URL, name: String) throws {
        process.executableURL = try assayExecutable()
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["ASSAY_SUITES_DIR"] = Fixtures.suitesDirectory.path
        for (key, value) in environment { env[key] = value }
        process.environment = env
        stdout = logs.appendingPathComponent("\(name).out")
        stderr = logs.appendingPathComponent("\(name).err")
        _ = FileManager.default.createFile(atPath: stdout.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderr.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: stdout)
        process.standardError = try FileHandle(forWritingTo: stderr)
        try process.run()
    }

    /// Waits for the exit (polling, so the test's executor is not blocked) and returns the status.
    func wait(timeout: TimeInterval = 300) async throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline {
                process.terminate()
                throw XCTSkip("assay did not finish within \(timeout) s")
            }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        return process.terminationStatus
    }

    var output: String { (try? String(contentsOf: stdout, encoding: .utf8)) ?? "" }
    var errors: String { (try? String(contentsOf: stderr, encoding: .utf8)) ?? "" }
}
