import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

final class OCRBenchTests: XCTestCase {
    /// The official OCRBench.json as rows with VLMEvalKit's columns: position as `index` (the
    /// official `id` repeats across source datasets), `category` = the type.
    func fixtureRows() throws -> [[String: Any]] {
        let url = try Fixtures.require("benchmarks/ocrbench/OCRBench.json")
        let records = try XCTUnwrap(try Fixtures.readJSON(url) as? [[String: Any]])
        return records.enumerated().map { offset, record in
            ["index": offset, "question": record["question"] ?? "", "answer": record["answers"] ?? "",
             "category": record["type"] ?? "", "dataset_name": record["dataset_name"] ?? "", "source_id": record["id"] ?? ""]
        }
    }

    func testGoldAnswersScore1000WithPerCategoryCounts() throws {
        let suite = try SuiteHarness.suite("ocrbench")
        let items = try SuiteHarness.items(suite, rows: try fixtureRows(), test: self)
        XCTAssertEqual(items.count, 1000)
        let metrics = SuiteHarness.metrics(suite, items) { $0.answer }
        XCTAssertEqual(metrics.metrics["final_score_count"], 1000)
        XCTAssertEqual(metrics.score, 100, accuracy: 1e-9)
        let expected: [String: Double] = [
            "Regular Text Recognition": 50, "Irregular Text Recognition": 50, "Artistic Text Recognition": 50,
            "Handwriting Recognition": 50, "Digit String Recognition": 50, "Non-Semantic Text Recognition": 50,
            "Scene Text-centric VQA": 200, "Doc-oriented VQA": 200, "Key Information Extraction": 200,
            "Handwritten Mathematical Expression Recognition": 100, "Text Recognition": 300,
        ]
        for (category, count) in expected {
            XCTAssertEqual(metrics.metrics["count/\(category)"], count, category)
        }
    }

    func testAnswersInsideLongerResponsesCountAndWrongOnesDoNot() throws {
        let suite = try SuiteHarness.suite("ocrbench")
        let items = try SuiteHarness.items(suite, rows: try fixtureRows(), test: self)
        // Every gold inside a sentence still counts; a response naming another item's gold does
        // not (checked on the recognition items, whose golds are single words).
        let wrapped = SuiteHarness.metrics(suite, items) { "The answer is: \($0.answers.last ?? "")." }
        XCTAssertEqual(wrapped.metrics["final_score_count"], 1000)
        let recognition = items.filter { OCRBenchScorer.recognitionCategories.contains($0.category ?? "") }
        let shifted = SuiteHarness.metrics(suite, recognition) { _ in "zzzz" }
        XCTAssertEqual(shifted.metrics["final_score_count"], 0)
        XCTAssertEqual(shifted.score, 0)
    }

    func testHandwrittenMathIgnoresSpacesButNotCase() {
        let scorer = OCRBenchScorer()
        let math = Item(id: "1", answers: ["x _ { 1 } = \\frac { - 2 + 2 \\sqrt { 2 } } { 2 }\n"],
                        category: OCRBenchScorer.handwrittenMath)
        XCTAssertEqual(scorer.score(.answer("$x_{1}=\\frac{-2+2\\sqrt{2}}{2}$", method: "text"), item: math).value, 1)
        XCTAssertEqual(scorer.score(.answer("X_{1}=\\frac{-2+2\\sqrt{2}}{2}", method: "text"), item: math).value, 0)
        let word = Item(id: "2", answers: ["CENTRE"], category: "Regular Text Recognition")
        XCTAssertEqual(scorer.score(.answer("The word is centre.", method: "text"), item: word).value, 1)
        XCTAssertEqual(scorer.score(.answer("CENTER", method: "text"), item: word).value, 0)
    }

