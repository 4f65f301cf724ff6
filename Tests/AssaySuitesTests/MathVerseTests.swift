import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

final class MathVerseTests: XCTestCase {
    let scorer = MathVerseScorer()

    /// MathVerse's `testmini_text_only.json` as items (official keys; `query_wo` is the prompt).
    func textOnlyItems() throws -> [Item] {
        let url = try Fixtures.require("benchmarks/mathverse/testmini_text_only.json")
        let rows = try XCTUnwrap(try Fixtures.readJSON(url) as? [[String: Any]])
        return rows.map { row in
            let metadata = row["metadata"] as? [String: Any] ?? [:]
            var item = Item(id: "\(row["sample_index"] ?? "")", question: row["query_wo"] as? String ?? "",
                            answers: [row["answer"] as? String ?? ""], category: metadata["subject"] as? String,
                            subcategory: metadata["subfield"] as? String)
            item.metadata["question_type"] = .string(row["question_type"] as? String ?? "")
            item.options = MathVerseScorer.choices(inQuestion: row["question"] as? String ?? "")
            return item
        }
    }

    func testGoldAnswersAsPredictionsScore100() throws {
        let items = try textOnlyItems()
        XCTAssertEqual(items.count, 788)
        XCTAssertEqual(items.filter { MathVerseScorer.isMultipleChoice($0) }.count, 436)
        let suite = try SuiteFiles.suite("mathverse")
        // The gold itself, and the gold inside the two answer shapes the rules read (a two-letter
        // gold written on two lines is written "C, D" there, as a model would).
        let oneLine = { (gold: String) in gold.replacingOccurrences(of: "\n", with: ", ") }
        for wrap in [{ (gold: String) in gold }, { "The answer is \(oneLine($0))" }, { "Let me think.\n\\boxed{\(oneLine($0))}" }] {
            let results = items.map { item -> ScoredItem in
                let extraction = suite.extract(wrap(item.answer), item: item)
                return ScoredItem(item: item, extraction: extraction, score: suite.score(extraction, item: item))
            }
            let failures = results.filter { $0.score.value != 1 }.map { "\($0.item.id): \($0.item.answer) -> \($0.extraction)" }
            XCTAssertEqual(failures, [], wrap("X"))
            let metrics = suite.aggregate(results)
            XCTAssertEqual(metrics.score, 100, accuracy: 1e-9)
            XCTAssertEqual(metrics.unparsed, 0)
        }
    }

    func testAnotherItemsGoldDoesNotScore() throws {
        // Guards against a matcher that accepts everything: shift every gold by one item.
        let items = try textOnlyItems()
        let suite = try SuiteFiles.suite("mathverse")
        var correct = 0
        for (index, item) in items.enumerated() {
            let other = items[(index + 1) % items.count].answer
            let extraction = suite.extract(other, item: item)
            correct += suite.score(extraction, item: item).value == 1 && other != item.answer ? 1 : 0
        }
        // Neighbouring multiple-choice golds are often the same letter; free-form ones rarely agree.
        XCTAssertLessThan(Double(correct) / Double(items.count), 0.35)
    }

    func testRenderedPromptMatchesSnapshot() throws {
        let suite = try SuiteFiles.suite("mathverse")
        let url = try Fixtures.temporaryDirectory(for: self).appendingPathComponent("MathVerse_MINI_Vision_Only.tsv")
        try SuiteFiles.writeTSV(
            ["index", "question", "answer", "question_for_eval", "metadata", "problem_version", "image"],
            [["1", "According to the question shown in the image, please directly answer the question and provide the correct option letter, e.g., A, B, C, D.",
              "D", "As shown in the figure, in triangle ABC, it is known that angle A = 80.0, angle B = 60.0, point D is on AB and point E is on AC, DE parallel BC, then the size of angle CED is ()\nChoices:\nA:40°\nB:60°\nC:120°\nD:140°",
              "{'split': 'testmini', 'source': 'GeoQA', 'subject': 'Plane Geometry', 'subfield': 'Angle'}", "Vision Only",
              SuiteFiles.png(width: 8, height: 8).base64EncodedString()]],
            to: url)
        let items = try SuiteFiles.load(suite, url)
        XCTAssertEqual(items[0].item.category, "Plane Geometry")
        XCTAssertEqual(items[0].item.subcategory, "Angle")
        XCTAssertEqual(items[0].item.options.map(\.text), ["40°", "60°", "120°", "140°"])
        assertSnapshot(SuiteFiles.render(suite.render(items[0].item)), named: "mathverse-prompt")
    }

