import AssayCore
import AssayStore
import AssaySuites
import Foundation

/// Test-time scaling of one run: for every selection method derived from it (`assay select`),
/// the score against n per suite and averaged over suites, with 95% bootstrap intervals, as a
/// Markdown table and an SVG of curves on a log₂ axis; and the critic calls self-critic spent.
public struct ScalingReport {
    public var markdown: String
    public var svg: String
    public var chartFileName: String

    /// One point of a curve.
    public struct Point: Sendable, Hashable {
        public var n: Int
        public var score: Double
        public var interval: Interval
        /// Items scored, unparsed, and missing (no selection).
        public var scored: Int
        public var missing: Int
        /// Mean critic calls per item (self-critic).
        public var criticCalls: Double
    }

    /// Methods in the order curves are drawn and tabulated.
    static let methodOrder = ["first", "majority", "self-critic", "oracle"]

    public enum ScalingError: Error, CustomStringConvertible {
        case noSelections(run: String)
        public var description: String {
            switch self {
            case .noSelections(let run):
                return "run '\(run)' has no derived selection runs; make them with `assay select --run \(run) --method … --n 1,2,4,…`"
            }
        }
    }

    public static func build(store: Store, catalog: SuiteCatalog, run name: String, chartFileName: String,
                             resamples: Int = 10_000, seed: UInt64 = 0, generatedAt: Date = Date()) throws -> ScalingReport {
        let source = try store.requireRun(name)
        // Derived runs of this source: method → n → run.
        var derived: [String: [Int: RunRecord]] = [:]
        for run in try store.runs() {
            guard let notes = try? JSONDecoder().decode([String: String].self, from: Data(run.notes.utf8)),
                  notes["selection_of"] == source.name, let method = notes["method"], let n = notes["n"].flatMap(Int.init) else { continue }
            derived[method, default: [:]][n] = run
        }
        guard !derived.isEmpty else { throw ScalingError.noSelections(run: name) }
        let methods = methodOrder.filter { derived[$0] != nil } + derived.keys.filter { !methodOrder.contains($0) }.sorted()
        let suiteIDs = try store.runSuites(runID: source.id).map(\.suiteID)

        // Curves: method → suite → points; the average over suites per method and n.
        var curves: [String: [String: [Point]]] = [:]
        var averages: [String: [Point]] = [:]
        var units: [String: [Int: [(units: [BootstrapUnit], statistic: HeadlineStatistic)]]] = [:]
        for method in methods {
            for (n, run) in (derived[method] ?? [:]).sorted(by: { $0.key < $1.key }) {
                let results = Dictionary(try store.suiteResults(runID: run.id).map { ($0.suiteID, $0.metrics) }, uniquingKeysWith: { a, _ in a })
                var calls: [String: (Int, Int)] = [:]
                for selection in try store.selections(runID: run.id) {
                    let current = calls[selection.suiteID] ?? (0, 0)
                    calls[selection.suiteID] = (current.0 + selection.criticCalls, current.1 + 1)
                }
                for suiteID in suiteIDs {
                    guard let metrics = results[suiteID], let suite = try? catalog.suite(suiteID) else { continue }
                    let scored = try store.scores(runID: run.id, suiteID: suiteID).filter { $0.sampleIndex == 0 }
                        .map { ScoredItem(item: $0.item, extraction: $0.extraction, score: $0.score) }
                    let suiteUnits = suite.bootstrapUnits(scored)
                    let interval = Statistics.bootstrap(suiteUnits, statistic: suite.headlineStatistic, resamples: resamples, seed: seed)
                    let (callSum, items) = calls[suiteID] ?? (0, 0)
                    curves[method, default: [:]][suiteID, default: []].append(Point(
                        n: n, score: metrics.score, interval: Interval(interval.lower * 100, interval.upper * 100),
                        scored: metrics.n, missing: metrics.missing, criticCalls: items == 0 ? 0 : Double(callSum) / Double(items)))
                    units[method, default: [:]][n, default: []].append((suiteUnits, suite.headlineStatistic))
                }
            }
            for (n, perSuite) in (units[method] ?? [:]).sorted(by: { $0.key < $1.key }) where perSuite.count > 0 {
                let points = suiteIDs.compactMap { curves[method]?[$0]?.first { $0.n == n } }
                let mean = points.reduce(0) { $0 + $1.score } / Double(max(points.count, 1))
                let interval = Statistics.bootstrapMeanOfHeadlines(perSuite, resamples: resamples, seed: seed)
                averages[method, default: []].append(Point(
                    n: n, score: mean, interval: Interval(interval.lower * 100, interval.upper * 100),
                    scored: points.reduce(0) { $0 + $1.scored }, missing: points.reduce(0) { $0 + $1.missing },
                    criticCalls: points.isEmpty ? 0 : points.reduce(0) { $0 + $1.criticCalls } / Double(points.count)))
            }
        }

        let stamp = ISO8601DateFormatter().string(from: generatedAt)
        var md = "# Test-time scaling: \(MarkdownReport.cell(name))\n\n"
        md += "Generated \(stamp) from `\(store.path)`. Model: \(MarkdownReport.cell(source.model)); generation parameters "
        md += "`\(MarkdownReport.cell(source.generationParams))`. Each point is a derived run `\(MarkdownReport.cell(name))@METHOD-n` "
        md += "whose answer per item is the candidate the method picked among the item's first n samples (nested prefixes of the "
        md += "same draws, so every point is comparable). Scores in percent; 95% intervals are bootstrap over items "
        md += "(\(resamples) resamples, seed \(seed)); the average's interval resamples every suite at once.\n\n"
        md += "- **first**: sample 0, what one draw gives.\n"
        if derived["majority"] != nil { md += "- **majority**: the most frequent extracted answer (ties: seeded hash rule).\n" }
        if derived["self-critic"] != nil {
            let critics = Set((derived["self-critic"] ?? [:]).values.compactMap { run in
                (try? JSONDecoder().decode([String: String].self, from: Data(run.notes.utf8))).map {
                    "\($0["critic"] ?? "?")\($0["critic_is_self"] == "yes" ? " (the run's own model)" : "")"
                }
            })
            md += "- **self-critic**: a seeded knockout tournament judged by \(critics.sorted().joined(separator: ", ")), "
            md += "each match asked in both orders; contradicting or unparsed orders fall to the earlier draw.\n"
        }
        if derived["oracle"] != nil { md += "- **oracle**: pass@n, correct when any of the first n is correct: an upper bound, it sees the gold answer.\n" }
        md += "\n![Scaling curves](\(chartFileName))\n"

        func table(_ title: String, _ series: [String: [Point]]) -> String {
            let ns = Array(Set(series.values.flatMap { $0.map(\.n) })).sorted()
            var out = "\n### \(title)\n\n| n |" + methods.map { " \($0) | 95% CI |" }.joined() + "\n|---:|"
                + String(repeating: "---:|---|", count: methods.count) + "\n"
            for n in ns {
                out += "| \(n) |"
                for method in methods {
                    if let p = series[method]?.first(where: { $0.n == n }) {
                        out += " \(MarkdownReport.fixed(p.score)) | [\(MarkdownReport.fixed(p.interval.lower)), \(MarkdownReport.fixed(p.interval.upper))] |"
                    } else {
                        out += " — | — |"
                    }
                }
                out += "\n"
            }
            if let critic = series["self-critic"], !critic.isEmpty {
                out += "\nCritic calls per item (matches × 2 orders): "
                    + critic.map { "n \($0.n): \(String(format: "%.1f", $0.criticCalls))" }.joined(separator: ", ") + "\n"
            }
            let missing = methods.flatMap { m in (series[m] ?? []).filter { $0.missing > 0 }.map { "\(m)-\($0.n): \($0.missing)" } }
            if !missing.isEmpty { out += "\nItems without a selection (missing): " + missing.joined(separator: ", ") + "\n" }
            return out
        }
        if suiteIDs.count > 1 {
            md += table("Average over \(suiteIDs.count) suites", averages)
        }
        for suiteID in suiteIDs {
            var series: [String: [Point]] = [:]
            for method in methods { series[method] = curves[method]?[suiteID] }
            md += table(suiteID, series)
        }

        var panels: [ScalingChart.Panel] = []
        if suiteIDs.count > 1 { panels.append(ScalingChart.Panel(title: "average over \(suiteIDs.count) suites", series: averages)) }
        for suiteID in suiteIDs {
            var series: [String: [Point]] = [:]
            for method in methods { series[method] = curves[method]?[suiteID] }
            panels.append(ScalingChart.Panel(title: suiteID, series: series))
        }
        let svg = ScalingChart.svg(panels: panels, methods: methods, title: "\(name): score vs n (95% CI)")
        return ScalingReport(markdown: md, svg: svg, chartFileName: chartFileName)
    }

    /// Writes the Markdown to `url` and the chart beside it.
    public func write(to url: URL) throws {
        let directory = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try markdown.write(to: url, atomically: true, encoding: .utf8)
        try svg.write(to: directory.appendingPathComponent(chartFileName), atomically: true, encoding: .utf8)
    }
}

/// Score-against-n curves on a log₂ axis, one panel per suite, as standalone SVG (drawn by
/// `LineChart`).
enum ScalingChart {
    struct Panel {
        var title: String
        var series: [String: [ScalingReport.Point]]
    }

