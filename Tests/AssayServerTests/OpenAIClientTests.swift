import AssayBackends
import AssayServer
import AssayTestSupport
import Foundation
import VLMRuntime
import XCTest

/// `assay serve` as the official `openai` Python client sees it: chat, streaming, `n`,
/// logprobs, images, models and errors. The client is installed from PyPI into a virtualenv
/// under /tmp the first time; the test skips with a message when python3-venv or PyPI is not
/// available.
final class OpenAIClientTests: XCTestCase {
    static let venv = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("assay-openai-venv")

    /// Runs a program with a deadline; returns its exit status and output.
    static func run(_ executable: String, _ arguments: [String], timeout: TimeInterval) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let log = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("assay-openai-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            return (-1, "timed out after \(Int(timeout)) s")
        }
        try? handle.close()
        return (process.terminationStatus, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }

    /// The virtualenv's python with `openai` importable, or a skip saying why not.
    static func pythonWithOpenAI() throws -> String {
        let python = venv.appendingPathComponent("bin/python").path
        if FileManager.default.isExecutableFile(atPath: python), try run(python, ["-c", "import openai"], timeout: 60).status == 0 {
            return python
        }
        guard try run("/usr/bin/env", ["python3", "--version"], timeout: 30).status == 0 else {
            throw XCTSkip("python3 is not installed: the openai-client test needs it")
        }
        let made = try run("/usr/bin/env", ["python3", "-m", "venv", venv.path], timeout: 120)
        guard made.status == 0 else {
            throw XCTSkip("python3 -m venv failed (install python3-venv; `make deps` does): \(made.output.suffix(300))")
        }
        let pip = try run(venv.appendingPathComponent("bin/pip").path,
                          ["install", "--quiet", "--disable-pip-version-check", "--timeout", "20", "openai"], timeout: 300)
        guard pip.status == 0 else {
            throw XCTSkip("pip install openai failed (PyPI unreachable?): \(pip.output.suffix(300))")
        }
        return python
    }

    func testTheOfficialOpenAIClientChatsStreamsSamplesReadsLogprobsAndSendsImages() async throws {
        let (_, model) = try ServeModels.tinyQwen()
        let python = try Self.pythonWithOpenAI()
        let script = Fixtures.repoRoot.appendingPathComponent("Tests/AssayServerTests/Python/openai_client_check.py").path
        let directory = try Fixtures.temporaryDirectory(for: self)
        let picture = try sanityPicture(2)
        let pngPath = directory.appendingPathComponent("picture.png")
        try picture.png.write(to: pngPath)

        let fruit = try generateAlone(model, [.user([.text("Name a fruit.")])], maxTokens: 12)
        let samples = try (0..<3).map {
            try generateAlone(model, [.user([.text("Pick a word.")])], maxTokens: 8, temperature: 1, seed: EmbeddedBackend.seed(42, sample: $0))
        }
        let image = try ImageDecoder.loadRGB(data: picture.png, name: "picture")
        let seen = try generateAlone(model, [.user([.image(image), .text("What is in the picture?")])], maxTokens: 6)

        let output = try await withInferenceServer(model) { server, _ in
            try await offPool { try Self.run(python, [script, server.baseURL + "/v1", "test-model", pngPath.path], timeout: 300) }
        }
        XCTAssertEqual(output.status, 0, output.output)
        let line = try XCTUnwrap(output.output.split(separator: "\n").last.map(String.init), output.output)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], output.output)

        let chat = try XCTUnwrap(json["chat"] as? [String: Any])
        XCTAssertEqual(chat["text"] as? String, fruit.text)
        XCTAssertEqual(chat["finish_reason"] as? String, fruit.finishReason.rawValue)
        XCTAssertEqual(chat["prompt_tokens"] as? Int, fruit.promptTokens)
        XCTAssertEqual(chat["completion_tokens"] as? Int, fruit.tokenIds.count)
        XCTAssertEqual(chat["object"] as? String, "chat.completion")

        let stream = try XCTUnwrap(json["stream"] as? [String: Any])
        XCTAssertEqual(stream["text"] as? String, fruit.text)
        XCTAssertEqual(stream["finish_reason"] as? String, fruit.finishReason.rawValue)
        XCTAssertEqual((stream["usage"] as? [String: Any])?["completion_tokens"] as? Int, fruit.tokenIds.count)
        XCTAssertGreaterThan(stream["chunks"] as? Int ?? 0, 2)

        XCTAssertEqual(json["n"] as? [String], samples.map(\.text))

        let logprobs = try XCTUnwrap(json["logprobs"] as? [[String: Any]])
        XCTAssertEqual(logprobs.count, 5)
        for entry in logprobs {
            XCTAssertEqual((entry["top"] as? [String])?.count, 3)
            XCTAssertEqual((entry["top"] as? [String])?.first, entry["token"] as? String, "greedy picks the most likely token")
        }

        let seenJSON = try XCTUnwrap(json["image"] as? [String: Any])
        XCTAssertEqual(seenJSON["text"] as? String, seen.text)
        XCTAssertEqual(seenJSON["prompt_tokens"] as? Int, seen.promptTokens, "the picture's tokens are in the prompt")

        XCTAssertEqual(json["models"] as? [String], ["test-model"])
        let error = try XCTUnwrap(json["error"] as? [String: Any], "an empty conversation is refused")
        XCTAssertEqual(error["type"] as? String, "BadRequestError")
        XCTAssertEqual(error["status"] as? Int, 400)
        XCTAssertTrue((error["message"] as? String)?.contains("'messages' must not be empty") == true, "\(error)")
    }
}
