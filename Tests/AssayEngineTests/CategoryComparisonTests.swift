import AssayCore
import AssayEngine
@testable import AssayReport
import AssayStore
import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

/// Per-category (BLINK subtask) deltas of a comparison, in the library and in the Markdown.
extension ImportScoreCompareTests {
    /// The per-run `category/<name>` metrics of a run's BLINK result.
    func categoryMetrics(_ run: String) throws -> [String: Double] {
        let result = try XCTUnwrap(try store.suiteResults(runID: try store.requireRun(run).id).first { $0.suiteID == "blink" })
        var out: [String: Double] = [:]
        for (name, value) in result.metrics.metrics where name.hasPrefix("category/") {
            out[String(name.dropFirst("category/".count))] = value
        }
        return out
    }

    func testBLINKComparisonHasFourteenSubtaskDeltasEqualToTheRunsSubtaskScores() throws {
        try importBLINK("GPT4o", run: "gpt4o")
        try importBLINK("llava_v1.5_7b", run: "llava7b")
        let gpt = try categoryMetrics("gpt4o")
        let llava = try categoryMetrics("llava7b")
        XCTAssertEqual(gpt.count, 14)

        let comparison = try Comparator.compare(base: "llava7b", candidate: "gpt4o", store: store, catalog: catalog, resamples: 1000)
        let blink = try XCTUnwrap(comparison.suites.first { $0.suite == "blink" })
        XCTAssertEqual(blink.categories.count, 14)
        XCTAssertEqual(Set(blink.categories.map(\.category)), Set(gpt.keys))
        XCTAssertEqual(blink.categories.reduce(0) { $0 + $1.nPaired }, 1901)
        for c in blink.categories {
            let expected = try XCTUnwrap(gpt[c.category]) - XCTUnwrap(llava[c.category])
            XCTAssertEqual(c.delta, expected, accuracy: 1e-9, c.category)
            XCTAssertEqual(c.base, llava[c.category] ?? -1, accuracy: 1e-9, c.category)
            XCTAssertEqual(c.candidate, gpt[c.category] ?? -1, accuracy: 1e-9, c.category)
            XCTAssertTrue(c.ci95.contains(c.delta), "\(c.category): \(c.ci95) does not hold \(c.delta)")
            XCTAssertNotNil(c.pValue, "BLINK scores are binary")
        }
        // BLINK's headline is the macro mean of its subtasks: the mean of the subtask deltas.
        XCTAssertEqual(blink.categories.reduce(0) { $0 + $1.delta } / 14, blink.delta, accuracy: 1e-9)

        let report = try MarkdownReport.build(store: store, catalog: catalog, base: "llava7b", runs: ["gpt4o"],
                                              chartFileName: "r.svg", resamples: 500)
        XCTAssertTrue(report.markdown.contains("#### blink by category (Δ vs llava7b)"), report.markdown)
        var rows = 0
        for line in report.markdown.split(separator: "\n") where line.hasPrefix("| ") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let category = cells.first, let g = gpt[category], let l = llava[category] else { continue }
            // | category | base | candidate | Δ | CI | p | n |
            XCTAssertEqual(Double(cells[1]) ?? .nan, l, accuracy: 0.005 + 1e-9, category)
            XCTAssertEqual(Double(cells[2]) ?? .nan, g, accuracy: 0.005 + 1e-9, category)
            XCTAssertEqual(Double(cells[3]) ?? .nan, g - l, accuracy: 0.005 + 1e-9, category)
            XCTAssertTrue(cells[3].hasPrefix(g >= l ? "+" : "-"), line.description)
            rows += 1
        }
        XCTAssertEqual(rows, 14, report.markdown)
        // The chart has a row per subtask under BLINK's, labelled with the subtask's delta.
        XCTAssertEqual(report.svg.components(separatedBy: ">blink › ").count - 1, 14, report.svg)
        for c in blink.categories {
            XCTAssertTrue(report.svg.contains("gpt4o blink › \(c.category): \(c.delta >= 0 ? "+" : "")\(String(format: "%.2f", c.delta))</title>"),
                          "the chart lacks \(c.category)'s bar")
        }
    }

    func testCategoryComparisonUsesTheSuitesUnitsAndSkipsUncategorisedSuites() throws {
        let suite = try catalog.suite("mmstar")
        func scored(_ id: String, _ category: String?, _ right: Bool) -> ScoredItem {
            ScoredItem(item: Item(id: id, answers: ["A"], category: category), extraction: .answer(right ? "A" : "B", method: "letter"),
                       score: .binary(right))
        }
        let base = [scored("1", "math", false), scored("2", "math", true), scored("3", "art", true), scored("4", "art", true)]
        let candidate = [scored("1", "math", true), scored("2", "math", true), scored("3", "art", false), scored("5", "art", true)]
        let categories = Comparator.compareCategories(suite, base: base, candidate: candidate, resamples: 200)
        XCTAssertEqual(categories.map(\.category), ["art", "math"])
        // art: only item 3 is answered by both (4 and 5 are unpaired).
        XCTAssertEqual(categories[0].nPaired, 1)
        XCTAssertEqual(categories[0].delta, -100, accuracy: 1e-9)
        XCTAssertEqual(categories[1].nPaired, 2)
        XCTAssertEqual(categories[1].delta, 50, accuracy: 1e-9)
        XCTAssertEqual(categories[1].pValue, 1)
        let none = [scored("1", nil, true)]
        XCTAssertTrue(Comparator.compareCategories(suite, base: none, candidate: none).isEmpty)
    }

    func testImportedRunsRecordAndReportGenerationSettingsAsUnknown() throws {
        let items = try mmstarItems()
        _ = try Importer.run(.init(suite: try catalog.suite("mmstar"), items: items,
                                   predictions: try file("u.jsonl", "{\"index\": 0, \"prediction\": \"A\"}\n"), run: "u"), store: store)
        _ = try ScoringPass.score(run: "u", store: store, catalog: catalog)
        let run = try store.requireRun("u")
        XCTAssertEqual(run.generationParams, Importer.unknownGenerationParams)
        XCTAssertFalse(run.generationParams.contains("maxTokens"))
        XCTAssertTrue(run.noteValues["generation"]?.hasPrefix("unknown") ?? false, run.notes)
        // A run imported before this change recorded Assay's defaults; it reads as unknown too.
        _ = try store.importResponses(
            run: NewRun(name: "old", model: "old", backend: "replay", backendIdentity: "{}", generationParams: GenerationParams().canonicalJSON),
            suite: SuiteRegistration(suiteID: "mmstar", suiteVersion: "mmstar@1", promptVersion: "1", datasetSHA256: "x", datasetPath: "p", itemCount: 0),
            items: [], responses: [])
        let report = try MarkdownReport.build(store: store, catalog: catalog, base: nil, runs: ["u", "old"], chartFileName: "u.svg", resamples: 50)
        XCTAssertFalse(report.markdown.contains("maxTokens"), report.markdown)
        XCTAssertEqual(report.markdown.components(separatedBy: "| unknown (imported predictions) |").count - 1, 2, report.markdown)
        XCTAssertTrue(report.markdown.contains("generation: unknown"), report.markdown)
        // Coverage: 1 of the 3 items in the file (the suite expects 1500), 2 without a prediction.
        XCTAssertTrue(report.markdown.contains("| 1 of 1500 (3 items in the dataset file; 2 missing (no usable response)) |"), report.markdown)
    }
}
