import AssayBackends
import AssayCore
import Foundation
import NIOCore
import VLMRuntime

/// `assay serve`: a local model behind the OpenAI chat-completions API, with continuous batching
/// (`GenerationScheduler`), streaming (server-sent events), `/v1/models`, `/health` and
/// Prometheus `/metrics`.
///
/// It is safe by default: it binds loopback unless told otherwise and refuses any other address
/// without an API key; bodies, prompts, `max_tokens`, `n` and the queue are bounded, and every
/// refusal is OpenAI's error JSON with a message naming what was wrong.
public final class InferenceServer: Sendable {
    public let http: HTTPServer
    public let scheduler: GenerationScheduler
    private let router: Router

    /// How the server is set up.
    public struct Configuration: Sendable {
        public var host = "127.0.0.1"
        public var port = 8000
        /// Names the model answers to in requests (the first is listed by `/v1/models`).
        public var modelNames: [String]
        /// Required as `Authorization: Bearer …` on `/v1/*` when set.
        public var apiKey: String?
        public var request = ServeChatRequest.Limits()
        public var maxBodyBytes = 32 << 20
        /// A request (head and body) must arrive within this time.
        public var requestTimeout: TimeAmount = .seconds(30)
        public var idleTimeout: TimeAmount = .seconds(120)
        /// Seconds a client is told to wait after a 429.
        public var retryAfterSeconds = 1
        public var threads = 1

        public init(modelNames: [String]) { self.modelNames = modelNames }
    }

    /// Why the server would not start.
    public enum StartError: Error, CustomStringConvertible, Equatable {
        case exposedWithoutKey(host: String)

        public var description: String {
            switch self {
            case .exposedWithoutKey(let host):
                return "refusing to listen on \(host) without an API key: other machines could use the model. Pass --api-key-env VAR (a variable holding the key) or bind 127.0.0.1"
            }
        }
    }

