import AssayCore
import AssayStore
import AssaySuites
import Foundation

/// Renders comparisons of runs against a base run as Markdown, with an SVG chart of per-suite
/// deltas written beside it.
public struct MarkdownReport {
    public var markdown: String
    public var svg: String
    /// The chart's file name, as the Markdown links it.
    public var chartFileName: String

    /// Builds the report for `runs` against `base` from the store.
    public static func build(
        store: Store, catalog: SuiteCatalog, base: String, runs: [String], chartFileName: String,
        resamples: Int = 10_000, seed: UInt64 = 0, generatedAt: Date = Date()
    ) throws -> MarkdownReport {
        let comparisons = try runs.map {
            try Comparator.compare(base: base, candidate: $0, store: store, catalog: catalog, resamples: resamples, seed: seed)
        }
        let baseRun = try store.requireRun(base)
        let allRuns = [baseRun] + comparisons.map(\.candidate)
        var md = "# Assay report: \(runs.joined(separator: ", ")) vs \(base)\n\n"
        let stamp = ISO8601DateFormatter().string(from: generatedAt)
        md += "Generated \(stamp) from `\(store.path)`. Deltas are candidate − base in points, on the items both runs answered; "
        md += "95% intervals are paired bootstrap (\(resamples) resamples, seed \(seed)); p is McNemar's exact test on per-item correctness.\n\n"

        md += "## Runs\n\n| run | role | model | backend | generation params | created |\n|---|---|---|---|---|---|\n"
        for (index, run) in allRuns.enumerated() {
            md += "| \(cell(run.name)) | \(index == 0 ? "base" : "candidate") | \(cell(run.model)) | \(cell(backendSummary(run))) | `\(cell(run.generationParams))` | \(run.createdAt) |\n"
        }

        md += "\n## Suites, versions and data\n\n| suite | run | suite version | prompt version | scorer version | dataset sha256 | items |\n|---|---|---|---|---|---|---|\n"
        for run in allRuns {
            let scorers = Dictionary(try store.suiteResults(runID: run.id).map { ($0.suiteID, $0.scorerVersion) }, uniquingKeysWith: { a, _ in a })
            for record in try store.runSuites(runID: run.id) {
                md += "| \(record.suiteID) | \(cell(run.name)) | \(record.suiteVersion) | \(record.promptVersion) | \(scorers[record.suiteID] ?? "not scored") | `\(record.datasetSHA256.prefix(16))…` | \(record.itemCount) |\n"
            }
        }

        md += "\n## Results\n\n"
        for comparison in comparisons {
            if let average = comparison.averageDelta {
                md += "- **\(cell(comparison.candidate.name))**: average delta over \(comparison.suites.count) suite\(comparison.suites.count == 1 ? "" : "s") **\(signed(average))** points"
                let groups = comparison.groupAverages.map { "\($0.group) \(signed($0.delta)) (\($0.suites))" }
                md += groups.isEmpty ? "\n" : "; by group: " + groups.joined(separator: ", ") + "\n"
            }
        }
        md += "\n![Per-suite deltas](\(chartFileName))\n"

        let suiteOrder = orderedSuites(comparisons)
        var groupOrder: [String] = []
        for suite in suiteOrder where !groupOrder.contains(suite.group) { groupOrder.append(suite.group) }
        for group in groupOrder {
            md += "\n### \(group)\n\n"
            var header = "| suite | metric | base (\(cell(base))) |"
            var rule = "|---|---|---:|"
            for comparison in comparisons {
                header += " \(cell(comparison.candidate.name)) | Δ | 95% CI | p | n |"
                rule += "---:|---:|---|---:|---:|"
            }
            header += " unparsed (base"
            for comparison in comparisons { header += " / \(cell(comparison.candidate.name))" }
            header += ") |"
            rule += "---|"
            md += header + "\n" + rule + "\n"
            for suite in suiteOrder where suite.group == group {
                let rows = comparisons.map { $0.suites.first { $0.suite == suite.suite } }
                let baseScore = rows.compactMap { $0?.base }.first
                var line = "| \(suite.suite) | \(cell(suite.metric)) | \(baseScore.map { fixed($0) } ?? "—") |"
                var unparsed = [rows.compactMap { $0?.baseUnparsedRate }.first.map(percent) ?? "—"]
                for row in rows {
                    if let row {
                        line += " \(fixed(row.candidate)) | \(signed(row.delta)) | [\(signed(row.ci95.lower)), \(signed(row.ci95.upper))] | \(row.pValue.map(pFormat) ?? "—") | \(row.nPaired) |"
                        unparsed.append(percent(row.candidateUnparsedRate))
                    } else {
                        line += " — | — | — | — | — |"
                        unparsed.append("—")
                    }
                }
                line += " \(unparsed.joined(separator: " / ")) |"
                md += line + "\n"
            }
        }
        md += try judgingSection(store: store, runs: allRuns)
        for comparison in comparisons where !comparison.unmatched.isEmpty {
            md += "\nSuites in only one of \(base) / \(comparison.candidate.name) (not compared): \(comparison.unmatched.joined(separator: ", "))\n"
        }

        let series = comparisons.map { comparison in
            DeltaChart.Series(
                run: comparison.candidate.name,
                deltas: Dictionary(comparison.suites.map { ($0.suite, $0.delta) }, uniquingKeysWith: { a, _ in a }),
                intervals: Dictionary(comparison.suites.map { ($0.suite, ($0.ci95.lower, $0.ci95.upper)) }, uniquingKeysWith: { a, _ in a }))
        }
        let svg = DeltaChart.svg(suites: suiteOrder.map(\.suite), series: series,
                                 title: "Per-suite delta vs \(base) (points, 95% CI)")
        return MarkdownReport(markdown: md, svg: svg, chartFileName: chartFileName)
    }

