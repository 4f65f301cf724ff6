import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

/// The eleven reasoning, video, agent and reward suites are in the built-in catalog with the
/// fields `assay suites list --json` prints, a scorer of their own and a README.
final class ReasoningVideoAgentRewardCatalogTests: XCTestCase {
    let expected: [String: (group: String, scorer: String)] = [
        "mathverse": ("reasoning", "mathverse"), "mathvision": ("reasoning", "mathvision"), "emma": ("reasoning", "emma"),
        "logicvista": ("reasoning", "logicvista"), "videommmu": ("video", "videommmu"), "videomme": ("video", "videomme"),
        "screenspot": ("agent", "screenspot"), "screenspot-pro": ("agent", "screenspot_pro"),
        "vl-rewardbench": ("reward", "vl_rewardbench"), "mm-rewardbench": ("reward", "mm_rewardbench"),
        "mm-rlhf-rewardbench": ("reward", "mm_rlhf_rewardbench"),
    ]

    func testCatalogListsTheSuitesWithGroupSplitMetricAndSource() throws {
        let catalog = try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory)
        for (id, (group, scorer)) in expected {
            let manifest = try catalog.suite(id).manifest
            XCTAssertEqual(manifest.group, group, id)
            XCTAssertEqual(manifest.scorer, scorer, id)
            XCTAssertFalse(manifest.split.isEmpty, id)
            XCTAssertFalse(manifest.metric.isEmpty, id)
            XCTAssertNotNil(manifest.source?.url, id)
            if id != "mm-rlhf-rewardbench" { XCTAssertNotNil(manifest.expectedItems, id) }
            let readme = Fixtures.suitesDirectory.appendingPathComponent(id).appendingPathComponent("README.md")
            let text = try String(contentsOf: readme, encoding: .utf8)
            XCTAssertTrue(text.contains("## Deviations"), "\(id) README states its deviations")
        }
    }

    func testEveryResponseExtractsWithoutTrappingOnHostileText() throws {
        // Unusual input must give an answer or `unparsed`, never a crash.
        let catalog = try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory)
        let hostile = ["", " ", "\u{0}", "\\boxed{", "}}}{{{", "((((", "Answer:", String(repeating: "9", count: 400),
                       "\\frac{1}{0}", "2^{99999}", "\\sqrt[0]{4}", "<think>", "[[", "x=, y=", "(1e999, 2)", "🙂 A"]
        let item = Item(id: "h", options: [AnswerOption(label: "A", text: "x"), AnswerOption(label: "B", text: "y")],
                        answers: ["A"], metadata: ["question_type": "multiple-choice", "target_box": .array([.number(0), .number(0), .number(1), .number(1)])])
        for id in expected.keys {
            let suite = try catalog.suite(id)
            for text in hostile {
                let extraction = suite.extract(text, item: item)
                _ = suite.score(extraction, item: item)
            }
        }
    }
}
