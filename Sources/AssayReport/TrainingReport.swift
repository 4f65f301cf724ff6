import AssayCore
import AssayStore
import AssaySuites
import Foundation

/// One GRPO training run as Markdown with SVG charts beside it: its settings, the per-step
/// metrics the trainer recorded (curves against step and a table of every Nth step), its
/// checkpoints, and each evaluated checkpoint against the base model's evaluation, suite by
/// suite, with the numbers `assay compare` gives.
public struct TrainingReport {
    public var markdown: String
    /// The charts the Markdown links, in the order it shows them.
    public var charts: [Chart]
    /// The comparisons behind the checkpoint section, by step.
    public var evaluations: [CheckpointEvaluation]

    /// An SVG chart and the file name the Markdown links it by.
    public struct Chart: Sendable {
        public var fileName: String
        public var svg: String
    }

    /// The evaluation run(s) of one checkpoint compared with the base model's (step 0).
    public struct CheckpointEvaluation {
        public var step: Int
        /// One comparison per (base run, checkpoint run) pair that share a suite.
        public var comparisons: [RunComparison]
        /// Checkpoint runs that could not be compared, with the reason (unscored responses, …).
        public var failures: [(run: String, reason: String)]

        /// The comparison of `suite` at this step.
        public func suite(_ id: String) -> (comparison: SuiteComparison, base: String, candidate: String)? {
            for run in comparisons {
                if let suite = run.suites.first(where: { $0.suite == id }) { return (suite, run.base.name, run.candidate.name) }
            }
            return nil
        }
    }

    public enum TrainingReportError: Error, CustomStringConvertible {
        case unknownTrainingRun(String, known: [String], path: String)

        public var description: String {
            switch self {
            case .unknownTrainingRun(let name, let known, let path):
                return "no training run named '\(name)' in \(path)"
                    + (known.isEmpty ? " (it has no training runs)" : "; training runs: \(known.joined(separator: ", "))")
            }
        }
    }

    /// The training run, or an error listing the training runs there are.
    public static func requireTrainingRun(_ name: String, store: Store) throws -> TrainingRunRecord {
        if let run = try store.trainingRun(named: name) { return run }
        throw TrainingReportError.unknownTrainingRun(name, known: try store.trainingRuns().map(\.name), path: store.path)
    }

    // MARK: - Metrics and charts

    /// The metrics the trainer writes, in the order the step table shows them; `reward_<component>`
    /// ones follow, then any other metric, by name.
    static let metricOrder = [
        "reward_mean", "reward_std", "accuracy", "format_rate", "kl", "entropy", "response_length", "logprob_gap_mean",
        "logprob_gap_max", "clip_low", "clip_high", "clip_dual", "loss", "grad_norm", "seconds", "tokens_per_second",
    ]

    /// A chart of metrics against step: drawn when any of its metrics is present.
    struct StepChart {
        var slug: String
        var heading: String
        var caption: String
        var metrics: [String]
        /// `reward_std` as a band around `reward_mean`.
        var spreadOf: (mean: String, std: String)?
    }

    static let stepCharts = [
        StepChart(slug: "reward", heading: "Reward", caption: "`reward_mean` of each step, with a band of ± `reward_std`.",
                  metrics: ["reward_mean"], spreadOf: ("reward_mean", "reward_std")),
        StepChart(slug: "accuracy", heading: "Accuracy and format rate",
                  caption: "Share of the step's completions the reward counts correct (its `accuracy` component), and share with the expected format (`format` for the critic reward, `parsed` — an answer the suite could extract — for suite rewards).",
                  metrics: ["accuracy", "format_rate"]),
        StepChart(slug: "kl", heading: "KL", caption: "Mean k3 estimate of KL(policy ‖ starting model) per completion token, from the reference log-probs of the sampled tokens (0 when β is 0).", metrics: ["kl"]),
        StepChart(slug: "response-length", heading: "Response length", caption: "Mean length of the step's completions.", metrics: ["response_length"]),
        StepChart(slug: "logprob-gap", heading: "Log-prob gap",
                  caption: "|log π at sampling − log π on the training path| over every sampled token of the step, mean and max: the two should agree to float rounding; a jump means the sampler and the trainer no longer see the same model.",
                  metrics: ["logprob_gap_mean", "logprob_gap_max"]),
        StepChart(slug: "grad-norm", heading: "Gradient norm", caption: "The global gradient norm.", metrics: ["grad_norm"]),
    ]

