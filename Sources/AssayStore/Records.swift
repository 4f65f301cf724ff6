import AssayCore
import Foundation

/// A run as stored: one model (through one backend, with one set of generation parameters) over
/// one or more suites.
public struct RunRecord: Sendable, Hashable {
    public var id: Int64
    public var name: String
    public var model: String
    /// The backend kind (`replay`, `openai`, `local`).
    public var backend: String
    /// The backend identity as canonical JSON.
    public var backendIdentity: String
    public var generationParams: String
    /// Free-form JSON notes (import source, command line, …).
    public var notes: String
    public var createdAt: String
}

/// What a new run is created with.
public struct NewRun: Sendable {
    public var name: String
    public var model: String
    public var backend: String
    public var backendIdentity: String
    public var generationParams: String
    public var notes: String

    public init(name: String, model: String, backend: String, backendIdentity: String, generationParams: String, notes: String = "{}") {
        self.name = name
        self.model = model
        self.backend = backend
        self.backendIdentity = backendIdentity
        self.generationParams = generationParams
        self.notes = notes
    }
}

/// Which version of a suite and prompt a run used, over which dataset file.
public struct SuiteRegistration: Sendable, Hashable {
    public var suiteID: String
    public var suiteVersion: String
    public var promptVersion: String
    public var datasetSHA256: String
    public var datasetPath: String
    public var itemCount: Int

    public init(suiteID: String, suiteVersion: String, promptVersion: String, datasetSHA256: String, datasetPath: String, itemCount: Int) {
        self.suiteID = suiteID
        self.suiteVersion = suiteVersion
        self.promptVersion = promptVersion
        self.datasetSHA256 = datasetSHA256
        self.datasetPath = datasetPath
        self.itemCount = itemCount
    }
}

/// A response to store.
public struct NewResponse: Sendable {
    public var suiteID: String
    public var itemID: String
    public var sampleIndex: Int
    public var cacheKey: String
    public var response: ModelResponse
    /// An extraction that came with imported predictions (used instead of the suite's rules).
    public var importedExtraction: String?

    public init(suiteID: String, itemID: String, sampleIndex: Int = 0, cacheKey: String,
                response: ModelResponse, importedExtraction: String? = nil) {
        self.suiteID = suiteID
        self.itemID = itemID
        self.sampleIndex = sampleIndex
        self.cacheKey = cacheKey
        self.response = response
        self.importedExtraction = importedExtraction
    }
}

/// A stored response.
public struct ResponseRecord: Sendable, Hashable {
    public var id: Int64
    public var runID: Int64
    public var suiteID: String
    public var itemID: String
    public var sampleIndex: Int
    public var cacheKey: String
    public var response: ModelResponse
    public var importedExtraction: String?
    public var createdAt: String
}

/// A response's extraction and score, as written by a scoring pass.
public struct ScoreUpdate: Sendable {
    public var responseID: Int64
    public var extraction: Extraction
    public var score: ItemScore

    public init(responseID: Int64, extraction: Extraction, score: ItemScore) {
        self.responseID = responseID
        self.extraction = extraction
        self.score = score
    }
}

/// A suite's stored result for a run.
public struct SuiteResultRecord: Sendable, Hashable {
    public var suiteID: String
    public var metrics: SuiteMetrics
    public var scorerVersion: String
    public var computedAt: String
}

/// One scored response joined with its item, for comparisons.
public struct StoredScore: Sendable, Hashable {
    public var item: Item
    public var sampleIndex: Int
    public var extraction: Extraction
    public var score: ItemScore
    public var scorerVersion: String
}
