import AssayCore
import Foundation

/// What identifies a backend in cache keys and run records: the same identity and the same
/// request must give an answer that can be reused.
public struct BackendIdentity: Codable, Sendable, Hashable {
    /// `openai`, `local`, `replay`, …
    public var kind: String
    /// The model name as the user gave it (`--model-name`, the checkpoint folder name, …).
    public var model: String
    /// A content hash of the checkpoint when known (embedded models), so that overwriting a
    /// checkpoint at the same path does not reuse stale answers.
    public var checkpoint: String?
    /// The model id the endpoint reported, for HTTP backends.
    public var endpointModel: String?

    public init(kind: String, model: String, checkpoint: String? = nil, endpointModel: String? = nil) {
        self.kind = kind
        self.model = model
        self.checkpoint = checkpoint
        self.endpointModel = endpointModel
    }

    /// Canonical JSON (sorted keys) for cache keys and the store.
    public var canonicalJSON: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(self) else { return kind + ":" + model }
        return String(decoding: data, as: UTF8.self)
    }
}

/// One request to a model: rendered chat messages, the bytes of the images they reference, and
/// sampling parameters.
public struct GenerationRequest: Sendable {
    public var messages: [Message]
    /// Encoded image bytes by the SHA-256 that `ContentPart.image` carries.
    public var images: [String: Data]
    public var params: GenerationParams
    /// Which of the `--samples N` draws this is; with a seed, backends derive the draw's seed from it.
    public var sampleIndex: Int
    /// The suite and item the request is for (logging, and the replay backend's lookup key).
    public var suiteID: String?
    public var itemID: String?

    public init(messages: [Message], images: [String: Data] = [:], params: GenerationParams, sampleIndex: Int = 0,
                suiteID: String? = nil, itemID: String? = nil) {
        self.messages = messages
        self.images = images
        self.params = params
        self.sampleIndex = sampleIndex
        self.suiteID = suiteID
        self.itemID = itemID
    }
}

/// A model that answers chat requests: an embedded checkpoint, an OpenAI-compatible server, or
/// replayed predictions.
///
/// A failed request is returned as a `ModelResponse` whose status is `.error`, never as text: a
/// scorer must never read an error message as an answer. `generate` throws only for cancellation.
public protocol ModelBackend: Sendable {
    var identity: BackendIdentity { get }
    /// How many requests the backend wants at once in `generate(batch:)` (1 for HTTP backends,
    /// which take concurrency instead).
    var preferredBatchSize: Int { get }
    func generate(_ request: GenerationRequest) async throws -> ModelResponse
    func generate(batch: [GenerationRequest]) async throws -> [ModelResponse]
}

extension ModelBackend {
    public var preferredBatchSize: Int { 1 }

    public func generate(batch: [GenerationRequest]) async throws -> [ModelResponse] {
        var responses: [ModelResponse] = []
        responses.reserveCapacity(batch.count)
        for request in batch {
            responses.append(try await generate(request))
        }
        return responses
    }
}
