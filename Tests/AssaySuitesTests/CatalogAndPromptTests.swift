import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

final class CatalogAndPromptTests: XCTestCase {
    func testBuiltInSuitesLoad() throws {
        let catalog = try builtInCatalog()
        for id in ["blink", "mathvista", "mmmu", "mmstar"] {
            let suite = try catalog.suite(id)
            XCTAssertNotNil(suite.manifest.source?.md5, id)
            XCTAssertFalse(suite.manifest.reference.isEmpty, id)
            XCTAssertTrue(FileManager.default.fileExists(atPath: suite.manifest.directory! + "/README.md"), "\(id) needs a README")
        }
        XCTAssertEqual(try catalog.suite("blink").headlineStatistic, .macroMean)
        XCTAssertThrowsError(try catalog.suite("nope")) { XCTAssertTrue("\($0)".contains("known suites")) }
    }

    /// A user adds a yes/no benchmark with a YAML file and no recompiling.
    func testUserSuiteFromAFolder() throws {
        let directory = try Fixtures.temporaryDirectory(for: self)
        let suiteDirectory = directory.appendingPathComponent("my-yesno")
        try FileManager.default.createDirectory(at: suiteDirectory, withIntermediateDirectories: true)
        try """
            id: my-yesno
            title: My yes/no probe
            group: perception
            split: test
            columns:
              required: [index, question, answer]
            prompt:
              version: 1
              template: "{question} Answer yes or no."
            scorer: yes_no
            """.write(to: suiteDirectory.appendingPathComponent("suite.yaml"), atomically: true, encoding: .utf8)
        let catalog = try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory, userDirectories: [directory])
        let suite = try catalog.suite("my-yesno")
        let items = try loadItems([["index": 1, "question": "Is there a dog?", "answer": "yes"],
                                   ["index": 2, "question": "Is it red?", "answer": "No"]], suite: suite, test: self)
        XCTAssertEqual(suite.render(items[0]).last?.renderedText, "Is there a dog? Answer yes or no.")
        let metrics = scoreRaw(suite, items: items, predictions: ["1": "Yes, there is.", "2": "Yes."])
        XCTAssertEqual(metrics.score, 50)
        XCTAssertThrowsError(try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory, userDirectories: [Fixtures.suitesDirectory])) {
            XCTAssertTrue("\($0)".contains("defined twice"))
        }
    }

    func testBadManifestsAreReportedWithTheFile() throws {
        let directory = try Fixtures.temporaryDirectory(for: self).appendingPathComponent("bad")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let url = directory.appendingPathComponent("suite.yaml")
        for (yaml, needle) in [
            ("id: x\nscorer: multiple_choice\n", "prompt"),
            ("id: x\nscorer: nope\nprompt:\n  version: 1\n  template: q\n", "scorer 'nope'"),
            ("id: X Y\nscorer: yes_no\nprompt:\n  version: 1\n  template: q\n", "id"),
            ("id: x\nscorer: yes_no\nheadline: macro_mean\nprompt:\n  version: 1\n  template: q\n", "stratum"),
            ("id: x\nscorer: yes_no\nprompt:\n  version: 1\n  template: \"[[{q}\"\n", "template"),
        ] {
            try yaml.write(to: url, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try SuiteCatalog.loadDirectory(directory)) { error in
                XCTAssertTrue("\(error)".contains(needle), "\(error)")
            }
        }
    }

    func testPromptTemplateOptionalSections() throws {
        let template = try PromptTemplate("[[Hint: {hint}\n]]Q: {question}[[ ({unit})]]{{literal}}")
        XCTAssertEqual(template.render(["question": "why", "hint": ""]), "Q: why{literal}")
        XCTAssertEqual(template.render(["question": "why", "hint": "h", "unit": "cm"]), "Hint: h\nQ: why (cm){literal}")
        XCTAssertEqual(template.variables, ["hint", "question", "unit"])
        XCTAssertThrowsError(try PromptTemplate("]]"))
        XCTAssertThrowsError(try PromptTemplate("{bad name}"))
    }

    // MARK: Prompt snapshots (guard against silent prompt drift)

    static let image = ImageRef(sha256: String(repeating: "ab", count: 32), byteCount: 10, origin: "t")

    func renderSnapshot(_ messages: [Message]) -> String {
        messages.map { message in
            "[\(message.role.rawValue)]\n" + message.content.map { part in
                switch part {
                case .text(let text): return text
                case .image(let ref): return "<image \(ref.sha256.prefix(8))>"
                }
            }.joined(separator: "\n")
        }.joined(separator: "\n")
    }

    func testPromptSnapshots() throws {
        let catalog = try builtInCatalog()
        let mcq = Item(id: "1", question: "Which option describes the object relationship?", hint: "Look at the table.",
                       options: [AnswerOption(label: "A", text: "on the book"), AnswerOption(label: "B", text: "beneath the cat")],
                       answers: ["A"], category: "coarse perception", images: [Self.image])
        assertSnapshot(renderSnapshot(try catalog.suite("mmstar").render(mcq)), named: "mmstar")
        var blink = mcq
        blink.hint = nil
        blink.question = "Which point is closer to the camera?"
        blink.options = [AnswerOption(label: "A", text: "Point A"), AnswerOption(label: "B", text: "Point B")]
        blink.images = [Self.image, Self.image]
        assertSnapshot(renderSnapshot(try catalog.suite("blink").render(blink)), named: "blink")
        var mmmu = mcq
        mmmu.hint = nil
        mmmu.question = "<image 1> What is the BCR in the low endemic area?"
        mmmu.metadata["question_type"] = .string("multiple-choice")
        assertSnapshot(renderSnapshot(try catalog.suite("mmmu").render(mmmu)), named: "mmmu-multiple-choice")
        mmmu.options = []
        mmmu.metadata["question_type"] = .string("open")
        assertSnapshot(renderSnapshot(try catalog.suite("mmmu").render(mmmu)), named: "mmmu-open")
        let vista = Item(id: "2", question: "What is the value of x?", options: [], answers: ["1.2"],
                         images: [Self.image],
                         metadata: ["question_type": .string("free_form"), "answer_type": .string("float"),
                                    "precision": .number(1), "unit": .string("cm")])
        assertSnapshot(renderSnapshot(try catalog.suite("mathvista").render(vista)), named: "mathvista-float")
        var vistaChoice = vista
        vistaChoice.options = [AnswerOption(label: "A", text: "145°"), AnswerOption(label: "B", text: "150°")]
        vistaChoice.metadata = ["question_type": .string("multi_choice"), "answer_type": .string("text")]
        assertSnapshot(renderSnapshot(try catalog.suite("mathvista").render(vistaChoice)), named: "mathvista-choice")
    }
}
