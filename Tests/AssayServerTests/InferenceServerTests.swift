import AssayBackends
import AssayServer
import AssayTestSupport
import Foundation
import VLMRuntime
import XCTest

/// `assay serve` end to end over real sockets: the answers are the runtime's, requests overlap in
/// one running batch, streams follow OpenAI's chunk format, limits answer with OpenAI errors.
final class InferenceServerTests: XCTestCase {
    /// A chat request body (JSON bytes, which cross into the client threads).
    private static func chat(_ content: Any, maxTokens: Int, extra: [String: Any] = [:]) -> Data {
        var body: [String: Any] = ["model": "test-model", "messages": [["role": "user", "content": content]],
                                   "max_tokens": maxTokens, "temperature": 0]
        for (k, v) in extra { body[k] = v }
        return (try? JSONSerialization.data(withJSONObject: body)) ?? Data()
    }

    private func chat(_ content: Any, maxTokens: Int, extra: [String: Any] = [:]) -> Data {
        Self.chat(content, maxTokens: maxTokens, extra: extra)
    }

    private func content(_ response: RawHTTPClient.Response, choice: Int = 0) throws -> String {
        let json = try XCTUnwrap(response.json(), response.text)
        let choices = try XCTUnwrap(json["choices"] as? [[String: Any]])
        let message = try XCTUnwrap(choices[choice]["message"] as? [String: Any])
        return try XCTUnwrap(message["content"] as? String)
    }

    /// Requests of different lengths and with and without images, sent together so that they
    /// join and leave one running batch at different steps, answer exactly what the runtime
    /// answers for each prompt alone.
    func testGreedyAnswersEqualGenerateAloneWhileRequestsJoinAndLeaveTheBatch() async throws {
        let (_, model) = try ServeModels.tinyQwen()
        let pictures = try (0..<3).map { try sanityPicture($0) }
        let prompts: [(parts: [[String: Any]], conversation: [ChatMessage], maxTokens: Int)] = try pictures.enumerated().map { i, p in
            let image = try ImageDecoder.loadRGB(data: p.png, name: "p\(i)")
            return ([["type": "image_url", "image_url": ["url": dataURL(p.png)]], ["type": "text", "text": p.question]],
                    [.user([.image(image), .text(p.question)])], 7 + 9 * i)
        } + [([["type": "text", "text": "Count to ten."]], [.user([.text("Count to ten.")])], 12)]
        let expected = try prompts.map { try generateAlone(model, $0.conversation, maxTokens: $0.maxTokens) }

        try await withInferenceServer(model, maxBatch: 8) { server, client in
            let answers = try await withThrowingTaskGroup(of: (Int, RawHTTPClient.Response).self) { group in
                for (i, prompt) in prompts.enumerated() {
                    let body = chat(prompt.parts, maxTokens: prompt.maxTokens)
                    group.addTask { (i, try await offPool { try client.post("/v1/chat/completions", json: body) }) }
                }
                var out: [Int: RawHTTPClient.Response] = [:]
                for try await (i, r) in group { out[i] = r }
                return out
            }
            for (i, want) in expected.enumerated() {
                let response = try XCTUnwrap(answers[i])
                XCTAssertEqual(response.status, 200, response.text)
                XCTAssertEqual(try content(response), want.text, "prompt \(i)")
                let json = try XCTUnwrap(response.json())
                let usage = try XCTUnwrap(json["usage"] as? [String: Any])
                XCTAssertEqual(usage["prompt_tokens"] as? Int, want.promptTokens)
                XCTAssertEqual(usage["completion_tokens"] as? Int, want.tokenIds.count)
                let choice = try XCTUnwrap((json["choices"] as? [[String: Any]])?.first)
                XCTAssertEqual(choice["finish_reason"] as? String, want.finishReason.rawValue)
            }
            // The four overlapped: some decode steps ran more than one sequence.
            let steps = server.scheduler.snapshot.stepsByBatchSize
            XCTAssertGreaterThan(steps.filter { $0.key > 1 }.values.reduce(0, +), 0, "steps by batch size: \(steps)")
        }
    }