    /// Writes the Markdown to `url` and the chart beside it.
    public func write(to url: URL) throws {
        let directory = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try markdown.write(to: url, atomically: true, encoding: .utf8)
        try svg.write(to: directory.appendingPathComponent(chartFileName), atomically: true, encoding: .utf8)
    }

    /// How suites with a judge step were judged in each run: the judge and how often it decided,
    /// or a plain statement that the run was scored without one (`--no-judge`).
    static func judgingSection(store: Store, runs: [RunRecord]) throws -> String {
        var rows = ""
        for run in runs {
            let judging = try store.judging(runID: run.id)
            guard !judging.isEmpty else { continue }
            let results = Dictionary(try store.suiteResults(runID: run.id).map { ($0.suiteID, $0.metrics) }, uniquingKeysWith: { a, _ in a })
            for (suite, entry) in judging.sorted(by: { $0.key < $1.key }) {
                let metrics = results[suite]
                switch entry.mode {
                case .judge:
                    let model = entry.judge.flatMap { try? JSONDecoder().decode([String: String].self, from: Data($0.utf8)) }?["model"] ?? "?"
                    let rate = metrics?.metrics["judge_rate"].map { String(format: "%.1f%%", $0) } ?? "—"
                    rows += "| \(cell(run.name)) | \(suite) | \(cell(model)) (`\(entry.task)`) | \(rate) | \(metrics.map { String($0.unparsed) } ?? "—") |\n"
                case .off:
                    rows += "| \(cell(run.name)) | \(suite) | **none: `--no-judge`** — responses the rules could not read count as unparsed (wrong) | — | \(metrics.map { String($0.unparsed) } ?? "—") |\n"
                }
            }
        }
        guard !rows.isEmpty else { return "" }
        return "\n## Judges\n\nSuites with a judge step use rules first; the judge reads only what the rules could not. "
            + "The judge-use rate is the share of scored items whose answer the judge decided.\n\n"
            + "| run | suite | judge | judge-use rate | unparsed |\n|---|---|---|---:|---:|\n" + rows
    }

    static func orderedSuites(_ comparisons: [RunComparison]) -> [SuiteComparison] {
        var seen = Set<String>()
        var result: [SuiteComparison] = []
        for comparison in comparisons {
            for suite in comparison.suites where seen.insert(suite.suite).inserted { result.append(suite) }
        }
        let order = Comparator.groupOrder
        return result.sorted { (order[$0.group] ?? 99, $0.group, $0.suite) < (order[$1.group] ?? 99, $1.group, $1.suite) }
    }

    static func backendSummary(_ run: RunRecord) -> String {
        guard let data = run.backendIdentity.data(using: .utf8),
              let identity = try? JSONDecoder().decode([String: String].self, from: data) else { return run.backend }
        var parts = [run.backend]
        if let checkpoint = identity["checkpoint"] { parts.append("source \(checkpoint.prefix(12))") }
        if let endpoint = identity["endpointModel"] { parts.append("endpoint model \(endpoint)") }
        return parts.joined(separator: ", ")
    }

    static func cell(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ") }
    static func fixed(_ v: Double) -> String { String(format: "%.2f", v) }
    static func signed(_ v: Double) -> String { (v >= 0 ? "+" : "") + String(format: "%.2f", v) }
    static func percent(_ v: Double) -> String { String(format: "%.1f%%", v * 100) }
    static func pFormat(_ p: Double) -> String {
        if p < 0.001 { return "<0.001" }
        return String(format: p < 0.01 ? "%.4f" : "%.3f", p)
    }
}
