import AssayCore
import Foundation

/// A model served over the OpenAI chat-completions protocol (vLLM, SGLang, OpenAI, `assay serve`),
/// at one or several base URLs.
///
/// Each request is retried with exponential backoff and jitter on 429 (after at least its
/// `Retry-After`), 5xx, 408, timeouts, dropped connections and malformed bodies; the in-flight
/// limit of each endpoint adapts (`EndpointPool`). A request that still fails is returned as a
/// response with status `.error` and a kind — never as text a scorer could read. The API key is
/// held in memory only and is scrubbed from every message the backend produces.
public final class OpenAICompatibleBackend: ModelBackend {
    /// Everything the backend needs; `apiKey` is the key's value (the caller reads it from the
    /// environment variable the user named), never persisted.
    public struct Configuration: Sendable {
        public var baseURLs: [String]
        public var model: String
        public var apiKey: String?
        /// Seconds one attempt may take before it counts as hung: connect, send, head and the
        /// whole body. Also the read-idle limit (a silent server fails the attempt as late as this).
        public var timeout: TimeInterval
        /// Seconds to open a connection (at most `timeout`).
        public var connectTimeout: TimeInterval
        /// Most bytes of a response body; a longer one is an error status, never stored text.
        public var maxResponseBytes: Int
        /// Attempts per request, the first included.
        public var maxAttempts: Int
        /// First backoff delay; doubles per retry up to `maxBackoff`.
        public var initialBackoff: TimeInterval
        public var maxBackoff: TimeInterval
        /// The most `Retry-After` is honoured for (a server asking for an hour is treated as a failure).
        public var maxRetryAfter: TimeInterval
        /// Most requests in flight per endpoint (`--concurrency`).
        public var maxConcurrency: Int
        /// Start of the adaptive limit (slow start from here); defaults to min(8, max).
        public var initialConcurrency: Int?

        public init(baseURLs: [String], model: String, apiKey: String? = nil, timeout: TimeInterval = 600,
                    maxAttempts: Int = 8, initialBackoff: TimeInterval = 0.5, maxBackoff: TimeInterval = 30,
                    maxRetryAfter: TimeInterval = 120, maxConcurrency: Int = 16, initialConcurrency: Int? = nil,
                    connectTimeout: TimeInterval = 10, maxResponseBytes: Int = 8 << 20) {
            self.baseURLs = baseURLs
            self.model = model
            self.apiKey = apiKey
            self.timeout = timeout
            self.maxAttempts = maxAttempts
            self.initialBackoff = initialBackoff
            self.maxBackoff = maxBackoff
            self.maxRetryAfter = maxRetryAfter
            self.maxConcurrency = maxConcurrency
            self.initialConcurrency = initialConcurrency
            self.connectTimeout = connectTimeout
            self.maxResponseBytes = maxResponseBytes
        }
    }

    /// A base URL that cannot be used.
    public struct ConfigurationError: Error, CustomStringConvertible {
        public var description: String
    }

    public let configuration: Configuration
    public let identity: BackendIdentity
    public let pool: EndpointPool
    private let transport: any HTTPTransport
    private let endpoints: [URL]
    /// `Authorization: Basic …` from a base URL's user-info, sent when no API key is set. The
    /// user-info itself is removed from the URL, so no message that names the URL carries it.
    private let basicAuthorization: String?
    private let counters = Locked(RequestCounters())

    /// Attempts and failures so far, by kind: the sweep prints them and tests read them.
    public struct RequestCounters: Sendable, Hashable {
        public var requests = 0
        public var attempts = 0
        public var retriesByKind: [String: Int] = [:]
        public var failedByKind: [String: Int] = [:]
        public var truncated = 0
    }

