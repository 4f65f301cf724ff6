import ArgumentParser
import AssayEngine
import Foundation

struct ScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Extract and score a run's stored responses with the suites' current rules (no model calls).")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var suites: SuiteOptions
    @Option(name: .customLong("run"), help: "Run name.") var runName: String
    @Option(help: "Only these suites (comma-separated).") var suite: String?
    @Flag(help: "Ignore extractions that came with imported predictions; read the raw text with the suite's rules.")
    var reextract = false

    func run() throws {
        let store = try database.openExisting(readOnly: false)
        let outcomes = try suites.explainingUnknownSuites(runs: [runName], database: database.db) {
            try ScoringPass.score(
                run: runName, store: store, catalog: try suites.catalog(remembering: [runName], in: store),
                suites: suite.map { Set($0.split(separator: ",").map(String.init)) }, reextract: reextract)
        }
        for outcome in outcomes {
            let m = outcome.metrics
            let others = m.metrics[ScoringPass.inOtherShards].map { ", in other shards \(Int($0))" } ?? ""
            print("\(outcome.suite): \(String(format: "%.2f", m.score))  (n \(m.n), unparsed \(m.unparsed), missing \(m.missing)\(others), scorer \(outcome.scorerVersion))")
        }
    }
}