    /// Wide single-panel charts for metrics against step.
    static let stepLayout = LineChart.Layout(panelWidth: 640, panelHeight: 260, columns: 1, xTitle: "step")

    // MARK: - Building

    /// Builds the report of training run `name`. Chart files are named `<chartPrefix>-<chart>.svg`.
    /// `resamples` and `seed` are those of the paired bootstrap, as `assay compare` takes them.
    public static func build(store: Store, catalog: SuiteCatalog, training name: String, chartPrefix: String,
                             resamples: Int = 10_000, seed: UInt64 = 0, generatedAt: Date = Date()) throws -> TrainingReport {
        let run = try requireTrainingRun(name, store: store)
        let steps = try store.trainingSteps(run.id)
        let checkpoints = try store.trainingCheckpoints(run.id)
        let links = try store.trainingEvaluations(run.id)
        let stamp = ISO8601DateFormatter().string(from: generatedAt)
        let cell = MarkdownReport.cell

        var md = "# Training report: \(cell(name))\n\n"
        md += "Generated \(stamp) from `\(store.path)`.\n\n"
        md += "## Run\n\n| | |\n|---|---|\n"
        md += "| status | \(cell(run.status)) |\n"
        if let first = steps.first, let last = steps.last {
            md += "| steps done | \(steps.count) (steps \(first.step)–\(last.step)) |\n"
        } else {
            md += "| steps done | 0 (no step recorded) |\n"
        }
        md += "| base model | `\(cell(run.baseModel))` |\n"
        md += "| data | `\(cell(run.dataPath))` (sha256 `\(cell(run.dataSHA256))`) |\n"
        md += "| output folder | `\(cell(run.outDir))` |\n"
        md += "| started | \(run.createdAt) |\n| last update | \(run.updatedAt) |\n"
        md += "\n### Settings\n\n"
        if let pretty = prettyJSON(run.configJSON) {
            md += "```json\n\(pretty)\n```\n"
        } else {
            md += "The stored settings are not valid JSON; as stored:\n\n```\n\(run.configJSON)\n```\n"
        }

        md += "\n## Checkpoints\n\n"
        if checkpoints.isEmpty {
            md += "No checkpoint recorded.\n"
        } else {
            md += "| step | model folder | parameters (FNV-1a 64) | evaluation runs |\n|---:|---|---|---|\n"
            for checkpoint in checkpoints {
                let runs = links.filter { $0.step == checkpoint.step }.map { "`\(cell($0.runName))`" }
                md += "| \(checkpoint.step) | `\(cell(checkpoint.path))` | `\(cell(checkpoint.parametersFNV1a64))` | \(runs.isEmpty ? "—" : runs.joined(separator: ", ")) |\n"
            }
        }

        var charts: [Chart] = []
        md += "\n## Training curves\n\n"
        let present = Set(steps.flatMap(\.metrics.keys))
        if steps.isEmpty {
            md += "No step recorded yet.\n"
        } else {
            let drawn = stepCharts.filter { !present.isDisjoint(with: $0.metrics) }
            let components = present.filter { $0.hasPrefix("reward_") && $0 != "reward_mean" && $0 != "reward_std" }.sorted()
            md += "Per-step metrics as the trainer recorded them; a chart is drawn only for metrics the run has"
            md += drawn.isEmpty && components.isEmpty ? " (this run recorded none of the charted ones).\n" : ".\n"
            for spec in drawn {
                let fileName = "\(chartPrefix)-\(spec.slug).svg"
                charts.append(Chart(fileName: fileName, svg: stepChartSVG(spec, steps: steps, title: "\(name): \(spec.heading)")))
                md += "\n### \(spec.heading)\n\n\(spec.caption)\n\n![\(spec.heading)](\(fileName))\n"
            }
            if !components.isEmpty {
                let spec = StepChart(slug: "reward-components", heading: "Reward components",
                                     caption: "Mean of each component of the reward over the step's completions.", metrics: components)
                let fileName = "\(chartPrefix)-\(spec.slug).svg"
                charts.append(Chart(fileName: fileName, svg: stepChartSVG(spec, steps: steps, title: "\(name): reward components")))
                md += "\n### \(spec.heading)\n\n\(spec.caption)\n\n![\(spec.heading)](\(fileName))\n"
            }
            let charted = drawn.flatMap { $0.metrics + ($0.spreadOf.map { [$0.std] } ?? []) } + components
            md += nonFiniteNote(steps, metrics: charted)
            md += stepTable(steps, present: present)
        }

        let evaluation = try evaluationSection(store: store, catalog: catalog, name: name, links: links, chartPrefix: chartPrefix,
                                               resamples: resamples, seed: seed)
        md += evaluation.markdown
        charts += evaluation.charts
        return TrainingReport(markdown: md, charts: charts, evaluations: evaluation.evaluations)
    }

