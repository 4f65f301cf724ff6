import AssayCore
import AssayServer
import AssayTestSupport
import Foundation
import NIOCore
import VLMRuntime
import XCTest

/// Hostile traffic against a running `assay serve` on 127.0.0.1: the server never crashes (it
/// runs in this process), every answer it gives is a well-formed HTTP response, and a correct
/// request afterwards is answered correctly. Bounded: a fixed number of requests and a deadline.
final class ServeFuzzTests: XCTestCase {
    static let requests = Int(ProcessInfo.processInfo.environment["ASSAY_FUZZ_REQUESTS"] ?? "") ?? 10_000
    static let workers = 8
    /// The whole fuzz stops by itself after this long, whatever it has done.
    static let deadlineSeconds = 240.0

    /// What one fuzz case got back.
    enum Outcome: Equatable {
        case response(Int)
        /// The server closed the connection without answering (allowed for broken requests).
        case closed
        /// The client stopped reading on purpose (disconnect mid-stream).
        case abandoned
    }

    func testTenThousandHostileRequestsNeverCrashAndEveryAnswerIsWellFormed() async throws {
        let (_, model) = try ServeModels.tinyQwen()
        let want = try generateAlone(model, [.user([.text("After the storm.")])], maxTokens: 6)
        let picture = try sanityPicture(1)
        // A mutated body may lose its max_tokens; the cap keeps such requests short.
        try await withInferenceServer(model, maxBatch: 4, maxQueue: 512, maxTokensLimit: 48, configure: {
            $0.maxBodyBytes = 256 << 10
            $0.requestTimeout = .milliseconds(800)
            $0.idleTimeout = .seconds(2)
        }) { server, served in
            // A hostile request is answered or closed within the 0.8 s request timeout; 30 s is ample.
            let client = RawHTTPClient(port: served.port, timeout: 30)
            let deadline = Date().addingTimeInterval(Self.deadlineSeconds)
            let results = try await withThrowingTaskGroup(of: [String: Int].self) { group in
                for worker in 0..<Self.workers {
                    group.addTask {
                        try await offPool {
                            var counts: [String: Int] = [:]
                            var random = SeededGenerator(seed: UInt64(worker) &* 0x9E37_79B9 &+ 1)
                            var i = worker
                            while i < Self.requests, Date() < deadline {
                                let outcome: Outcome
                                do {
                                    outcome = try Self.run(case: i, client: client, random: &random, png: picture.png)
                                } catch {
                                    throw RawHTTPClient.Failure.malformed("case \(i) (kind \(i % 12)): \(error)")
                                }
                                switch outcome {
                                case .response(let status): counts["\(status)", default: 0] += 1
                                case .closed: counts["closed", default: 0] += 1
                                case .abandoned: counts["abandoned", default: 0] += 1
                                }
                                i += Self.workers
                            }
                            return counts
                        }
                    }
                }
                var total: [String: Int] = [:]
                for try await counts in group { total.merge(counts, uniquingKeysWith: +) }
                return total
            }
            let slow = try await Self.slowLoris(client: client, connections: 16)

            let done = results.values.reduce(0, +)
            print("serve fuzz: \(done) requests, outcomes \(results.sorted { $0.key < $1.key }); slow-loris \(slow)")
            XCTAssertEqual(done, Self.requests, "every case ran before the deadline")
            XCTAssertGreaterThan(results["200"] ?? 0, 0, "some valid requests were among them and were answered")
            XCTAssertGreaterThan(results["400"] ?? 0, Self.requests / 4, "most hostile bodies are refused with 400")
            XCTAssertNil(results.keys.first { $0.hasPrefix("5") && $0 != "503" }, "no server errors: \(results)")

            // Afterwards a correct request is answered correctly, and nothing is left running.
            let after = try await offPool {
                try client.post("/v1/chat/completions", json: ["model": "test-model", "max_tokens": 6, "temperature": 0,
                                                               "messages": [["role": "user", "content": "After the storm."]]])
            }
            XCTAssertEqual(after.status, 200, after.text)
            let message = ((after.json()?["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
            XCTAssertEqual(message, want.text)
            let idle = await eventually { server.scheduler.snapshot.activeSequences == 0 && server.scheduler.snapshot.queueDepth == 0 }
            XCTAssertTrue(idle)
        }
    }

    // MARK: - Cases

    // Read-only after initialisation; copied before any change.
    nonisolated(unsafe) private static let validBody: [String: Any] = ["model": "test-model", "max_tokens": 2, "temperature": 0,
                                                   "messages": [["role": "user", "content": "Hi"]]]

    /// One hostile (or, one case in ten, valid) request on a fresh connection.
    static func run(case i: Int, client: RawHTTPClient, random: inout SeededGenerator, png: Data) throws -> Outcome {
        let connection = try client.connect()
        func post(_ body: [UInt8], declared: Int? = nil, extraHeaders: String = "") -> Bool {
            connection.send("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\(extraHeaders)Content-Length: \(declared ?? body.count)\r\n\r\n")
                && connection.send(body)
        }
        func json(_ object: Any) -> [UInt8] { Array((try? JSONSerialization.data(withJSONObject: object)) ?? Data("{}".utf8)) }
        let valid = json(validBody)
        switch i % 12 {
        case 0:
            // Truncated body: fewer bytes than announced, then the client stops sending.
            let cut = Int.random(in: 0..<valid.count, using: &random)
            _ = post(Array(valid[..<cut]), declared: valid.count)
            shutdown(connection.fd, Int32(SHUT_WR))
        case 1:
            // Wrong types in every field the server reads.
            var body = validBody
            let field = ["model", "messages", "max_tokens", "temperature", "top_p", "n", "seed", "stop", "logprobs", "top_logprobs",
                         "stream", "stream_options", "max_completion_tokens"].randomElement(using: &random) ?? "model"
            let wrong: [Any] = [["nested": [1, 2]], [1, "a", NSNull()], "text", 3.5, true, NSNull(), -1, [[["role": 7]]]]
            body[field] = wrong.randomElement(using: &random)
            _ = post(json(body))
        case 2:
            // Huge and non-integral numbers.
            var body = validBody
            let field = ["max_tokens", "n", "temperature", "top_p", "seed", "top_logprobs", "max_completion_tokens"].randomElement(using: &random) ?? "n"
            let numbers = ["1e308", "-1e308", "18446744073709551616", "99999999999999999999999", "0.5", "-0", "1e-400", "123456789012"]
            let text = String(decoding: json(body), as: UTF8.self).dropLast() + ",\"\(field)\":\(numbers.randomElement(using: &random) ?? "1e308")}"
            _ = post(Array(text.utf8))
        case 3:
            // Deep nesting, in arrays or objects, inside a field or as the whole body.
            let depth = [100, 1_000, 50_000].randomElement(using: &random) ?? 1000
            let open = Bool.random(using: &random) ? "[" : "{\"a\":"
            let close = open == "[" ? "]" : "}"
            let nested = String(repeating: open, count: depth) + "1" + String(repeating: close, count: depth)
            let body = Bool.random(using: &random) ? nested : "{\"model\":\"test-model\",\"messages\":\(nested)}"
            _ = post(Array(body.utf8))
        case 4:
            // Invalid UTF-8 inside a string.
            var body = Array("{\"model\":\"test-model\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"".utf8)
            body += [[0xFF], [0xC3, 0x28], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80]].randomElement(using: &random) ?? [0xFF]
            body += Array("\"}]}".utf8)
            _ = post(body)
        case 5:
            // Random bytes.
            let n = Int.random(in: 0..<2048, using: &random)
            _ = post((0..<n).map { _ in UInt8.random(in: 0...255, using: &random) })
        case 6:
            // A valid body with a few bytes flipped, dropped or inserted.
            var body = valid
            for _ in 0..<Int.random(in: 1...4, using: &random) where !body.isEmpty {
                let at = Int.random(in: 0..<body.count, using: &random)
                switch Int.random(in: 0..<3, using: &random) {
                case 0: body[at] = UInt8.random(in: 0...255, using: &random)
                case 1: body.remove(at: at)
                default: body.insert(Array("{}[]\",:\\0".utf8).randomElement(using: &random) ?? 0, at: at)
                }
            }
            _ = post(body)
        case 7:
            // Broken HTTP: garbage request lines, huge headers, odd methods, bad lengths.
            let variants: [String] = [
                "GARBAGE\r\n\r\n",
                "GET / HTTP/9.9\r\n\r\n",
                "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
                "GET /health HTTP/1.1\r\nX-Big: \(String(repeating: "a", count: 100_000))\r\n\r\n",
                "DELETE /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n",
                "GET /v1/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
                "POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
            ]
            connection.send(variants.randomElement(using: &random) ?? "GARBAGE\r\n\r\n")
        case 8:
            // A body far over the limit, announced or sent.
            if Bool.random(using: &random) {
                connection.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n")
            } else {
                _ = post([UInt8](repeating: UInt8(ascii: "x"), count: 300 << 10))
            }
        case 9:
            // Hostile content: bad images, unknown roles and part types, empty messages.
            let contents: [Any] = [
                [["type": "image_url", "image_url": ["url": "data:image/png;base64,!!!!"]]],
                [["type": "image_url", "image_url": ["url": "data:image/png;base64," + Data(png.prefix(100)).base64EncodedString()]]],
                [["type": "image_url", "image_url": ["url": "/etc/passwd"]]],
                [["type": "image_url", "image_url": ["url": "http://example.com/a.png"]]],
                [["type": "audio", "audio": "x"]],
                [["type": "text"]],
            ]
            var body = validBody
            body["messages"] = Bool.random(using: &random)
                ? [["role": "user", "content": contents.randomElement(using: &random) ?? []]]
                : [[["role": "wizard", "content": "x"]], [], [["content": "x"]]].randomElement(using: &random) ?? []
            _ = post(json(body))
        case 10:
            // Valid, streamed, and abandoned after the first chunk: a disconnect mid-stream.
            var body = validBody
            body["stream"] = true
            body["max_tokens"] = 40
            _ = post(json(body))
            var chunks = 0
            _ = try connection.readResponse { _ in
                chunks += 1
                return false
            }
            return .abandoned
        default:
            // Valid: with an image, a stop string, n and logprobs now and then.
            var body = validBody
            if Bool.random(using: &random) {
                body["messages"] = [["role": "user", "content": [["type": "image_url", "image_url": ["url": dataURL(png)]], ["type": "text", "text": "What?"]]]]
            }
            if Bool.random(using: &random) { body["n"] = 2; body["temperature"] = 0.7; body["seed"] = i }
            if Bool.random(using: &random) { body["logprobs"] = true; body["top_logprobs"] = 2 }
            if Bool.random(using: &random) { body["stream"] = true }
            _ = post(json(body))
            guard let response = try connection.readResponse() else { return .closed }
            if response.status != 200 && response.status != 429 {
                throw RawHTTPClient.Failure.malformed("a valid request got \(response.status): \(response.text)")
            }
            return .response(response.status)
        }
        return try answer(connection)
    }

    /// The response to a hostile request, checked for form: an OpenAI error JSON when it is ours.
    static func answer(_ connection: RawHTTPClient.Connection) throws -> Outcome {
        let response: RawHTTPClient.Response?
        do {
            response = try connection.readResponse()
        } catch RawHTTPClient.Failure.timedOut {
            throw RawHTTPClient.Failure.malformed("no answer and no close within the client's timeout")
        }
        guard let response else { return .closed }
        if response.headers["content-type"] == "application/json", response.status >= 400 {
            guard let error = response.json()?["error"] as? [String: Any], error["message"] is String else {
                throw RawHTTPClient.Failure.malformed("an error without OpenAI's error body: \(response.text.prefix(200))")
            }
        }
        return .response(response.status)
    }

    /// Connections that send a request one byte at a time, too slowly: the server must hang up
    /// (with a 408 or without an answer) instead of waiting for them. Returns the outcomes.
    static func slowLoris(client: RawHTTPClient, connections: Int) async throws -> [String: Int] {
        try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<connections {
                group.addTask {
                    try await offPool {
                        let connection = try client.connect()
                        let request = Array("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"model\":".utf8)
                        var sent = 0
                        let deadline = Date().addingTimeInterval(10)
                        // One byte every 100 ms: the 0.8 s request timeout comes long before the end.
                        while sent < request.count, Date() < deadline {
                            if !connection.send([request[sent]]) { break }
                            sent += 1
                            usleep(100_000)
                        }
                        guard let response = try connection.readResponse() else { return "closed" }
                        return "\(response.status)"
                    }
                }
            }
            var counts: [String: Int] = [:]
            for try await outcome in group {
                XCTAssertTrue(outcome == "closed" || outcome == "408", "slow client got \(outcome)")
                counts[outcome, default: 0] += 1
            }
            return counts
        }
    }
}
