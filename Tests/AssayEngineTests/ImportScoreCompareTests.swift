import AssayCore
import AssayEngine
import AssayReport
import AssayStore
import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

/// import → score → compare on real published predictions, and the import's bad-input contract.
final class ImportScoreCompareTests: XCTestCase {
    var directory: URL!
    var store: Store!
    var catalog: SuiteCatalog!

    override func setUpWithError() throws {
        directory = try Fixtures.temporaryDirectory(for: self)
        store = try Store(path: directory.appendingPathComponent("assay.sqlite").path)
        catalog = try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory)
    }

    func file(_ name: String, _ text: String) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    /// BLINK items and one model's saved predictions as JSONL files.
    func blinkFiles(model: String) throws -> (items: URL, predictions: URL) {
        let folder = try Fixtures.require("benchmarks/blink")
        let answers = try Fixtures.readJSON(folder.appendingPathComponent("val_answers.json")) as! [String: String]
        let items = directory.appendingPathComponent("blink_items.jsonl")
        if !FileManager.default.fileExists(atPath: items.path) {
            try Fixtures.writeJSONL(answers.keys.sorted().map { id in
                ["index": id, "answer": answers[id]!, "category": id.dropFirst(4).split(separator: "_").dropLast().joined(separator: "_")]
            }, to: items)
        }
        let predictions = try Fixtures.readJSON(folder.appendingPathComponent("saved_val_predictions/\(model).json")) as! [String: String]
        let url = directory.appendingPathComponent("\(model).jsonl")
        try Fixtures.writeJSONL(predictions.keys.sorted().map { ["index": $0, "prediction": predictions[$0]!] }, to: url)
        return (items, url)
    }

    func importBLINK(_ model: String, run: String) throws {
        let files = try blinkFiles(model: model)
        _ = try Importer.run(.init(suite: try catalog.suite("blink"), items: files.items, predictions: files.predictions,
                                   run: run, model: model, extracted: true), store: store)
        _ = try ScoringPass.score(run: run, store: store, catalog: catalog)
    }

    func testBLINKGPT4oAgainstLLaVA15() throws {
        try importBLINK("GPT4o", run: "gpt4o")
        try importBLINK("llava_v1.5_7b", run: "llava7b")
        let expected = try Fixtures.readJSON(try Fixtures.require("benchmarks/blink/EXPECTED_independent_rescore.json")) as! [String: [String: Any]]
        let gpt = expected["GPT4o"]!["macro_avg_pct"] as! Double
        let llava = expected["llava_v1.5_7b"]!["macro_avg_pct"] as! Double
        let stored = try store.suiteResults(runID: try store.requireRun("gpt4o").id)
        XCTAssertEqual(stored.first?.metrics.score ?? 0, gpt, accuracy: 5e-5)

        let comparison = try Comparator.compare(base: "llava7b", candidate: "gpt4o", store: store, catalog: catalog)
        let blink = try XCTUnwrap(comparison.suites.first)
        XCTAssertEqual(blink.delta, gpt - llava, accuracy: 1e-3)
        XCTAssertEqual(blink.nPaired, 1901)
        XCTAssertTrue(blink.ci95.contains(blink.delta), "\(blink.ci95)")
        XCTAssertLessThan(try XCTUnwrap(blink.pValue), 0.001)
        XCTAssertEqual(comparison.averageDelta ?? 0, blink.delta, accuracy: 1e-12)
        // Seeded: the same comparison gives the same interval.
        let again = try Comparator.compare(base: "llava7b", candidate: "gpt4o", store: store, catalog: catalog)
        XCTAssertEqual(again.suites.first?.ci95, blink.ci95)

        let itself = try Comparator.compare(base: "gpt4o", candidate: "gpt4o", store: store, catalog: catalog)
        XCTAssertEqual(itself.suites.first?.delta, 0)
        XCTAssertEqual(itself.suites.first?.pValue, 1)
        XCTAssertEqual(itself.suites.first?.ci95, Interval(0, 0))
    }

    func testImportingTwiceLeavesOneResponsePerItem() throws {
        try importBLINK("GPT4o", run: "gpt4o")
        try importBLINK("GPT4o", run: "gpt4o")
        let run = try store.requireRun("gpt4o")
        XCTAssertEqual(try store.responseCount(runID: run.id), 1901)
        XCTAssertEqual(try store.runs().count, 1)
    }

    // MARK: Bad input: an error naming file and line, and the store untouched

    func mmstarItems() throws -> URL {
        try file("items.jsonl", """
            {"index": 0, "question": "q0", "answer": "A", "category": "math", "l2-category": "geometry"}
            {"index": 1, "question": "q1", "answer": "B", "category": "math", "l2-category": "geometry"}
            {"index": 2, "question": "q2", "answer": "C", "category": "math", "l2-category": "geometry"}

            """)
    }

    func assertImportFails(items: URL? = nil, predictions: String, line: Int?, file name: String? = nil, contains needle: String,
                           sourceLine: UInt = #line) throws {
        let items = try items ?? mmstarItems()
        let predictionsURL = try file("bad-\(UUID().uuidString).jsonl", predictions)
        let before = try snapshot()
        XCTAssertThrowsError(try Importer.run(.init(suite: try catalog.suite("mmstar"), items: items, predictions: predictionsURL, run: "good"),
                                              store: store), line: sourceLine) { error in
            let e = error as? DatasetError
            XCTAssertNotNil(e, "\(error)", line: sourceLine)
            XCTAssertEqual(e?.file, name ?? predictionsURL.path, line: sourceLine)
            XCTAssertEqual(e?.line, line, line: sourceLine)
            XCTAssertTrue("\(error)".contains(needle), "\(error)", line: sourceLine)
        }
        XCTAssertEqual(try snapshot(), before, "the store changed", line: sourceLine)
    }

    /// Everything stored, as text: runs, responses, scores.
    func snapshot() throws -> [String] {
        try store.runs().flatMap { run in
            [run.name] + (try store.responses(runID: run.id, suiteID: "mmstar").map { "\($0.itemID)=\($0.response.text)" })
                + (try store.suiteResults(runID: run.id).map { "\($0.suiteID):\($0.metrics.score)" })
        }
    }

    func testBadPredictionsAndItemsLeaveTheStoreUntouched() throws {
        // A good run first, so there is something to keep.
        let items = try mmstarItems()
        _ = try Importer.run(.init(suite: try catalog.suite("mmstar"), items: items,
                                   predictions: try file("good.jsonl", "{\"index\": 0, \"prediction\": \"A\"}\n{\"index\": 1, \"prediction\": \"The answer is C\"}\n"),
                                   run: "good"), store: store)
        _ = try ScoringPass.score(run: "good", store: store, catalog: catalog)

        try assertImportFails(predictions: "{\"index\": 0, \"prediction\": \"B\"}\nthis is not json\n", line: 2, contains: "not a JSON object")
        try assertImportFails(predictions: "{\"index\": 0, \"prediction\": \"B\"}\n{\"index\": 9, \"prediction\": \"B\"}\n", line: 2, contains: "'9' is not an item")
        try assertImportFails(predictions: "{\"index\": 0, \"prediction\": \"B\"}\n{\"index\": \"0\", \"prediction\": \"C\"}\n", line: 2, contains: "duplicate index '0'")
        try assertImportFails(predictions: "{\"index\": 0, \"prediction\": \"B\"}\n{\"index\": 1, \"prediction\": \"\u{FFFD}\"}\n" + String(decoding: [0xff], as: UTF8.self),
                              line: 3, contains: "not a JSON")
        let latin1 = directory.appendingPathComponent("latin1.jsonl")
        try (Data("{\"index\": 0, \"prediction\": \"B\"}\n".utf8) + Data([0x7B, 0x22, 0xE9, 0x22, 0x7D, 0x0A])).write(to: latin1)
        XCTAssertThrowsError(try Importer.run(.init(suite: try catalog.suite("mmstar"), items: items, predictions: latin1, run: "good"), store: store)) {
            XCTAssertEqual(($0 as? DatasetError)?.line, 2)
            XCTAssertTrue("\($0)".contains("UTF-8"))
        }
        // Items with a missing required column, and with undecodable base64.
        let missing = try file("MMStar.tsv", "index\tquestion\tanswer\tl2-category\n0\tq\tA\tg\n")
        try assertImportFails(items: missing, predictions: "{\"index\": 0, \"prediction\": \"B\"}\n", line: 1, file: missing.path, contains: "'category'")
        let badImage = try file("MMStar2.tsv", "index\tquestion\tanswer\tcategory\tl2-category\timage\n0\tq\tA\tc\tg\t%%%%-not-base64-%%%%-not-base64-%%%%-not-base64-%%%%-not-base64-%%%%\n")
        try assertImportFails(items: badImage, predictions: "{\"index\": 0, \"prediction\": \"B\"}\n", line: 2, file: badImage.path, contains: "base64")

        let run = try store.requireRun("good")
        XCTAssertEqual(try store.suiteResults(runID: run.id).first?.metrics.score ?? -1, 50, accuracy: 1e-9)
        XCTAssertEqual(try store.suiteResults(runID: run.id).first?.metrics.missing, 1)
    }

    func testRescoringWithReextractUsesTheRawText() throws {
        let items = try mmstarItems()
        let predictions = try file("p.jsonl", "{\"index\": 0, \"prediction\": \"I pick (A).\", \"extraction\": \"B\"}\n")
        _ = try Importer.run(.init(suite: try catalog.suite("mmstar"), items: items, predictions: predictions, run: "r"), store: store)
        XCTAssertEqual(try ScoringPass.score(run: "r", store: store, catalog: catalog).first?.metrics.score, 0)
        XCTAssertEqual(try ScoringPass.score(run: "r", store: store, catalog: catalog, reextract: true).first?.metrics.score, 100)
        let scores = try store.scores(runID: try store.requireRun("r").id, suiteID: "mmstar")
        XCTAssertEqual(scores.first?.scorerVersion, "multiple_choice/1")
        XCTAssertEqual(scores.first?.extraction.answer, "A")
    }

    func testCompareNeedsScores() throws {
        let items = try mmstarItems()
        _ = try Importer.run(.init(suite: try catalog.suite("mmstar"), items: items,
                                   predictions: try file("a.jsonl", "{\"index\": 0, \"prediction\": \"A\"}\n"), run: "a"), store: store)
        _ = try Importer.run(.init(suite: try catalog.suite("mmstar"), items: items,
                                   predictions: try file("b.jsonl", "{\"index\": 0, \"prediction\": \"B\"}\n"), run: "b"), store: store)
        XCTAssertThrowsError(try Comparator.compare(base: "a", candidate: "b", store: store, catalog: catalog)) {
            XCTAssertTrue("\($0)".contains("assay score"), "\($0)")
        }
    }
}