    /// Whether `host` is a loopback address (the only kind served without a key).
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }

    public static func start(_ configuration: Configuration, scheduler: GenerationScheduler) async throws -> InferenceServer {
        if !isLoopback(configuration.host) && (configuration.apiKey ?? "").isEmpty {
            throw StartError.exposedWithoutKey(host: configuration.host)
        }
        let router = Router(configuration: configuration, scheduler: scheduler, metrics: Locked(ServeMetrics()))
        let tooLarge = Router.error(413, "the request body is larger than \(configuration.maxBodyBytes) bytes", type: "invalid_request_error")
        let limits = HTTPServerLimits(maxBodyBytes: configuration.maxBodyBytes, requestTimeout: configuration.requestTimeout,
                                      idleTimeout: configuration.idleTimeout, tooLarge: tooLarge)
        let http = try await HTTPServer.start(host: configuration.host, port: configuration.port, threads: configuration.threads,
                                              limits: limits) { request in
            await router.route(request)
        }
        return InferenceServer(http: http, scheduler: scheduler, router: router)
    }

    private init(http: HTTPServer, scheduler: GenerationScheduler, router: Router) {
        self.http = http
        self.scheduler = scheduler
        self.router = router
    }

    public var baseURL: String { http.baseURL }
    public var port: Int { http.port }

    /// The Prometheus text of `/metrics`.
    public var metricsText: String { router.metricsText() }

    /// SIGTERM: stop accepting, finish every queued and running request, then stop.
    public func drain() async {
        router.refuseNew()
        await http.stopAccepting()
        await scheduler.drain()
        // Let the last replies, streams included, reach their sockets before the event loop goes away.
        while router.inFlight > 0 || http.repliesInProgress > 0 { try? await Task.sleep(nanoseconds: 20_000_000) }
        await http.shutdown()
    }

    /// Stops at once (tests): queued and running work is dropped.
    public func shutdown() async {
        await http.shutdown()
    }

    // MARK: - Routing

    struct Router: Sendable {
        let configuration: Configuration
        let scheduler: GenerationScheduler
        let metrics: Locked<ServeMetrics>

        static let routes: Set<String> = ["/health", "/metrics", "/v1/models", "/v1/chat/completions"]

        var inFlight: Int { metrics.withLock { $0.inFlight } }
        func refuseNew() { metrics.withLock { $0.draining = true } }

        func route(_ request: HTTPServerRequest) async -> HTTPServerReply {
            let started = Date()
            metrics.withLock { $0.inFlight += 1 }
            let reply = await dispatch(request)
            let status: Int
            switch reply {
            case .response(let s, _, _), .stream(let s, _, _, _), .truncatedBody(let s, _, _, _), .trickle(let s, _, _, _),
                 .headersOnly(let s, _, _), .truncatedChunked(let s, _, _, _): status = s
            case .hang, .dropConnection, .closeAfter: status = 0
            }
            metrics.withLock { m in
                m.inFlight -= 1
                // Unknown paths share one label: a client must not be able to grow the metrics without bound.
                let path = Self.routes.contains(request.path) ? request.path : "other"
                m.requests[RequestKey(path: path, status: status), default: 0] += 1
                if case .stream = reply {} else if request.path == "/v1/chat/completions" {
                    m.latency.observe(Date().timeIntervalSince(started))
                }
            }
            return reply
        }

        private func dispatch(_ request: HTTPServerRequest) async -> HTTPServerReply {
            switch (request.method, request.path) {
            case ("GET", "/health"):
                return .json(200, Data(#"{"status":"ok"}"#.utf8))
            case ("GET", "/metrics"):
                return .response(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                                 body: Data(metricsText().utf8))
            case ("GET", "/v1/models"):
                guard authorized(request) else { return unauthorized() }
                return .json(200, Self.encode(OpenAIWire.ModelList(ids: Array(configuration.modelNames.prefix(1)))))
            case ("POST", "/v1/chat/completions"):
                guard authorized(request) else { return unauthorized() }
                return await chat(request)
            case (_, "/health"), (_, "/metrics"), (_, "/v1/models"), (_, "/v1/chat/completions"):
                return Self.error(405, "\(request.method) is not allowed on \(request.path)", type: "invalid_request_error")
            default:
                return Self.error(404, "no route for \(request.method) \(request.path)", type: "not_found_error")
            }
        }

        func authorized(_ request: HTTPServerRequest) -> Bool {
            guard let key = configuration.apiKey, !key.isEmpty else { return true }
            return APIKey.matches(request.headers["authorization"] ?? "", expected: "Bearer \(key)")
        }

        func unauthorized() -> HTTPServerReply {
            Self.error(401, "invalid or missing API key (send Authorization: Bearer KEY)", type: "authentication_error")
        }

        // MARK: Chat

        private func chat(_ request: HTTPServerRequest) async -> HTTPServerReply {
            if metrics.withLock({ $0.draining }) {
                return Self.error(503, "the server is shutting down", type: "server_error")
            }
            let parsed: ServeChatRequest
            do {
                parsed = try ServeChatRequest.parse(request.body, served: configuration.modelNames, limits: configuration.request)
            } catch let error as ServeRequestError {
                if case .unknownModel = error { return Self.error(404, error.description, type: "not_found_error", param: "model") }
                return Self.error(400, error.description, type: "invalid_request_error", param: error.param)
            } catch {
                return Self.error(400, "\(error)", type: "invalid_request_error")
            }
            let job = CompletionJob(
                conversation: parsed.conversation, samples: parsed.samples, maxTokens: parsed.maxTokens,
                sampling: SamplingParameters(temperature: Float(parsed.temperature), topP: Float(parsed.topP)),
                seeds: (0..<parsed.samples).map { EmbeddedBackend.seed(parsed.seed, sample: $0) },
                stop: parsed.stop, topLogprobs: parsed.topLogprobs)
            let handle: CompletionHandle
            do {
                handle = try scheduler.submit(job)
            } catch let error as CompletionError {
                if case .queueFull = error {
                    return Self.error(429, error.description, type: "rate_limit_error",
                                      headers: [("Retry-After", String(configuration.retryAfterSeconds))])
                }
                return Self.error(503, error.description, type: "server_error")
            } catch {
                return Self.error(503, "\(error)", type: "server_error")
            }
            let started = Date()
            var events = handle.events.makeAsyncIterator()
            // The first event says whether the model took the prompt: until then the status is open.
            guard let first = await events.next() else {
                handle.cancel()
                return Self.error(503, "the request was cancelled", type: "server_error")
            }
            let promptTokens: Int
            switch first {
            case .started(let n): promptTokens = n
            case .failed(let error): return failure(error)
            default: return Self.error(500, "the scheduler reported an event before the prompt started", type: "server_error")
            }
            metrics.withLock { $0.timeToFirstToken.observe(Date().timeIntervalSince(started)) }
            let id = "chatcmpl-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(24)
            let created = Int(Date().timeIntervalSince1970)
            if parsed.stream {
                return stream(events, handle: handle, request: parsed, id: id, created: created, promptTokens: promptTokens,
                              started: started)
            }
            return await collect(&events, handle: handle, request: parsed, id: id, created: created, promptTokens: promptTokens)
        }

        private func failure(_ error: CompletionError) -> HTTPServerReply {
            switch error {
            case .contextExceeded, .promptTooLong, .invalidPrompt:
                return Self.error(400, error.description, type: "invalid_request_error", param: "messages")
            case .queueFull:
                return Self.error(429, error.description, type: "rate_limit_error", headers: [("Retry-After", String(configuration.retryAfterSeconds))])
            case .shuttingDown:
                return Self.error(503, error.description, type: "server_error")
            case .runtime:
                return Self.error(500, error.description, type: "server_error")
            }
        }

        /// A non-streamed completion: every event gathered into one body.
        private func collect(_ events: inout AsyncStream<CompletionEvent>.Iterator, handle: CompletionHandle, request: ServeChatRequest,
                             id: String, created: Int, promptTokens: Int) async -> HTTPServerReply {
            var texts = Array(repeating: "", count: request.samples)
            var logprobs = Array(repeating: [TokenLogprob](), count: request.samples)
            var reasons = [FinishReason?](repeating: nil, count: request.samples)
            var completionTokens = 0
            while let event = await events.next() {
                switch event {
                case .delta(let choice, let text, let lp) where choice < texts.count:
                    texts[choice] += text
                    logprobs[choice] += lp
                case .finished(let choice, let reason, let tokens) where choice < reasons.count:
                    reasons[choice] = reason
                    completionTokens += tokens
                case .failed(let error):
                    return failure(error)
                default: break
                }
            }
            guard reasons.allSatisfy({ $0 != nil }) else {
                handle.cancel()
                return Self.error(503, "the request was cancelled before it finished", type: "server_error")
            }
            metrics.withLock { $0.completionTokens += completionTokens; $0.promptTokens += promptTokens }
            let body = ServeWire.Completion(
                id: id, created: created, model: request.model,
                choices: (0..<request.samples).map { i in
                    ServeWire.Choice(index: i, message: .init(content: texts[i]),
                                     logprobs: request.topLogprobs == nil ? nil : ServeWire.Logprobs(logprobs[i]),
                                     finishReason: reasons[i]?.rawValue ?? "stop")
                },
                usage: .init(promptTokens: promptTokens, completionTokens: completionTokens))
            return .json(200, Self.encode(body))
        }

        /// A streamed completion: OpenAI's `chat.completion.chunk` events as server-sent events.
        private func stream(_ events: sending AsyncStream<CompletionEvent>.Iterator, handle: CompletionHandle, request: ServeChatRequest,
                            id: String, created: Int, promptTokens: Int, started: Date) -> HTTPServerReply {
            let (chunks, out) = AsyncStream<Data>.makeStream()
            let model = request.model
            let metrics = self.metrics
            func send<T: Encodable>(_ value: T) { out.yield(Data("data: ".utf8) + Self.encode(value) + Data("\n\n".utf8)) }
            func chunk(_ choices: [ServeWire.ChunkChoice], usage: ServeWire.Usage? = nil) -> ServeWire.Chunk {
                ServeWire.Chunk(id: id, created: created, model: model, choices: choices, usage: usage)
            }
            let task = Task {
                var events = events
                for i in 0..<request.samples { send(chunk([.init(index: i, delta: .init(role: "assistant", content: ""))])) }
                var completionTokens = 0
                while let event = await events.next() {
                    switch event {
                    case .delta(let choice, let text, let lp):
                        send(chunk([.init(index: choice, delta: .init(content: text),
                                          logprobs: request.topLogprobs == nil ? nil : ServeWire.Logprobs(lp))]))
                    case .finished(let choice, let reason, let tokens):
                        completionTokens += tokens
                        send(chunk([.init(index: choice, delta: .init(), finishReason: reason.rawValue)]))
                    case .failed(let error):
                        send(ServeWire.ErrorEnvelope(message: error.description, type: "server_error"))
                    case .started:
                        break
                    }
                }
                if Task.isCancelled { return out.finish() }
                if request.includeUsage {
                    send(chunk([], usage: .init(promptTokens: promptTokens, completionTokens: completionTokens)))
                }
                out.yield(Data("data: [DONE]\n\n".utf8))
                out.finish()
                metrics.withLock {
                    $0.completionTokens += completionTokens
                    $0.promptTokens += promptTokens
                    $0.latency.observe(Date().timeIntervalSince(started))
                }
            }
            let abort: @Sendable () -> Void = {
                handle.cancel()
                task.cancel()
            }
            out.onTermination = { reason in if case .cancelled = reason { abort() } }
            return .stream(status: 200, headers: [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")],
                           chunks: chunks, onAbort: abort)
        }

        // MARK: Metrics

        func metricsText() -> String {
            let m = metrics.snapshot
            let s = scheduler.snapshot
            var lines: [String] = []
            func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, String)]) {
                lines.append("# HELP \(name) \(help)")
                lines.append("# TYPE \(name) \(type)")
                for (labels, value) in samples { lines.append("\(name)\(labels) \(value)") }
            }
            metric("assay_requests_total", "counter", "HTTP requests answered, by path and status.",
                   m.requests.sorted { ($0.key.path, $0.key.status) < ($1.key.path, $1.key.status) }.map {
                       ("{path=\"\($0.key.path.prometheusEscaped)\",status=\"\($0.key.status)\"}", String($0.value))
                   })
            metric("assay_prompt_tokens_total", "counter", "Prompt tokens of completed chat requests.", [("", String(m.promptTokens))])
            metric("assay_completion_tokens_total", "counter", "Tokens generated for completed chat requests.", [("", String(m.completionTokens))])
            metric("assay_generated_tokens_total", "counter", "Tokens sampled by the scheduler (cancelled requests included).",
                   [("", String(s.completionTokens))])
            metric("assay_queue_depth", "gauge", "Requests waiting to join the running batch.", [("", String(s.queueDepth))])
            metric("assay_batch_size", "gauge", "Sequences in the running batch.", [("", String(s.activeSequences))])
            metric("assay_requests_in_flight", "gauge", "HTTP requests being handled.", [("", String(m.inFlight))])
            metric("assay_prefills_total", "counter", "Prompts prefilled.", [("", String(s.prefills))])
            var stepBuckets: [(String, String)] = []
            var cumulative = 0
            let sizes = s.stepsByBatchSize
            for bound in [1, 2, 4, 8, 16, 32, 64] {
                cumulative = sizes.filter { $0.key <= bound }.values.reduce(0, +)
                stepBuckets.append(("_bucket{le=\"\(bound)\"}", String(cumulative)))
            }
            let steps = sizes.values.reduce(0, +)
            stepBuckets.append(("_bucket{le=\"+Inf\"}", String(steps)))
            stepBuckets.append(("_sum", String(sizes.reduce(0) { $0 + $1.key * $1.value })))
            stepBuckets.append(("_count", String(steps)))
            metric("assay_decode_step_batch_size", "histogram", "Sequences per decode step.", stepBuckets)
            metric("assay_request_latency_seconds", "histogram", "Time from request to last token of chat completions.", m.latency.samples)
            metric("assay_time_to_first_token_seconds", "histogram", "Time from request to the first sampled token.", m.timeToFirstToken.samples)
            return lines.joined(separator: "\n") + "\n"
        }

        static func encode<T: Encodable>(_ value: T) -> Data {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.withoutEscapingSlashes]
            // invariant: the wire types are plain Codable structs of strings and numbers.
            return (try? encoder.encode(value)) ?? Data("{}".utf8)
        }

        static func error(_ status: Int, _ message: String, type: String, param: String? = nil,
                          headers: [(String, String)] = []) -> HTTPServerReply {
            .json(status, encode(ServeWire.ErrorEnvelope(message: message, type: type, param: param, code: status)), headers: headers)
        }
    }
}

