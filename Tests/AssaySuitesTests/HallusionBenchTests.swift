import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

final class HallusionBenchTests: XCTestCase {
    typealias Record = [String: Any]

    func fixture(_ name: String) throws -> [Record] {
        let url = try Fixtures.require("benchmarks/hallusionbench/\(name)")
        return try XCTUnwrap(try Fixtures.readJSON(url) as? [Record])
    }

    static func key(_ record: Record) -> String {
        ["category", "subcategory", "set_id", "figure_id", "question_id"].map { "\(record[$0] ?? "")" }.joined(separator: "_")
    }

    /// An official record as a VLMEvalKit-style row: ids only in the index (fields 3–5), as
    /// VLMEvalKit's `Hallusion_rating` parses them, and the official "1"/"0" gold.
    static func row(_ record: Record, gold: String? = nil) -> Record {
        let ids = ["set_id", "figure_id", "question_id"].map { "\(record[$0] ?? "")" }
        return [
            "index": (["hb", "\(record["category"] ?? "")", "\(record["subcategory"] ?? "")"] + ids).joined(separator: "_"),
            "question": record["question"] ?? "",
            "answer": gold ?? "\(record["gt_answer"] ?? "")",
            "category": record["category"] ?? "",
            "l2-category": record["subcategory"] ?? "",
        ]
    }

    func testGoldAnswersGiveFullAAccFAccQAcc() throws {
        let suite = try SuiteHarness.suite("hallusionbench")
        let items = try SuiteHarness.items(suite, rows: try fixture("HallusionBench.json").map { Self.row($0) }, test: self)
        XCTAssertEqual(items.count, suite.manifest.expectedItems)
        let metrics = SuiteHarness.metrics(suite, items) { $0.answer == "Yes" ? "Yes." : "No." }
        XCTAssertEqual(metrics.metrics["aAcc"], 100)
        XCTAssertEqual(metrics.metrics["fAcc"], 100)
        XCTAssertEqual(metrics.metrics["qAcc"], 100)
        XCTAssertEqual(metrics.score, 100, accuracy: 1e-9)
        XCTAssertEqual(metrics.unparsed, 0)
    }

    /// The 254 sample predictions the authors ship (GPT-4V answers to the first release),
    /// scored with the yes/no rule and the official grouping. Expected numbers were computed
    /// independently with this re-implementation of VLMEvalKit's `YOrN_Extraction` and the
    /// official `utils.py` (`get_eval_all`, `get_eval_fig`, `get_eval_pair_all`), run on the
    /// fixture files:
    ///
    ///     key = (category, subcategory, set_id, figure_id, question_id); gold = HallusionBench.json[key]
    ///     extracted = YOrN_Extraction(model_prediction)        # process_punctuation, yes xor no
    ///     correct = extracted == ("Yes" if gold == "1" else "No")
    ///     aAcc = mean(correct)
    ///     fAcc = share of groups category_subcategory_set_figure (VS with figure 0 skipped) all correct
    ///     qAcc = share of groups category_subcategory_set_question all correct
    ///
    /// Output: n=254 correct=131 unknown=49; figures=69 correct=14; pairs=117 correct=23;
    /// aAcc=51.574803 fAcc=20.289855 qAcc=19.658120 mean=30.507593.
    func testSamplePredictionsMatchTheOfficialGrouping() throws {
        let suite = try SuiteHarness.suite("hallusionbench")
        let gold = Dictionary(try fixture("HallusionBench.json").map { (Self.key($0), "\($0["gt_answer"] ?? "")") },
                              uniquingKeysWith: { first, _ in first })
        let sample = try fixture("HallusionBench_result_sample.json")
        XCTAssertEqual(sample.count, 254)
        var predictions: [String: String] = [:]
        var rows: [Record] = []
        for record in sample {
            let answer = try XCTUnwrap(gold[Self.key(record)], Self.key(record))
            let row = Self.row(record, gold: answer)
            rows.append(row)
            predictions["\(row["index"] ?? "")"] = record["model_prediction"] as? String
        }
        let items = try SuiteHarness.items(suite, rows: rows, test: self)
        let metrics = SuiteHarness.metrics(suite, items) { predictions[$0.id] ?? "" }
        XCTAssertEqual(metrics.unparsed, 49)
        XCTAssertEqual(try XCTUnwrap(metrics.metrics["aAcc"]), 131.0 / 254 * 100, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(metrics.metrics["fAcc"]), 14.0 / 69 * 100, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(metrics.metrics["qAcc"]), 23.0 / 117 * 100, accuracy: 1e-9)
        XCTAssertEqual(metrics.metrics["figures_count"], 69)
        XCTAssertEqual(metrics.metrics["question_pairs_count"], 117)
        XCTAssertEqual(metrics.score, 30.507593, accuracy: 1e-6)
        XCTAssertEqual(metrics.score, (131.0 / 254 + 14.0 / 69 + 23.0 / 117) / 3 * 100, accuracy: 1e-9)
    }

