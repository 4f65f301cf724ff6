import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

final class CharXivTests: XCTestCase {
    /// The official per-answer-type response instructions (`REASONING_RESP_INST` in CharXiv's
    /// `src/constants.py`), which VLMEvalKit's TSV bakes into `question`.
    static func officialQuestion(_ query: String, type: Int, answer: String) -> String {
        switch type {
        case 1:
            return "\(query)\n    * Your final answer must be grounded to some text that is explicitly written and relevant to the question in the chart.\n    * If you need to answer multiple terms, separate them with commas.\n    * Unless specified in the question (such as answering with a letter), you are required to answer the full names of subplots and/or labels by default.\n    "
        case 2:
            return "\(query)\n    * If there are options in the question, your final answer must conform to one of the options.\n    * If there are additional instructions in the question, follow them accordingly.\n    * If there are neither options nor additional instructions, you are allowed to respond with a short phrase only.\n    "
        case 3:
            return "\(query)\n    * Your final answer must be grounded to a number that is exlicitly written and relevant to the question in the chart, even if it's an approximate value.\n    * You are allowed to extract numbers within some text when needed.\n    "
        default:
            let parts = answer.split(separator: ".", omittingEmptySubsequences: false)
            let instruction = parts.count == 1 ? "* Your final answer must be an exact integer."
                : "* Your final answer must be a number with \(parts[1].count) decimal places."
            return "\(query)\n    \(instruction)\n    "
        }
    }

    func fixtureRows() throws -> [[String: Any]] {
        let url = try Fixtures.require("benchmarks/charxiv/reasoning_val.json")
        let records = try XCTUnwrap(try Fixtures.readJSON(url) as? [String: [String: Any]])
        return try records.keys.sorted { Int($0) ?? 0 < Int($1) ?? 0 }.map { key in
            let record = try XCTUnwrap(records[key])
            let type = try XCTUnwrap(record["inst_category"] as? Int)
            let answer = try XCTUnwrap(record["answer"] as? String)
            return ["index": key, "question": Self.officialQuestion(record["query"] as? String ?? "", type: type, answer: answer),
                    "answer": answer, "inst_category": type, "qa_source": record["qa_source"] ?? "", "figure_id": record["figure_id"] ?? ""]
        }
    }

    func testGoldAnswersScore100UnderTheRuleScorer() throws {
        let suite = try SuiteHarness.suite("charxiv")
        let items = try SuiteHarness.items(suite, rows: try fixtureRows(), test: self)
        XCTAssertEqual(items.count, 1000)
        let metrics = SuiteHarness.metrics(suite, items) { $0.answer }
        XCTAssertEqual(metrics.score, 100)
        XCTAssertEqual(metrics.unparsed, 0)
        for type in CharXivScorer.answerTypes.values {
            XCTAssertEqual(metrics.metrics["category/\(type)"], 100, type)
        }
        // The same golds inside the answer sentence the official prompt encourages.
        let phrased = SuiteHarness.metrics(suite, items) { "Looking at the chart carefully.\nThe final answer is \($0.answer)." }
        XCTAssertEqual(phrased.score, 100)
    }

    func testSomeoneElsesAnswersDoNotScore() throws {
        let suite = try SuiteHarness.suite("charxiv")
        let items = try SuiteHarness.items(suite, rows: try fixtureRows(), test: self)
        // Each item answered with the gold of the next item of the same answer type: only
        // coincidentally equal golds can count.
        var byType: [String: [Item]] = [:]
        for item in items { byType[item.category ?? "", default: []].append(item) }
        var next: [String: String] = [:]
        for group in byType.values {
            for (offset, item) in group.enumerated() { next[item.id] = group[(offset + 1) % group.count].answer }
        }
        let metrics = SuiteHarness.metrics(suite, items) { next[$0.id] ?? "" }
        XCTAssertLessThan(metrics.score, 25)
    }