    /// The same check on a real model and its stop token: SmolLM2's greedy answers through the
    /// server equal `generate`'s, alone and overlapped.
    func testSmolLM2GreedyAnswersThroughServeEqualGenerate() async throws {
        let (_, model) = try ServeModels.smolLM2()
        let questions = ["What is the capital of France?", "Name three colours.", "Say hello."]
        let expected = try questions.map { try generateAlone(model, [.user([.text($0)])], maxTokens: 24) }
        try await withInferenceServer(model) { _, client in
            let answers = try await withThrowingTaskGroup(of: (Int, RawHTTPClient.Response).self) { group in
                for (i, q) in questions.enumerated() {
                    let body = chat(q, maxTokens: 24)
                    group.addTask { (i, try await offPool { try client.post("/v1/chat/completions", json: body) }) }
                }
                var out: [Int: RawHTTPClient.Response] = [:]
                for try await (i, r) in group { out[i] = r }
                return out
            }
            for (i, want) in expected.enumerated() {
                XCTAssertEqual(try content(try XCTUnwrap(answers[i])), want.text, questions[i])
            }
        }
    }

    func testStreamingDeltasConcatenateToTheAnswerAndEndWithUsageAndDone() async throws {
        let (_, model) = try ServeModels.tinyQwen()
        let want = try generateAlone(model, [.user([.text("Tell me a story.")])], maxTokens: 20)
        try await withInferenceServer(model) { _, client in
            let body = chat("Tell me a story.", maxTokens: 20, extra: ["stream": true, "stream_options": ["include_usage": true]])
            let response = try await offPool { try client.post("/v1/chat/completions", json: body) }
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.headers["content-type"], "text/event-stream")
            XCTAssertEqual(response.headers["transfer-encoding"], "chunked")
            let events = RawHTTPClient.events(response.body)
            XCTAssertEqual(events.last, "[DONE]")
            let chunks = try events.dropLast().map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
            XCTAssertTrue(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
            var text = ""
            var finish: String?
            for chunk in chunks {
                for choice in chunk["choices"] as? [[String: Any]] ?? [] {
                    text += (choice["delta"] as? [String: Any])?["content"] as? String ?? ""
                    if let reason = choice["finish_reason"] as? String { finish = reason }
                }
            }
            XCTAssertEqual(text, want.text)
            XCTAssertEqual(finish, want.finishReason.rawValue)
            let first = try XCTUnwrap(chunks.first?["choices"] as? [[String: Any]])
            XCTAssertEqual((first.first?["delta"] as? [String: Any])?["role"] as? String, "assistant")
            let usageChunk = try XCTUnwrap(chunks.last)
            XCTAssertEqual((usageChunk["choices"] as? [Any])?.count, 0)
            let usage = try XCTUnwrap(usageChunk["usage"] as? [String: Any])
            XCTAssertEqual(usage["completion_tokens"] as? Int, want.tokenIds.count)
            XCTAssertEqual(usage["prompt_tokens"] as? Int, want.promptTokens)
        }
    }

