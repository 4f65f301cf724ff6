import AssayBackends
import AssayCore
import AssayStore
import AssaySuites
import Foundation

/// `assay import`: stores predictions as responses of a replay backend.
public enum Importer {
    public struct Request: Sendable {
        public var suite: Suite
        public var items: URL
        public var predictions: URL
        public var run: String
        /// The model name recorded with the run (defaults to the run name).
        public var model: String?
        /// Treat every prediction as an already-extracted answer.
        public var extracted: Bool

        public init(suite: Suite, items: URL, predictions: URL, run: String, model: String? = nil, extracted: Bool = false) {
            self.suite = suite
            self.items = items
            self.predictions = predictions
            self.run = run
            self.model = model
            self.extracted = extracted
        }
    }

    public struct Summary: Sendable {
        public var run: String
        public var suite: String
        public var items: Int
        public var imported: Int
        /// Items of the dataset that the predictions file does not answer.
        public var withoutPrediction: Int
    }

    /// What an imported run records as its generation parameters: the predictions were made
    /// elsewhere, and recording Assay's defaults would claim settings that were never used.
    public static let unknownGenerationParams = #"{"unknown":"imported predictions; generation settings not recorded"}"#

    /// Reads and checks everything first, then writes in one transaction: a bad file changes
    /// nothing in the store.
    public static func run(_ request: Request, store: Store) throws -> Summary {
        let file = try DatasetFile.read(request.items)
        let loaded = try request.suite.loadItems(from: file, images: .hashOnly)
        let items = loaded.map(\.item)
        let itemsByID = Dictionary(items.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let predictions = try PredictionsFile.read(request.predictions, extracted: request.extracted)
        // An empty file imported a run with no responses and exited 0: a silent wrong path.
        guard !predictions.isEmpty else {
            throw DatasetError(file: request.predictions.path, "no predictions in the file (expected one JSON object per line)")
        }
        for prediction in predictions where itemsByID[prediction.index] == nil {
            throw DatasetError(file: request.predictions.path, line: prediction.line,
                               "index '\(prediction.index)' is not an item of \(file.name)")
        }
        let source = try SHA256.hex(fileAt: request.predictions)
        let backend = ReplayBackend(
            model: request.model ?? request.run, source: source,
            predictions: Dictionary(predictions.map { ($0.index, $0.text) }, uniquingKeysWith: { first, _ in first }))
        // Only for the cache key, which needs some parameters; the run records them as unknown.
        let params = GenerationParams()
        var responses: [NewResponse] = []
        for prediction in predictions {
            // invariant: every prediction's index was checked against the items above.
            let item = itemsByID[prediction.index]!
            let key = CacheKey.make(
                backend: backend.identity, messages: request.suite.render(item), params: params,
                sampleIndex: 0, promptVersion: request.suite.promptVersion)
            responses.append(NewResponse(
                suiteID: request.suite.id, itemID: item.id, cacheKey: key,
                response: backend.response(for: item.id), importedExtraction: prediction.extraction))
        }
        let notes: [String: String] = [
            "source": "import", "predictions": request.predictions.path, "predictions_sha256": source,
            "extracted": request.extracted ? "all" : (predictions.contains { $0.extraction != nil } ? "some" : "none"),
            "generation": "unknown: the predictions were made elsewhere with settings not recorded",
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let run = NewRun(
            name: request.run, model: request.model ?? request.run, backend: backend.identity.kind,
            backendIdentity: backend.identity.canonicalJSON, generationParams: Self.unknownGenerationParams,
            notes: String(decoding: try encoder.encode(notes), as: UTF8.self))
        let registration = SuiteRegistration(
            suiteID: request.suite.id, suiteVersion: request.suite.version, promptVersion: request.suite.promptVersion,
            datasetSHA256: file.sha256, datasetPath: file.url.path, itemCount: items.count)
        try store.importResponses(run: run, suite: registration, items: items, responses: responses)
        return Summary(run: request.run, suite: request.suite.id, items: items.count, imported: responses.count,
                       withoutPrediction: items.count - responses.count)
    }
}
