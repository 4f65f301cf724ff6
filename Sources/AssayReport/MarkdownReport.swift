import AssayCore
import AssayStore
import AssaySuites
import Foundation

/// Renders runs as Markdown with an SVG chart beside it: compared with a base run (per-suite
/// deltas, intervals, p-values), or on their own (scores with intervals and per-category tables).
public struct MarkdownReport {
    public var markdown: String
    public var svg: String
    /// The chart's file name, as the Markdown links it.
    public var chartFileName: String

    /// Builds the report for `runs`, against `base` when one is given.
    public static func build(
        store: Store, catalog: SuiteCatalog, base: String?, runs: [String], chartFileName: String,
        resamples: Int = 10_000, seed: UInt64 = 0, generatedAt: Date = Date()
    ) throws -> MarkdownReport {
        let stamp = ISO8601DateFormatter().string(from: generatedAt)
        if let base {
            return try comparisonReport(store: store, catalog: catalog, base: base, runs: runs, chartFileName: chartFileName,
                                        resamples: resamples, seed: seed, stamp: stamp)
        }
        return try scoresReport(store: store, catalog: catalog, runs: runs, chartFileName: chartFileName,
                                resamples: resamples, seed: seed, stamp: stamp)
    }

    /// Writes the Markdown to `url` and the chart beside it.
    public func write(to url: URL) throws {
        let directory = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try markdown.write(to: url, atomically: true, encoding: .utf8)
        try svg.write(to: directory.appendingPathComponent(chartFileName), atomically: true, encoding: .utf8)
    }

    // MARK: - Against a base run

    static func comparisonReport(
        store: Store, catalog: SuiteCatalog, base: String, runs: [String], chartFileName: String,
        resamples: Int, seed: UInt64, stamp: String
    ) throws -> MarkdownReport {
        let comparisons = try runs.map {
            try Comparator.compare(base: base, candidate: $0, store: store, catalog: catalog, resamples: resamples, seed: seed)
        }
        let allRuns = [try store.requireRun(base)] + comparisons.map(\.candidate)
        var md = "# Assay report: \(runs.joined(separator: ", ")) vs \(base)\n\n"
        md += "Generated \(stamp) from `\(store.path)`. Deltas are candidate − base in points, on the items both runs answered; "
        md += "95% intervals are paired bootstrap (\(resamples) resamples, seed \(seed)); p is McNemar's exact test on per-item correctness.\n\n"
        md += try header(store: store, catalog: catalog, runs: allRuns, roles: ["base"] + Array(repeating: "candidate", count: comparisons.count))

        md += "\n## Results\n\n"
        for comparison in comparisons {
            if let average = comparison.averageDelta {
                md += "- **\(cell(comparison.candidate.name))**: average delta over \(comparison.suites.count) suite\(comparison.suites.count == 1 ? "" : "s") **\(signed(average))** points"
                let groups = comparison.groupAverages.map { "\($0.group) \(signed($0.delta)) (\($0.suites))" }
                md += groups.isEmpty ? "\n" : "; by group: " + groups.joined(separator: ", ") + "\n"
            }
        }
        md += "\n![Per-suite deltas](\(chartFileName))\n"

        let suiteOrder = orderedSuites(comparisons.flatMap(\.suites).map { ($0.suite, $0.group) })
        for group in groups(of: suiteOrder) {
            md += "\n### \(group)\n\n"
            var header = "| suite | metric | base (\(cell(base))) |"
            var rule = "|---|---|---:|"
            for comparison in comparisons {
                header += " \(cell(comparison.candidate.name)) | Δ | 95% CI | p | n |"
                rule += "---:|---:|---|---:|---:|"
            }
            header += " unparsed (base" + comparisons.map { " / \(cell($0.candidate.name))" }.joined() + ") |"
            rule += "---|"
            md += header + "\n" + rule + "\n"
            for (suite, _) in suiteOrder where suiteGroup(suite, suiteOrder) == group {
                let rows = comparisons.map { $0.suites.first { $0.suite == suite } }
                let first = rows.compactMap { $0 }.first
                var line = "| \(suite) | \(cell(first?.metric ?? "")) | \(first.map { fixed($0.base) } ?? "—") |"
                var unparsed = [first.map { percent($0.baseUnparsedRate) } ?? "—"]
                for row in rows {
                    if let row {
                        line += " \(fixed(row.candidate)) | \(signed(row.delta)) | [\(signed(row.ci95.lower)), \(signed(row.ci95.upper))] | \(row.pValue.map(pFormat) ?? "—") | \(row.nPaired) |"
                        unparsed.append(percent(row.candidateUnparsedRate))
                    } else {
                        line += " — | — | — | — | — |"
                        unparsed.append("—")
                    }
                }
                md += line + " \(unparsed.joined(separator: " / ")) |\n"
            }
            for (suite, _) in suiteOrder where suiteGroup(suite, suiteOrder) == group {
                md += categoryDeltaTable(suite: suite, base: base, comparisons: comparisons)
            }
        }
        md += try judgingSection(store: store, runs: allRuns)
        for comparison in comparisons where !comparison.unmatched.isEmpty {
            md += "\nSuites in only one of \(base) / \(comparison.candidate.name) (not compared): \(comparison.unmatched.joined(separator: ", "))\n"
        }
        let chart = categoryChartRows(suites: suiteOrder.map(\.suite), comparisons: comparisons)
        let svg = BarChart.svg(suites: chart.rows, series: chart.series, title: chart.title(base: base))
        return MarkdownReport(markdown: md, svg: svg, chartFileName: chartFileName)
    }

