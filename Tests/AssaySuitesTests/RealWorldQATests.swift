import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

final class RealWorldQATests: XCTestCase {
    typealias Row = [String: Any]

    /// The examples xAI published with the benchmark (Grok-1.5V announcement).
    static var rows: [Row] { [
        ["index": 0, "question": "Which object is larger the pizza cutter or the scissors?",
         "A": "The pizza cutter is larger.", "B": "The scissors is larger.", "C": "They are about the same size.", "answer": "A"],
        ["index": 1, "question": "Where can we go from the current lane?",
         "A": "Turn left.", "B": "Go straight.", "C": "Turn left and go straight.", "D": "Turn right.", "answer": "C"],
        ["index": 2, "question": "Given this front camera view from our sedan, do we have enough space to drive around the gray car in front of us?",
         "A": "Yes.", "B": "No.", "answer": "A"],
        ["index": 3, "question": "How many traffic lights are visible? Please answer directly with a single word or number.", "answer": "3"],
    ] }

    func testGoldAnswersScore100AndOthersDoNot() throws {
        let suite = try SuiteHarness.suite("realworldqa")
        let items = try SuiteHarness.items(suite, rows: Self.rows, test: self)
        XCTAssertEqual(SuiteHarness.metrics(suite, items) { $0.answer }.score, 100)
        XCTAssertEqual(SuiteHarness.metrics(suite, items) { _ in "B" }.score, 0)
    }

    func testExtractionOfTypicalAnswers() throws {
        let suite = try SuiteHarness.suite("realworldqa")
        let items = try SuiteHarness.items(suite, rows: Self.rows, test: self)
        let cases: [(Int, String, String?, Bool)] = [
            (0, "A", "A", true),
            (0, "A. The pizza cutter is larger.", "A", true),
            (0, "The pizza cutter is larger.", "A", true),
            (1, "C", "C", true),
            (1, "The correct answer is D.", "D", false),
            (1, "Turn left and go straight.", "C", true),
            (2, "Yes.", "A", true),
            (2, "<think>There is a free lane on the left.</think>A", "A", true),
            (3, "3", "3", true),
            (3, "Three.", "Three", false),
            (3, "3.0", "3.0", true),
            (3, "\\boxed{3}", "3", true),
            (3, "", nil, false),
            (2, "It depends on the traffic.", nil, false),
        ]
        for (index, response, expected, right) in cases {
            let item = items[index]
            let extraction = suite.extract(response, item: item)
            XCTAssertExtraction(extraction, expected, response)
            XCTAssertEqual(suite.score(extraction, item: item).value, right ? 1 : 0, response)
        }
    }

    func testMissingAnswerColumnIsADatasetErrorNamingFileAndLine() throws {
        let suite = try SuiteHarness.suite("realworldqa")
        let rows: [Row] = [Self.rows[0], ["index": 9, "question": "Is it raining?", "A": "Yes", "B": "No"]]
        let error = try XCTUnwrap(try SuiteHarness.datasetError(suite, rows: rows, test: self))
        XCTAssertEqual(error.line, 2)
        XCTAssertTrue(error.message.contains("answer"), error.description)
    }

    func testPromptSnapshot() throws {
        let suite = try SuiteHarness.suite("realworldqa")
        let rows = Self.rows.map { $0.merging(["image": SuiteHarness.image]) { a, _ in a } }
        let items = try SuiteHarness.items(suite, rows: [rows[1], rows[3]], test: self)
        assertSnapshot(items.map { SuiteHarness.transcript(suite.render($0)) }.joined(separator: "---\n"), named: "realworldqa-prompt")
    }
}