    public init(_ configuration: Configuration, transport: (any HTTPTransport)? = nil) throws {
        guard !configuration.baseURLs.isEmpty else { throw ConfigurationError(description: "no base URL given") }
        var urls: [URL] = []
        var basic: String?
        for base in configuration.baseURLs {
            var text = base.trimmingCharacters(in: .whitespaces)
            while text.hasSuffix("/") { text.removeLast() }
            guard var parts = URLComponents(string: text), let scheme = parts.scheme, ["http", "https"].contains(scheme),
                  parts.host?.isEmpty == false
            else {
                throw ConfigurationError(description: "base URL '\(Redaction.userInfo(in: base))' is not an http(s) URL")
            }
            if let user = parts.user {
                basic = basic ?? "Basic " + Data("\(user):\(parts.password ?? "")".utf8).base64EncodedString()
                parts.user = nil
                parts.password = nil
                text = parts.string ?? text
            }
            // Accept both `http://host:8000` and `http://host:8000/v1`, as OpenAI clients do.
            let root = text.hasSuffix("/v1") ? text : text + "/v1"
            guard let endpoint = URL(string: root + "/chat/completions") else {
                throw ConfigurationError(description: "base URL '\(Redaction.userInfo(in: base))' cannot be extended with /v1/chat/completions")
            }
            urls.append(endpoint)
        }
        guard configuration.timeout.isFinite, configuration.timeout > 0 else {
            throw ConfigurationError(description: "timeout must be a positive number of seconds, not \(configuration.timeout)")
        }
        guard configuration.maxConcurrency >= 1, configuration.maxConcurrency <= 100_000 else {
            throw ConfigurationError(description: "concurrency must be between 1 and 100000, not \(configuration.maxConcurrency)")
        }
        self.configuration = configuration
        self.endpoints = urls
        self.basicAuthorization = basic
        // The endpoint model is the name the requests carry; base URLs and keys are not identity:
        // several servers of one model are one backend.
        self.identity = BackendIdentity(kind: "openai", model: configuration.model, endpointModel: configuration.model)
        self.pool = EndpointPool(urls: urls.map(\.absoluteString), maximum: configuration.maxConcurrency,
                                 initial: configuration.initialConcurrency)
        #if RemoteBackends
        self.transport = transport ?? NIOHTTPTransport(limits: HTTPTransportLimits(
            connectionsPerHost: configuration.maxConcurrency,
            connectTimeout: min(configuration.connectTimeout, configuration.timeout),
            readIdleTimeout: configuration.timeout, maxResponseBytes: configuration.maxResponseBytes))
        #else
        // A build without the `RemoteBackends` trait (`make demo`'s quick first build) has no HTTP
        // client: creating a remote backend says how to get one instead of failing per request.
        guard let transport else {
            throw ConfigurationError(description: "this assay was built without its HTTP client (the RemoteBackends package trait is off, as in `make demo`'s first build); run `make release` (or `swift build -c release`) for OpenAI-compatible servers")
        }
        self.transport = transport
        #endif
    }

    public var counterSnapshot: RequestCounters { counters.snapshot }

    // MARK: Generation

    public func generate(_ request: GenerationRequest) async throws -> ModelResponse {
        counters.withLock { $0.requests += 1 }
        let body: Data
        do {
            body = try encodeBody(request)
        } catch {
            counters.withLock { $0.failedByKind["bad_request", default: 0] += 1 }
            return .failure(kind: "bad_request", message: scrub("\(error)"), attempts: 0)
        }
        var headers = ["Content-Type": "application/json", "Accept": "application/json"]
        if let key = configuration.apiKey, !key.isEmpty {
            headers["Authorization"] = "Bearer \(key)"
        } else if let basicAuthorization {
            headers["Authorization"] = basicAuthorization
        }
        if let id = Self.clientRequestID(request) { headers["X-Client-Request-Id"] = id }

        var attempt = 0
        var lastKind = "unknown"
        var lastMessage = ""
        let started = Date()
        while attempt < max(1, configuration.maxAttempts) {
            try Task.checkCancellation()
            attempt += 1
            counters.withLock { $0.attempts += 1 }
            let lease = await pool.acquire()
            let sent = Date()
            let result = await transport.send(
                method: "POST", url: endpoints[lease.endpoint], headers: headers, body: body, timeout: configuration.timeout)
            let outcome = classify(result, url: lease.url)
            await pool.release(lease, outcome.signal)
            switch outcome {
            case .answered(var response):
                // A server that echoes the key inside an answer must not get it stored and resent
                // (a later judge or critic prompt quotes stored answers).
                response.text = scrub(response.text)
                response.attempts = attempt
                response.latencySeconds = Date().timeIntervalSince(sent)
                if response.status == .truncated { counters.withLock { $0.truncated += 1 } }
                return response
            case .cancelled:
                throw CancellationError()
            case .fatal(let kind, let message):
                counters.withLock { $0.failedByKind[kind, default: 0] += 1 }
                return .failure(kind: kind, message: scrub(message), attempts: attempt, latency: Date().timeIntervalSince(started))
            case .retry(let kind, let message, let retryAfter, _):
                lastKind = kind
                lastMessage = message
                if attempt >= configuration.maxAttempts { continue }  // the loop ends; the failure is returned below
                counters.withLock { $0.retriesByKind[kind, default: 0] += 1 }
                try await Task.sleep(nanoseconds: UInt64(delay(afterAttempt: attempt, retryAfter: retryAfter) * 1e9))
            }
        }
        counters.withLock { $0.failedByKind[lastKind, default: 0] += 1 }
        return .failure(kind: lastKind, message: scrub("\(lastMessage) (gave up after \(attempt) attempts)"),
                        attempts: attempt, latency: Date().timeIntervalSince(started))
    }