/// Constant-time comparison of API keys: the time taken does not depend on how much of a guess
/// is right. Both sides are hashed first so lengths leak nothing either.
public enum APIKey {
    public static func matches(_ given: String, expected: String) -> Bool {
        func digest(_ s: String) -> [UInt8] {
            var h = SHA256()
            h.update(s)
            return h.finalize()
        }
        let a = digest(given), b = digest(expected)
        var diff: UInt8 = 0
        for (x, y) in zip(a, b) { diff |= x ^ y }
        return diff == 0 && a.count == b.count
    }
}

// MARK: - Metrics

struct RequestKey: Hashable, Sendable {
    var path: String
    var status: Int
}

/// A Prometheus histogram with fixed buckets (seconds).
struct Histogram: Sendable {
    static let bounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]
    var counts = [Int](repeating: 0, count: Histogram.bounds.count)
    var total = 0
    var sum = 0.0

    mutating func observe(_ value: Double) {
        for (i, b) in Self.bounds.enumerated() where value <= b { counts[i] += 1 }
        total += 1
        sum += value
    }

    var samples: [(String, String)] {
        var out = zip(Self.bounds, counts).map { ("_bucket{le=\"\($0.0)\"}", String($0.1)) }
        out.append(("_bucket{le=\"+Inf\"}", String(total)))
        out.append(("_sum", String(sum)))
        out.append(("_count", String(total)))
        return out
    }
}

