import AssayBackends
import AssayCore
import AssayEngine
import AssayServer
import AssayStore
import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

/// What a sweep may read, send and store: image paths confined to the dataset folder (or
/// `--allow-dir`), only decodable pictures sent, answers stored whole (NUL bytes included), and
/// no secret (API key, URL password) in anything stored.
final class InputSafetySweepTests: XCTestCase {
    static let png = Data(base64Encoded: "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==")!

    /// A synthetic suite whose rows name `imagePath`, in `root/dataset`.
    func dataset(imagePath: String, root: URL, items: Int = 3) throws -> (Suite, URL) {
        let folder = root.appendingPathComponent("dataset")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let (suite, _) = try SyntheticSuite.write(items: 0, in: folder)
        var lines = ""
        for i in 0..<items {
            let row: [String: Any] = ["index": "\(i)", "question": "Question \(i)?", "A": "this", "B": "that", "answer": "A",
                                      "image_path": imagePath]
            lines += String(decoding: try JSONSerialization.data(withJSONObject: row), as: UTF8.self) + "\n"
        }
        let data = folder.appendingPathComponent("items.jsonl")
        try lines.write(to: data, atomically: true, encoding: .utf8)
        return (suite, data)
    }

    func testAPathOutsideTheDatasetIsNeverReadAndItsItemsAreStoredAsErrors() async throws {
        let root = try Fixtures.temporaryDirectory(for: self)
        try Self.png.write(to: root.appendingPathComponent("secret.png"))
        let (suite, data) = try dataset(imagePath: "../secret.png", root: root)
        let store = try Store(path: root.appendingPathComponent("s.sqlite").path)
        let (summary, requests) = try await withServer(responder: ConstantResponder(text: "A")) { server in
            let summary = try await Sweep(configuration: SweepConfiguration(run: "r", suites: [SweepSuite(suite: suite, dataset: data)]),
                                          backend: try backend(server.baseURL), store: store).run()
            return (summary, server.statistics.chatRequests)
        }
        XCTAssertEqual(requests, 0, "nothing was sent")
        XCTAssertEqual(summary.suites.first?.errors["unusable_item"], 3)
        let run = try XCTUnwrap(try store.run(named: "r"))
        let stored = try store.responses(runID: run.id, suiteID: suite.id)
        XCTAssertEqual(stored.count, 3)
        for r in stored {
            XCTAssertEqual(r.response.status, .error)
            let message = r.response.errorMessage ?? ""
            XCTAssertTrue(message.contains("outside") && message.contains("items.jsonl:") && message.contains("item '"), message)
        }

        // The same folder allowed with --allow-dir: the same command retries those items and answers them.
        var config = SweepConfiguration(run: "r", suites: [SweepSuite(suite: suite, dataset: data)])
        config.allowedImageDirectories = [root]
        let again = try await withServer(responder: ConstantResponder(text: "A")) { server in
            try await Sweep(configuration: config, backend: try backend(server.baseURL), store: store).run()
        }
        XCTAssertEqual(again.suites.first?.ok, 3)
    }

    func testBytesThatDoNotDecodeAreNeverSentAndTheOtherItemsAreAsked() async throws {
        let root = try Fixtures.temporaryDirectory(for: self)
        // A PNG signature and a sane IHDR, then garbage: the header check passes, the decoder does not.
        var broken = [UInt8](Self.png.prefix(33))
        broken += [UInt8](repeating: 0x41, count: 64)
        let folder = root.appendingPathComponent("dataset")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data(broken).write(to: folder.appendingPathComponent("broken.png"))
        try Self.png.write(to: folder.appendingPathComponent("ok.png"))
        let (suite, _) = try SyntheticSuite.write(items: 0, in: folder)
        var lines = ""
        for (i, path) in ["ok.png", "broken.png", "ok.png"].enumerated() {
            let row: [String: Any] = ["index": "\(i)", "question": "Question \(i)?", "A": "this", "B": "that", "answer": "A", "image_path": path]
            lines += String(decoding: try JSONSerialization.data(withJSONObject: row), as: UTF8.self) + "\n"
        }
        let data = folder.appendingPathComponent("items.jsonl")
        try lines.write(to: data, atomically: true, encoding: .utf8)
        let store = try Store(path: root.appendingPathComponent("s.sqlite").path)
        let (summary, requests) = try await withServer(responder: ConstantResponder(text: "A")) { server in
            let summary = try await Sweep(configuration: SweepConfiguration(run: "r", suites: [SweepSuite(suite: suite, dataset: data)]),
                                          backend: try backend(server.baseURL), store: store).run()
            return (summary, server.statistics.chatRequests)
        }
        XCTAssertEqual(requests, 2, "the two good items were asked, the broken one was not")
        XCTAssertEqual(summary.suites.first?.ok, 2)
        XCTAssertEqual(summary.suites.first?.errors["unusable_item"], 1)
        let run = try XCTUnwrap(try store.run(named: "r"))
        let bad = try XCTUnwrap(try store.responses(runID: run.id, suiteID: suite.id).first { $0.itemID == "1" })
        XCTAssertTrue(bad.response.errorMessage?.contains("not an image") ?? false, "\(String(describing: bad.response.errorMessage))")
    }