    static let colors = ["first": "#5f6b73", "majority": "#2f6db5", "self-critic": "#d9822b", "oracle": "#3a9c5b"]

    static func svg(panels: [Panel], methods: [String], title: String) -> String {
        let legend = methods.enumerated().map { LineChart.LegendEntry(name: $0.element, color: color($0.element, $0.offset)) }
        let lines = panels.map { panel in
            LineChart.Panel(title: panel.title, series: methods.enumerated().compactMap { index, method in
                guard let points = panel.series[method], !points.isEmpty else { return nil }
                // Methods side by side at each n so their whiskers do not hide each other.
                let offset = (Double(index) - Double(methods.count - 1) / 2) * 4
                return LineChart.Series(name: method, color: color(method, index), points: points.map { p in
                    LineChart.Point(
                        x: Double(p.n), y: p.score, interval: p.interval,
                        label: "\(method) n=\(p.n): \(String(format: "%.2f", p.score)) [\(String(format: "%.2f", p.interval.lower)), \(String(format: "%.2f", p.interval.upper))]")
                }, offset: offset)
            })
        }
        return LineChart.svg(panels: lines, legend: legend, title: title,
                             layout: LineChart.Layout(xAxis: .log2, xTitle: "n (log scale)", xTicksAtPoints: true, yRange: .percent))
    }

    static func color(_ method: String, _ index: Int) -> String {
        colors[method] ?? BarChart.palette[index % BarChart.palette.count]
    }
}