    // MARK: - Runs on their own

    /// A run's score on one suite with its bootstrap interval.
    struct RunScore {
        var metrics: SuiteMetrics
        var interval: Interval
        var metricName: String
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

    static func scoresReport(
        store: Store, catalog: SuiteCatalog, runs names: [String], chartFileName: String,
        resamples: Int, seed: UInt64, stamp: String
    ) throws -> MarkdownReport {
        let runs = try names.map { try store.requireRun($0) }
        var scores: [String: [String: RunScore]] = [:]  // run → suite → score
        var suites: [(suite: String, group: String)] = []
        for run in runs {
            for result in try store.suiteResults(runID: run.id) {
                let suite = try catalog.suite(result.suiteID)
                let scored = try store.scores(runID: run.id, suiteID: result.suiteID).filter { $0.sampleIndex == 0 }
                    .map { ScoredItem(item: $0.item, extraction: $0.extraction, score: $0.score) }
                let interval = Statistics.bootstrap(suite.bootstrapUnits(scored), statistic: suite.headlineStatistic,
                                                    resamples: resamples, seed: seed)
                scores[run.name, default: [:]][result.suiteID] = RunScore(
                    metrics: result.metrics, interval: Interval(interval.lower * 100, interval.upper * 100), metricName: suite.manifest.metric)
                if !suites.contains(where: { $0.suite == suite.id }) { suites.append((suite.id, suite.manifest.group)) }
            }
        }
        var md = "# Assay report: \(names.joined(separator: ", "))\n\n"
        md += "Generated \(stamp) from `\(store.path)`. Scores in percent; 95% intervals are bootstrap over items "
        md += "(\(resamples) resamples, seed \(seed)); unparsed answers score 0, missing items (no usable response) are not scored.\n\n"
        md += try header(store: store, catalog: catalog, runs: runs, roles: Array(repeating: "run", count: runs.count))
        md += "\n## Results\n\n![Scores](\(chartFileName))\n"
        let order = orderedSuites(suites)
        for group in groups(of: order) {
            md += "\n### \(group)\n\n| suite | metric |" + runs.map { " \(cell($0.name)) | 95% CI | n | unparsed | missing |" }.joined() + "\n"
            md += "|---|---|" + String(repeating: "---:|---|---:|---:|---:|", count: runs.count) + "\n"
            for (suite, _) in order where suiteGroup(suite, order) == group {
                let first = runs.compactMap { scores[$0.name]?[suite] }.first
                var line = "| \(suite) | \(cell(first?.metricName ?? "")) |"
                for run in runs {
                    if let s = scores[run.name]?[suite] {
                        line += " \(fixed(s.metrics.score)) | [\(fixed(s.interval.lower)), \(fixed(s.interval.upper))] | \(s.metrics.n) | \(s.metrics.unparsed) | \(s.metrics.missing) |"
                    } else {
                        line += " — | — | — | — | — |"
                    }
                }
                md += line + "\n"
            }
        }
        // Per-category breakdowns, where a suite has them.
        for (suite, _) in order {
            let categories = Set(runs.flatMap { run in
                (scores[run.name]?[suite]?.metrics.metrics.keys ?? [:].keys).filter { $0.hasPrefix("category/") }
            }).sorted()
            guard !categories.isEmpty, categories.count <= 40 else { continue }
            md += "\n#### \(suite) by category\n\n| category |" + runs.map { " \(cell($0.name)) |" }.joined() + "\n|---|" + String(repeating: "---:|", count: runs.count) + "\n"
            for category in categories {
                md += "| \(cell(String(category.dropFirst("category/".count)))) |"
                    + runs.map { run in " \(scores[run.name]?[suite]?.metrics.metrics[category].map(fixed) ?? "—") |" }.joined() + "\n"
            }
        }
        md += try judgingSection(store: store, runs: runs)
        let series = runs.map { run in
            BarChart.Series(
                run: run.name,
                values: (scores[run.name] ?? [:]).mapValues(\.metrics.score),
                intervals: (scores[run.name] ?? [:]).mapValues { ($0.interval.lower, $0.interval.upper) })
        }
        let svg = BarChart.svg(suites: order.map(\.suite), series: series, title: "Scores (percent, 95% CI)", signedValues: false)
        return MarkdownReport(markdown: md, svg: svg, chartFileName: chartFileName)
    }

