import AssayBackends
import AssayCore
import Foundation

/// What answers chat requests behind the server: a scripted answer key (tests), a constant
/// (`assay bench http`), or a model backend (`BackendResponder`, for `assay serve`).
public protocol ChatResponder: Sendable {
    func reply(to request: OpenAIWire.ChatRequest, context: ChatRequestContext) async -> ChatReply
}

/// What the server knows about a request beyond its body.
public struct ChatRequestContext: Sendable, Hashable {
    /// The client's `X-Client-Request-Id` (Assay sends `<suite>/<item>/<sample>`), for logs and
    /// for answer keys that must tell apart items whose prompts are identical.
    public var clientRequestID: String?
    /// Which attempt of this request this is, counted by the server (1 for the first).
    public var attempt: Int
}

/// A responder's answer: a completion, or an HTTP error it wants the client to see.
public enum ChatReply: Sendable, Hashable {
    case completion(text: String, finishReason: String, promptTokens: Int?, completionTokens: Int?)
    case failure(status: Int, message: String)

    public static func answer(_ text: String) -> ChatReply {
        .completion(text: text, finishReason: "stop", promptTokens: nil, completionTokens: nil)
    }
}

/// Counters the server keeps, for tests and `assay bench http`.
public struct ServerStatistics: Sendable, Hashable {
    /// Chat-completion requests received (all attempts, faulted ones included).
    public var chatRequests = 0
    /// Completions answered with 200 and a well-formed body.
    public var completions = 0
    public var faults: [ServerFault: Int] = [:]
    public var unauthorized = 0
    /// Attempts seen per distinct request (body SHA-256 and client request id).
    public var attemptsByRequest: [String: Int] = [:]
    /// The shortest time between a 429 and the next attempt of the same request, in seconds.
    public var shortestRetryAfterGap: Double?
    /// Distinct requests seen (retries of one request count once).
    public var distinctRequests: Int { attemptsByRequest.count }
}

/// The OpenAI chat-completions protocol over `HTTPServer`: `POST /v1/chat/completions`,
/// `GET /v1/models`, `GET /health`. An optional API key is required as `Bearer` when set, and an
/// optional `FaultPlan` makes it misbehave like an overloaded inference server.
public final class ChatCompletionsServer: Sendable {
    public let http: HTTPServer
    private let stats: Locked<State>

    struct State {
        var statistics = ServerStatistics()
        var rateLimitedAt: [String: Date] = [:]
    }

    public static func start(
        host: String = "127.0.0.1", port: Int = 0, models: [String], apiKey: String? = nil,
        responder: any ChatResponder, faults: FaultPlan? = nil, threads: Int = 1
    ) async throws -> ChatCompletionsServer {
        let stats = Locked(State())
        let router = Router(models: models, apiKey: apiKey, responder: responder, faults: faults, stats: stats)
        let http = try await HTTPServer.start(host: host, port: port, threads: threads) { request in
            await router.route(request)
        }
        return ChatCompletionsServer(http: http, stats: stats)
    }

    private init(http: HTTPServer, stats: Locked<State>) {
        self.http = http
        self.stats = stats
    }

    public var baseURL: String { http.baseURL }
    public var port: Int { http.port }
    public var statistics: ServerStatistics { stats.withLock { $0.statistics } }

    public func shutdown() async { await http.shutdown() }

    struct Router: Sendable {
        let models: [String]
        let apiKey: String?
        let responder: any ChatResponder
        let faults: FaultPlan?
        let stats: Locked<State>

        func route(_ request: HTTPServerRequest) async -> HTTPServerReply {
            switch (request.method, request.path) {
            case ("GET", "/health"):
                return .text(200, "ok")
            case ("GET", "/v1/models"):
                guard authorized(request) else { return unauthorized() }
                return .json(200, Self.encode(OpenAIWire.ModelList(ids: models)))
            case ("POST", "/v1/chat/completions"):
                return await chat(request)
            default:
                return Self.error(404, "no route for \(request.method) \(request.path)", type: "not_found")
            }
        }

        func authorized(_ request: HTTPServerRequest) -> Bool {
            guard let apiKey else { return true }
            return request.headers["authorization"] == "Bearer \(apiKey)"
        }

        func unauthorized() -> HTTPServerReply {
            stats.withLock { $0.statistics.unauthorized += 1 }
            return Self.error(401, "invalid or missing API key", type: "authentication_error")
        }

