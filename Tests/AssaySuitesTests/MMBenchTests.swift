import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

final class MMBenchTests: XCTestCase {
    typealias Row = [String: Any]

    static var question: Row { [
        "index": 241, "question": "Which of the following could Gordon's test show?",
        "hint": "People can use the engineering-design process to develop solutions to problems.",
        "A": "if the spacecraft was damaged when using a parachute with a 1 m vent going 200 km per hour",
        "B": "how steady a parachute with a 1 m vent was at 200 km per hour",
        "C": "whether a parachute with a 1 m vent would swing too much at 400 km per hour",
        "answer": "B", "category": "identity_reasoning", "l2-category": "attribute_reasoning",
    ] }

    static func row(_ index: Int, answer: String, options: [String], category: String = "image_scene") -> Row {
        var row: Row = ["index": index, "question": "Question \(index)?", "answer": answer, "category": category]
        for (label, text) in zip(["A", "B", "C", "D"], options) { row[label] = text }
        return row
    }

    func testExpandMakesEveryCircularShift() throws {
        let suite = try SuiteHarness.suite("mmbench")
        let items = try SuiteHarness.items(suite, rows: [Self.row(7, answer: "C", options: ["cat", "dog", "fox", "owl"])], test: self)
        XCTAssertEqual(items.map(\.id), ["7", "7@r1", "7@r2", "7@r3"])
        XCTAssertEqual(items.map { $0.options.map(\.text) }, [
            ["cat", "dog", "fox", "owl"], ["dog", "fox", "owl", "cat"], ["fox", "owl", "cat", "dog"], ["owl", "cat", "dog", "fox"],
        ])
        // The gold follows its text: "fox" is C, B, A, D.
        XCTAssertEqual(items.map(\.answer), ["C", "B", "A", "D"])
        for item in items {
            XCTAssertEqual(item.options.first { $0.label == item.answer }?.text, "fox")
            XCTAssertEqual(item.meta(MMBenchScorer.groupKey), "7")
        }
    }

    func testAQuestionCountsOnlyWhenEveryPassIsRight() throws {
        let suite = try SuiteHarness.suite("mmbench")
        let rows = [
            Self.row(1, answer: "A", options: ["red", "green", "blue"], category: "color"),
            Self.row(2, answer: "B", options: ["one", "two"], category: "count"),
        ]
        let items = try SuiteHarness.items(suite, rows: rows, test: self)
        XCTAssertEqual(items.count, 5)
        // Question 1 answered by its text every time (right); question 2 always "A" (right once).
        let results = SuiteHarness.scored(suite, items) { item in
            item.meta(MMBenchScorer.groupKey) == "1" ? "The answer is red." : "A"
        }
        let metrics = suite.aggregate(results)
        XCTAssertEqual(metrics.score, 50)
        XCTAssertEqual(metrics.metrics["accuracy"], 50)
        XCTAssertEqual(metrics.metrics["vanilla_accuracy"], 80)
        XCTAssertEqual(metrics.metrics["category/color"], 100)
        XCTAssertEqual(metrics.metrics["category/count"], 0)
        // The bootstrap units are the two original questions.
        let units = suite.bootstrapUnits(results)
        XCTAssertEqual(units.map(\.id).sorted(), ["1", "2"])
        XCTAssertEqual(units.map(\.value).sorted(), [0, 1])
        // Always answering the gold letter gets every pass right.
        XCTAssertEqual(SuiteHarness.metrics(suite, items) { $0.answer }.score, 100)
    }

    func testQuestionWithAMissingPassIsLeftOutNotCountedWrong() throws {
        let suite = try SuiteHarness.suite("mmbench")
        let items = try SuiteHarness.items(suite, rows: [
            Self.row(1, answer: "A", options: ["red", "green"]), Self.row(2, answer: "B", options: ["one", "two"]),
        ], test: self)
        // The second pass of question 2 had a backend error: no response, no score.
        let answered = items.filter { $0.id != "2@r1" }
        let metrics = SuiteHarness.metrics(suite, answered) { $0.answer }
        XCTAssertEqual(metrics.score, 100)
        XCTAssertEqual(metrics.metrics["incomplete_questions_count"], 1)
        XCTAssertEqual(suite.bootstrapUnits(SuiteHarness.scored(suite, answered) { $0.answer }).map(\.id), ["1"])
    }