    func testFigureAccuracySkipsVisualSupplementQuestionsWithoutAFigure() throws {
        let suite = try SuiteHarness.suite("hallusionbench")
        let rows: [Record] = [
            // VS set 0: question 0 without a figure (wrong), then with figure 1 (right).
            ["index": "a", "set_id": 0, "figure_id": 0, "question_id": 0, "question": "Q0", "answer": "Yes", "category": "VS", "l2-category": "chart"],
            ["index": "b", "set_id": 0, "figure_id": 1, "question_id": 0, "question": "Q0", "answer": "No", "category": "VS", "l2-category": "chart"],
            // VD set 0 figure 0: two questions, one wrong.
            ["index": "c", "set_id": 0, "figure_id": 0, "question_id": 0, "question": "Q1", "answer": "Yes", "category": "VD", "l2-category": "chart"],
            ["index": "d", "set_id": 0, "figure_id": 0, "question_id": 1, "question": "Q2", "answer": "Yes", "category": "VD", "l2-category": "chart"],
        ]
        let items = try SuiteHarness.items(suite, rows: rows, test: self)
        let responses = ["a": "No", "b": "No", "c": "Yes", "d": "No"]
        let metrics = SuiteHarness.metrics(suite, items) { responses[$0.id] ?? "" }
        XCTAssertEqual(metrics.metrics["aAcc"], 50)
        // Figures: VS/chart/0/1 (right), VD/chart/0/0 (one wrong) → 50; VS figure 0 not a figure.
        XCTAssertEqual(metrics.metrics["figures_count"], 2)
        XCTAssertEqual(metrics.metrics["fAcc"], 50)
        // Question pairs: VS/0/0 (a wrong) ✗, VD/0/0 ✓, VD/0/1 ✗ → 1 of 3.
        XCTAssertEqual(try XCTUnwrap(metrics.metrics["qAcc"]), 100.0 / 3, accuracy: 1e-9)
        XCTAssertEqual(metrics.score, (50 + 50 + 100.0 / 3) / 3, accuracy: 1e-9)
    }

    /// Real answers from the authors' sample predictions (HallusionBench_result_sample.json).
    func testExtractionOfRealSampleAnswers() throws {
        let suite = try SuiteHarness.suite("hallusionbench")
        let item = Item(id: "x", question: "?", answers: ["Yes"], category: "VD", subcategory: "illusion",
                        metadata: ["set_id": .string("0"), "figure_id": .string("0"), "question_id": .string("0")])
        let cases: [(String, String?)] = [
            ("Yes, the right orange circle appears to be the same size as the left orange circle.", "Yes"),
            ("No, the right and left orange circles appear to be the same size.", "No"),
            (" Yes, the grey box on the right appears to be the same size as the grey box on the left.", "Yes"),
            ("No, there are no grey points in the image you provided. The image contains only red rectangles arranged in a grid pattern.", "No"),
            ("The vertical line and the horizontal line appear to be of equal length.", nil),
            ("The colors on tiles A and B in the given image appear to be the same.", nil),
            ("the value of x is 5, not smaller than 5.", nil),
            ("Yes, the sum of the interior angles of a triangle always equals 180 degrees. So, angleA + angleB +angleC = 180.", "Yes"),
            ("angleA + angleB + angleC is not less than 180°; it is exactly 180°.", nil),
            ("No, the images are not in the correct positive sequene.", "No"),
            ("Yes, the images are in the correct order for the sequence described: \"The man opens the door.", "Yes"),
            ("These arcs are from the \"Torsion dystonia illusion,\" they are typically derived from circles with the same diameter.", nil),
        ]
        for (response, expected) in cases {
            XCTAssertExtraction(suite.extract(response, item: item), expected, response)
        }
    }

    func testExplicitIdColumnsAreUsedWhenPresent() throws {
        let suite = try SuiteHarness.suite("hallusionbench")
        let rows: [Record] = [["index": 17, "set_id": 3, "figure_id": 2, "question_id": 1, "question": "Is it?",
                               "answer": "No", "category": "VD", "l2-category": "map"]]
        let item = try XCTUnwrap(try SuiteHarness.items(suite, rows: rows, test: self).first)
        XCTAssertEqual(HallusionBenchScorer.figureKey(item), "VD_map_3_2")
        XCTAssertEqual(HallusionBenchScorer.questionKey(item), "VD_map_3_1")
        XCTAssertEqual(item.answers, ["No"])
    }

    func testRowWithoutIdsIsADatasetErrorNamingFileAndLine() throws {
        let suite = try SuiteHarness.suite("hallusionbench")
        let rows: [Record] = [
            ["index": "hb_VD_map_0_0_0", "question": "Is it?", "answer": "Yes", "category": "VD", "l2-category": "map"],
            ["index": "42", "question": "Is it?", "answer": "Yes", "category": "VD", "l2-category": "map"],
        ]
        let error = try XCTUnwrap(try SuiteHarness.datasetError(suite, rows: rows, test: self))
        XCTAssertEqual(error.line, 2)
        XCTAssertTrue(error.description.contains("bad.jsonl:2"), error.description)
    }

    func testMissingCategoryColumnIsADatasetError() throws {
        let suite = try SuiteHarness.suite("hallusionbench")
        let rows: [Record] = [["index": "hb_VD_map_0_0_0", "question": "Is it?", "answer": "Yes", "category": "VD"]]
        let error = try XCTUnwrap(try SuiteHarness.datasetError(suite, rows: rows, test: self))
        XCTAssertEqual(error.line, 1)
        XCTAssertTrue(error.message.contains("l2-category"), error.description)
    }

    func testPromptSnapshot() throws {
        let suite = try SuiteHarness.suite("hallusionbench")
        let rows: [Record] = [["index": "hb_VD_illusion_0_0_0", "question": "Is the right orange circle the same size as the left orange circle?",
                               "answer": "1", "category": "VD", "l2-category": "illusion", "image": SuiteHarness.image]]
        let item = try XCTUnwrap(try SuiteHarness.items(suite, rows: rows, test: self).first)
        assertSnapshot(SuiteHarness.transcript(suite.render(item)), named: "hallusionbench-prompt")
    }
}
