import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

final class ChartQATests: XCTestCase {
    typealias Row = [String: Any]

    /// Questions in the style of the ChartQA paper's examples, with its two splits.
    static var rows: [Row] { [
        ["index": 0, "question": "What is the value of the highest bar?", "answer": "47", "split": "human"],
        ["index": 1, "question": "Which country has the lowest share?", "answer": "Brazil", "split": "human"],
        ["index": 2, "question": "What percentage of respondents said yes in 2019?", "answer": "0.28", "split": "augmented"],
        ["index": 3, "question": "How many years had a value above 50?", "answer": "['3']", "split": "augmented"],
    ] }

    func testGoldAnswersScore100WithPerSplitNumbers() throws {
        let suite = try SuiteHarness.suite("chartqa")
        let items = try SuiteHarness.items(suite, rows: Self.rows, test: self)
        XCTAssertEqual(items[3].answers, ["3"])
        let metrics = SuiteHarness.metrics(suite, items) { $0.answer }
        XCTAssertEqual(metrics.score, 100)
        XCTAssertEqual(metrics.metrics["split/human"], 100)
        XCTAssertEqual(metrics.metrics["split/augmented"], 100)
        let wrong = SuiteHarness.metrics(suite, items) { _ in "Argentina" }
        XCTAssertEqual(wrong.score, 0)
    }

    /// The Pix2Struct relaxed-correctness rule, case by case.
    func testRelaxedAccuracyRules() {
        let cases: [(target: String, prediction: String, right: Bool)] = [
            ("47", "47", true),
            ("47", "48.5", true),          // 3.2% off
            ("47", "49.4", false),         // 5.1% off
            ("47", "47.0", true),
            ("0.28", "28%", true),         // percent divides by 100
            ("28%", "0.28", true),
            ("1234", "1,234", false),      // no thousands separators, then no string match
            ("0", "0.0", false),           // a zero target needs the same string
            ("0", "0", true),
            ("Brazil", "brazil", true),
            ("Brazil", "Brazil.", false),
            ("-5", "-5.2", true),
            ("2019", "2020", true),        // years are numbers too: 0.05% off
        ]
        for entry in cases {
            XCTAssertEqual(RelaxedAccuracy.isCorrect(target: entry.target, prediction: entry.prediction), entry.right,
                           "\(entry.prediction) vs \(entry.target)")
        }
    }

    func testExtractionOfTypicalAnswers() throws {
        let suite = try SuiteHarness.suite("chartqa")
        let items = try SuiteHarness.items(suite, rows: Self.rows, test: self)
        let cases: [(Int, String, String?, Bool)] = [
            (0, "47", "47", true),
            (0, " 47\n", "47", true),
            (0, "The highest bar is 47.", "The highest bar is 47.", false),
            (0, "<think>The tallest bar reaches 47.</think>47", "47", true),
            (0, "\\boxed{46}", "46", true),
            (1, "Brazil", "Brazil", true),
            (1, "BRAZIL", "BRAZIL", true),
            (2, "28%", "28%", true),
            (2, "0.3", "0.3", false),
            (3, "3", "3", true),
            (3, "three", "three", false),
            (3, "", nil, false),
        ]
        for (index, response, expected, right) in cases {
            let extraction = suite.extract(response, item: items[index])
            XCTAssertExtraction(extraction, expected, response)
            XCTAssertEqual(suite.score(extraction, item: items[index]).value, right ? 1 : 0, response)
        }
    }

    func testMissingAnswerIsADatasetErrorNamingFileAndLine() throws {
        let suite = try SuiteHarness.suite("chartqa")
        let error = try XCTUnwrap(try SuiteHarness.datasetError(suite, rows: [Self.rows[0], ["index": 7, "question": "Why?"]], test: self))
        XCTAssertEqual(error.line, 2)
        XCTAssertTrue(error.message.contains("answer"), error.description)
    }

    func testPromptSnapshot() throws {
        let suite = try SuiteHarness.suite("chartqa")
        let row = Self.rows[0].merging(["image": SuiteHarness.image]) { a, _ in a }
        let item = try XCTUnwrap(try SuiteHarness.items(suite, rows: [row], test: self).first)
        assertSnapshot(SuiteHarness.transcript(suite.render(item)), named: "chartqa-prompt")
    }
}