    /// The request body: rendered messages with images as data URLs, and the sampling parameters.
    /// With a seed, draw `k` of `--samples` asks with seed + k, so draws differ but are repeatable.
    func encodeBody(_ request: GenerationRequest) throws -> Data {
        let p = request.params
        let wire = OpenAIWire.ChatRequest(
            model: configuration.model, messages: try OpenAIWire.messages(request.messages, images: request.images),
            temperature: p.temperature, topP: p.topP, maxTokens: p.maxTokens,
            seed: p.seed.map { $0 &+ UInt64(max(0, request.sampleIndex)) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(wire)
    }

    /// `<suite>/<item>/<sample>` for the server's logs (OpenAI's tracing header), printable ASCII only.
    static func clientRequestID(_ request: GenerationRequest) -> String? {
        guard let item = request.itemID else { return nil }
        let raw = "\(request.suiteID ?? "-")/\(item)/\(request.sampleIndex)"
        let safe = String(raw.unicodeScalars.map { $0.value >= 0x21 && $0.value < 0x7F ? Character($0) : "_" })
        return String(safe.prefix(200))
    }

    /// Backoff before attempt `attempt + 1`: exponential with full jitter in [½, 1] of the step,
    /// and never shorter than the server's `Retry-After`.
    func delay(afterAttempt attempt: Int, retryAfter: TimeInterval?) -> TimeInterval {
        let step = min(configuration.maxBackoff, configuration.initialBackoff * pow(2, Double(attempt - 1)))
        // Jitter only spreads retries in time (it never reaches a response or a score), so the
        // system generator is the right one: seeding it would make every client retry in step.
        var system = SystemRandomNumberGenerator()
        let jittered = step * Double.random(in: 0.5...1.0, using: &system)
        if let retryAfter { return max(retryAfter, jittered) }
        return jittered
    }

    // MARK: Classification

    enum Outcome {
        case answered(ModelResponse)
        case retry(kind: String, message: String, retryAfter: TimeInterval?, signal: LoadSignal)
        case fatal(kind: String, message: String)
        case cancelled

        var signal: LoadSignal {
            switch self {
            case .answered: return .success
            case .retry(_, _, _, let signal): return signal
            case .fatal, .cancelled: return .neutral
            }
        }
    }

    func classify(_ result: Result<HTTPResult, TransportFailure>, url: String) -> Outcome {
        let response: HTTPResult
        switch result {
        case .failure(.cancelled):
            return .cancelled
        case .failure(.timeout(let message)):
            return .retry(kind: "timeout", message: message, retryAfter: nil, signal: .overload)
        case .failure(.tooLarge(let message)):
            // The same request gets the same oversized answer; storing or retrying it helps no one.
            return .fatal(kind: "response_too_large", message: message)
        case .failure(.connection(let message)):
            // A server that refuses or drops connections is down or drowning: send it less, so
            // the other base URLs take the work.
            return .retry(kind: "connection", message: message, retryAfter: nil, signal: .overload)
        case .failure(let failure):
            return .retry(kind: failure.kind, message: failure.description, retryAfter: nil, signal: .neutral)
        case .success(let r):
            response = r
        }
        let detail = Self.errorDetail(response.body)
        switch response.status {
        case 200..<300:
            break
        case 429:
            let retryAfter = response.headers["retry-after"].flatMap(Self.parseRetryAfter)
            if let wait = retryAfter, wait > configuration.maxRetryAfter {
                return .fatal(kind: "http_429", message: "HTTP 429 from \(url) asks to wait \(Int(wait)) s, more than the \(Int(configuration.maxRetryAfter)) s allowed: \(detail)")
            }
            return .retry(kind: "http_429", message: "HTTP 429 from \(url): \(detail)", retryAfter: retryAfter, signal: .overload)
        case 408, 409, 500..<600:
            let retryAfter = response.headers["retry-after"].flatMap(Self.parseRetryAfter).map { min($0, configuration.maxRetryAfter) }
            return .retry(kind: "http_\(response.status)", message: "HTTP \(response.status) from \(url): \(detail)",
                          retryAfter: retryAfter, signal: response.status == 503 ? .overload : .neutral)
        default:
            // 400, 401, 403, 404, 422: asking again will not help.
            return .fatal(kind: "http_\(response.status)", message: "HTTP \(response.status) from \(url): \(detail)")
        }
        let decoded: OpenAIWire.ChatResponse
        do {
            decoded = try JSONDecoder().decode(OpenAIWire.ChatResponse.self, from: response.body)
        } catch {
            return .retry(kind: "malformed_json", message: "HTTP \(response.status) from \(url) with a body that is not a chat completion (\(response.body.count) bytes)",
                          retryAfter: nil, signal: .neutral)
        }
        guard let choice = decoded.choices.first, let message = choice.message else {
            return .retry(kind: "malformed_json", message: "chat completion from \(url) has no choices", retryAfter: nil, signal: .neutral)
        }
        guard let content = message.content else {
            // A null content (refusal, tool call) is not an answer; the model answered nothing.
            return .fatal(kind: "empty_content", message: "chat completion from \(url) has no message content (finish_reason \(choice.finishReason ?? "none"))")
        }
        var text = content
        if let reasoning = message.reasoningContent, !reasoning.isEmpty {
            // Keep the reasoning in the stored text, as `<think>` that extraction strips.
            text = "<think>\(reasoning)</think>" + content
        }
        let status: ResponseStatus = choice.finishReason == "length" ? .truncated : .ok
        return .answered(ModelResponse(
            text: text, status: status, promptTokens: decoded.usage?.promptTokens,
            completionTokens: decoded.usage?.completionTokens, attempts: 1))
    }

    /// The `error.message` of an OpenAI error body, or the start of the body.
    static func errorDetail(_ body: Data) -> String {
        if let error = try? JSONDecoder().decode(OpenAIWire.ErrorBody.self, from: body) { return error.error.message }
        let text = String(decoding: body.prefix(200), as: UTF8.self)
        return text.isEmpty ? "(empty body)" : text
    }

    /// `Retry-After` as seconds or an HTTP date.
    public static func parseRetryAfter(_ value: String) -> TimeInterval? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        if let seconds = Double(trimmed), seconds >= 0, seconds.isFinite { return seconds }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        if let date = formatter.date(from: trimmed) { return max(0, date.timeIntervalSinceNow) }
        return nil
    }

    /// Removes the API key and any URL user-info from a message (a server may echo headers in
    /// its error text).
    func scrub(_ message: String) -> String {
        Redaction.scrub(message, secrets: [configuration.apiKey].compactMap { $0 })
    }
}

extension OpenAICompatibleBackend.Configuration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Everything but the key, so printing or dumping a configuration cannot leak it.
    public var description: String {
        "OpenAICompatibleBackend.Configuration(baseURLs: \(baseURLs), model: \(model), apiKey: \(apiKey == nil ? "none" : "[redacted]"), "
            + "timeout: \(timeout), maxAttempts: \(maxAttempts), maxConcurrency: \(maxConcurrency))"
    }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["description": description]) }
}
