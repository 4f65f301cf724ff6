import AssayCore
import Foundation

/// Predictions produced elsewhere (a published model's outputs, another harness's run), replayed
/// as if a model answered: importing them stores ordinary responses, so imports and live sweeps
/// land in the same tables and are scored and compared the same way.
public struct ReplayBackend: ModelBackend {
    public let identity: BackendIdentity
    /// Prediction text by item id.
    public let predictions: [String: String]

    /// `source` is a content hash of the predictions file, so a different file is a different
    /// backend.
    public init(model: String, source: String, predictions: [String: String]) {
        self.identity = BackendIdentity(kind: "replay", model: model, checkpoint: source)
        self.predictions = predictions
    }

    public func generate(_ request: GenerationRequest) async throws -> ModelResponse {
        response(for: request.itemID ?? "")
    }

    /// The stored prediction for an item, or an error status when the file has none.
    public func response(for itemID: String) -> ModelResponse {
        guard let text = predictions[itemID] else {
            return .failure(kind: "missing_prediction", message: "no prediction for item '\(itemID)'", attempts: 1)
        }
        return ModelResponse(text: text, status: .ok, attempts: 1)
    }
}
