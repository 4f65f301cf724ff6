import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

final class MathVisionTests: XCTestCase {
    let scorer = MathVisionScorer()

    /// Items of MATH-V's `data/test.jsonl` (the official key names), by id.
    func officialItems(_ file: String) throws -> [String: Item] {
        let url = try Fixtures.require("benchmarks/math-v/\(file)")
        var items: [String: Item] = [:]
        for line in try String(contentsOf: url, encoding: .utf8).split(separator: "\n") {
            let row = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let id = try XCTUnwrap(row["id"] as? String)
            let options = (row["options"] as? [String] ?? []).enumerated().map {
                AnswerOption(label: MathVisionScorer.optionLabels[$0.offset], text: $0.element)
            }
            var item = Item(id: id, question: row["question"] as? String ?? "", options: options,
                            answers: ["\(row["answer"] ?? "")"], category: row["subject"] as? String)
            item.metadata["level"] = .string("\(row["level"] ?? "")")
            items[id] = item
        }
        return items
    }

    struct Outcome {
        var total = 0
        var agreeing = 0
        var disagreements: [String] = []
    }

    /// Rule scoring of each output's raw `response` against the stored official `correct` flag.
    func agreement(_ output: String, items: [String: Item], importedAnswers: Bool) throws -> Outcome {
        let url = try Fixtures.require("benchmarks/math-v/outputs/\(output)")
        var outcome = Outcome()
        for line in try String(contentsOf: url, encoding: .utf8).split(separator: "\n") {
            let row = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let id = try XCTUnwrap(row["id"] as? String)
            let item = try XCTUnwrap(items[id], "unknown id \(id)")
            let official = try XCTUnwrap(row["correct"] as? Bool)
            let extraction: Extraction = importedAnswers
                ? .answer(row["model_answer"] as? String ?? "", method: "imported")
                : scorer.extract(row["response"] as? String ?? "", item: item)
            let ours = extraction.isUnparsed ? false : (scorer.score(extraction, item: item).correct ?? false)
            outcome.total += 1
            if ours == official {
                outcome.agreeing += 1
            } else {
                let gold = item.answer + (item.options.isEmpty ? "" : " = \(MathVisionScorer.isCorrectGoldValue(item))")
                outcome.disagreements.append(
                    "\(output) id \(id): official \(official), ours \(ours); gold \(gold); answer \(extraction.answer ?? "(unparsed)")")
            }
        }
        return outcome
    }

    func testRuleScoringAgreesWithOfficialCorrectFlagsForAllThreeModels() throws {
        let items = try officialItems("test.jsonl")
        var report: [String] = []
        for output in ["Random-Chance.jsonl", "open-source/LLavA/LLaVA-v1.5-7B.jsonl", "closed-source/Gemini/Gemini-Pro.jsonl"] {
            let outcome = try agreement(output, items: items, importedAnswers: false)
            let rate = Double(outcome.agreeing) / Double(outcome.total)
            XCTAssertEqual(outcome.total, 3040, output)
            XCTAssertGreaterThanOrEqual(rate, 0.99, "\(output): \(outcome.agreeing)/\(outcome.total)")
            report.append("\(output): \(outcome.agreeing)/\(outcome.total) agree")
            report += outcome.disagreements
        }
        // The README lists these; the snapshot keeps the list and the README honest.
        assertSnapshot(report.joined(separator: "\n") + "\n", named: "mathvision-agreement")
    }

    func testStoredModelAnswersScoreLikeTheOfficialFlags() throws {
        let items = try officialItems("test.jsonl")
        var report: [String] = []
        for output in ["Random-Chance.jsonl", "open-source/LLavA/LLaVA-v1.5-7B.jsonl", "closed-source/Gemini/Gemini-Pro.jsonl"] {
            let outcome = try agreement(output, items: items, importedAnswers: true)
            XCTAssertGreaterThanOrEqual(Double(outcome.agreeing) / Double(outcome.total), 0.99, output)
            report.append("\(output): \(outcome.agreeing)/\(outcome.total) agree")
            report += outcome.disagreements
        }
        assertSnapshot(report.joined(separator: "\n") + "\n", named: "mathvision-agreement-imported")
    }
}

extension MathVisionScorer {
    static func isCorrectGoldValue(_ item: Item) -> String {
        guard let index = optionLabels.firstIndex(of: item.answer.uppercased()), index < item.options.count else { return "" }
        return item.options[index].text
    }
}