    /// `n` choices of a seeded request are the embedded backend's samples 0…n−1 of that seed,
    /// drawn from one prefill; log-probabilities come per token with the asked alternatives.
    func testChoicesAreTheSeededSamplesAndCarryLogprobs() async throws {
        let (_, model) = try ServeModels.tinyQwen()
        let conversation: [ChatMessage] = [.user([.text("Pick a word.")])]
        let expected = try (0..<3).map {
            try generateAlone(model, conversation, maxTokens: 8, temperature: 1, seed: EmbeddedBackend.seed(42, sample: $0))
        }
        try await withInferenceServer(model) { server, client in
            let body = chat("Pick a word.", maxTokens: 8, extra: ["n": 3, "seed": 42, "temperature": 1, "logprobs": true, "top_logprobs": 2])
            let response = try await offPool { try client.post("/v1/chat/completions", json: body) }
            XCTAssertEqual(response.status, 200, response.text)
            XCTAssertEqual(server.scheduler.snapshot.prefills, 1, "one prefill serves the three choices")
            let choices = try XCTUnwrap(response.json()?["choices"] as? [[String: Any]])
            XCTAssertEqual(choices.count, 3)
            for (i, want) in expected.enumerated() {
                XCTAssertEqual(choices[i]["index"] as? Int, i)
                XCTAssertEqual(try content(response, choice: i), want.text, "choice \(i)")
                let entries = try XCTUnwrap((choices[i]["logprobs"] as? [String: Any])?["content"] as? [[String: Any]])
                XCTAssertEqual(entries.count, want.tokenIds.count)
                for entry in entries {
                    let lp = try XCTUnwrap(entry["logprob"] as? Double)
                    XCTAssertLessThanOrEqual(lp, 0)
                    let top = try XCTUnwrap(entry["top_logprobs"] as? [[String: Any]])
                    XCTAssertEqual(top.count, 2)
                    let best = try XCTUnwrap(top.first?["logprob"] as? Double)
                    XCTAssertGreaterThanOrEqual(best, lp - 1e-9, "the first alternative is the most likely token")
                }
            }
            XCTAssertNotEqual(Set(expected.map(\.text)).count, 1, "three seeds drew different samples (else the check is vacuous)")
        }
    }

    func testGreedyLogprobsTopAlternativeIsTheChosenToken() async throws {
        let (_, model) = try ServeModels.tinyQwen()
        try await withInferenceServer(model) { _, client in
            let body = chat("Hello", maxTokens: 5, extra: ["logprobs": true, "top_logprobs": 3])
            let response = try await offPool { try client.post("/v1/chat/completions", json: body) }
            let choice = try XCTUnwrap((response.json()?["choices"] as? [[String: Any]])?.first)
            let entries = try XCTUnwrap((choice["logprobs"] as? [String: Any])?["content"] as? [[String: Any]])
            XCTAssertEqual(entries.count, 5)
            for entry in entries {
                let top = try XCTUnwrap(entry["top_logprobs"] as? [[String: Any]])
                XCTAssertEqual(top.first?["token"] as? String, entry["token"] as? String)
                XCTAssertEqual(try XCTUnwrap(top.first?["logprob"] as? Double), try XCTUnwrap(entry["logprob"] as? Double), accuracy: 1e-9)
            }
        }
    }

    /// A streaming client that hangs up frees its place in the batch: with room for one
    /// sequence, the next request is answered, and the abandoned one stopped long before its
    /// token budget.
    func testAClientThatDisconnectsMidStreamFreesItsSlot() async throws {
        let (_, model) = try ServeModels.tinyQwen()
        try await withInferenceServer(model, maxBatch: 1) { server, client in
            let body = (chat("Go on forever.", maxTokens: 4000, extra: ["stream": true]))
            try await offPool {
                let connection = try client.connect()
                connection.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n")
                connection.send(Array(body))
                var chunks = 0
                _ = try connection.readResponse { _ in
                    chunks += 1
                    return chunks < 3
                }
                // `connection` closes here: the client is gone mid-stream.
            }
            let freed = await eventually { server.scheduler.snapshot.activeSequences == 0 }
            XCTAssertTrue(freed, "the abandoned sequence left the batch")
            let sampled = server.scheduler.snapshot.completionTokens
            XCTAssertLessThan(sampled, 4000, "generation stopped when the client left")
            let next = try await offPool { try client.post("/v1/chat/completions", json: Self.chat("Hi", maxTokens: 3)) }
            XCTAssertEqual(next.status, 200)
        }
    }

