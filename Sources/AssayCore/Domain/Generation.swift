import Foundation

/// Sampling parameters of a request. They are part of every cache key and recorded per run.
public struct GenerationParams: Codable, Sendable, Hashable {
    public var temperature: Double
    public var topP: Double
    public var maxTokens: Int
    public var seed: UInt64?

    public init(temperature: Double = 0, topP: Double = 1, maxTokens: Int = 1024, seed: UInt64? = nil) {
        self.temperature = temperature
        self.topP = topP
        self.maxTokens = maxTokens
        self.seed = seed
    }

    /// Canonical JSON (sorted keys) used in cache keys and the store.
    public var canonicalJSON: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // invariant: encoding a struct of numbers cannot fail.
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}

/// How a request ended. A failure is a status, never answer text.
public enum ResponseStatus: String, Codable, Sendable, CaseIterable {
    /// The model finished normally.
    case ok
    /// The model hit the token limit (`finish_reason == "length"`); the text is kept and scored.
    case truncated
    /// The request failed after its retries; there is no answer text to score.
    case error
}

/// What a backend returned for one request.
public struct ModelResponse: Codable, Sendable, Hashable {
    public var text: String
    public var status: ResponseStatus
    /// For `.error`: a short kind (`http_500`, `timeout`, `malformed_json`, …).
    public var errorKind: String?
    public var errorMessage: String?
    public var promptTokens: Int?
    public var completionTokens: Int?
    public var latencySeconds: Double?
    /// Attempts made, including the successful one.
    public var attempts: Int

    public init(
        text: String, status: ResponseStatus = .ok, errorKind: String? = nil, errorMessage: String? = nil,
        promptTokens: Int? = nil, completionTokens: Int? = nil, latencySeconds: Double? = nil, attempts: Int = 1
    ) {
        self.text = text
        self.status = status
        self.errorKind = errorKind
        self.errorMessage = errorMessage
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.latencySeconds = latencySeconds
        self.attempts = attempts
    }

    public static func failure(kind: String, message: String, attempts: Int, latency: Double? = nil) -> ModelResponse {
        ModelResponse(text: "", status: .error, errorKind: kind, errorMessage: message, latencySeconds: latency, attempts: attempts)
    }
}
