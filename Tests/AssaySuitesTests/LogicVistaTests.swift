import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

final class LogicVistaTests: XCTestCase {
    let scorer = LogicVistaScorer()

    func testRenderedPromptMatchesSnapshot() throws {
        let suite = try SuiteFiles.suite("logicvista")
        let url = try Fixtures.temporaryDirectory(for: self).appendingPathComponent("LogicVista.tsv")
        try SuiteFiles.writeTSV(
            ["index", "question", "answer", "skill", "image"],
            [["v1_2", "Which of the boxes comes next in the sequence? Select all that apply from A-E", "B, D", "['inductive']",
              SuiteFiles.png(width: 5, height: 5).base64EncodedString()]],
            to: url)
        let items = try SuiteFiles.load(suite, url)
        XCTAssertEqual(items[0].item.answers, ["B, D"])
        assertSnapshot(SuiteFiles.render(suite.render(items[0].item)), named: "logicvista-prompt")
    }

    /// Real LogicVista answers from the official `eval/results/*-accuracy-results.csv` (Otter,
    /// LLaVA, MiniGPT-4, GPT-4), with the letters the official GPT-4 extractor read from them.
    func testExtractionOfRealAnswersMatchesOfficialLetters() {
        let item = Item(id: "x", answers: ["A"])
        let cases: [(String, String?)] = [
            ("B, D", "B, D"),
            ("A and B", "A, B"),
            ("Answer: B.", "B"),
            ("B, D.", "B, D"),
            ("The answer is A and B.", "A, B"),
            ("B) B.", "B"),
            ("The answer is A and C.", "A, C"),
            ("The answer is E.", "E"),
            ("(D) Some scholars are not music enthusiasts", "D"),
            ("(A) B must be heavier than A.", "A"),
            ("3", "3"),
            ("\u{200B}\n\nA", "A"),
            ("According to the table, in 2007 the entrance fee revenue was £35 million, which is less than £23 million. Therefore, option D is correct.", "D"),
            ("The logical conclusion that can be drawn from the given statements is option B - Some hip people are people from LA.", "B"),
            // The official extractor answered "ZZZZZ" (no option) for these.
            ("The series is incomplete with just two points. To complete the series, we need a third point.", nil),
            ("3 comes next in the sequence.", nil),
        ]
        for (response, expected) in cases {
            XCTAssertEqual(scorer.extract(response, item: item).answer, expected, response)
        }
    }

    func testLetterSetsMustMatchExactly() {
        let item = Item(id: "v1_2", answers: ["B, D"])
        XCTAssertTrue(scorer.score(.answer("B, D", method: "letter_list"), item: item).correct == true)
        XCTAssertTrue(scorer.score(scorer.extract("\\boxed{D, B}", item: item), item: item).correct == true)
        XCTAssertFalse(scorer.score(.answer("B", method: "letter"), item: item).correct == true)
        XCTAssertFalse(scorer.score(.answer("B, C, D", method: "letter_list"), item: item).correct == true)
        XCTAssertTrue(scorer.score(.answer("The answers are B and D.", method: "imported"), item: item).correct == true)
    }

    func testSkillBreakdownCountsAnItemForEachOfItsSkills() throws {
        let suite = try SuiteFiles.suite("logicvista")
        let right = ScoredItem(item: Item(id: "1", answers: ["A"], metadata: ["skill": "['inductive', 'spatial']"]),
                               extraction: .answer("A", method: "letter"), score: .binary(true))
        let wrong = ScoredItem(item: Item(id: "2", answers: ["B"], metadata: ["skill": "['spatial']"]),
                               extraction: .unparsed(reason: "no option found"), score: .binary(false))
        let metrics = suite.aggregate([right, wrong])
        XCTAssertEqual(metrics.score, 50)
        XCTAssertEqual(metrics.unparsed, 1)
        XCTAssertEqual(metrics.metrics["skill/inductive"], 100)
        XCTAssertEqual(metrics.metrics["skill/spatial"], 50)
        XCTAssertNil(metrics.metrics["skill/numerical"])
    }

    func testDatasetWithWrongColumnsNamesFileAndLine() throws {
        let suite = try SuiteFiles.suite("logicvista")
        let url = try Fixtures.temporaryDirectory(for: self).appendingPathComponent("LogicVista.tsv")
        try SuiteFiles.writeTSV(["imagename", "question", "answer"], [["v1_0.png", "q", "C"]], to: url)
        SuiteFiles.assertDatasetError({ _ = try SuiteFiles.load(suite, url) }, file: url.path, line: 1, mentioning: ["index", "logicvista"])
    }
}