    /// Writes the Markdown to `url` and the charts beside it.
    public func write(to url: URL) throws {
        let directory = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try markdown.write(to: url, atomically: true, encoding: .utf8)
        for chart in charts {
            try chart.svg.write(to: directory.appendingPathComponent(chart.fileName), atomically: true, encoding: .utf8)
        }
    }

    // MARK: - Steps

    static func stepChartSVG(_ spec: StepChart, steps: [TrainingStepRecord], title: String) -> String {
        var series: [LineChart.Series] = []
        var legend: [LineChart.LegendEntry] = []
        for (index, metric) in spec.metrics.enumerated() {
            let color = BarChart.palette[index % BarChart.palette.count]
            let points = steps.compactMap { step -> LineChart.Point? in
                guard let value = step.metrics[metric] else { return nil }
                var interval: Interval?
                if let spread = spec.spreadOf, spread.mean == metric, let std = step.metrics[spread.std] {
                    interval = Interval(value - std, value + std)
                }
                return LineChart.Point(x: Double(step.step), y: value, interval: interval)
            }
            guard !points.isEmpty else { continue }
            let band = points.contains { $0.interval != nil }
            series.append(LineChart.Series(name: metric, color: color, points: points, intervalStyle: band ? .band : .whiskers, markers: false))
            legend.append(LineChart.LegendEntry(name: metric, color: color))
            if band, let spread = spec.spreadOf { legend.append(LineChart.LegendEntry(name: "± \(spread.std)", color: color, band: true)) }
        }
        return LineChart.svg(panels: [LineChart.Panel(title: spec.heading, series: series)], legend: legend, title: title, layout: stepLayout)
    }

    /// Where charted metrics are NaN or infinite (their lines break there), at most ten steps per metric.
    static func nonFiniteNote(_ steps: [TrainingStepRecord], metrics: [String]) -> String {
        var lines: [String] = []
        for metric in metrics {
            let bad = steps.filter { $0.metrics[metric].map { !$0.isFinite } ?? false }
            guard !bad.isEmpty else { continue }
            let listed = bad.prefix(10).map { "\($0.step) (\(compact($0.metrics[metric] ?? .nan)))" }.joined(separator: ", ")
            lines.append("- `\(metric)` at step\(bad.count == 1 ? "" : "s") \(listed)\(bad.count > 10 ? " and \(bad.count - 10) more" : "")\n")
        }
        guard !lines.isEmpty else { return "" }
        return "\nValues that are not finite (gaps in the lines):\n\n" + lines.joined()
    }

    /// At most this many rows in the step table.
    static let maxTableRows = 25

