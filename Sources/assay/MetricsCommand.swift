import ArgumentParser

import AssayStore
import Foundation

struct MetricsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "metrics", abstract: "Print a run's stored metrics.")

    @OptionGroup var database: DatabaseOptions
    @Option(name: .customLong("run"), help: "Run name.") var runName: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let store = try database.openExisting()
        let record = try store.requireRun(runName)
        let results = try store.suiteResults(runID: record.id)
        if json {
            return try JSONOutput.print(Dictionary(results.map { ($0.suiteID, $0.metrics) }, uniquingKeysWith: { a, _ in a }))
        }
        if results.isEmpty { print("run '\(runName)' in \(database.db) has no metrics yet: run `assay score --db \(database.db) --run \(runName)`") }
        for result in results {
            let m = result.metrics
            print("\(result.suiteID): \(String(format: "%.2f", m.score))  (n \(m.n), unparsed \(m.unparsed), missing \(m.missing))")
            for (name, value) in m.metrics.sorted(by: { $0.key < $1.key }) {
                print("    \(name): \(String(format: "%.2f", value))")
            }
        }
    }
}
