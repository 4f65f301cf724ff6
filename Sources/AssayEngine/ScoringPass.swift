import AssayCore
import AssayStore
import AssaySuites
import Foundation

/// `assay score`: re-reads the stored responses of a run, extracts and scores them with each
/// suite's current rules, and stores extractions, item scores (with the scorer version) and
/// metrics. No model is called, so a new rule is applied to old runs in seconds.
public enum ScoringPass {
    /// The metric holding, for a shard's run, the items that belong to the other shards.
    public static let inOtherShards = "in_other_shards"

    public struct SuiteOutcome: Sendable {
        public var suite: String
        public var metrics: SuiteMetrics
        public var scorerVersion: String
    }

    /// Scores every suite of the run (or only `suites`). With `reextract`, extractions imported
    /// with the predictions are ignored and the suite's own rules read the raw text.
    public static func score(run name: String, store: Store, catalog: SuiteCatalog,
                             suites only: Set<String>? = nil, reextract: Bool = false) throws -> [SuiteOutcome] {
        let run = try store.requireRun(name)
        let shard = run.noteValues["shard"].flatMap { try? Shard(parsing: $0) }
        var outcomes: [SuiteOutcome] = []
        for registration in try store.runSuites(runID: run.id) where only?.contains(registration.suiteID) ?? true {
            let suite = try catalog.suite(registration.suiteID)
            // The items table holds every item any run registered for this dataset (in dataset
            // order); this run asked the first `itemCount` of them (its --limit), not another run's.
            let items = Array(try store.items(suiteID: registration.suiteID, datasetSHA256: registration.datasetSHA256)
                .prefix(max(0, registration.itemCount)))
            let itemsByID = Dictionary(items.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            var updates: [ScoreUpdate] = []
            var primary: [ScoredItem] = []
            var answered = Set<String>()
            // Rules first; a judged suite's unparsed responses take the stored judge verdict.
            let verdicts = try JudgeVerdicts(suite: suite, runID: run.id, store: store)
            var judged = 0
            for response in try store.responses(runID: run.id, suiteID: registration.suiteID) {
                guard response.response.status != .error, let item = itemsByID[response.itemID] else { continue }
                var extraction: Extraction
                if let imported = response.importedExtraction, !reextract {
                    extraction = suite.imported(imported, item: item)
                } else {
                    extraction = suite.extract(response.response.text, item: item)
                }
                var score = suite.score(extraction, item: item)
                if extraction.isUnparsed, let verdicts, let outcome = try verdicts.outcome(for: response, item: item) {
                    (extraction, score) = outcome
                    if response.sampleIndex == 0 { judged += 1 }
                }
                updates.append(ScoreUpdate(responseID: response.id, extraction: extraction, score: score))
                if response.sampleIndex == 0 {
                    primary.append(ScoredItem(item: item, extraction: extraction, score: score))
                    answered.insert(item.id)
                }
            }
            var metrics = suite.aggregate(primary)
            // A shard's run holds every shard's item list (so `assay merge` can bring them
            // together) but is answerable only for its own part: the rest is not missing.
            if let shard {
                let mine = items.enumerated().filter { shard.contains(ordinal: $0.offset) }.map(\.element)
                metrics.missing = mine.filter { !answered.contains($0.id) }.count
                metrics.metrics[Self.inOtherShards] = Double(items.count - mine.count)
            } else {
                metrics.missing = items.filter { !answered.contains($0.id) }.count
            }
            if verdicts != nil {
                metrics.metrics["judge_rate"] = primary.isEmpty ? 0 : Double(judged) / Double(primary.count) * 100
            }
            try store.saveScores(runID: run.id, suiteID: registration.suiteID, updates: updates,
                                 metrics: metrics, scorerVersion: suite.scorerVersion)
            outcomes.append(SuiteOutcome(suite: registration.suiteID, metrics: metrics, scorerVersion: suite.scorerVersion))
        }
        return outcomes
    }
}
