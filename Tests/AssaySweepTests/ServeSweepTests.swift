import AssayStore
import AssayTestSupport
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest

/// `assay sweep --backend openai` against `assay serve` answers what `--backend local` answers,
/// through the command line end to end: the server as a child process, stopped by SIGTERM.
final class ServeSweepTests: XCTestCase {
    /// Waits (bounded) until the child server answers /health.
    private func waitUntilServing(_ server: AssayProcess, port: Int) async throws {
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            if !server.process.isRunning { XCTFail("assay serve exited: \(server.errors)"); return }
            if let url = URL(string: "http://127.0.0.1:\(port)/health"),
               let (_, response) = try? await URLSession.shared.data(from: url), (response as? HTTPURLResponse)?.statusCode == 200 {
                return
            }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        throw XCTSkip("assay serve did not start within 120 s")
    }

    private func sweepMatchesLocal(modelPath: String, name: String, limit: Int?, maxTokens: Int) async throws {
        let directory = try Fixtures.temporaryDirectory(for: self)
        let db = directory.appendingPathComponent("serve.sqlite").path
        let port = try await closedPort()
        let server = try AssayProcess(["serve", "--model-path", modelPath, "--served-model-name", name, "--port", String(port), "--max-batch", "8"],
                                      logs: directory, name: "serve")
        defer { if server.process.isRunning { server.process.terminate() } }
        try await waitUntilServing(server, port: port)

        let common = ["--db", db, "--suites", "sanity", "--temperature", "0", "--max-tokens", String(maxTokens)] + (limit.map { ["--limit", String($0)] } ?? [])
        let served = try AssayProcess(["sweep", "--run", "served", "--backend", "openai", "--base-url", "http://127.0.0.1:\(port)",
                                       "--model-name", name, "--concurrency", "8"] + common, logs: directory, name: "sweep-served")
        let servedStatus = try await served.wait()
        XCTAssertEqual(servedStatus, 0, served.errors)
        let local = try AssayProcess(["sweep", "--run", "local", "--backend", "local", "--model-path", modelPath] + common,
                                     logs: directory, name: "sweep-local")
        let localStatus = try await local.wait()
        XCTAssertEqual(localStatus, 0, local.errors)

        // SIGTERM: the server finishes and exits cleanly.
        kill(server.process.processIdentifier, SIGTERM)
        let serverStatus = try await server.wait(timeout: 60)
        XCTAssertEqual(serverStatus, 0, server.errors)
        XCTAssertTrue(server.output.contains("assay serve: stopped"), server.output)

        let store = try Store(path: db)
        let viaServer = try storedResponses(store, run: "served", suite: "sanity")
        let viaLocal = try storedResponses(store, run: "local", suite: "sanity")
        XCTAssertEqual(viaServer.count, limit ?? 200)
        XCTAssertEqual(viaLocal.count, viaServer.count)
        let localText = Dictionary(uniqueKeysWithValues: viaLocal.map { ($0.itemID, $0.response.text) })
        var same = 0
        for response in viaServer {
            XCTAssertEqual(response.response.text, localText[response.itemID], "item \(response.itemID)")
            if response.response.text == localText[response.itemID] { same += 1 }
        }
        print("serve vs local (\(name)): \(same)/\(viaServer.count) identical answers")
    }

    /// The tiny Qwen2.5-VL sees the pictures: the server decodes the data: URLs the sweep sends.
    func testSweepThroughServeEqualsLocalOnTheSanitySuiteWithTheTinyQwen25VL() async throws {
        let checkpoint = try Fixtures.require("goldens/qwen2_5_vl_tiny/checkpoint")
        try await sweepMatchesLocal(modelPath: checkpoint.path, name: "qwen2_5_vl_tiny", limit: nil, maxTokens: 8)
    }

    func testSweepThroughServeEqualsLocalOnTheSanitySuiteWithSmolLM2() async throws {
        let gguf = try Fixtures.smolLM2Path()
        try await sweepMatchesLocal(modelPath: gguf, name: "smollm2", limit: 20, maxTokens: 16)
    }
}