/// What the HTTP side of `assay serve` counts.
struct ServeMetrics: Sendable {
    var requests: [RequestKey: Int] = [:]
    var promptTokens = 0
    var completionTokens = 0
    var latency = Histogram()
    var timeToFirstToken = Histogram()
    var inFlight = 0
    var draining = false
}

extension String {
    fileprivate var prometheusEscaped: String {
        replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}

// MARK: - Wire

/// The response bodies `assay serve` writes (OpenAI's chat completion and chunk objects).
enum ServeWire {
    struct Usage: Encodable {
        var promptTokens: Int
        var completionTokens: Int
        var totalTokens: Int
        init(promptTokens: Int, completionTokens: Int) {
            self.promptTokens = promptTokens
            self.completionTokens = completionTokens
            totalTokens = promptTokens + completionTokens
        }
        enum CodingKeys: String, CodingKey {
            case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens"
        }
    }

    struct Message: Encodable {
        var role = "assistant"
        var content: String
    }

    struct TopLogprob: Encodable {
        var token: String
        var logprob: Double
        var bytes: [UInt8]
    }

    struct TokenEntry: Encodable {
        var token: String
        var logprob: Double
        var bytes: [UInt8]
        var topLogprobs: [TopLogprob]
        enum CodingKeys: String, CodingKey { case token, logprob, bytes, topLogprobs = "top_logprobs" }
    }