    /// The examples of the official grading prompts (`REASONING_GRADING_INST`), with the
    /// judge's verdicts.
    func testOfficialGradingExamples() throws {
        let suite = try SuiteHarness.suite("charxiv")
        let cases: [(type: Int, gold: String, response: String, extracted: String?, right: Bool)] = [
            (1, "P56962", "There is only one curve that intersects y=\\lambda exactly three times. The name of the curve is written as P55762.",
             "There is only one curve that intersects y=\\lambda exactly three times. The name of the curve is written as P55762", false),
            (1, "(b)", "b", "b", true),
            (2, "increasing then decreasing", "Increasing.", "Increasing", false),
            (2, "[50, 100]", "The answer is [50, 100].", "[50, 100]", true),
            (3, "0.01", "The value of the red curve at t=10 is 0.012.", "The value of the red curve at t=10 is 0.012", false),
            (3, "1500", "The value of the blue curve at t=50 is 1.5e3.", "The value of the blue curve at t=50 is 1.5e3", true),
            (4, "0.01", "10^{-2}", "10^{-2}", true),
            (4, "1500", "Final answer: 1,500", "1,500", true),
            (1, "alpha", "α", "α", true),
            (1, "MomentumLSTM, SRLSTM", "SRLSTM, MomentumLSTM", "SRLSTM, MomentumLSTM", true),
            (1, "lambda_L = 0.13", "$\\lambda_L=0.13$", "$\\lambda_L=0.13$", true),
            (4, "30, 40", "The two values are 40 and 30.", "The two values are 40 and 30", true),
            (3, "85.5%", "85.5", "85.5", true),
            (3, "1e+06", "<think>The axis tops out at a million.</think>\\boxed{1000000}", "1000000", true),
            (2, "Yes", "", nil, false),
        ]
        for entry in cases {
            let item = Item(id: "1", answers: [entry.gold], category: CharXivScorer.answerTypes[entry.type],
                            metadata: ["inst_category": .number(Double(entry.type))])
            let extraction = suite.extract(entry.response, item: item)
            XCTAssertExtraction(extraction, entry.extracted, entry.response)
            XCTAssertEqual(suite.score(extraction, item: item).value, entry.right ? 1 : 0, "\(entry.response) vs \(entry.gold)")
        }
    }

    func testLongAnswerWithoutAnAnswerPhraseIsUnparsed() throws {
        let suite = try SuiteHarness.suite("charxiv")
        let item = Item(id: "1", answers: ["3"], metadata: ["inst_category": .number(4)])
        let response = "The chart has several lines.\nThe blue one crosses the red one twice.\nThe green one never does."
        XCTAssertTrue(suite.extract(response, item: item).isUnparsed)
    }

    func testInvalidAnswerTypeIsADatasetErrorNamingFileAndLine() throws {
        let suite = try SuiteHarness.suite("charxiv")
        let rows: [[String: Any]] = [
            ["index": 0, "question": "Which model?", "answer": "Joint-CNN", "inst_category": 1],
            ["index": 2, "question": "Which line?", "answer": "lambda_L = 0.13", "inst_category": 7],
        ]
        let error = try XCTUnwrap(try SuiteHarness.datasetError(suite, rows: rows, test: self))
        XCTAssertEqual(error.line, 2)
        XCTAssertTrue(error.message.contains("inst_category"), error.description)
        let missing = try XCTUnwrap(try SuiteHarness.datasetError(
            suite, rows: [["index": 0, "question": "Which model?", "answer": "Joint-CNN"]], test: self))
        XCTAssertEqual(missing.line, 1)
        XCTAssertTrue(missing.message.contains("inst_category"), missing.description)
    }

    func testPromptSnapshot() throws {
        let suite = try SuiteHarness.suite("charxiv")
        let question = Self.officialQuestion(
            "Which model shows a greater decline in accuracy from Session 1 to Session 9 in the 5-way full-shot scenario?",
            type: 1, answer: "Joint-CNN")
        let rows: [[String: Any]] = [["index": 0, "question": question, "answer": "Joint-CNN", "inst_category": 1,
                                      "image": SuiteHarness.image]]
        let item = try XCTUnwrap(try SuiteHarness.items(suite, rows: rows, test: self).first)
        assertSnapshot(SuiteHarness.transcript(suite.render(item)), named: "charxiv-prompt")
    }
}