    /// The steps the table shows: all of them up to `maxTableRows`, else every Nth and the last.
    static func tableSteps(_ steps: [TrainingStepRecord]) -> (rows: [TrainingStepRecord], every: Int) {
        guard steps.count > maxTableRows else { return (steps, 1) }
        // Indices 0, N, 2N, … give at most maxTableRows − 1 rows; the last step makes the rest.
        let every = (steps.count - 1 + maxTableRows - 3) / (maxTableRows - 2)
        var rows = stride(from: 0, to: steps.count, by: every).map { steps[$0] }
        if let last = steps.last, rows.last?.step != last.step { rows.append(last) }
        return (rows, every)
    }

    static func stepTable(_ steps: [TrainingStepRecord], present: Set<String>) -> String {
        let known = metricOrder.filter(present.contains)
        let components = present.filter { $0.hasPrefix("reward_") && !metricOrder.contains($0) }.sorted()
        let others = present.subtracting(known).subtracting(components).sorted()
        let columns = known + components + others
        let (rows, every) = tableSteps(steps)
        var md = "\n## Steps\n\n"
        md += every == 1 ? "Every step (\(steps.count)).\n\n" : "One recorded step in \(every), and the last (\(rows.count) of \(steps.count) steps).\n\n"
        md += "| step |" + columns.map { " \($0) |" }.joined() + "\n|---:|" + String(repeating: "---:|", count: columns.count) + "\n"
        for step in rows {
            md += "| \(step.step) |" + columns.map { " \(step.metrics[$0].map(compact) ?? "—") |" }.joined() + "\n"
        }
        return md
    }

    /// A metric value in few characters, whatever its scale (`0.5312`, `212.4`, `1.20e-04`).
    static func compact(_ v: Double) -> String {
        if v.isNaN { return "nan" }
        if v.isInfinite { return v > 0 ? "inf" : "-inf" }
        let magnitude = abs(v)
        if magnitude == 0 { return "0" }
        if magnitude >= 1000 { return String(format: "%.0f", v) }
        if magnitude >= 100 { return String(format: "%.1f", v) }
        if magnitude >= 1 { return String(format: "%.3f", v) }
        if magnitude >= 0.001 { return String(format: "%.4f", v) }
        return String(format: "%.2e", v)
    }

    // MARK: - Checkpoint evaluations

