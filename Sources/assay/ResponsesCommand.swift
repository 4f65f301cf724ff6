import ArgumentParser
import AssayReport
import AssayStore
import Foundation

/// `assay responses export`: a run's per-item responses as JSONL, CSV or TSV.
struct ResponsesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "responses", abstract: "Read a run's stored responses.", subcommands: [Export.self])

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a run's per-item responses with their extracted answers and scores.",
            discussion: """
                One row per stored response: suite, item id, sample, cache key (a hash of backend, rendered prompt, \
                parameters and sample), status, error, raw response, extracted answer and rule, score, latency, tokens. \
                CSV and TSV quote fields holding the separator, quotes or line breaks (RFC 4180).
                """)

        @OptionGroup var database: DatabaseOptions
        @Option(name: .customLong("run"), help: "Run name.") var runName: String
        @Option(help: "Only this suite.") var suite: String?
        @Option(help: "jsonl, csv or tsv.") var format: String = "jsonl"
        @Option(help: "Output file ('-' for stdout).") var out: String

        func run() throws {
            guard let chosen = ResponseExport.Format(rawValue: format.lowercased()) else {
                throw ValidationError("--format must be jsonl, csv or tsv, not '\(format)'")
            }
            let store = try database.openExisting()
            let run = try store.requireRun(runName)
            if let suite, try !store.runSuites(runID: run.id).contains(where: { $0.suiteID == suite }) {
                throw ValidationError("run '\(runName)' in \(database.db) has no suite '\(suite)'; it has: "
                    + (try store.runSuites(runID: run.id).map(\.suiteID).joined(separator: ", ")))
            }
            let rows = try store.exportRows(runID: run.id, suiteID: suite)
            let text = ResponseExport.render(rows, format: chosen)
            if out == "-" {
                FileHandle.standardOutput.write(Data(text.utf8))
                return
            }
            let url = URL(fileURLWithPath: out)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
            note("wrote \(rows.count) response\(rows.count == 1 ? "" : "s") of run '\(runName)' to \(url.path)")
        }
    }
}
