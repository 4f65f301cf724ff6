import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

final class AI2DTests: XCTestCase {
    typealias Row = [String: Any]

    /// Questions in the style of AI2D's published diagram examples (food webs, life cycles).
    static var rows: [Row] { [
        ["index": 0, "question": "Which of these organisms is a producer in this food web?",
         "A": "grasshopper", "B": "grass", "C": "frog", "D": "hawk", "answer": "B", "category": "foodChainsWebs"],
        ["index": 1, "question": "What stage comes after the larva in this life cycle?",
         "A": "egg", "B": "adult", "C": "pupa", "D": "nymph", "answer": "C", "category": "lifeCycles"],
    ] }

    func testGoldLettersScore100AndOneWrongAnswerHalvesIt() throws {
        let suite = try SuiteHarness.suite("ai2d")
        XCTAssertEqual(suite.manifest.scorer, "multiple_choice")
        let items = try SuiteHarness.items(suite, rows: Self.rows, test: self)
        XCTAssertEqual(SuiteHarness.metrics(suite, items) { $0.answer }.score, 100)
        let metrics = SuiteHarness.metrics(suite, items) { _ in "B" }
        XCTAssertEqual(metrics.score, 50)
        XCTAssertEqual(metrics.metrics["category/foodChainsWebs"], 100)
        XCTAssertEqual(metrics.metrics["category/lifeCycles"], 0)
    }

    func testExtractionOfTypicalAnswers() throws {
        let suite = try SuiteHarness.suite("ai2d")
        let items = try SuiteHarness.items(suite, rows: Self.rows, test: self)
        let cases: [(Int, String, String?)] = [
            (0, "B", "B"),
            (0, "B. grass", "B"),
            (0, "grass", "B"),
            (0, "The producer in this food web is grass, which makes its own food.", "B"),
            (0, "Answer: (B)", "B"),
            (1, "C", "C"),
            (1, "The pupa stage comes after the larva.", "C"),
            (1, "<think>Egg, larva, pupa, adult.</think>\n\\boxed{C}", "C"),
            (1, "(C) pupa", "C"),
            (1, "adult or pupa", nil),
            (1, "", nil),
            (0, "None of these.", nil),
        ]
        for (index, response, expected) in cases {
            XCTAssertExtraction(suite.extract(response, item: items[index]), expected, response)
        }
    }

    func testMissingOptionsIsADatasetErrorNamingFileAndLine() throws {
        let suite = try SuiteHarness.suite("ai2d")
        let rows: [Row] = [Self.rows[0], ["index": 5, "question": "Which is a consumer?", "answer": "A"]]
        let error = try XCTUnwrap(try SuiteHarness.datasetError(suite, rows: rows, test: self))
        XCTAssertEqual(error.line, 2)
        XCTAssertTrue(error.description.contains("bad.jsonl:2"), error.description)
    }

    func testPromptSnapshot() throws {
        let suite = try SuiteHarness.suite("ai2d")
        let row = Self.rows[0].merging(["image": SuiteHarness.image]) { a, _ in a }
        let item = try XCTUnwrap(try SuiteHarness.items(suite, rows: [row], test: self).first)
        assertSnapshot(SuiteHarness.transcript(suite.render(item)), named: "ai2d-prompt")
    }
}
