import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

final class EMMATests: XCTestCase {
    let scorer = EMMAScorer()

    func testRenderedPromptsMatchSnapshot() throws {
        let suite = try SuiteFiles.suite("emma")
        let url = try Fixtures.temporaryDirectory(for: self).appendingPathComponent("EMMA_MINI.tsv")
        let image = SuiteFiles.png(width: 10, height: 10).base64EncodedString()
        try SuiteFiles.writeTSV(
            ["index", "question", "context", "A", "B", "C", "D", "E", "answer", "type", "subject", "category", "image"],
            [["Math_20", "Turning a card around on the top side, we see the photo of the kangaroo. Instead, if we turn the card around on the right side, what will appear?\n<image_1>",
              "", "A", "B", "C", "D", "E", "D", "MCQ", "Math", "2D Transformation", image],
             ["Math_83", "What is the largest possible length of their common part?\n<image_1>", "Two strips of paper are laid on top of each other.", "", "", "", "", "", "5", "Open", "Math", "Path Tracing", image]],
            to: url)
        let items = try SuiteFiles.load(suite, url)
        XCTAssertEqual(items.map(\.item.category), ["Math", "Math"])
        XCTAssertEqual(items[0].item.subcategory, "2D Transformation")
        XCTAssertEqual(items[1].item.options, [])
        assertSnapshot(items.map { SuiteFiles.render(suite.render($0.item)) }.joined(separator: "---\n"), named: "emma-prompt")
    }

    /// Real EMMA-mini responses (Qwen2-VL CoT, from the official results) and the extraction the
    /// official script stored for them.
    func testExtractionOfRealResponsesMatchesOfficialExtraction() {
        let item = Item(id: "x", answers: ["A"])
        let cases: [(String, String)] = [
            ("atom, which does not match the described reaction.\n\nTherefore, the correct structure after the electron flow is shown in Option C.\n\nThe answer is \\(\\boxed{C}\\).", "C"),
            ("te distances.\n\nGiven these considerations, the correct graph that represents the interatomic potential \\( V(r) \\) for a monoatomic real gas is:\n\n\\[\n\\boxed{B}\n\\]", "B"),
            ("The largest possible length of their common part is $\\boxed{4}$.", "4"),
            ("Therefore, the minimum number of grey vehicles that need to move is \\(\\boxed{1}\\).", "1"),
            ("Thus, the obtained figure is a dodecagon.\n\nThe correct answer is:\n\\boxed{B}", "B"),
            ("So, the answer is $\\boxed{24}$.", "24"),
            ("\\[\n\\boxed{495}\n\\]", "495"),
            ("B", "B"),
            ("5", "5"),
            ("D: 3", "D"),
            ("The final answer is 2400. This number is derived from a careful enumeration.", "2400"),
            ("Therefore, the correct answer is B: \\(10\\pi + 30\\).\n\nSo, the final answer is \\(\\boxed{B}\\).", "B"),
            ("the answer is \\boxed{\\text{ C }}", "C"),
        ]
        for (response, expected) in cases {
            XCTAssertEqual(scorer.extract(response, item: item), .answer(expected, method: "emma_fast_extract"), response)
        }
        XCTAssertTrue(scorer.extract("I am not sure which option is right.", item: item).isUnparsed)
    }

    func testMatchingUsesLetterOptionTextWordsAndRoundedNumbers() {
        let options = ["only 3", "only 7", "3 or 7", "only 3 or 7", "none"].enumerated().map {
            AnswerOption(label: ["A", "B", "C", "D", "E"][$0.offset], text: $0.element)
        }
        let choice = Item(id: "c", options: options, answers: ["D"], metadata: ["type": "Multiple Choice"])
        XCTAssertTrue(scorer.score(.answer("d", method: "emma_fast_extract"), item: choice).correct == true)
        XCTAssertTrue(scorer.score(.answer("only 3 or 7", method: "emma_fast_extract"), item: choice).correct == true)
        XCTAssertFalse(scorer.score(.answer("C", method: "emma_fast_extract"), item: choice).correct == true)
        let open = Item(id: "o", answers: ["12"], metadata: ["type": "Open-ended"])
        XCTAssertTrue(scorer.score(.answer("twelve", method: "emma_fast_extract"), item: open).correct == true)
        XCTAssertTrue(scorer.score(.answer("12.001", method: "emma_fast_extract"), item: open).correct == true)
        XCTAssertFalse(scorer.score(.answer("12.1", method: "emma_fast_extract"), item: open).correct == true)
        let fraction = Item(id: "f", answers: ["\\frac{1}{3}"], metadata: ["type": "Open-ended"])
        XCTAssertTrue(scorer.score(.answer("0.333", method: "emma_fast_extract"), item: fraction).correct == true)
        XCTAssertEqual(WordNumber.value("two hundred and five"), 205)
        XCTAssertNil(WordNumber.value("the circle"))
    }

    /// With `ASSAY_EMMA_RESULTS` pointing at the official `results/EMMA-mini` folder, every
    /// `*.json` answer file's stored extraction and `true_false` flag are compared with ours.
    func testAgreementWithOfficialResultFilesWhenAvailable() throws {
        guard let path = ProcessInfo.processInfo.environment["ASSAY_EMMA_RESULTS"], !path.isEmpty else {
            throw XCTSkip("set ASSAY_EMMA_RESULTS to EMMA's results/EMMA-mini folder to compare with the official flags")
        }
        let enumerator = FileManager.default.enumerator(atPath: path)
        var total = 0, agreeing = 0
        var disagreements: [String] = []
        while let file = enumerator?.nextObject() as? String {
            guard file.hasSuffix(".json"), !file.hasSuffix("_result.json") else { continue }
            let url = URL(fileURLWithPath: path).appendingPathComponent(file)
            guard let results = try Fixtures.readJSON(url) as? [String: [String: Any]] else { continue }
            for (pid, row) in results {
                guard let response = row["response"] as? String, let official = row["true_false"] else { continue }
                let letters = ["A", "B", "C", "D", "E", "F", "G", "H"]
                let optionTexts = (row["options"] as? [String]) ?? ListLiteral.parse(row["options"] as? String ?? "") ?? []
                let options = optionTexts.prefix(letters.count).enumerated().map { AnswerOption(label: letters[$0.offset], text: $0.element) }
                let item = Item(id: pid, options: options, answers: ["\(row["answer"] ?? "")"],
                                metadata: ["type": .string(row["type"] as? String ?? "")])
                let extraction = scorer.extract(response, item: item)
                let ours = scorer.score(extraction, item: item).correct ?? false
                let theirs = (official as? Bool) ?? ((official as? String) == "True")
                total += 1
                if ours == theirs { agreeing += 1 } else { disagreements.append("\(file) \(pid): official \(theirs), ours \(ours), extraction \(extraction)") }
            }
        }
        XCTAssertGreaterThan(total, 0)
        print("EMMA agreement: \(agreeing)/\(total)\n" + disagreements.prefix(40).joined(separator: "\n"))
        XCTAssertGreaterThanOrEqual(Double(agreeing) / Double(max(total, 1)), 0.98)
    }

    func testDatasetWithWrongColumnsNamesFileAndLine() throws {
        let suite = try SuiteFiles.suite("emma")
        let url = try Fixtures.temporaryDirectory(for: self).appendingPathComponent("EMMA_MINI.tsv")
        try SuiteFiles.writeTSV(["index", "question", "answer"], [["1", "q", "A"]], to: url)
        SuiteFiles.assertDatasetError({ _ = try SuiteFiles.load(suite, url) }, file: url.path, line: 1, mentioning: ["type", "emma"])
    }
}