    /// MathVerse's published extraction examples (real model responses in the official
    /// `get_gpt4_extract_ICE`) and typical answer shapes.
    func testExtractionOfPublishedExamples() {
        let free = Item(id: "f", answers: ["(-2, 1)"], metadata: ["question_type": "free-form"])
        let choice = Item(id: "c", options: MathVerseScorer.choices(inQuestion: "Choices:\nA:2\nB:2√{3}\nC:√{3}\nD:2√{2}"),
                          answers: ["C"], metadata: ["question_type": "multi-choice"])
        XCTAssertEqual(scorer.extract("Rounded to two decimal places, the perimeter of the sector is approximately:\n\n(-2, 1)", item: free).answer,
                       "Rounded to two decimal places, the perimeter of the sector is approximately:\n\n(-2, 1)")
        XCTAssertTrue(scorer.score(scorer.extract("Rounded to two decimal places, the perimeter of the sector is approximately:\n\n(-2, 1)", item: free), item: free).correct == true)
        XCTAssertEqual(scorer.extract("at those points.\n\nTherefore, the correct option that represents the meaning of the intersection points of the graphs is:\n\nD. They give the solutions to the equation $f(t)=g(t)$.", item: choice).answer, "D")
        XCTAssertTrue(scorer.extract("As it stands, I cannot provide the correct option letter because there isn't enough information to solve for 'y'.", item: choice).isUnparsed)
        let distance = Item(id: "d", answers: ["22.3"], metadata: ["question_type": "free-form"])
        let ned = "Given that AB = 17.6 meters, we can now substitute into the equation:\n\nd = 17.6 / cos(38°)\n\nTherefore, to one decimal place, the distance d between Ned and Bart is approximately 22.3 meters."
        XCTAssertTrue(scorer.score(scorer.extract(ned, item: distance), item: distance).correct == true)
        let function = Item(id: "g", answers: ["f(x) = -x^2 - 2x + 1"], metadata: ["question_type": "free-form"])
        let quadratic = "have all the coefficients for the quadratic function:\n\\( f(x) = ax^2 + bx + c \\)\n\\( f(x) = -1x^2 - 2x + 1 \\)\n\nTherefore, the equation for the graphed function \\( f \\) is:\n\\( f(x) = -x^2 - 2x + 1 \\)"
        XCTAssertTrue(scorer.score(scorer.extract(quadratic, item: function), item: function).correct == true)
        let wrongFunction = Item(id: "h", answers: ["f(x)=-(x+1)^2+3"], metadata: ["question_type": "free-form"])
        XCTAssertFalse(scorer.score(scorer.extract(quadratic, item: wrongFunction), item: wrongFunction).correct == true)
        XCTAssertEqual(scorer.extract("B:2√{3}", item: choice).answer, "B")
        XCTAssertEqual(scorer.extract("The answer is C.", item: choice).answer, "C")
        XCTAssertEqual(scorer.extract("√{3}", item: choice).answer, "C")
        XCTAssertEqual(scorer.extract("<think>A or C?</think>\\boxed{C}", item: choice).answer, "C")
        // Free-form answers with units, degrees and LaTeX around the same value.
        let area = Item(id: "a", answers: ["Area $=113.1 \\mathrm{~cm}^{2}$"], metadata: ["question_type": "free-form"])
        for response in ["113.1", "The area is 113.1 cm^2.", "\\boxed{113.1 \\text{ cm}^2}", "Answer: $113.1\\mathrm{~cm}^{2}$"] {
            XCTAssertTrue(scorer.score(scorer.extract(response, item: area), item: area).correct == true, response)
        }
        XCTAssertFalse(scorer.score(scorer.extract("113.2", item: area), item: area).correct == true)
        let bearing = Item(id: "b", answers: ["212°T"], metadata: ["question_type": "free-form"])
        XCTAssertTrue(scorer.score(.answer("212^\\circ T", method: "boxed"), item: bearing).correct == true)
        let fraction = Item(id: "q", answers: ["$\\frac{4}{5}$"], metadata: ["question_type": "free-form"])
        XCTAssertTrue(scorer.score(.answer("0.8", method: "short_answer"), item: fraction).correct == true)
        XCTAssertTrue(scorer.extract(String(repeating: "This is a long derivation without a conclusion. ", count: 10), item: fraction).isUnparsed)
    }

    func testDatasetWithWrongColumnsNamesFileAndLine() throws {
        let suite = try SuiteFiles.suite("mathverse")
        let url = try Fixtures.temporaryDirectory(for: self).appendingPathComponent("MathVerse.tsv")
        try SuiteFiles.writeTSV(["index", "query_wo", "image"], [["1", "q", ""]], to: url)
        SuiteFiles.assertDatasetError({ _ = try SuiteFiles.load(suite, url) }, file: url.path, line: 1, mentioning: ["question", "mathverse"])
    }
}