    func testLimitsAndBadInputAnswerOpenAIErrorsThatNameTheProblem() async throws {
        let (_, model) = try ServeModels.tinyQwen()
        try await withInferenceServer(model, maxBatch: 1, maxQueue: 1, configure: { $0.maxBodyBytes = 64 << 10 }) { server, client in
            func error(_ r: RawHTTPClient.Response) -> String {
                ((r.json()?["error"] as? [String: Any])?["message"] as? String) ?? "<no OpenAI error body: \(r.text)>"
            }
            let huge = try await offPool { try client.post("/v1/chat/completions", json: Self.chat(String(repeating: "x", count: 100_000), maxTokens: 1)) }
            XCTAssertEqual(huge.status, 413)
            XCTAssertTrue(error(huge).contains("larger than"), error(huge))

            let context = try await offPool { try client.post("/v1/chat/completions", json: Self.chat("Hi", maxTokens: 4096)) }
            XCTAssertEqual(context.status, 400)
            XCTAssertTrue(error(context).contains("maximum context length is 4096"), error(context))

            let tooMany = try await offPool { try client.post("/v1/chat/completions", json: Self.chat("Hi", maxTokens: 5000)) }
            XCTAssertEqual(tooMany.status, 400)
            XCTAssertTrue(error(tooMany).contains("'max_tokens'"), error(tooMany))

            let badBase64 = try await offPool {
                try client.post("/v1/chat/completions", json: Self.chat([["type": "image_url", "image_url": ["url": "data:image/png;base64,@@@"]]], maxTokens: 1))
            }
            XCTAssertEqual(badBase64.status, 400)
            XCTAssertTrue(error(badBase64).contains("base64"), error(badBase64))

            let notAnImage = try await offPool {
                try client.post("/v1/chat/completions", json: Self.chat([["type": "image_url", "image_url": ["url": "data:image/png;base64,aGVsbG8="]]], maxTokens: 1))
            }
            XCTAssertEqual(notAnImage.status, 400)
            XCTAssertTrue(error(notAnImage).contains("does not decode"), error(notAnImage))

            let malformed = try await offPool { try client.request("POST", "/v1/chat/completions", body: Data("{\"model\": ".utf8)) }
            XCTAssertEqual(malformed.status, 400)
            XCTAssertTrue(error(malformed).contains("not valid JSON"), error(malformed))

            let wrongType = try await offPool { try client.post("/v1/chat/completions", json: Self.chat("Hi", maxTokens: 1, extra: ["temperature": "hot"])) }
            XCTAssertEqual(wrongType.status, 400)
            XCTAssertTrue(error(wrongType).contains("'temperature' must be a number"), error(wrongType))

            let unknown = try await offPool { try client.post("/v1/chat/completions", json: Self.chat("Hi", maxTokens: 1, extra: ["model": "gpt-9"])) }
            XCTAssertEqual(unknown.status, 404)

            // Queue: one running (a long stream), one waiting, the third is told to come back.
            let long = (chat("Go on.", maxTokens: 3000, extra: ["stream": true]))
            let first = try client.connect()
            first.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: \(long.count)\r\n\r\n")
            first.send(Array(long))
            let running = await eventually { server.scheduler.snapshot.activeSequences == 1 }
            XCTAssertTrue(running)
            let second = try client.connect()
            let short = (chat("Hi", maxTokens: 2))
            second.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: \(short.count)\r\n\r\n")
            second.send(Array(short))
            let queued = await eventually { server.scheduler.snapshot.queueDepth == 1 }
            XCTAssertTrue(queued)
            let third = try await offPool { try client.post("/v1/chat/completions", json: Self.chat("Hi", maxTokens: 2)) }
            XCTAssertEqual(third.status, 429)
            XCTAssertEqual(third.headers["retry-after"], "1")
            XCTAssertTrue(error(third).contains("busy"), error(third))
            // Hanging up on the long stream lets the queued request through.
            first.hangUp()
            let answered = try await offPool { try second.readResponse() }
            XCTAssertEqual(answered?.status, 200)
        }
    }