    static func evaluationSection(
        store: Store, catalog: SuiteCatalog, name: String, links: [TrainingEvaluationRecord], chartPrefix: String,
        resamples: Int, seed: UInt64
    ) throws -> (markdown: String, charts: [Chart], evaluations: [CheckpointEvaluation]) {
        let cell = MarkdownReport.cell
        var md = "\n## Checkpoint evaluations\n\n"
        guard !links.isEmpty else {
            md += "No evaluation run is linked to this training run, so there is nothing to compare: link the base model's "
            md += "evaluation as step 0 and each checkpoint's as its step.\n"
            return (md, [], [])
        }
        md += "| step | evaluation run | suites |\n|---:|---|---|\n"
        var suitesOf: [Int64: [String]] = [:]
        for link in links {
            let suites = try store.runSuites(runID: link.runID).map(\.suiteID).sorted()
            suitesOf[link.runID] = suites
            md += "| \(link.step)\(link.step == 0 ? " (base model)" : "") | `\(cell(link.runName))` | \(suites.isEmpty ? "none" : suites.joined(separator: ", ")) |\n"
        }
        let bases = links.filter { $0.step == 0 }
        let checkpointSteps = Array(Set(links.map(\.step).filter { $0 > 0 })).sorted()
        guard !bases.isEmpty else {
            md += "\nNo evaluation of the base model (step 0) is linked, so the checkpoints' runs have nothing to be compared with.\n"
            return (md, [], [])
        }
        guard !checkpointSteps.isEmpty else {
            md += "\nOnly the base model's evaluation (step 0) is linked; no checkpoint has been evaluated yet.\n"
            return (md, [], [])
        }
        // Each suite is compared with the first base run (by name) that holds it.
        var baseOf: [String: TrainingEvaluationRecord] = [:]
        var ambiguous: [String] = []
        for base in bases {
            for suite in suitesOf[base.runID] ?? [] {
                if let first = baseOf[suite] {
                    ambiguous.append("\(suite) (in `\(cell(first.runName))` and `\(cell(base.runName))`; `\(cell(first.runName))` is used)")
                } else {
                    baseOf[suite] = base
                }
            }
        }
        md += "\nEach checkpoint's evaluation against the base model's, suite by suite, exactly as "
        md += "`assay compare --base BASE --candidate RUN` computes it: scores in percent and deltas (checkpoint − base) in points "
        md += "on the items both runs answered, paired-bootstrap 95% intervals (\(resamples) resamples, seed \(seed)), "
        md += "McNemar's exact p on per-item correctness (— when scores are not binary).\n"
        if !ambiguous.isEmpty { md += "\nSuites in more than one base run: \(ambiguous.joined(separator: "; ")).\n" }

        var evaluations: [CheckpointEvaluation] = []
        var notes: [String] = []
        for step in checkpointSteps {
            var evaluation = CheckpointEvaluation(step: step, comparisons: [], failures: [])
            for candidate in links where candidate.step == step {
                let suites = suitesOf[candidate.runID] ?? []
                let unmatched = suites.filter { baseOf[$0] == nil }
                if !unmatched.isEmpty {
                    notes.append("step \(step): `\(cell(candidate.runName))` has suites no base run has (not compared): \(unmatched.joined(separator: ", "))")
                }
                let needed = bases.filter { base in suites.contains { baseOf[$0]?.runID == base.runID } }
                for base in needed {
                    do {
                        var comparison = try Comparator.compare(base: base.runName, candidate: candidate.runName, store: store,
                                                                catalog: catalog, resamples: resamples, seed: seed)
                        // A suite another base run answers for is left to that run's comparison.
                        comparison.suites.removeAll { baseOf[$0.suite]?.runID != base.runID }
                        evaluation.comparisons.append(comparison)
                    } catch let error as ComparisonError {
                        evaluation.failures.append((candidate.runName, "\(error)"))
                    }
                }
            }
            let evaluated = Set(evaluation.comparisons.flatMap { $0.suites.map(\.suite) })
            let missing = baseOf.keys.filter { !evaluated.contains($0) }.sorted()
            if !missing.isEmpty, evaluation.failures.isEmpty {
                notes.append("step \(step): base suites not evaluated at this checkpoint: \(missing.joined(separator: ", "))")
            }
            evaluations.append(evaluation)
        }

        // The summary: average delta per checkpoint, as `assay report --base` gives it.
        md += "\n"
        for evaluation in evaluations {
            for comparison in evaluation.comparisons where !comparison.suites.isEmpty {
                let count = comparison.suites.count
                let average = comparison.suites.reduce(0) { $0 + $1.delta } / Double(count)
                md += "- **step \(evaluation.step)** (`\(cell(comparison.candidate.name))` vs `\(cell(comparison.base.name))`): "
                md += "average delta over \(count) suite\(count == 1 ? "" : "s") **\(MarkdownReport.signed(average))** points\n"
            }
            for failure in evaluation.failures {
                md += "- **step \(evaluation.step)** (`\(cell(failure.run))`): not compared: \(cell(failure.reason))\n"
            }
        }
        if !notes.isEmpty { md += "\n" + notes.map { "- \($0)\n" }.joined() }

        let suiteOrder = MarkdownReport.orderedSuites(
            evaluations.flatMap { $0.comparisons.flatMap { $0.suites.map { ($0.suite, $0.group) } } })
        guard !suiteOrder.isEmpty else { return (md, [], evaluations) }
        let fileName = "\(chartPrefix)-evaluations.svg"
        md += "\nThe chart draws each suite's score against checkpoint step (step 0: the base model). The dashed line is the base "
        md += "model's score on the items paired with each checkpoint; a whisker is that base score plus the paired 95% interval of "
        md += "the checkpoint's delta, so a whisker that does not reach the dashed line is a delta whose interval excludes zero.\n\n"
        md += "![Suite scores by checkpoint](\(fileName))\n"
        var panels: [LineChart.Panel] = []
        for (suite, _) in suiteOrder {
            let rows = evaluations.compactMap { e in e.suite(suite).map { (step: e.step, row: $0) } }
            guard let first = rows.first else { continue }
            md += "\n### \(suite) (\(cell(first.row.comparison.metric)))\n\n"
            md += "| step | run | base | score | Δ | 95% CI | p | n | unparsed (base / checkpoint) |\n|---:|---|---:|---:|---:|---|---:|---:|---|\n"
            for (step, row) in rows {
                let s = row.comparison
                md += "| \(step) | `\(cell(row.candidate))` vs `\(cell(row.base))` | \(MarkdownReport.fixed(s.base)) | \(MarkdownReport.fixed(s.candidate)) | "
                md += "\(MarkdownReport.signed(s.delta)) | [\(MarkdownReport.signed(s.ci95.lower)), \(MarkdownReport.signed(s.ci95.upper))] | "
                md += "\(s.pValue.map(MarkdownReport.pFormat) ?? "—") | \(s.nPaired) | "
                md += "\(MarkdownReport.percent(s.baseUnparsedRate)) / \(MarkdownReport.percent(s.candidateUnparsedRate)) |\n"
            }
            var scores = [LineChart.Point(x: 0, y: first.row.comparison.base,
                                          label: "base \(first.row.base): \(String(format: "%.2f", first.row.comparison.base))")]
            var baseLine = [LineChart.Point(x: 0, y: first.row.comparison.base)]
            for (step, row) in rows {
                let s = row.comparison
                scores.append(LineChart.Point(
                    x: Double(step), y: s.candidate, interval: Interval(s.base + s.ci95.lower, s.base + s.ci95.upper),
                    label: "step \(step) \(row.candidate): \(String(format: "%.2f", s.candidate)) (Δ \(MarkdownReport.signed(s.delta)) "
                        + "[\(MarkdownReport.signed(s.ci95.lower)), \(MarkdownReport.signed(s.ci95.upper))])"))
                baseLine.append(LineChart.Point(x: Double(step), y: s.base))
            }
            panels.append(LineChart.Panel(title: suite, series: [
                LineChart.Series(name: "base", color: "#5f6b73", points: baseLine, markers: false, dashed: true),
                LineChart.Series(name: "checkpoint", color: BarChart.palette[0], points: scores),
            ]))
        }
        let svg = LineChart.svg(
            panels: panels,
            legend: [LineChart.LegendEntry(name: "score (whisker: base + 95% CI of Δ)", color: BarChart.palette[0]),
                     LineChart.LegendEntry(name: "base model on the paired items", color: "#5f6b73", dashed: true)],
            title: "\(name): suite scores by checkpoint",
            layout: LineChart.Layout(xTitle: "checkpoint step (0: base model)", xTicksAtPoints: true, yRange: .percent))
        return (md, [Chart(fileName: fileName, svg: svg)], evaluations)
    }

    // MARK: - Settings

    /// `json` indented two spaces per level, its numbers and strings exactly as stored; `nil`
    /// when it is not JSON.
    static func prettyJSON(_ json: String) -> String? {
        guard (try? JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed])) != nil else { return nil }
        var out = "", depth = 0, inString = false, escaped = false
        var pendingOpen = false  // just after `{` or `[`: an empty container stays on one line
        func newline() { out += "\n" + String(repeating: "  ", count: depth) }
        for character in json {
            if inString {
                out.append(character)
                if escaped { escaped = false } else if character == "\\" { escaped = true } else if character == "\"" { inString = false }
                continue
            }
            if character == " " || character == "\n" || character == "\t" || character == "\r" { continue }
            if pendingOpen {
                pendingOpen = false
                if character == "}" || character == "]" {
                    depth -= 1
                    out.append(character)
                    continue
                }
                newline()
            }
            switch character {
            case "{", "[":
                out.append(character)
                depth += 1
                pendingOpen = true
            case "}", "]":
                depth -= 1
                newline()
                out.append(character)
            case ",":
                out.append(character)
                newline()
            case ":":
                out += ": "
            case "\"":
                inString = true
                out.append(character)
            default:
                out.append(character)
            }
        }
        return out
    }
}
