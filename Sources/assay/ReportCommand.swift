import ArgumentParser
import AssayReport
import AssayStore
import Foundation

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Render a Markdown report (with SVG charts beside it): runs against a base run, runs on their own, a run's test-time scaling, or a training run.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var suites: SuiteOptions
    @Option(help: "Base run; without it the report shows the runs' scores on their own.") var base: String?
    @Option(help: "Runs to report (comma-separated).") var runs: String?
    @Option(help: "Test-time scaling report of a run: score against n for every `assay select` method derived from it (instead of --runs).")
    var scaling: String?
    @Option(help: "Training report of a GRPO training run: its settings, per-step curves, checkpoints and each evaluated checkpoint against the base model (instead of --runs).")
    var training: String?
    @Option(help: "Output Markdown file (default: Reports/<runs>[-vs-<base>].md, Reports/<run>-scaling.md, Reports/<training>-training.md); with --training, also a folder.")
    var out: String?
    @OptionGroup var bootstrap: BootstrapOptions

    func validate() throws {
        guard [runs, scaling, training].compactMap({ $0 }).count == 1 else {
            throw ValidationError("give --runs, --scaling RUN or --training NAME (one of them)")
        }
        if scaling != nil, base != nil { throw ValidationError("--scaling compares methods within one run; it takes no --base") }
        if training != nil, base != nil {
            throw ValidationError("--training compares each checkpoint with the base model's evaluation (step 0); it takes no --base")
        }
    }

    func run() throws {
        if let training { return try trainingReport(training) }
        if let scaling {
            let url = URL(fileURLWithPath: out ?? "Reports/\(scaling)-scaling.md")
            let chart = url.deletingPathExtension().lastPathComponent + ".svg"
            let store = try database.openExisting()
            let report = try ScalingReport.build(store: store, catalog: try suites.catalog(remembering: [scaling], in: store), run: scaling,
                                                 chartFileName: chart, resamples: bootstrap.resamples, seed: bootstrap.seed)
            try report.write(to: url)
            return print("wrote \(url.path) and \(url.deletingLastPathComponent().appendingPathComponent(chart).path)")
        }
        let names = (runs ?? "").split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !names.isEmpty else { throw ValidationError("--runs needs at least one run name") }
        let path = out ?? "Reports/\(names.joined(separator: "+"))" + (base.map { "-vs-\($0)" } ?? "") + ".md"
        let url = URL(fileURLWithPath: path)
        let chart = url.deletingPathExtension().lastPathComponent + ".svg"
        let store = try database.openExisting()
        let all = (base.map { [$0] } ?? []) + names
        let report = try suites.explainingUnknownSuites(runs: all, database: database.db) {
            try MarkdownReport.build(
                store: store, catalog: try suites.catalog(remembering: all, in: store), base: base, runs: names,
                chartFileName: chart, resamples: bootstrap.resamples, seed: bootstrap.seed)
        }
        try report.write(to: url)
        print("wrote \(url.path) and \(url.deletingLastPathComponent().appendingPathComponent(chart).path)")
    }

    /// `--training NAME`: the Markdown at `--out` (a file, or a folder to hold `<NAME>-training.md`)
    /// and its charts beside it, `<stem>-<chart>.svg`.
    func trainingReport(_ name: String) throws {
        var url = URL(fileURLWithPath: out ?? "Reports/\(name)-training.md")
        var isDirectory: ObjCBool = false
        if let out, out.hasSuffix("/") || (FileManager.default.fileExists(atPath: out, isDirectory: &isDirectory) && isDirectory.boolValue) {
            url = URL(fileURLWithPath: out).appendingPathComponent("\(name)-training.md")
        }
        let store = try database.openExisting()
        let run = try TrainingReport.requireTrainingRun(name, store: store)
        let evaluationRuns = try store.trainingEvaluations(run.id).map(\.runName)
        let report = try suites.explainingUnknownSuites(runs: evaluationRuns, database: database.db) {
            try TrainingReport.build(
                store: store, catalog: try suites.catalog(remembering: evaluationRuns, in: store), training: name,
                chartPrefix: url.deletingPathExtension().lastPathComponent, resamples: bootstrap.resamples, seed: bootstrap.seed)
        }
        try report.write(to: url)
        let directory = url.deletingLastPathComponent()
        let charts = report.charts.map { directory.appendingPathComponent($0.fileName).path }
        print("wrote \(url.path)" + (charts.isEmpty ? "" : " and \(charts.joined(separator: ", "))"))
    }
}
