import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

final class MMVPTests: XCTestCase {
    typealias Row = [String: Any]

    /// Pairs in the style of the MMVP release: the same question on two images, opposite answers.
    static func rows(firstIndex: Int) -> [Row] {
        let questions = [
            ("Are the butterfly's feet visible?", "Yes", "No"),
            ("Is the dog facing left or right from the camera's perspective?", "Left", "Right"),
            ("Do you see any window in this image?", "Yes", "No"),
        ]
        var rows: [Row] = []
        for (offset, (question, a, b)) in questions.enumerated() {
            rows.append(["index": firstIndex + 2 * offset, "question": question, "A": a, "B": b, "answer": "A"])
            rows.append(["index": firstIndex + 2 * offset + 1, "question": question, "A": a, "B": b, "answer": "B"])
        }
        return rows
    }

    func testPairCountsOnlyWhenBothQuestionsAreRight() throws {
        let suite = try SuiteHarness.suite("mmvp")
        let items = try SuiteHarness.items(suite, rows: Self.rows(firstIndex: 1), test: self)
        // Pair 1 both right, pair 2 one right (always "A"), pair 3 both wrong.
        let answers = ["1": "A", "2": "B", "3": "A", "4": "A", "5": "B", "6": "A"]
        let results = SuiteHarness.scored(suite, items) { answers[$0.id] ?? "" }
        let metrics = suite.aggregate(results)
        XCTAssertEqual(metrics.score, 100.0 / 3, accuracy: 1e-9)
        XCTAssertEqual(metrics.metrics["pair_accuracy"] ?? 0, 100.0 / 3, accuracy: 1e-9)
        XCTAssertEqual(metrics.metrics["accuracy"] ?? 0, 50, accuracy: 1e-9)
        XCTAssertEqual(suite.bootstrapUnits(results).count, 3)
        // Always answering "A" gets every question of one side right and no pair.
        XCTAssertEqual(SuiteHarness.metrics(suite, items) { _ in "(a) Yes" }.score, 0)
        XCTAssertEqual(SuiteHarness.metrics(suite, items) { $0.answer }.score, 100)
    }

    func testPairsFollowIdenticalQuestionsWhateverTheFirstIndex() throws {
        let suite = try SuiteHarness.suite("mmvp")
        for first in [0, 1] {
            let items = try SuiteHarness.items(suite, rows: Self.rows(firstIndex: first), test: self)
            // The first row of the dataset has no response: its pair is incomplete, and the
            // other pairs must still line up.
            let results = SuiteHarness.scored(suite, Array(items.dropFirst())) { $0.answer }
            let pairs = MMVPScorer.pairs(results).filter { $0.members.count == 2 }
            XCTAssertEqual(pairs.count, 2, "first index \(first)")
            for pair in pairs { XCTAssertEqual(pair.members[0].item.question, pair.members[1].item.question) }
            XCTAssertEqual(suite.aggregate(results).metrics["incomplete_pairs_count"], 1)
        }
    }

    /// Answer styles for MMVP's published example ("Is the dog facing left or right from the
    /// camera's perspective? (a) Left (b) Right").
    func testExtractionOfTypicalAnswers() throws {
        let suite = try SuiteHarness.suite("mmvp")
        let item = try XCTUnwrap(try SuiteHarness.items(suite, rows: Self.rows(firstIndex: 1), test: self).dropFirst(2).first)
        let cases: [(String, String?)] = [
            ("A", "A"),
            ("B", "B"),
            ("(a) Left", "A"),
            ("b", "B"),
            ("Right", "B"),
            ("The dog is facing left.", "A"),
            ("From the camera's perspective, the dog is facing right, so the answer is B.", "B"),
            ("Option B", "B"),
            ("<think>Its nose points to the left of the frame.</think>A", "A"),
            ("\\boxed{B}", "B"),
            ("The dog is facing the camera.", nil),
            ("", nil),
        ]
        for (response, expected) in cases {
            XCTAssertExtraction(suite.extract(response, item: item), expected, response)
        }
    }

    func testMissingOptionColumnIsADatasetErrorNamingFileAndLine() throws {
        let suite = try SuiteHarness.suite("mmvp")
        let header: Row = ["index": 1, "question": "Q?", "A": "Yes", "B": "No", "answer": "A"]
        let error = try XCTUnwrap(try SuiteHarness.datasetError(suite, rows: [header, ["index": 2, "question": "Q?", "A": "Yes", "answer": "B"]], test: self))
        XCTAssertEqual(error.line, 2)
        XCTAssertTrue(error.message.contains("'B'"), error.description)
    }

    func testPromptSnapshot() throws {
        let suite = try SuiteHarness.suite("mmvp")
        var row = Self.rows(firstIndex: 1)[2]
        row["image"] = SuiteHarness.image
        let item = try XCTUnwrap(try SuiteHarness.items(suite, rows: [row], test: self).first)
        assertSnapshot(SuiteHarness.transcript(suite.render(item)), named: "mmvp-prompt")
    }
}