    struct Logprobs: Encodable {
        var content: [TokenEntry]
        init(_ tokens: [TokenLogprob]) {
            // JSON has no -inf: a token the model gives no mass is reported at the float minimum.
            func finite(_ x: Double) -> Double { x.isFinite ? x : -9999 }
            content = tokens.map { t in
                TokenEntry(token: t.token, logprob: finite(t.logprob), bytes: Array(t.token.utf8),
                           topLogprobs: t.top.map { TopLogprob(token: $0.token, logprob: finite($0.logprob), bytes: Array($0.token.utf8)) })
            }
        }
    }

    struct Choice: Encodable {
        var index: Int
        var message: Message
        var logprobs: Logprobs?
        var finishReason: String
        enum CodingKeys: String, CodingKey { case index, message, logprobs, finishReason = "finish_reason" }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(message, forKey: .message)
            if let logprobs { try c.encode(logprobs, forKey: .logprobs) } else { try c.encodeNil(forKey: .logprobs) }
            try c.encode(finishReason, forKey: .finishReason)
        }
    }

    struct Completion: Encodable {
        var id: String
        var object = "chat.completion"
        var created: Int
        var model: String
        var choices: [Choice]
        var usage: Usage
        init(id: String, created: Int, model: String, choices: [Choice], usage: Usage) {
            self.id = id
            self.created = created
            self.model = model
            self.choices = choices
            self.usage = usage
        }
    }