        func chat(_ request: HTTPServerRequest) async -> HTTPServerReply {
            guard authorized(request) else { return unauthorized() }
            let clientRequestID = request.headers["x-client-request-id"]
            let key = SHA256.hex(request.body) + (clientRequestID.map { "|" + $0 } ?? "")
            let attempt: Int = stats.withLock { state in
                state.statistics.chatRequests += 1
                let n = (state.statistics.attemptsByRequest[key] ?? 0) + 1
                state.statistics.attemptsByRequest[key] = n
                if let limited = state.rateLimitedAt.removeValue(forKey: key) {
                    let gap = Date().timeIntervalSince(limited)
                    state.statistics.shortestRetryAfterGap = min(state.statistics.shortestRetryAfterGap ?? gap, gap)
                }
                return n
            }
            if let faults, let fault = faults.fault(request: key, attempt: attempt) {
                stats.withLock { state in
                    state.statistics.faults[fault, default: 0] += 1
                    if fault == .rateLimited { state.rateLimitedAt[key] = Date() }
                }
                switch fault {
                case .serverError: return Self.error(500, "injected internal server error", type: "server_error")
                case .rateLimited:
                    return Self.error(429, "injected rate limit", type: "rate_limit",
                                      headers: [("Retry-After", String(faults.retryAfterSeconds))])
                case .hang: return .hang
                case .malformedJSON: return .json(200, Data(#"{"id":"cmpl-broken","choices":[{"index":0,"message":{"role":"assistant","content":"#.utf8))
                case .dropConnection: return .dropConnection
                case .closeAfterDelay: return .closeAfter(seconds: faults.closeDelaySeconds)
                case .partialBody:
                    let body = Self.fakeCompletion()
                    return .truncatedBody(status: 200, headers: [("Content-Type", "application/json")], body: body, bytes: body.count / 2)
                case .trickledBody:
                    return .trickle(status: 200, headers: [("Content-Type", "application/json")], body: Self.fakeCompletion(),
                                    interval: faults.trickleIntervalSeconds)
                case .headersOnly: return .headersOnly(status: 200, headers: [("Content-Type", "application/json")], announcedBytes: 200)
                case .truncatedChunked:
                    let body = Self.fakeCompletion()
                    return .truncatedChunked(status: 200, headers: [("Content-Type", "application/json")], body: body, bytes: body.count / 2)
                }
            }
            let chat: OpenAIWire.ChatRequest
            do {
                chat = try JSONDecoder().decode(OpenAIWire.ChatRequest.self, from: request.body)
            } catch {
                return Self.error(400, "request body is not a chat-completions request: \(error)", type: "invalid_request_error")
            }
            if chat.stream == true {
                return Self.error(400, "streaming is not supported by this server", type: "invalid_request_error")
            }
            guard models.contains(chat.model) else {
                return Self.error(404, "model '\(chat.model)' is not served here (serving: \(models.joined(separator: ", ")))",
                                  type: "not_found")
            }
            switch await responder.reply(to: chat, context: ChatRequestContext(clientRequestID: clientRequestID, attempt: attempt)) {
            case .failure(let status, let message):
                return Self.error(status, message, type: "responder_error")
            case .completion(let text, let finishReason, let promptTokens, let completionTokens):
                stats.withLock { $0.statistics.completions += 1 }
                let body = OpenAIWire.ChatResponse(
                    id: "chatcmpl-\(UUID().uuidString.prefix(8))", model: chat.model,
                    choices: [.init(message: .init(content: text), finishReason: finishReason)],
                    usage: .init(promptTokens: promptTokens, completionTokens: completionTokens),
                    created: Int(Date().timeIntervalSince1970))
                return .json(200, Self.encode(body))
            }
        }

        /// A well-formed completion of a wrong answer, for the faults that deliver part of a body:
        /// a client that stored what it got before the connection failed would store this text.
        static func fakeCompletion() -> Data {
            encode(OpenAIWire.ChatResponse(
                id: "chatcmpl-fault", model: "fault", choices: [.init(message: .init(content: "FAULT: not an answer"), finishReason: "stop")],
                usage: .init(promptTokens: 1, completionTokens: 1), created: 0))
        }

        static func encode<T: Encodable>(_ value: T) -> Data {
            // invariant: the wire types are plain Codable structs of strings and numbers.
            (try? JSONEncoder().encode(value)) ?? Data("{}".utf8)
        }

        static func error(_ status: Int, _ message: String, type: String, headers: [(String, String)] = []) -> HTTPServerReply {
            .json(status, encode(OpenAIWire.ErrorBody(message: message, type: type)), headers: headers)
        }
    }
}

// MARK: - Faults

/// A failure the server can inject.
public enum ServerFault: String, Sendable, Hashable, CaseIterable, Codable {
    /// HTTP 500 with a JSON error body.
    case serverError = "http_500"
    /// HTTP 429 with `Retry-After`.
    case rateLimited = "http_429"
    /// No answer at all; the client must time out.
    case hang
    /// HTTP 200 whose body is cut-off JSON.
    case malformedJSON = "malformed_json"
    /// The connection is closed without an answer.
    case dropConnection = "dropped_connection"
    /// The request is accepted, then the connection closed after `FaultPlan.closeDelaySeconds`
    /// without a byte (a crashed worker behind a proxy).
    case closeAfterDelay = "closed_after_delay"
    /// The head of a 200 and part of its body, then the connection closes.
    case partialBody = "partial_body"
    /// A 200 whose body arrives one byte per `FaultPlan.trickleIntervalSeconds`.
    case trickledBody = "trickled_body"
    /// The head of a 200 announcing a body that never comes.
    case headersOnly = "headers_only"
    /// A 200 with a chunked body cut before its last chunk.
    case truncatedChunked = "truncated_chunked"