    /// Golds from OCRBench.json in responses written the way models answer.
    func testExtractionAndMatchingOfTypicalAnswers() throws {
        let suite = try SuiteHarness.suite("ocrbench")
        let cases: [(response: String, gold: [String], category: String, extracted: String?, right: Bool)] = [
            ("CENTRE", ["CENTRE"], "Regular Text Recognition", "CENTRE", true),
            ("The text in the image is \"Joint\".", ["JOINT"], "Irregular Text Recognition", "The text in the image is \"Joint\".", true),
            ("marilyn", ["marilyn"], "Artistic Text Recognition", "marilyn", true),
            ("The number in the image is 5743.", ["5743"], "Digit String Recognition", "The number in the image is 5743.", true),
            ("5 7 4 3", ["5743"], "Digit String Recognition", "5 7 4 3", false),
            ("Chatswood, Epping", ["Chatswood Epping", "Chatswood, Epping"], "Scene Text-centric VQA", "Chatswood, Epping", true),
            ("Air France", ["Airfrance", "Air france"], "Scene Text-centric VQA", "Air France", true),
            ("$506 million", ["$506 million"], "Doc-oriented VQA", "$506 million", true),
            ("The company is Secret Recipe Restaurant.", ["SECRET RECIPE RESTAURANT"], "Key Information Extraction",
             "The company is Secret Recipe Restaurant.", true),
            ("y_{2}=-1", ["y _ { 2 } = - 1\n", "y_2 = - 1\n"], OCRBenchScorer.handwrittenMath, "y_{2}=-1", true),
            ("<think>It reads communities.</think>communities", ["communities"], "Handwriting Recognition", "communities", true),
            ("", ["their"], "Handwriting Recognition", nil, false),
            ("<think>unfinished reasoning", ["their"], "Handwriting Recognition", nil, false),
        ]
        for entry in cases {
            let item = Item(id: "1", answers: entry.gold, category: entry.category)
            let extraction = suite.extract(entry.response, item: item)
            XCTAssertExtraction(extraction, entry.extracted, entry.response)
            XCTAssertEqual(suite.score(extraction, item: item).value, entry.right ? 1 : 0, entry.response)
        }
    }

    func testMissingCategoryColumnIsADatasetErrorNamingFileAndLine() throws {
        let suite = try SuiteHarness.suite("ocrbench")
        let rows: [[String: Any]] = [
            ["index": 1, "question": "what is written in the image?", "answer": "CENTRE", "category": "Regular Text Recognition"],
            ["index": 2, "question": "what is written in the image?", "answer": "FRIEND"],
        ]
        let error = try XCTUnwrap(try SuiteHarness.datasetError(suite, rows: rows, test: self))
        XCTAssertEqual(error.line, 2)
        XCTAssertTrue(error.description.contains("bad.jsonl:2"), error.description)
        XCTAssertTrue(error.message.contains("category"), error.description)
    }

    func testTSVWithoutTheCategoryColumnIsADatasetErrorOnItsHeader() throws {
        let suite = try SuiteHarness.suite("ocrbench")
        let url = try Fixtures.temporaryDirectory(for: self).appendingPathComponent("OCRBench.tsv")
        try "index\tquestion\tanswer\n0\twhat is written in the image?\t['CENTRE']\n".write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try suite.loadItems(from: try DatasetFile.read(url), images: .hashOnly)) { error in
            guard let error = error as? DatasetError else { return XCTFail("not a DatasetError: \(error)") }
            XCTAssertEqual(error.file, url.path)
            XCTAssertEqual(error.line, 1)
            XCTAssertTrue(error.message.contains("'category'"), error.description)
        }
    }

    func testPromptSnapshot() throws {
        let suite = try SuiteHarness.suite("ocrbench")
        let rows: [[String: Any]] = [["index": 2843, "question": "what is written in the image?", "answer": "['CENTRE']",
                                      "category": "Regular Text Recognition", "image": SuiteHarness.image]]
        let item = try XCTUnwrap(try SuiteHarness.items(suite, rows: rows, test: self).first)
        XCTAssertEqual(item.answers, ["CENTRE"])
        assertSnapshot(SuiteHarness.transcript(suite.render(item)), named: "ocrbench-prompt")
    }
}
