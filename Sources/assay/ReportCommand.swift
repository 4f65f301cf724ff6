import ArgumentParser
import AssayReport
import Foundation

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Render a Markdown report (with an SVG chart beside it): runs against a base run, or runs on their own.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var suites: SuiteOptions
    @Option(help: "Base run; without it the report shows the runs' scores on their own.") var base: String?
    @Option(help: "Runs to report (comma-separated).") var runs: String?
    @Option(help: "Test-time scaling report of a run: score against n for every `assay select` method derived from it (instead of --runs).")
    var scaling: String?
    @Option(help: "Output Markdown file (default: Reports/<runs>[-vs-<base>].md).") var out: String?
    @OptionGroup var bootstrap: BootstrapOptions

    func validate() throws {
        guard (runs == nil) != (scaling == nil) else { throw ValidationError("give --runs, or --scaling RUN (one of them)") }
        if scaling != nil, base != nil { throw ValidationError("--scaling compares methods within one run; it takes no --base") }
    }

    func run() throws {
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
}