    func testVLMEvalKitShiftedCopiesAreDroppedAndMadeAgain() throws {
        let suite = try SuiteHarness.suite("mmbench")
        let rows = [
            Self.row(5, answer: "A", options: ["yes", "no"]),
            Self.row(1_000_005, answer: "B", options: ["no", "yes"]),
            Self.row(6, answer: "B", options: ["up", "down"]).merging(["g_index": 6]) { a, _ in a },
            Self.row(1_000_006, answer: "A", options: ["down", "up"]).merging(["g_index": 6]) { a, _ in a },
        ]
        let items = try SuiteHarness.items(suite, rows: rows, test: self)
        XCTAssertEqual(items.map(\.id), ["5", "5@r1", "6", "6@r1"])
        XCTAssertEqual(items[1].options.map(\.text), ["no", "yes"])
        XCTAssertEqual(items[1].answer, "B")
    }

    /// Answers in the styles MMBench's paper discusses (bare letters, letters with text, option
    /// text only, refusals) for its published example question.
    func testExtractionOfTypicalAnswers() throws {
        let suite = try SuiteHarness.suite("mmbench")
        let item = try XCTUnwrap(try SuiteHarness.items(suite, rows: [Self.question], test: self).first)
        let cases: [(String, String?)] = [
            ("B", "B"),
            ("B.", "B"),
            ("(B)", "B"),
            ("B. how steady a parachute with a 1 m vent was at 200 km per hour", "B"),
            ("The answer is B.", "B"),
            ("Answer: B", "B"),
            ("how steady a parachute with a 1 m vent was at 200 km per hour", "B"),
            ("Gordon's test could show how steady a parachute with a 1 m vent was at 200 km per hour.", "B"),
            ("<think>The test was at 200 km per hour, so not C.</think>\n**B**", "B"),
            ("\\boxed{B}", "B"),
            ("Either (A) or (C).", nil),
            ("I cannot answer this question.", nil),
            ("", nil),
        ]
        for (response, expected) in cases {
            XCTAssertExtraction(suite.extract(response, item: item), expected, response)
        }
    }

    func testAnswerThatIsNotAnOptionIsADatasetErrorNamingFileAndLine() throws {
        let suite = try SuiteHarness.suite("mmbench")
        let rows = [Self.row(1, answer: "A", options: ["red", "green"]), Self.row(2, answer: "E", options: ["one", "two"])]
        let error = try XCTUnwrap(try SuiteHarness.datasetError(suite, rows: rows, test: self))
        XCTAssertEqual(error.line, 2)
        XCTAssertTrue(error.description.contains("bad.jsonl:2"), error.description)
    }

    func testRowWithoutOptionColumnsIsADatasetError() throws {
        let suite = try SuiteHarness.suite("mmbench")
        let rows: [Row] = [["index": 1, "question": "What?", "answer": "A", "category": "x", "A": "only"]]
        let error = try XCTUnwrap(try SuiteHarness.datasetError(suite, rows: rows, test: self))
        XCTAssertEqual(error.line, 1)
        XCTAssertTrue(error.message.contains("'B'"), error.description)
    }

    func testPromptSnapshot() throws {
        let suite = try SuiteHarness.suite("mmbench")
        var row = Self.question
        row["image"] = SuiteHarness.image
        let items = try SuiteHarness.items(suite, rows: [row], test: self)
        XCTAssertEqual(items.count, 3)
        let text = items.map { "== \($0.id) (gold \($0.answer))\n" + SuiteHarness.transcript(suite.render($0)) }.joined()
        assertSnapshot(text, named: "mmbench-prompt")
    }
}
