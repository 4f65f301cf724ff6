import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

/// DocVQA and InfographicVQA: the two ANLS suites.
final class DocumentVQATests: XCTestCase {
    typealias Row = [String: Any]

    static var rows: [Row] { [
        ["index": 0, "question": "What is the date mentioned in this letter?", "answer": "['1/8/93']"],
        ["index": 1, "question": "What is the name of the company?", "answer": "['ITC Limited', 'ITC Ltd.']"],
        ["index": 2, "question": "Which day of the week is the meeting?", "answer": "Tuesday"],
    ] }

    /// Expected values computed with the official RRC script's `levenshtein_distance` and ANLS
    /// loop (identical to VLMEvalKit's `anls_compute` + `hit_calculate`).
    func testANLSMatchesTheOfficialScript() {
        let cases: [(answers: [String], prediction: String, score: Double)] = [
            (["1/8/93"], "1/8/93", 1),
            (["ITC Limited"], "ITC Ltd", 0.6363636363636364),
            (["Tuesday"], "Tues", 0.5714285714285714),
            (["5"], "6", 0),
            (["University of California", "UC"], "Univ. of California", 0.75),
            (["0.28"], "0.28%", 0.8),
            (["Dr. John Smith"], "john smith", 0.7142857142857143),
            // Whitespace is collapsed for the distance but counted in the length (script behaviour).
            (["abcd"], "abce   ", 0.8571428571428572),
            (["ITC  LIMITED"], "itc limited", 1),
            ([], "anything", 0),
        ]
        for entry in cases {
            XCTAssertEqual(ANLS.score(prediction: entry.prediction, answers: entry.answers), entry.score, accuracy: 1e-12,
                           "\(entry.prediction) vs \(entry.answers)")
        }
    }

    func testGoldAnswersScore100OnBothSuites() throws {
        for id in ["docvqa", "infovqa"] {
            let suite = try SuiteHarness.suite(id)
            XCTAssertEqual(suite.manifest.scorer, "anls")
            let items = try SuiteHarness.items(suite, rows: Self.rows, test: self)
            XCTAssertEqual(items[1].answers, ["ITC Limited", "ITC Ltd."])
            let metrics = SuiteHarness.metrics(suite, items) { $0.answer }
            XCTAssertEqual(metrics.score, 100, id)
            XCTAssertEqual(metrics.metrics["exact_rate"], 100, id)
            let partial = SuiteHarness.metrics(suite, items) { ["0": "1/8/93", "1": "ITC Ltd", "2": "Friday"][$0.id] ?? "" }
            // 1, then max(0.636…, 1 − 1/8) = 0.875 against "ITC Ltd.", then 0.
            XCTAssertEqual(partial.score, (1 + 0.875 + 0) / 3 * 100, accuracy: 1e-9, id)
        }
    }

    func testExtractionOfTypicalAnswers() throws {
        let suite = try SuiteHarness.suite("docvqa")
        let items = try SuiteHarness.items(suite, rows: Self.rows, test: self)
        let cases: [(Int, String, String?, Double)] = [
            (0, "1/8/93", "1/8/93", 1),
            (0, "  1/8/93 ", "1/8/93", 1),
            (0, "January 8, 1993", "January 8, 1993", 0),
            (0, "<think>The letter is dated at the top.</think>1/8/93", "1/8/93", 1),
            (0, "\\boxed{1/8/93}", "1/8/93", 1),
            (1, "ITC Limited", "ITC Limited", 1),
            (1, "itc limited", "itc limited", 1),
            (1, "ITC Ltd", "ITC Ltd", 0.875),
            (1, "ITC", "ITC", 0),
            (2, "Tuesday", "Tuesday", 1),
            (2, "TUESDAY.", "TUESDAY.", 0.875),
            (2, "", nil, 0),
        ]
        for (index, response, expected, score) in cases {
            let extraction = suite.extract(response, item: items[index])
            XCTAssertExtraction(extraction, expected, response)
            XCTAssertEqual(suite.score(extraction, item: items[index]).value, score, accuracy: 1e-12, response)
        }
    }

    func testUnparsedAnswerScoresZeroAndIsCounted() throws {
        let suite = try SuiteHarness.suite("infovqa")
        let items = try SuiteHarness.items(suite, rows: Self.rows, test: self)
        let metrics = SuiteHarness.metrics(suite, items) { $0.id == "0" ? "<think>still reading" : $0.answer }
        XCTAssertEqual(metrics.unparsed, 1)
        XCTAssertEqual(metrics.score, 200.0 / 3, accuracy: 1e-9)
    }

    func testMissingQuestionColumnIsADatasetErrorNamingFileAndLine() throws {
        for id in ["docvqa", "infovqa"] {
            let suite = try SuiteHarness.suite(id)
            let error = try XCTUnwrap(try SuiteHarness.datasetError(suite, rows: [Self.rows[0], ["index": 3, "answer": "['x']"]], test: self))
            XCTAssertEqual(error.line, 2, id)
            XCTAssertTrue(error.message.contains("question"), error.description)
        }
    }

    func testPromptSnapshots() throws {
        for id in ["docvqa", "infovqa"] {
            let suite = try SuiteHarness.suite(id)
            let row = Self.rows[0].merging(["image": SuiteHarness.image]) { a, _ in a }
            let item = try XCTUnwrap(try SuiteHarness.items(suite, rows: [row], test: self).first)
            assertSnapshot(SuiteHarness.transcript(suite.render(item)), named: "\(id)-prompt")
        }
    }
}
