import ArgumentParser
import AssayEngine
import AssayStore
import Foundation

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Store published or external predictions as a run (a replay backend), ready to score.",
        discussion: """
            ITEMS is a VLMEvalKit TSV or a JSONL file with the columns the suite's README names; images may be \
            absent. PRED.jsonl holds one {"index": …, "prediction": "raw model text"} per line, optionally with \
            "extraction" (an answer already extracted by the predictions' authors, scored as is). Everything is \
            checked before anything is written; importing the same file again replaces the responses.
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var suites: SuiteOptions
    @Option(help: "Suite id (see `assay suites list`).") var suite: String
    @Option(help: "Dataset file with the items (TSV or JSONL).") var data: String
    @Option(help: "Predictions JSONL.") var predictions: String
    @Option(name: .customLong("run"), help: "Run name to create or add to.") var runName: String
    @Option(help: "Model name recorded with the run (default: the run name).") var model: String?
    @Flag(help: "Every prediction is an already-extracted answer: skip the suite's extraction rules.")
    var extracted = false

    func run() throws {
        let catalog = try suites.catalog()
        let store = try database.open()
        let summary = try Importer.run(
            .init(suite: try catalog.suite(suite), items: URL(fileURLWithPath: data), predictions: URL(fileURLWithPath: predictions),
                  run: runName, model: model, extracted: extracted),
            store: store)
        if !suites.suitesDirs.isEmpty {
            // Recorded so that `score`, `compare` and `report` find the user suite without the flag.
            let run = try store.requireRun(summary.run)
            var directories = run.suitesDirectories
            for directory in suites.absoluteDirectories where !directories.contains(directory) { directories.append(directory) }
            try store.updateNotes(run: summary.run, [RunRecord.suitesDirsNote: RunRecord.encodeDirectories(directories)])
        }
        print("imported \(summary.imported) predictions into run '\(summary.run)' (suite \(summary.suite), \(summary.items) items, \(summary.withoutPrediction) without a prediction)")
        let flags = suites.suitesDirs.map { " --suites-dir \(Self.shellQuoted($0))" }.joined()
        print("next: assay score --db \(Self.shellQuoted(database.db)) --run \(Self.shellQuoted(summary.run))\(flags)")
    }

    /// A word as a shell reads it back: quoted only when it needs to be.
    static func shellQuoted(_ word: String) -> String {
        let plain = word.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:+,@".contains($0) }
        return plain && !word.isEmpty ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
