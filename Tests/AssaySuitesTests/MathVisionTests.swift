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
    // MARK: - Prompt, extraction, bad input

    func testRenderedPromptMatchesSnapshot() throws {
        let suite = try SuiteFiles.suite("mathvision")
        let directory = try Fixtures.temporaryDirectory(for: self)
        let url = directory.appendingPathComponent("MathVision_MINI.tsv")
        let image = SuiteFiles.png(width: 4, height: 3).base64EncodedString()
        try SuiteFiles.writeTSV(
            ["index", "question", "answer", "choices", "category", "level", "image"],
            [["6", "Misty the cat has five kittens: two of them are striped, one spotty, the rest of them are absolutely white. In which picture can we see the kittens of Misty, knowing that the ears of one of them are of different colour?\n<image1>",
              "D", "['A', 'B', 'C', 'D', 'E']", "logic", "3", image],
             ["4", "How many different digits can you find in this picture?\n<image1>", "6", "[]", "counting", "1", image]],
            to: url)
        let items = try SuiteFiles.load(suite, url)
        XCTAssertEqual(items.map(\.item.id), ["6", "4"])
        XCTAssertEqual(items[0].item.optionLabels, ["A", "B", "C", "D", "E"])
        assertSnapshot(items.map { SuiteFiles.render(suite.render($0.item)) }.joined(separator: "---\n"), named: "mathvision-prompt")
    }

    /// Real responses from MATH-V's official outputs (Gemini-Pro, LLaVA-v1.5-7B), with the
    /// `model_answer` the official script stored for them.
    func testExtractionOfRealResponsesMatchesOfficialModelAnswers() {
        let cases: [(response: String, modelAnswer: String)] = [
            ("(A)", "a"),
            ("$$2\\sqrt{3}$$", "2\\sqrt{3}"),
            ("The answer is 12.", "12"),
            ("$30$", "30"),
            ("15 Punkte", "15punkte"),
            ("8/3", "\\frac{8}{3}"),
            ("Sonja spent half the time using apps A and C, so apps A and C in the current week should be half the length. Sonja spent the same amount of time using apps B and D, so apps B and D in the current week should be the same length. The correct answer is (B).", "b"),
            ("The answer is 20 \u{2013} 2 = 18.", "18"),
            ("$72^\\circ$", "72"),
            ("The answer is $$\\frac{119}{6}$$", "\\frac{119}{6}"),
            ("x^2 + y^2 = 13", "13"),
            ("(D) Beetle with 6 points", "dbeetlewith6points"),
            ("The order from smallest to largest is: monkey, dog, tiger, ostrich, giraffe. The middle animal is the tiger.",
             "theorderfromsmallesttolargestis:monkey,dog,tiger,ostrich,giraffe.themiddleanimalisthetiger"),
            ("0.5", "\\frac{1}{2}"),
        ]
        let item = Item(id: "x", answers: ["1"])
        for (response, expected) in cases {
            XCTAssertEqual(scorer.extract(response, item: item), .answer(expected, method: "mathv_rule"), response)
        }
        XCTAssertEqual(scorer.extract("<think>so it is 5</think>", item: item).isUnparsed, true)
        XCTAssertEqual(scorer.extract("   ", item: item).isUnparsed, true)
    }

    func testMatchingFollowsIsEqualIncludingRoundingAndOptionText() {
        let options = ["$\\frac{3 \\sqrt{3}}{2}$", "1", "2", "3", "$2: 3$"].enumerated().map {
            AnswerOption(label: MathVisionScorer.optionLabels[$0.offset], text: $0.element)
        }
        let choice = Item(id: "c", options: options, answers: ["A"])
        XCTAssertTrue(MathVisionScorer.isCorrect("a", item: choice))
        XCTAssertTrue(MathVisionScorer.isCorrect("\\frac{3\\sqrt{3}}{2}", item: choice))  // the option's text
        XCTAssertFalse(MathVisionScorer.isCorrect("b", item: choice))
        let ratio = Item(id: "r", options: options, answers: ["E"])
        XCTAssertTrue(MathVisionScorer.isCorrect("2:3", item: ratio))  // a ratio is a division
        let free = Item(id: "f", answers: ["\\frac{7}{16}"])
        XCTAssertTrue(MathVisionScorer.isCorrect("\\frac{11}{25}", item: free))  // 0.44 = 0.44 at two places
        XCTAssertFalse(MathVisionScorer.isCorrect("\\frac{1}{2}", item: free))
        // Tuples compare as text once elements are rounded: a float 2.0 is not the integer 2.
        XCTAssertFalse(MathVisionScorer.isCorrect("(2.0,3)", item: Item(id: "t", answers: ["(2,3)"])))
        XCTAssertTrue(MathVisionScorer.isCorrect("(6,7)", item: Item(id: "t", answers: ["(2*3, 5+2)"])))
        XCTAssertFalse(MathVisionScorer.isCorrect("__import__('os')", item: Item(id: "e", answers: ["0"])))
    }

    func testDatasetWithWrongColumnsNamesFileAndLine() throws {
        let suite = try SuiteFiles.suite("mathvision")
        let url = try Fixtures.temporaryDirectory(for: self).appendingPathComponent("MathVision_MINI.tsv")
        try SuiteFiles.writeTSV(["id", "problem", "solution"], [["1", "q", "3"]], to: url)
        SuiteFiles.assertDatasetError({ _ = try SuiteFiles.load(suite, url) }, file: url.path, line: 1, mentioning: ["index", "mathvision"])
    }
}

extension MathVisionScorer {
    static func isCorrectGoldValue(_ item: Item) -> String {
        guard let index = optionLabels.firstIndex(of: item.answer.uppercased()), index < item.options.count else { return "" }
        return item.options[index].text
    }
}
