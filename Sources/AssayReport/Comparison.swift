import AssayCore
import AssayStore
import AssaySuites
import Foundation

/// A candidate run against a base run on one suite, over the items both runs answered.
public struct SuiteComparison: Sendable, Codable {
    public var suite: String
    public var title: String
    public var group: String
    public var metric: String
    /// Headlines in percent on the paired items.
    public var base: Double
    public var candidate: Double
    public var delta: Double
    /// Paired-bootstrap 95% interval of the delta, in points.
    public var ci95: Interval
    /// McNemar's exact p for binary scores; `nil` when scores are not binary.
    public var pValue: Double?
    public var nPaired: Int
    /// Unparsed answers among the paired items, as a fraction, per run.
    public var baseUnparsedRate: Double
    public var candidateUnparsedRate: Double
    /// Per-category deltas, paired like the headline (empty when the items carry no category).
    public var categories: [CategoryComparison] = []
}

/// All suites two runs share, with group averages and the mean delta over suites.
public struct RunComparison: Sendable {
    public var base: RunRecord
    public var candidate: RunRecord
    public var suites: [SuiteComparison]
    /// Suites only one of the runs has.
    public var unmatched: [String]

    /// The mean of per-suite deltas (the LLaVA-Critic-R1 "+5.7" is this number over 26 suites).
    public var averageDelta: Double? {
        suites.isEmpty ? nil : suites.reduce(0) { $0 + $1.delta } / Double(suites.count)
    }

    /// Mean delta per group, in group order of first appearance.
    public var groupAverages: [(group: String, delta: Double, suites: Int)] {
        var order: [String] = []
        var sums: [String: (Double, Int)] = [:]
        for suite in suites {
            if sums[suite.group] == nil { order.append(suite.group) }
            let current = sums[suite.group] ?? (0, 0)
            sums[suite.group] = (current.0 + suite.delta, current.1 + 1)
        }
        return order.map { ($0, sums[$0]!.0 / Double(sums[$0]!.1), sums[$0]!.1) }
    }
}

/// Problems comparing runs.
public enum ComparisonError: Error, CustomStringConvertible {
    case notScored(run: String, suite: String, database: String)
    case nothingInCommon(base: String, candidate: String, database: String)

    public var description: String {
        switch self {
        case .notScored(let run, let suite, let database):
            return "run '\(run)' in \(database) has responses for '\(suite)' but no scores; run `assay score --db \(database) --run \(run)` first"
        case .nothingInCommon(let base, let candidate, let database):
            return "runs '\(base)' and '\(candidate)' in \(database) share no scored suite"
        }
    }
}

/// Paired comparison of two runs: per-suite deltas with paired-bootstrap intervals and
/// McNemar's exact test, on the items both runs answered.
public enum Comparator {
    public static func compare(
        base baseName: String, candidate candidateName: String, store: Store, catalog: SuiteCatalog,
        resamples: Int = 10_000, seed: UInt64 = 0
    ) throws -> RunComparison {
        let base = try store.requireRun(baseName)
        let candidate = try store.requireRun(candidateName)
        let baseSuites = Set(try store.runSuites(runID: base.id).map(\.suiteID))
        let candidateSuites = Set(try store.runSuites(runID: candidate.id).map(\.suiteID))
        var comparisons: [SuiteComparison] = []
        for suiteID in baseSuites.intersection(candidateSuites).sorted() {
            let suite = try catalog.suite(suiteID)
            let baseScores = try primaryScores(store, base, suiteID)
            let candidateScores = try primaryScores(store, candidate, suiteID)
            var comparison = compareSuite(suite, base: baseScores, candidate: candidateScores, resamples: resamples, seed: seed)
            comparison.categories = compareCategories(
                suite, base: baseScores, candidate: candidateScores, resamples: resamples, seed: seed)
            comparisons.append(comparison)
        }
        if comparisons.isEmpty, !(baseSuites.isEmpty && candidateSuites.isEmpty) {
            throw ComparisonError.nothingInCommon(base: baseName, candidate: candidateName, database: store.path)
        }
        let order = groupOrder
        comparisons.sort { (order[$0.group] ?? 99, $0.suite) < (order[$1.group] ?? 99, $1.suite) }
        return RunComparison(
            base: base, candidate: candidate, suites: comparisons,
            unmatched: baseSuites.symmetricDifference(candidateSuites).sorted())
    }

    /// Groups in the order SUITES.md lists them; user groups come after, alphabetically.
    static let groupOrder: [String: Int] = Dictionary(
        uniqueKeysWithValues: ["perception", "reasoning", "chart_doc", "video", "agent", "reward"].enumerated().map { ($1, $0) })

    static func primaryScores(_ store: Store, _ run: RunRecord, _ suiteID: String) throws -> [ScoredItem] {
        let scores = try store.scores(runID: run.id, suiteID: suiteID).filter { $0.sampleIndex == 0 }
        if scores.isEmpty, try !store.responses(runID: run.id, suiteID: suiteID).isEmpty {
            throw ComparisonError.notScored(run: run.name, suite: suiteID, database: store.path)
        }
        return scores.map { ScoredItem(item: $0.item, extraction: $0.extraction, score: $0.score) }
    }

    /// Compares one suite on the items both runs answered.
    public static func compareSuite(
        _ suite: Suite, base: [ScoredItem], candidate: [ScoredItem], resamples: Int = 10_000, seed: UInt64 = 0
    ) -> SuiteComparison {
        let candidateIDs = Set(candidate.map(\.item.id))
        let baseIDs = Set(base.map(\.item.id))
        let pairedBase = base.filter { candidateIDs.contains($0.item.id) }
        let pairedCandidate = candidate.filter { baseIDs.contains($0.item.id) }
        let baseUnits = suite.bootstrapUnits(pairedBase)
        let candidateUnits = suite.bootstrapUnits(pairedCandidate)
        let statistic = suite.headlineStatistic
        let baseHeadline = Statistics.headline(baseUnits, statistic: statistic) * 100
        let candidateHeadline = Statistics.headline(candidateUnits, statistic: statistic) * 100
        let interval = Statistics.pairedBootstrap(
            base: baseUnits, candidate: candidateUnits, statistic: statistic, resamples: resamples, seed: seed)
        var pValue: Double?
        let binary = (baseUnits + candidateUnits).allSatisfy { $0.value == 0 || $0.value == 1 }
        if binary {
            let candidateByID = Dictionary(candidateUnits.map { ($0.id, $0.value) }, uniquingKeysWith: { first, _ in first })
            var onlyBase = 0, onlyCandidate = 0
            for unit in baseUnits {
                guard let other = candidateByID[unit.id] else { continue }
                if unit.value == 1 && other == 0 { onlyBase += 1 }
                if unit.value == 0 && other == 1 { onlyCandidate += 1 }
            }
            pValue = Statistics.mcnemarExact(b: onlyBase, c: onlyCandidate)
        }
        func unparsedRate(_ scores: [ScoredItem]) -> Double {
            scores.isEmpty ? 0 : Double(scores.filter { $0.extraction.isUnparsed }.count) / Double(scores.count)
        }
        return SuiteComparison(
            suite: suite.id, title: suite.manifest.title, group: suite.manifest.group, metric: suite.manifest.metric,
            base: baseHeadline, candidate: candidateHeadline, delta: candidateHeadline - baseHeadline,
            ci95: Interval(interval.lower * 100, interval.upper * 100), pValue: pValue, nPaired: pairedBase.count,
            baseUnparsedRate: unparsedRate(pairedBase), candidateUnparsedRate: unparsedRate(pairedCandidate))
    }
}
