import AssayCore
import AssayEngine
@testable import AssayReport
import AssayStore
import AssaySuites
import AssayTestSupport
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest

/// `TrainingReport`: a training run's settings, curves, step table and checkpoint evaluations,
/// on a temporary store with synthetic steps and evaluation runs imported and scored as
/// `assay import` and `assay score` make them.
final class TrainingReportTests: XCTestCase {
    var directory: URL!
    var store: Store!
    var catalog: SuiteCatalog!

    override func setUpWithError() throws {
        directory = try Fixtures.temporaryDirectory(for: self)
        store = try Store(path: directory.appendingPathComponent("assay.sqlite").path)
        catalog = try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory)
    }

    static let config = #"{"beta":0.01,"epsilon_high":0.28,"epsilon_low":0.2,"group_size":8,"lr":1e-06,"notes":"a \"quoted\" {brace}, [bracket]","schedule":[],"seed":0}"#

    /// Every metric the trainer writes, smooth functions of the step.
    static func metrics(_ step: Int) -> [String: Double] {
        let t = Double(step)
        return [
            "reward_mean": 0.2 + 0.02 * t, "reward_std": 0.3 - 0.005 * t, "accuracy": 0.15 + 0.02 * t, "format_rate": min(1, 0.6 + 0.02 * t),
            "kl": 0.0004 * t, "entropy": 1.2 - 0.01 * t, "response_length": 180 + 2 * t, "logprob_gap_mean": 0.001 + 0.0001 * t,
            "logprob_gap_max": 0.05 + 0.002 * t, "clip_low": 0.01, "clip_high": 0.02, "clip_dual": 0, "loss": -0.3 + 0.01 * t,
            "grad_norm": 4.5 - 0.05 * t, "seconds": 18.2, "tokens_per_second": 169, "reward_accuracy": 0.15 + 0.02 * t,
            "reward_format": min(1, 0.6 + 0.02 * t),
        ]
    }

    func file(_ name: String, _ rows: [[String: Any]]) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try Fixtures.writeJSONL(rows, to: url)
        return url
    }

    /// Imports and scores an evaluation run over MMStar and AI2D (20 items each) whose answer to
    /// item i is right when `right(i)`, and returns the run's id.
    @discardableResult
    func evaluationRun(_ name: String, suites: [String] = ["mmstar", "ai2d"], right: (Int) -> Bool) throws -> Int64 {
        let letters = ["A", "B", "C", "D"]
        let items = (0..<20).map { i -> [String: Any] in
            ["index": i, "question": "q\(i)", "answer": letters[i % 4], "category": i < 10 ? "math" : "art", "l2-category": "g",
             "A": "one", "B": "two", "C": "three", "D": "four"]
        }
        let predictions = (0..<20).map { i -> [String: Any] in
            ["index": i, "prediction": "The answer is \(right(i) ? letters[i % 4] : letters[(i + 1) % 4])."]
        }
        for suite in suites {
            _ = try Importer.run(.init(suite: try catalog.suite(suite), items: try file("\(suite)-items.jsonl", items),
                                       predictions: try file("\(name)-\(suite).jsonl", predictions), run: name, model: name),
                                 store: store)
        }
        _ = try ScoringPass.score(run: name, store: store, catalog: catalog)
        return try store.requireRun(name).id
    }

    /// Training run `grpo-arith`: 30 steps of every metric, checkpoints at 10 and 20, and
    /// evaluations linked at steps 0 (the base model), 10 and 20.
    func fullTrainingRun() throws -> TrainingRunRecord {
        let run = try store.ensureTrainingRun(name: "grpo-arith", baseModel: "/models/base", dataPath: "data/critic-arith/train.jsonl",
                                              dataSHA256: String(repeating: "ab", count: 32), configJSON: Self.config, outDir: "out/grpo-arith")
        for step in 1...30 {
            var metrics = Self.metrics(step)
            if step == 17 { metrics["grad_norm"] = .nan }  // a step whose gradient blew up
            try store.recordTrainingStep(run.id, TrainingStepRecord(step: step, metrics: metrics), rollouts: [])
        }
        try store.recordTrainingCheckpoint(run.id, step: 10, path: "out/grpo-arith/step-10", fingerprint: "00112233aabbccdd")
        try store.recordTrainingCheckpoint(run.id, step: 20, path: "out/grpo-arith/step-20", fingerprint: "44556677eeff0011")
        try store.linkTrainingEvaluation(run.id, step: 0, runID: try evaluationRun("base") { $0 % 5 < 2 })
        try store.linkTrainingEvaluation(run.id, step: 10, runID: try evaluationRun("ckpt-10") { $0 % 5 < 3 || $0 == 19 })
        try store.linkTrainingEvaluation(run.id, step: 20, runID: try evaluationRun("ckpt-20") { $0 % 5 < 4 && $0 != 0 })
        try store.setTrainingStatus(run.id, "finished")
        return run
    }

    func assertWellFormed(_ svg: String, _ name: String, line: UInt = #line) {
        let parser = XMLParser(data: Data(svg.utf8))
        XCTAssertTrue(parser.parse(), "\(name): \(parser.parserError.map { "\($0)" } ?? "")", line: line)
    }

    func testAFullRunHasItsSettingsCurvesTableAndCheckpointDeltas() throws {
        _ = try fullTrainingRun()
        let report = try TrainingReport.build(store: store, catalog: catalog, training: "grpo-arith", chartPrefix: "grpo", resamples: 500)
        let md = report.markdown

        // Header: status, steps, base model, data and checksum, the settings indented with their values as stored.
        for needle in ["# Training report: grpo-arith", "| status | finished |", "| steps done | 30 (steps 1–30) |", "| base model | `/models/base` |",
                       "`data/critic-arith/train.jsonl` (sha256 `\(String(repeating: "ab", count: 32))`)", "\"lr\": 1e-06,",
                       #""notes": "a \"quoted\" {brace}, [bracket]","#, "\"schedule\": [],", "| 10 | `out/grpo-arith/step-10` | `00112233aabbccdd` | `ckpt-10` |"] {
            XCTAssertTrue(md.contains(needle), "the report lacks \(needle):\n\(md)")
        }

        // A chart per charted metric group, each linked from the Markdown, and the evaluation chart.
        let expected = ["reward", "accuracy", "kl", "response-length", "logprob-gap", "grad-norm", "reward-components", "evaluations"]
        XCTAssertEqual(report.charts.map(\.fileName), expected.map { "grpo-\($0).svg" })
        for chart in report.charts {
            XCTAssertTrue(md.contains("](\(chart.fileName))"), "the Markdown does not link \(chart.fileName)")
            assertWellFormed(chart.svg, chart.fileName)
        }
        let svg = Dictionary(uniqueKeysWithValues: report.charts.map { ($0.fileName, $0.svg) })
        let reward = try XCTUnwrap(svg["grpo-reward.svg"])
        XCTAssertEqual(reward.components(separatedBy: "<polygon").count - 1, 1, "the ±std band")
        XCTAssertEqual(reward.components(separatedBy: "<polyline").count - 1, 1)
        XCTAssertTrue(reward.contains(">± reward_std</text>"), reward)
        // Both lines of the two-metric charts, with their names in the legend.
        for (chart, metrics) in [("grpo-accuracy.svg", ["accuracy", "format_rate"]), ("grpo-logprob-gap.svg", ["logprob_gap_mean", "logprob_gap_max"]),
                                 ("grpo-reward-components.svg", ["reward_accuracy", "reward_format"])] {
            let text = try XCTUnwrap(svg[chart])
            XCTAssertEqual(text.components(separatedBy: "<polyline").count - 1, 2, chart)
            for metric in metrics { XCTAssertTrue(text.contains(">\(metric)</text>"), "\(chart) lacks \(metric)") }
        }
        // A NaN breaks its line, is listed under the charts and reads as nan in the table.
        XCTAssertTrue(md.contains("Values that are not finite (gaps in the lines):\n\n- `grad_norm` at step 17 (nan)\n"), md)
        XCTAssertEqual(try XCTUnwrap(svg["grpo-grad-norm.svg"]).components(separatedBy: "<polyline").count - 1, 2)
        XCTAssertFalse(try XCTUnwrap(svg["grpo-grad-norm.svg"]).contains("nan"))
        // The KL axis is labelled at its own scale, not rounded to zero.
        XCTAssertTrue(try XCTUnwrap(svg["grpo-kl.svg"]).contains(">0.005</text>"), svg["grpo-kl.svg"] ?? "")

        // The step table: at most 25 rows, the first and the last step, every metric as a column.
        let table = md.components(separatedBy: "\n## Steps\n")[1].components(separatedBy: "\n## ")[0]
        let rows = table.split(separator: "\n").filter { $0.hasPrefix("| ") && !$0.hasPrefix("| step") }
        XCTAssertEqual(rows.count, 16, table)
        XCTAssertTrue(rows.first?.hasPrefix("| 1 | 0.2200 |") ?? false, table)
        XCTAssertTrue(rows.last?.hasPrefix("| 30 | 0.8000 |") ?? false, table)
        XCTAssertTrue(table.contains("| step | reward_mean | reward_std | accuracy | format_rate | kl | entropy |"), table)
        XCTAssertTrue(table.contains("| reward_accuracy | reward_format |"), table)
        XCTAssertTrue(table.contains("| nan | 18.200 | 169.0 |"), table)

        // The checkpoint deltas are the Comparison API's, step by step and suite by suite.
        XCTAssertEqual(report.evaluations.map(\.step), [10, 20])
        for evaluation in report.evaluations {
            let run = "ckpt-\(evaluation.step)"
            let comparison = try Comparator.compare(base: "base", candidate: run, store: store, catalog: catalog, resamples: 500)
            XCTAssertEqual(comparison.suites.map(\.suite).sorted(), ["ai2d", "mmstar"])
            for expected in comparison.suites {
                let (got, base, candidate) = try XCTUnwrap(evaluation.suite(expected.suite))
                XCTAssertEqual(base, "base")
                XCTAssertEqual(candidate, run)
                XCTAssertEqual(got.delta, expected.delta)
                XCTAssertEqual(got.ci95, expected.ci95)
                XCTAssertEqual(got.pValue, expected.pValue)
                XCTAssertEqual(got.nPaired, expected.nPaired)
                XCTAssertEqual(got.base, expected.base)
                XCTAssertEqual(got.candidate, expected.candidate)
                // …and so is the row the Markdown shows.
                let row = "| \(evaluation.step) | `\(run)` vs `base` | \(MarkdownReport.fixed(expected.base)) | \(MarkdownReport.fixed(expected.candidate)) | "
                    + "\(MarkdownReport.signed(expected.delta)) | [\(MarkdownReport.signed(expected.ci95.lower)), \(MarkdownReport.signed(expected.ci95.upper))] | "
                    + "\(expected.pValue.map(MarkdownReport.pFormat) ?? "—") | \(expected.nPaired) |"
                let section = try XCTUnwrap(md.components(separatedBy: "\n### \(expected.suite) (").dropFirst().first, md)
                XCTAssertTrue(section.contains(row), "the \(expected.suite) table lacks \(row):\n\(section)")
            }
            if let average = comparison.averageDelta {
                XCTAssertTrue(md.contains("- **step \(evaluation.step)** (`\(run)` vs `base`): average delta over 2 suites **\(MarkdownReport.signed(average))** points"), md)
            }
        }
        // Base 40%, checkpoint 10 65% (12 + item 19 right), checkpoint 20 75% (16 less item 0).
        let ckpt20 = try XCTUnwrap(report.evaluations.last?.suite("mmstar")?.comparison)
        XCTAssertEqual(ckpt20.base, 40, accuracy: 1e-9)
        XCTAssertEqual(ckpt20.candidate, 75, accuracy: 1e-9)
        XCTAssertEqual(ckpt20.nPaired, 20)

        // The evaluation chart: a panel per suite, a score at steps 0, 10 and 20, a whisker per checkpoint.
        let evaluations = try XCTUnwrap(svg["grpo-evaluations.svg"])
        for suite in ["mmstar", "ai2d"] { XCTAssertTrue(evaluations.contains("font-weight=\"bold\">\(suite)</text>"), suite) }
        XCTAssertEqual(evaluations.components(separatedBy: "stroke-opacity=\"0.6\"").count - 1, 4, evaluations)
        XCTAssertEqual(evaluations.components(separatedBy: "<circle").count - 1, 6, evaluations)
        XCTAssertTrue(evaluations.contains("stroke-dasharray"), "the base line")
        for step in ["0", "10", "20"] { XCTAssertTrue(evaluations.contains(">\(step)</text>"), step) }
        XCTAssertTrue(evaluations.contains("<title>step 20 ckpt-20: 75.00 (Δ +35.00 ["), evaluations)
    }

    func testARunWithoutTheChartedMetricsHasNoChartsAndSaysNothingIsEvaluated() throws {
        let run = try store.ensureTrainingRun(name: "bare", baseModel: "m", dataPath: "d.jsonl", dataSHA256: "00", configJSON: "{}", outDir: "o")
        for step in 1...3 {
            try store.recordTrainingStep(run.id, TrainingStepRecord(step: step, metrics: ["loss": -0.1 * Double(step), "seconds": 12]), rollouts: [])
        }
        let report = try TrainingReport.build(store: store, catalog: catalog, training: "bare", chartPrefix: "bare", resamples: 100)
        XCTAssertTrue(report.charts.isEmpty, report.charts.map(\.fileName).description)
        XCTAssertFalse(report.markdown.contains("!["), report.markdown)
        XCTAssertTrue(report.markdown.contains("this run recorded none of the charted ones"), report.markdown)
        XCTAssertTrue(report.markdown.contains("| step | loss | seconds |\n|---:|---:|---:|\n| 1 | -0.1000 | 12.000 |"), report.markdown)
        XCTAssertTrue(report.markdown.contains("No evaluation run is linked to this training run"), report.markdown)
        XCTAssertTrue(report.markdown.contains("No checkpoint recorded."), report.markdown)
        XCTAssertTrue(report.markdown.contains("```json\n{}\n```"), report.markdown)

        // Some metrics: only their charts; a reward without its spread has no band.
        try store.recordTrainingStep(run.id, TrainingStepRecord(step: 4, metrics: ["reward_mean": 0.5, "kl": 0.01]), rollouts: [])
        let some = try TrainingReport.build(store: store, catalog: catalog, training: "bare", chartPrefix: "bare", resamples: 100)
        XCTAssertEqual(some.charts.map(\.fileName), ["bare-reward.svg", "bare-kl.svg"])
        XCTAssertFalse(some.charts[0].svg.contains("<polygon"), some.charts[0].svg)
        XCTAssertFalse(some.markdown.contains("Accuracy and format rate"), some.markdown)
        XCTAssertTrue(some.markdown.contains("| 1 | — | — | -0.1000 | 12.000 |"), some.markdown)

        // No step at all.
        _ = try store.ensureTrainingRun(name: "fresh", baseModel: "m", dataPath: "d.jsonl", dataSHA256: "00", configJSON: "{\"a\":[1,2]}", outDir: "o")
        let fresh = try TrainingReport.build(store: store, catalog: catalog, training: "fresh", chartPrefix: "fresh", resamples: 100)
        XCTAssertTrue(fresh.charts.isEmpty)
        XCTAssertTrue(fresh.markdown.contains("| steps done | 0 (no step recorded) |"), fresh.markdown)
        XCTAssertTrue(fresh.markdown.contains("No step recorded yet."), fresh.markdown)
        XCTAssertTrue(fresh.markdown.contains("```json\n{\n  \"a\": [\n    1,\n    2\n  ]\n}\n```"), fresh.markdown)
    }

    func testEvaluationsWithoutABaseOrWithoutScoresAreSaidPlainly() throws {
        let run = try store.ensureTrainingRun(name: "t", baseModel: "m", dataPath: "d", dataSHA256: "00", configJSON: "{}", outDir: "o")
        try store.linkTrainingEvaluation(run.id, step: 10, runID: try evaluationRun("ckpt-10") { _ in true })
        var report = try TrainingReport.build(store: store, catalog: catalog, training: "t", chartPrefix: "t", resamples: 100)
        XCTAssertTrue(report.markdown.contains("No evaluation of the base model (step 0) is linked"), report.markdown)
        XCTAssertTrue(report.markdown.contains("| 10 | `ckpt-10` | ai2d, mmstar |"), report.markdown)
        XCTAssertTrue(report.charts.isEmpty)

        // A base run imported but not scored: the checkpoint is listed as not compared, with what to run.
        let items = directory.appendingPathComponent("mmstar-items.jsonl")
        _ = try Importer.run(.init(suite: try catalog.suite("mmstar"), items: items,
                                   predictions: try file("unscored.jsonl", [["index": 0, "prediction": "A"]]), run: "unscored"), store: store)
        try store.linkTrainingEvaluation(run.id, step: 0, runID: try store.requireRun("unscored").id)
        report = try TrainingReport.build(store: store, catalog: catalog, training: "t", chartPrefix: "t", resamples: 100)
        XCTAssertTrue(report.markdown.contains("- **step 10** (`ckpt-10`): not compared: run 'unscored'"), report.markdown)
        XCTAssertTrue(report.markdown.contains("assay score"), report.markdown)
        XCTAssertTrue(report.markdown.contains("has suites no base run has (not compared): ai2d"), report.markdown)
    }

    func testSuitesOfSeveralBaseRunsAreEachComparedWithTheirOwn() throws {
        let run = try store.ensureTrainingRun(name: "t", baseModel: "m", dataPath: "d", dataSHA256: "00", configJSON: "{}", outDir: "o")
        try store.linkTrainingEvaluation(run.id, step: 0, runID: try evaluationRun("base-ai2d", suites: ["ai2d"]) { $0 < 5 })
        try store.linkTrainingEvaluation(run.id, step: 0, runID: try evaluationRun("base-mmstar", suites: ["mmstar"]) { $0 < 10 })
        try store.linkTrainingEvaluation(run.id, step: 0, runID: try evaluationRun("base-mmstar-again", suites: ["mmstar"]) { _ in false })
        try store.linkTrainingEvaluation(run.id, step: 5, runID: try evaluationRun("ckpt-5") { $0 < 15 })
        let report = try TrainingReport.build(store: store, catalog: catalog, training: "t", chartPrefix: "t", resamples: 200)
        let evaluation = try XCTUnwrap(report.evaluations.first)
        XCTAssertEqual(evaluation.comparisons.map { "\($0.base.name):\($0.suites.map(\.suite))" }, ["base-ai2d:[\"ai2d\"]", "base-mmstar:[\"mmstar\"]"])
        for (suite, base) in [("ai2d", "base-ai2d"), ("mmstar", "base-mmstar")] {
            let expected = try XCTUnwrap(try Comparator.compare(base: base, candidate: "ckpt-5", store: store, catalog: catalog, resamples: 200)
                .suites.first { $0.suite == suite })
            let got = try XCTUnwrap(evaluation.suite(suite))
            XCTAssertEqual(got.base, base)
            XCTAssertEqual(got.comparison.delta, expected.delta)
            XCTAssertEqual(got.comparison.ci95, expected.ci95)
        }
        XCTAssertEqual(evaluation.suite("ai2d")?.comparison.delta ?? 0, 50, accuracy: 1e-9)
        XCTAssertTrue(report.markdown.contains("Suites in more than one base run: mmstar (in `base-mmstar` and `base-mmstar-again`; `base-mmstar` is used)."),
                      report.markdown)
    }

    func testAnUnknownTrainingRunNamesTheKnownOnes() throws {
        XCTAssertThrowsError(try TrainingReport.build(store: store, catalog: catalog, training: "nope", chartPrefix: "x")) {
            XCTAssertEqual("\($0)", "no training run named 'nope' in \(store.path) (it has no training runs)")
        }
        for name in ["grpo-a", "grpo-b"] {
            _ = try store.ensureTrainingRun(name: name, baseModel: "m", dataPath: "d", dataSHA256: "00", configJSON: "{}", outDir: "o")
        }
        XCTAssertThrowsError(try TrainingReport.build(store: store, catalog: catalog, training: "grpo-c", chartPrefix: "x")) {
            XCTAssertEqual("\($0)", "no training run named 'grpo-c' in \(store.path); training runs: grpo-a, grpo-b")
        }
    }

    func testTheStepTableKeepsAtMost25RowsWithTheFirstAndLast() {
        for count in [1, 24, 25, 26, 30, 47, 48, 49, 100, 1001] {
            let steps = (1...count).map { TrainingStepRecord(step: $0, metrics: [:]) }
            let (rows, every) = TrainingReport.tableSteps(steps)
            XCTAssertLessThanOrEqual(rows.count, 25, "\(count) steps")
            XCTAssertEqual(rows.first?.step, 1, "\(count) steps")
            XCTAssertEqual(rows.last?.step, count, "\(count) steps")
            XCTAssertEqual(Set(rows.map(\.step)).count, rows.count, "\(count) steps")
            if count <= 25 { XCTAssertEqual(rows.count, count) } else { XCTAssertGreaterThan(rows.count, 12, "\(count) steps, every \(every)") }
        }
    }

    func testWrittenReportPutsTheChartsBesideTheMarkdown() throws {
        _ = try fullTrainingRun()
        let report = try TrainingReport.build(store: store, catalog: catalog, training: "grpo-arith", chartPrefix: "g", resamples: 100)
        let url = directory.appendingPathComponent("out/g.md")
        try report.write(to: url)
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), report.markdown)
        for chart in report.charts {
            XCTAssertEqual(try String(contentsOf: directory.appendingPathComponent("out/\(chart.fileName)"), encoding: .utf8), chart.svg)
        }
    }

    func testPrettyJSONKeepsValuesAsStored() {
        XCTAssertEqual(TrainingReport.prettyJSON(#"{"a":{},"b":[{"c":1e-06}],"d":"x,y:{z}"}"#),
                       "{\n  \"a\": {},\n  \"b\": [\n    {\n      \"c\": 1e-06\n    }\n  ],\n  \"d\": \"x,y:{z}\"\n}")
        XCTAssertNil(TrainingReport.prettyJSON("{not json"))
    }
}