    /// Answers with a fixed text, whatever the question.
    struct EchoResponder: ChatResponder {
        var text: String
        func reply(to request: OpenAIWire.ChatRequest, context: ChatRequestContext) async -> ChatReply { .answer(text) }
    }

    func testAnswersAreStoredWholeWithNULBytesAndWithoutAnEchoedKey() async throws {
        let root = try Fixtures.temporaryDirectory(for: self)
        let (suite, data) = try SyntheticSuite.write(items: 2, in: root)
        let store = try Store(path: root.appendingPathComponent("s.sqlite").path)
        let key = "sk-test-0123456789abcdef"
        let answer = "The answer is (A).\u{0}and after the NUL, the key \(key) echoed"
        _ = try await withServer(apiKey: key, responder: EchoResponder(text: answer)) { server in
            try await Sweep(configuration: SweepConfiguration(run: "nul", suites: [SweepSuite(suite: suite, dataset: data)]),
                            backend: try backend(server.baseURL, apiKey: key), store: store).run()
        }
        let responses = try storedResponses(store, run: "nul", suite: suite.id)
        XCTAssertEqual(responses.count, 2)
        for r in responses {
            XCTAssertEqual(r.response.text, "The answer is (A).\u{0}and after the NUL, the key [redacted] echoed")
        }
        // And the raw database file holds the text after the NUL but never the key.
        let bytes = try Data(contentsOf: root.appendingPathComponent("s.sqlite"))
            + ((try? Data(contentsOf: root.appendingPathComponent("s.sqlite-wal"))) ?? Data())
        XCTAssertNotNil(bytes.range(of: Data("and after the NUL".utf8)))
        XCTAssertNil(bytes.range(of: Data(key.utf8)))
    }

    func testAPasswordInTheBaseURLIsInNoStoredMessage() async throws {
        let root = try Fixtures.temporaryDirectory(for: self)
        let (suite, data) = try SyntheticSuite.write(items: 2, in: root)
        let store = try Store(path: root.appendingPathComponent("s.sqlite").path)
        let port = try await closedPort()
        let summary = try await Sweep(
            configuration: SweepConfiguration(run: "down", suites: [SweepSuite(suite: suite, dataset: data)]),
            backend: try backend("http://alice:hunter2-secret@127.0.0.1:\(port)", maxAttempts: 2), store: store).run()
        XCTAssertEqual(summary.missing, 2)
        for r in try storedResponses(store, run: "down", suite: suite.id) {
            let message = try XCTUnwrap(r.response.errorMessage)
            XCTAssertFalse(message.contains("hunter2"), message)
            XCTAssertFalse(message.contains("alice"), message)
            XCTAssertTrue(message.contains("127.0.0.1:\(port)"), message)
        }
        XCTAssertEqual(Redaction.userInfo(in: "GET http://u:p@h:1/v1 and https://x@y/z"), "GET http://[redacted]@h:1/v1 and https://[redacted]@y/z")
    }

    func testAResponseOverTheSizeCapIsAnErrorNotStoredText() async throws {
        let root = try Fixtures.temporaryDirectory(for: self)
        let (suite, data) = try SyntheticSuite.write(items: 2, in: root)
        let store = try Store(path: root.appendingPathComponent("s.sqlite").path)
        let summary = try await withServer(responder: EchoResponder(text: String(repeating: "A", count: 64 * 1024))) { server in
            let model = try OpenAICompatibleBackend(.init(
                baseURLs: [server.baseURL], model: "test-model", timeout: 10, maxAttempts: 3, initialBackoff: 0.01,
                maxBackoff: 0.05, maxResponseBytes: 16 * 1024))
            return try await Sweep(configuration: SweepConfiguration(run: "big", suites: [SweepSuite(suite: suite, dataset: data)]),
                                   backend: model, store: store).run()
        }
        XCTAssertEqual(summary.suites.first?.errors["response_too_large"], 2, "\(summary.suites.first?.errors ?? [:])")
        for r in try storedResponses(store, run: "big", suite: suite.id) {
            XCTAssertEqual(r.response.status, .error)
            XCTAssertEqual(r.response.text, "")
            XCTAssertEqual(r.response.attempts, 1, "the same request gets the same oversized answer: not retried")
        }
    }
}
