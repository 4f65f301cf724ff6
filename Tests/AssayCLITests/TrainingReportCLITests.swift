import AssayStore
import AssayTestSupport
import Foundation
import XCTest

/// `assay report --training NAME`: where the files go, the deltas `assay compare` gives, and the
/// error for a name the database does not hold.
extension CLITests {
    /// A database with evaluation runs `base` and `ckpt-4` over four MMStar items (imported and
    /// scored through the CLI) and training run `grpo` with six steps, a checkpoint at 4 and
    /// both evaluations linked.
    func trainingDatabase() throws -> String {
        let db = directory.appendingPathComponent("training.sqlite").path
        let items = directory.appendingPathComponent("items.jsonl")
        try Fixtures.writeJSONL((0..<4).map {
            ["index": $0, "question": "q\($0)", "answer": ["A", "B", "C", "D"][$0], "category": "c", "l2-category": "g",
             "A": "one", "B": "two", "C": "three", "D": "four"]
        }, to: items)
        for (run, answers) in [("base", ["A", "B", "A", "A"]), ("ckpt-4", ["A", "B", "C", "A"])] {
            let predictions = directory.appendingPathComponent("\(run).jsonl")
            try Fixtures.writeJSONL(answers.enumerated().map { ["index": $0.offset, "prediction": $0.element] }, to: predictions)
            try assay(["import", "--db", db, "--suite", "mmstar", "--data", items.path, "--predictions", predictions.path, "--run", run])
            try assay(["score", "--db", db, "--run", run])
        }
        let store = try Store(path: db)
        let training = try store.ensureTrainingRun(name: "grpo", baseModel: "m", dataPath: "d.jsonl", dataSHA256: "00", configJSON: "{\"lr\":1e-06}",
                                                   outDir: "o")
        for step in 1...6 {
            try store.recordTrainingStep(training.id, .init(step: step, metrics: ["reward_mean": 0.1 * Double(step), "kl": 0.001 * Double(step)]),
                                         rollouts: [])
        }
        try store.recordTrainingCheckpoint(training.id, step: 4, path: "o/step-4", fingerprint: "0123")
        try store.linkTrainingEvaluation(training.id, step: 0, runID: try store.requireRun("base").id)
        try store.linkTrainingEvaluation(training.id, step: 4, runID: try store.requireRun("ckpt-4").id)
        return db
    }

    func testReportTrainingWritesTheMarkdownAndChartsWithCompareDeltas() throws {
        let db = try trainingDatabase()
        // --out a folder: <NAME>-training.md in it, the charts beside it.
        let folder = directory.appendingPathComponent("reports")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let (out, _) = try assay(["report", "--db", db, "--training", "grpo", "--out", folder.path, "--resamples", "500"])
        let markdown = folder.appendingPathComponent("grpo-training.md")
        let charts = ["reward", "kl", "evaluations"].map { folder.appendingPathComponent("grpo-training-\($0).svg").path }
        XCTAssertEqual(out, "wrote \(markdown.path) and \(charts.joined(separator: ", "))\n")
        for chart in charts { XCTAssertTrue(FileManager.default.fileExists(atPath: chart), chart) }
        let text = try String(contentsOf: markdown, encoding: .utf8)
        XCTAssertTrue(text.contains("![Reward](grpo-training-reward.svg)"), text)

        // The row of checkpoint 4 holds `assay compare`'s numbers with the same bootstrap settings.
        let compare = try json(try assay(["compare", "--db", db, "--base", "base", "--candidate", "ckpt-4", "--json", "--resamples", "500"]).stdout)
        let mmstar = try XCTUnwrap((compare["suites"] as? [String: Any])?["mmstar"] as? [String: Any])
        let delta = try XCTUnwrap(mmstar["delta"] as? Double), ci = try XCTUnwrap(mmstar["ci95"] as? [Double])
        func signed(_ v: Double) -> String { (v >= 0 ? "+" : "") + String(format: "%.2f", v) }
        let row = "| 4 | `ckpt-4` vs `base` | 50.00 | 75.00 | \(signed(delta)) | [\(signed(ci[0])), \(signed(ci[1]))] |"
        XCTAssertEqual(delta, 25, accuracy: 1e-9)
        XCTAssertTrue(text.contains(row), "the report lacks \(row):\n\(text)")

        // --out a file: the charts take its stem.
        let file = directory.appendingPathComponent("elsewhere/t.md")
        try assay(["report", "--db", db, "--training", "grpo", "--out", file.path, "--resamples", "100"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory.appendingPathComponent("elsewhere/t-evaluations.svg").path))

        let (_, unknown) = try assay(["report", "--db", db, "--training", "nope"], expectFailure: true)
        XCTAssertTrue(unknown.contains("no training run named 'nope' in \(db); training runs: grpo"), unknown)
        let (_, both) = try assay(["report", "--db", db, "--training", "grpo", "--runs", "base"], expectFailure: true)
        XCTAssertTrue(both.contains("one of them"), both)
        let (_, withBase) = try assay(["report", "--db", db, "--training", "grpo", "--base", "base"], expectFailure: true)
        XCTAssertTrue(withBase.contains("takes no --base"), withBase)
    }
}
