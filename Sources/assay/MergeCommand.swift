import ArgumentParser
import AssayEngine
import AssayStore
import Foundation

struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Combine shard databases (`assay sweep --shard i/n`) into one, then score the merged runs.",
        discussion: """
            Runs are matched by name and must have the same backend and generation parameters. A response the \
            target lacks is added; an error in the target is replaced by a shard's answer; otherwise the target's \
            response is kept. Each shard is merged in one transaction.
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var suites: SuiteOptions
    @Argument(help: "Shard databases.") var shards: [String]

    func run() throws {
        guard !shards.isEmpty else { throw ValidationError("name at least one shard database") }
        let store = try database.open()
        var runs: [String] = []
        for shard in shards {
            guard FileManager.default.fileExists(atPath: shard) else { throw ValidationError("shard database \(shard) does not exist") }
            for merged in try store.merge(shardPath: shard) {
                print("\(shard): run \(merged.run): \(merged.added) added, \(merged.repaired) errors replaced, \(merged.kept) already present")
                if !runs.contains(merged.run) { runs.append(merged.run) }
            }
        }
        let catalog = try suites.catalog()
        for run in runs {
            for outcome in try ScoringPass.score(run: run, store: store, catalog: catalog) {
                let m = outcome.metrics
                print("\(run) \(outcome.suite): \(String(format: "%.2f", m.score))  (n \(m.n), unparsed \(m.unparsed), missing \(m.missing))")
            }
        }
    }
}