    // MARK: - Shared pieces

    /// The runs table and the suites/versions/data table.
    static func header(store: Store, catalog: SuiteCatalog, runs: [RunRecord], roles: [String]) throws -> String {
        var md = "## Runs\n\n| run | role | model | backend | generation params | created |\n|---|---|---|---|---|---|\n"
        for (run, role) in zip(runs, roles) {
            md += "| \(cell(run.name)) | \(role) | \(cell(run.model)) | \(cell(backendSummary(run))) | \(RunDescription.generationParams(run)) | \(run.createdAt) |\n"
        }
        md += RunDescription.settingsSection(runs)
        md += "\n## Suites, versions and data\n\n| suite | run | suite version | prompt version | scorer version | dataset sha256 | items | coverage (scored of the suite's items) |\n|---|---|---|---|---|---|---|---|\n"
        for run in runs {
            let results = try store.suiteResults(runID: run.id)
            let scorers = Dictionary(results.map { ($0.suiteID, $0.scorerVersion) }, uniquingKeysWith: { a, _ in a })
            let metrics = Dictionary(results.map { ($0.suiteID, $0.metrics) }, uniquingKeysWith: { a, _ in a })
            for record in try store.runSuites(runID: run.id) {
                let coverage = RunDescription.coverage(
                    run: run, registration: record, metrics: metrics[record.suiteID],
                    expected: catalog.suites[record.suiteID]?.manifest.expectedItems)
                md += "| \(record.suiteID) | \(cell(run.name)) | \(record.suiteVersion) | \(record.promptVersion) | \(scorers[record.suiteID] ?? "not scored") | `\(record.datasetSHA256.prefix(16))…` | \(record.itemCount) | \(cell(coverage)) |\n"
            }
        }
        return md
    }

    /// Unique suites in group order (SUITES.md order, then other groups alphabetically), then by id.
    static func orderedSuites(_ suites: [(suite: String, group: String)]) -> [(suite: String, group: String)] {
        var seen = Set<String>()
        let unique = suites.filter { seen.insert($0.suite).inserted }
        let order = Comparator.groupOrder
        return unique.sorted { (order[$0.group] ?? 99, $0.group, $0.suite) < (order[$1.group] ?? 99, $1.group, $1.suite) }
    }

    static func groups(of suites: [(suite: String, group: String)]) -> [String] {
        var groups: [String] = []
        for suite in suites where !groups.contains(suite.group) { groups.append(suite.group) }
        return groups
    }

    static func suiteGroup(_ suite: String, _ suites: [(suite: String, group: String)]) -> String {
        suites.first { $0.suite == suite }?.group ?? ""
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