    struct Delta: Encodable {
        var role: String?
        var content: String?
    }

    struct ChunkChoice: Encodable {
        var index: Int
        var delta: Delta
        var logprobs: Logprobs?
        var finishReason: String?
        enum CodingKeys: String, CodingKey { case index, delta, logprobs, finishReason = "finish_reason" }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(delta, forKey: .delta)
            if let logprobs { try c.encode(logprobs, forKey: .logprobs) } else { try c.encodeNil(forKey: .logprobs) }
            if let finishReason { try c.encode(finishReason, forKey: .finishReason) } else { try c.encodeNil(forKey: .finishReason) }
        }
    }

    struct Chunk: Encodable {
        var id: String
        var object = "chat.completion.chunk"
        var created: Int
        var model: String
        var choices: [ChunkChoice]
        var usage: Usage?
        init(id: String, created: Int, model: String, choices: [ChunkChoice], usage: Usage?) {
            self.id = id
            self.created = created
            self.model = model
            self.choices = choices
            self.usage = usage
        }
        enum CodingKeys: String, CodingKey { case id, object, created, model, choices, usage }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id)
            try c.encode(object, forKey: .object)
            try c.encode(created, forKey: .created)
            try c.encode(model, forKey: .model)
            try c.encode(choices, forKey: .choices)
            if let usage { try c.encode(usage, forKey: .usage) } else { try c.encodeNil(forKey: .usage) }
        }
    }

    struct ErrorEnvelope: Encodable {
        struct Detail: Encodable {
            var message: String
            var type: String
            var param: String?
            var code: Int?
            enum CodingKeys: String, CodingKey { case message, type, param, code }
            func encode(to encoder: Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(message, forKey: .message)
                try c.encode(type, forKey: .type)
                if let param { try c.encode(param, forKey: .param) } else { try c.encodeNil(forKey: .param) }
                if let code { try c.encode(code, forKey: .code) } else { try c.encodeNil(forKey: .code) }
            }
        }
        var error: Detail
        init(message: String, type: String, param: String? = nil, code: Int? = nil) {
            error = Detail(message: message, type: type, param: param, code: code)
        }
    }
}
