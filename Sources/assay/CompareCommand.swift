import ArgumentParser
import AssayReport
import Foundation

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Per-suite paired deltas of a candidate run against a base run, with 95% CIs and McNemar p-values.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var suites: SuiteOptions
    @Option(help: "Base run.") var base: String
    @Option(help: "Candidate run.") var candidate: String
    @OptionGroup var bootstrap: BootstrapOptions
    @Flag(help: "Print JSON.") var json = false

    struct SuiteJSON: Encodable {
        var base, candidate, delta: Double
        var ci95: [Double]
        var p_value: Double?
        var n_paired: Int
        var group: String
        var base_unparsed_rate, candidate_unparsed_rate: Double
        var categories: [String: CategoryJSON]

        func encode(to encoder: Encoder) throws {
            enum Keys: String, CodingKey { case base, candidate, delta, ci95, p_value, n_paired, group, base_unparsed_rate, candidate_unparsed_rate, categories }
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(base, forKey: .base)
            try c.encode(candidate, forKey: .candidate)
            try c.encode(delta, forKey: .delta)
            try c.encode(ci95, forKey: .ci95)
            try c.encode(p_value, forKey: .p_value)  // null when scores are not binary
            try c.encode(n_paired, forKey: .n_paired)
            try c.encode(group, forKey: .group)
            try c.encode(base_unparsed_rate, forKey: .base_unparsed_rate)
            try c.encode(candidate_unparsed_rate, forKey: .candidate_unparsed_rate)
            try c.encode(categories, forKey: .categories)
        }
    }

    /// One category of a suite, paired like the suite's headline.
    struct CategoryJSON: Encodable {
        var base, candidate, delta: Double
        var ci95: [Double]
        var p_value: Double?
        var n_paired: Int

        init(_ c: CategoryComparison) {
            (base, candidate, delta, ci95, p_value, n_paired) = (c.base, c.candidate, c.delta, [c.ci95.lower, c.ci95.upper], c.pValue, c.nPaired)
        }

        func encode(to encoder: Encoder) throws {
            enum Keys: String, CodingKey { case base, candidate, delta, ci95, p_value, n_paired }
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(base, forKey: .base)
            try c.encode(candidate, forKey: .candidate)
            try c.encode(delta, forKey: .delta)
            try c.encode(ci95, forKey: .ci95)
            try c.encode(p_value, forKey: .p_value)  // null when scores are not binary
            try c.encode(n_paired, forKey: .n_paired)
        }
    }

    struct Output: Encodable {
        var base, candidate: String
        var suites: [String: SuiteJSON]
        var average_delta: Double?
        var groups: [String: Double]
        var unmatched_suites: [String]
    }

    func run() throws {
        let store = try database.openExisting()
        let comparison = try suites.explainingUnknownSuites(runs: [base, candidate], database: database.db) {
            try Comparator.compare(
                base: base, candidate: candidate, store: store, catalog: try suites.catalog(remembering: [base, candidate], in: store),
                resamples: bootstrap.resamples, seed: bootstrap.seed)
        }
        if json {
            let suites = Dictionary(comparison.suites.map {
                ($0.suite, SuiteJSON(base: $0.base, candidate: $0.candidate, delta: $0.delta, ci95: [$0.ci95.lower, $0.ci95.upper],
                                     p_value: $0.pValue, n_paired: $0.nPaired, group: $0.group,
                                     base_unparsed_rate: $0.baseUnparsedRate, candidate_unparsed_rate: $0.candidateUnparsedRate,
                                     categories: Dictionary($0.categories.map { ($0.category, CategoryJSON($0)) }, uniquingKeysWith: { a, _ in a })))
            }, uniquingKeysWith: { a, _ in a })
            return try JSONOutput.print(Output(
                base: base, candidate: candidate, suites: suites, average_delta: comparison.averageDelta,
                groups: Dictionary(comparison.groupAverages.map { ($0.group, $0.delta) }, uniquingKeysWith: { a, _ in a }),
                unmatched_suites: comparison.unmatched))
        }
        print("\(candidate) vs \(base)")
        for s in comparison.suites {
            let p = s.pValue.map { $0 < 0.001 ? "<0.001" : String(format: "%.3f", $0) } ?? "—"
            print("  \(s.suite.padding(toLength: 20, withPad: " ", startingAt: 0)) \(String(format: "%6.2f → %6.2f  Δ %+6.2f  [%+.2f, %+.2f]", s.base, s.candidate, s.delta, s.ci95.lower, s.ci95.upper))  p \(p)  n \(s.nPaired)")
            for c in s.categories {
                let cp = c.pValue.map { $0 < 0.001 ? "<0.001" : String(format: "%.3f", $0) } ?? "—"
                print("    \(c.category.padding(toLength: 28, withPad: " ", startingAt: 0)) \(String(format: "%6.2f → %6.2f  Δ %+6.2f  [%+.2f, %+.2f]", c.base, c.candidate, c.delta, c.ci95.lower, c.ci95.upper))  p \(cp)  n \(c.nPaired)")
            }
        }
        if let average = comparison.averageDelta {
            let count = comparison.suites.count
            print("  average delta over \(count) suite\(count == 1 ? "" : "s"): " + String(format: "%+.2f", average))
        }
    }
}