    func testAPIKeyIsRequiredWhenSetAndExposedAddressesNeedOne() async throws {
        let (_, model) = try ServeModels.tinyQwen()
        try await withInferenceServer(model, configure: { $0.apiKey = "s3cret" }) { _, client in
            let none = try await offPool { try client.request("GET", "/v1/models") }
            XCTAssertEqual(none.status, 401)
            let wrong = try await offPool { try client.request("GET", "/v1/models", headers: ["Authorization": "Bearer s3creT"]) }
            XCTAssertEqual(wrong.status, 401)
            let right = try await offPool { try client.request("GET", "/v1/models", headers: ["Authorization": "Bearer s3cret"]) }
            XCTAssertEqual(right.status, 200)
            XCTAssertEqual(((right.json()?["data"] as? [[String: Any]])?.first?["id"]) as? String, "test-model")
            let health = try await offPool { try client.request("GET", "/health") }
            XCTAssertEqual(health.status, 200)
        }
        var exposed = InferenceServer.Configuration(modelNames: ["m"])
        exposed.host = "0.0.0.0"
        exposed.port = 0
        let scheduler = GenerationScheduler(model: model, maxBatch: 1)
        do {
            _ = try await InferenceServer.start(exposed, scheduler: scheduler)
            XCTFail("a non-loopback address without a key must be refused")
        } catch let error as InferenceServer.StartError {
            XCTAssertEqual(error, .exposedWithoutKey(host: "0.0.0.0"))
        }
        await scheduler.drain()
        XCTAssertTrue(APIKey.matches("Bearer k", expected: "Bearer k"))
        XCTAssertFalse(APIKey.matches("Bearer k2", expected: "Bearer k"))
        XCTAssertFalse(APIKey.matches("", expected: "Bearer k"))
    }

    /// SIGTERM's path: the running request finishes, new ones are refused, the server stops.
    func testDrainFinishesTheRunningRequestAndThenStops() async throws {
        let (_, model) = try ServeModels.tinyQwen()
        let want = try generateAlone(model, [.user([.text("Finish me.")])], maxTokens: 200)
        let scheduler = GenerationScheduler(model: model, maxBatch: 2)
        var configuration = InferenceServer.Configuration(modelNames: ["test-model"])
        configuration.port = 0
        let server = try await InferenceServer.start(configuration, scheduler: scheduler)
        let client = RawHTTPClient(port: server.port)
        let body = chat("Finish me.", maxTokens: 200)
        async let answer = offPool { try client.post("/v1/chat/completions", json: body) }
        let started = await eventually { scheduler.snapshot.activeSequences == 1 || scheduler.snapshot.completionTokens > 0 }
        XCTAssertTrue(started)
        await server.drain()
        let response = try await answer
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(try content(response), want.text)
        XCTAssertThrowsError(try client.request("GET", "/health"), "the server no longer accepts connections")
    }

    func testMetricsArePrometheusText() async throws {
        let (_, model) = try ServeModels.tinyQwen()
        try await withInferenceServer(model) { _, client in
            _ = try await offPool { try client.post("/v1/chat/completions", json: Self.chat("Hi", maxTokens: 3)) }
            _ = try await offPool { try client.request("GET", "/nowhere") }
            let metrics = try await offPool { try client.request("GET", "/metrics") }
            XCTAssertEqual(metrics.status, 200)
            let text = metrics.text
            for name in ["assay_requests_total", "assay_completion_tokens_total", "assay_queue_depth", "assay_batch_size",
                         "assay_request_latency_seconds_bucket", "assay_time_to_first_token_seconds_count", "assay_decode_step_batch_size_bucket"] {
                XCTAssertTrue(text.contains(name), "missing \(name)")
            }
            XCTAssertTrue(text.contains(#"assay_requests_total{path="/v1/chat/completions",status="200"} 1"#), text)
            XCTAssertTrue(text.contains(#"assay_requests_total{path="other",status="404"} 1"#), "unknown paths share one label: \(text)")
            XCTAssertTrue(text.contains("assay_completion_tokens_total 3"), text)
            // Every sample line is `name{labels} value` with a number.
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                XCTAssertNotNil(Double(line.split(separator: " ").last ?? ""), String(line))
            }
        }
    }
}