    /// The shapes that hold a connection or a request open instead of answering: the ones a
    /// client needs deadlines for (the fault sweep tests run each at a low rate and at 100%).
    public static let stalls: [ServerFault] = [.hang, .closeAfterDelay, .partialBody, .trickledBody, .headersOnly, .truncatedChunked]
}

/// Which requests fail and how: a fault rate per kind, decided by a seeded hash of the request
/// body and its attempt number, so the same sweep meets the same faults whatever the timing.
public struct FaultPlan: Sendable, Hashable {
    public var rates: [ServerFault: Double]
    public var retryAfterSeconds: Int
    public var seed: UInt64
    /// How long `closeAfterDelay` holds the connection before closing it.
    public var closeDelaySeconds: Double
    /// The gap between bytes of a `trickledBody`.
    public var trickleIntervalSeconds: Double

    public init(rates: [ServerFault: Double], retryAfterSeconds: Int = 1, seed: UInt64 = 0,
                closeDelaySeconds: Double = 0.5, trickleIntervalSeconds: Double = 0.05) {
        self.rates = rates
        self.retryAfterSeconds = retryAfterSeconds
        self.seed = seed
        self.closeDelaySeconds = closeDelaySeconds
        self.trickleIntervalSeconds = trickleIntervalSeconds
    }

    /// The acceptance mix: 10% HTTP 500, 5% 429, 3% hung, 2% malformed JSON, 1% dropped.
    public static func acceptanceMix(seed: UInt64 = 0, retryAfterSeconds: Int = 1) -> FaultPlan {
        FaultPlan(rates: [.serverError: 0.10, .rateLimited: 0.05, .hang: 0.03, .malformedJSON: 0.02, .dropConnection: 0.01],
                  retryAfterSeconds: retryAfterSeconds, seed: seed)
    }

    /// The fault for this attempt of this request (by body hash), or `nil` to answer normally.
    public func fault(request key: String, attempt: Int) -> ServerFault? {
        var hasher = SHA256()
        hasher.update("\(seed)|\(key)|\(attempt)")
        let digest = hasher.finalize()
        var word: UInt64 = 0
        for byte in digest.prefix(8) { word = word << 8 | UInt64(byte) }
        let u = Double(word >> 11) / Double(1 << 53)
        var threshold = 0.0
        for fault in ServerFault.allCases {
            threshold += rates[fault] ?? 0
            if u < threshold { return fault }
        }
        return nil
    }
}

// MARK: - Responders

/// Answers every request with the same text at once: the zero-latency server of `assay bench http`.
public struct ConstantResponder: ChatResponder {
    public var text: String
    public init(text: String = "A") { self.text = text }
    public func reply(to request: OpenAIWire.ChatRequest, context: ChatRequestContext) async -> ChatReply { .answer(text) }
}

/// Puts a `ModelBackend` behind the protocol: the images of the request are decoded from their
/// data URLs, the backend answers, and a backend error becomes an HTTP 500 (never answer text).
public struct BackendResponder: ChatResponder {
    public let backend: any ModelBackend
    public init(backend: any ModelBackend) { self.backend = backend }

    public func reply(to request: OpenAIWire.ChatRequest, context: ChatRequestContext) async -> ChatReply {
        let converted: (messages: [Message], images: [String: Data])
        do {
            converted = try OpenAIWire.domainMessages(request.messages)
        } catch {
            return .failure(status: 400, message: "\(error)")
        }
        var params = GenerationParams()
        if let t = request.temperature { params.temperature = t }
        if let p = request.topP { params.topP = p }
        if let m = request.maxTokens { params.maxTokens = m }
        params.seed = request.seed
        let response: ModelResponse
        do {
            response = try await backend.generate(GenerationRequest(messages: converted.messages, images: converted.images, params: params))
        } catch {
            return .failure(status: 503, message: "generation was cancelled")
        }
        switch response.status {
        case .error:
            return .failure(status: 500, message: "\(response.errorKind ?? "error"): \(response.errorMessage ?? "")")
        case .ok, .truncated:
            return .completion(text: response.text, finishReason: response.status == .truncated ? "length" : "stop",
                               promptTokens: response.promptTokens, completionTokens: response.completionTokens)
        }
    }
}
