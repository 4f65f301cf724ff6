import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

final class ArithmeticSuiteTests: XCTestCase {
    func testItemsAreSeededExactAndTakeTurns() throws {
        let suite = try SuiteFiles.suite("arithmetic")
        let (items, sha) = try XCTUnwrap(suite.generatedItems())
        let (again, shaAgain) = try XCTUnwrap(suite.generatedItems())
        XCTAssertEqual(items.count, 300)
        XCTAssertEqual(sha, shaAgain)
        XCTAssertEqual(items.map(\.item), again.map(\.item))
        XCTAssertEqual(items.prefix(3).map { $0.item.category }, ["addition", "subtraction", "multiplication"])
        for loaded in items {
            let item = loaded.item
            XCTAssertTrue(item.images.isEmpty)
            // The gold answer is the arithmetic the question states.
            let words = item.question.dropFirst("What is ".count).dropLast().split(separator: " ")
            let a = try XCTUnwrap(Int(words[0])), b = try XCTUnwrap(Int(words[2]))
            let expected = words[1] == "+" ? a + b : words[1] == "-" ? a - b : a * b
            XCTAssertEqual(item.answers, [String(expected)], item.question)
            XCTAssertGreaterThanOrEqual(expected, 0)
        }
        XCTAssertNotEqual(try XCTUnwrap(suite.generatedItems(count: 10)).sha256, sha)
        XCTAssertEqual(SuiteFiles.render(suite.render(items[0].item)).contains("Give the final answer as a number."), true)
    }

    func testTheAnswerIsTheBoxedOrLastNumberHoweverItIsWorded() {
        let scorer = ExactNumberScorer()
        let item = Item(id: "x", question: "What is 17 + 8?", answers: ["25"])
        let cases: [(String, String?, Bool)] = [
            ("17 + 8 = 25", "25", true),
            ("The answer is 25.", "25", true),
            ("<think>17 + 8 is 24? no, 25</think>\\boxed{25}", "25", true),
            ("\\boxed{25} is what I would say, though 26 is close", "25", true),
            ("Adding 17 and 8 gives twenty-five, i.e. 25.0", "25", true),
            ("It is 26.", "26", false),
            ("25.5", "25.5", false),
            ("The result is -25", "-25", false),
            ("17 - 8 = 9", "9", false),
            ("I think the total is twenty", "20", false),
            ("1,025 apples", "1025", false),
            ("I do not know.", nil, false),
            ("", nil, false),
        ]
        for (response, answer, correct) in cases {
            let extraction = scorer.extract(response, item: item)
            XCTAssertEqual(extraction.answer, answer, response)
            XCTAssertEqual(scorer.score(extraction, item: item).correct, correct, response)
        }
        XCTAssertEqual(scorer.extract("three", item: item).method, "number_word")
        XCTAssertEqual(scorer.extract("\\boxed{7}", item: item).method, "boxed")
    }
}
