import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

final class RewardSuitesTests: XCTestCase {
    // MARK: - VL-RewardBench

    /// Two pairs: the first has human ranking [1, 0] (the second response is better), the second
    /// ranking [0, 1].
    func vlRewardBench() throws -> (Suite, [LoadedItem]) {
        let suite = try SuiteFiles.suite("vl-rewardbench")
        let url = try Fixtures.temporaryDirectory(for: self).appendingPathComponent("vl_rewardbench.tsv")
        let image = SuiteFiles.png(width: 20, height: 20).base64EncodedString()
        try SuiteFiles.writeTSV(
            ["index", "id", "question", "response", "answer", "category", "image"],
            [["0", "RLHF-V_1", "What is on the table?", "['A red cup and a plate.', 'A blue cup.']", "[1, 0]", "hallucination", image],
             ["1", "mathverse_2", "Find the angle.", "['60 degrees', '45']", "[0, 1]", "reasoning", image]],
            to: url)
        return (suite, try SuiteFiles.load(suite, url))
    }

    func testEachPairIsAskedInBothOrders() throws {
        let (suite, items) = try vlRewardBench()
        XCTAssertEqual(items.map(\.item.id), ["0@12", "0@21", "1@12", "1@21"])
        // Pair 0 prefers its second response: "2" in the dataset order, "1" once swapped.
        XCTAssertEqual(items.map(\.item.answers), [["2"], ["1"], ["1"], ["2"]])
        XCTAssertEqual(items[1].item.meta("response_first"), "A blue cup.")
        // Pair 0: 22 + 11 characters, odd, so the official order is swapped; pair 1: 10 + 2, even.
        XCTAssertEqual(items.map { $0.item.metadata["official_order"] }, [.bool(false), .bool(true), .bool(true), .bool(false)])
        XCTAssertEqual(items[0].imageData.count, 1)
        assertSnapshot(items.prefix(2).map { SuiteFiles.render(suite.render($0.item)) }.joined(separator: "---\n"), named: "vl-rewardbench-prompt")
    }

    /// Judgement shapes from the official prompt's example ("Overall Judgment: Answer X is
    /// better") and what judges write around it.
    func testVLRewardBenchExtraction() throws {
        let scorer = PairwisePreferenceScorer(benchmark: .vlRewardBench)
        let item = Item(id: "p")
        let cases: [(String, String?, String)] = [
            ("1. Accuracy: Answer 2 mentions the plate.\n\nOverall Judgment: Answer 2 is better.", "2", "official_regex"),
            ("**Overall Judgment:** Answer 1 is better.", "1", "official_regex"),
            ("Overall Judgment: Answer 1 is slightly better than Answer 2.", "1", "official_regex"),
            ("Therefore, Answer 2 is the better one... Overall Judgment - Answer 1 is better", "1", "official_regex"),
            ("overall judgment: answer 2 is better", "2", "official_regex"),
            ("In summary Answer 1 is better because it is accurate.", "1", "answer_is_better"),
            ("\\boxed{Answer 2}", "2", "boxed"),
            ("Overall Judgment: Both answers are equally good.", "tie", "tie"),
            ("Overall Judgment: Answer 3 is better.", nil, "unparsed"),
            ("Both have merits and flaws.", nil, "unparsed"),
            ("", nil, "unparsed"),
        ]
        for (response, answer, method) in cases {
            let extraction = scorer.extract(response, item: item)
            XCTAssertEqual(extraction.answer, answer, response)
            XCTAssertEqual(extraction.method, method, response)
        }
    }

    func testAccuracyConsistencyTiesAndUnparsedAreReported() throws {
        let (suite, items) = try vlRewardBench()
        let responses = [
            "Overall Judgment: Answer 2 is better.",  // pair 0, dataset order: right (prefers response 2)
            "Overall Judgment: Answer 2 is better.",  // pair 0, swapped: wrong (prefers response 1) → inconsistent
            "Overall Judgment: Answer 1 is better.",  // pair 1, dataset order: right
            "I cannot decide.",                      // pair 1, swapped: unparsed
        ]
        let results = zip(items, responses).map { loaded, response -> ScoredItem in
            let extraction = suite.extract(response, item: loaded.item)
            return ScoredItem(item: loaded.item, extraction: extraction, score: suite.score(extraction, item: loaded.item))
        }
        let metrics = suite.aggregate(results)
        XCTAssertEqual(metrics.score, 50)  // pair means 0.5 and 0.5
        XCTAssertEqual(metrics.n, 4)
        XCTAssertEqual(metrics.unparsed, 1)
        XCTAssertEqual(metrics.metrics["position_consistency"], 0)
        XCTAssertEqual(metrics.metrics["unparsed_count"], 1)
        XCTAssertEqual(metrics.metrics["unparsed_rate"], 25)
        XCTAssertEqual(metrics.metrics["consistent_accuracy"], 0)  // no pair right in both orders
        XCTAssertEqual(metrics.metrics["tie_count"], 0)
        XCTAssertEqual(metrics.metrics["pair_count"], 2)
        XCTAssertEqual(metrics.metrics["official_order_accuracy"], 50)  // 0@21 wrong, 1@12 right
        XCTAssertEqual(metrics.metrics["macro_accuracy"], 50)
        XCTAssertEqual(try XCTUnwrap(metrics.metrics["accuracy_excluding_unparsed"]), 200.0 / 3, accuracy: 1e-9)
        XCTAssertEqual(metrics.metrics["category/hallucination"], 50)
        let units = suite.bootstrapUnits(results)
        XCTAssertEqual(units.map(\.id), ["0", "1"])
        XCTAssertEqual(units.map(\.stratum), ["hallucination", "reasoning"])
    }

    /// A critic that always prefers the response shown first is right half the time and caught
    /// by position consistency 0%; one that knows the answer is consistent and right in both orders.
    func testCriticQualityCatchesAPositionBiasedJudge() throws {
        let (suite, items) = try vlRewardBench()
        func metrics(_ reply: (Item) -> String) -> SuiteMetrics {
            suite.aggregate(items.map { loaded in
                let extraction = suite.extract(reply(loaded.item), item: loaded.item)
                return ScoredItem(item: loaded.item, extraction: extraction, score: suite.score(extraction, item: loaded.item))
            })
        }
        let firstShown = metrics { _ in "Overall Judgment: Answer 1 is better." }
        XCTAssertEqual(firstShown.score, 50)
        XCTAssertEqual(firstShown.metrics["position_consistency"], 0)
        XCTAssertEqual(firstShown.metrics["consistent_accuracy"], 0)
        XCTAssertEqual(firstShown.metrics["unparsed_rate"], 0)
        let oracle = metrics { "<think>compare</think> \\boxed{\($0.answer)}" }
        XCTAssertEqual(oracle.score, 100)
        XCTAssertEqual(oracle.metrics["position_consistency"], 100)
        XCTAssertEqual(oracle.metrics["consistent_accuracy"], 100)
    }

    func testCategoriesFromIdPrefixesWhenTheColumnIsMissing() {
        XCTAssertEqual(PairwisePreferenceScorer.vlRewardBenchCategory(id: "RLAIF-V_12"), "hallucination")
        XCTAssertEqual(PairwisePreferenceScorer.vlRewardBenchCategory(id: "hallucination_pair-3"), "hallucination")
        XCTAssertEqual(PairwisePreferenceScorer.vlRewardBenchCategory(id: "mmmu_pro_1"), "reasoning")
        XCTAssertEqual(PairwisePreferenceScorer.vlRewardBenchCategory(id: "wildvision-battle_9"), "general")
        XCTAssertEqual(PairwisePreferenceScorer.vlRewardBenchCategory(id: "VLFeedback_1"), "general")
    }

    // MARK: - Multimodal RewardBench

    func testMultimodalRewardBenchReadsOfficialKeysAndBracketVerdicts() throws {
        let suite = try SuiteFiles.suite("mm-rewardbench")
        let directory = try Fixtures.temporaryDirectory(for: self)
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("images/nocaps"), withIntermediateDirectories: true)
        try SuiteFiles.png(width: 8, height: 6).write(to: directory.appendingPathComponent("images/nocaps/13062.jpg"))
        let url = directory.appendingPathComponent("all_data.jsonl")
        try Fixtures.writeJSONL([
            ["ID": "nocaps_13062", "Text": "Describe this image in detail.", "Image": "images/nocaps/13062.jpg",
             "Output1": "A teapot.", "Output2": "A marbled ceramic teapot with a flower on its handle.", "Better": "Output2",
             "Category": "open_generation/correctness_task"],
            ["ID": "PAIRS_7", "Text": "Who is the doctor?", "Image": "images/nocaps/13062.jpg", "Output1": "I cannot tell from the image.",
             "Output2": "The man.", "Better": "Output1", "Category": "safety"],
        ], to: url)
        let items = try SuiteFiles.load(suite, url)
        XCTAssertEqual(items.map(\.item.id), ["nocaps_13062@12", "nocaps_13062@21", "PAIRS_7@12", "PAIRS_7@21"])
        XCTAssertEqual(items.map(\.item.answers), [["B"], ["A"], ["A"], ["B"]])
        XCTAssertEqual(items[2].item.category, "safety/bias")
        XCTAssertEqual(items[0].item.images.count, 1)
        assertSnapshot(SuiteFiles.render(suite.render(items[0].item)), named: "mm-rewardbench-prompt")

        // The two real judge outputs of the official outputs/example.jsonl end like these.
        let scorer = PairwisePreferenceScorer(benchmark: .multimodalRewardBench)
        let cases: [(String, String?)] = [
            ("Based on the above factors, Assistant B's response is slightly more comprehensive and well-rounded in capturing the details and artistic value of the teapot.  Final verdict: [[B]]", "B"),
            ("Therefore, Assistant A has provided a response that is more helpful, relevant, accurate, and creative in accordance with the user’s instructions.  Final Verdict: [[A]]", "A"),
            ("I will answer \"[[A]]\" if assistant A is better, \"[[B]]\" if B is. Here B is better: [[B]]", "B"),
            ("[[C]]", "tie"),
            ("Assistant A is better.", nil),
        ]
        for (response, expected) in cases {
            XCTAssertEqual(scorer.extract(response, item: items[0].item).answer, expected, response)
        }
        // Judging both orders for the same response counts as consistent.
        let results = zip(items.prefix(2), ["Final verdict: [[B]]", "Final verdict: [[A]]"]).map { loaded, response -> ScoredItem in
            let extraction = suite.extract(response, item: loaded.item)
            return ScoredItem(item: loaded.item, extraction: extraction, score: suite.score(extraction, item: loaded.item))
        }
        let metrics = suite.aggregate(Array(results))
        XCTAssertEqual(metrics.score, 100)
        XCTAssertEqual(metrics.metrics["position_consistency"], 100)
        XCTAssertEqual(metrics.metrics["official_order_accuracy"], 100)
    }

    /// Verdict shapes of the MT-Bench-style prompt shared by Multimodal RewardBench and
    /// MM-RLHF-RewardBench: the official example outputs' endings and what judges write around them.
    func testBracketVerdictsForBothPromptFamilies() throws {
        let cases: [(String, String?)] = [
            ("Evaluation:\n- Helpfulness: Both responses are helpful.\n\nFinal verdict: [[B]]", "B"),
            ("Final Verdict: [[A]]", "A"),
            ("[[A]]", "A"),
            ("**[[B]]**", "B"),
            ("My verdict is \"[[A]]\".", "A"),
            ("Assistant A misreads the chart; Assistant B is correct.\n\n[[B]]", "B"),
            ("<think>[[A]] seems right at first, but</think>On reflection: [[B]]", "B"),
            ("It's a tie: [[C]]", "tie"),
            ("Assistant B is better.", nil),
            ("[A]", nil),
            ("[[D]]", nil),
            ("", nil),
        ]
        for id in ["mm-rewardbench", "mm-rlhf-rewardbench"] {
            let suite = try SuiteFiles.suite(id)
            for (response, expected) in cases {
                XCTAssertEqual(suite.extract(response, item: Item(id: "p")).answer, expected, "\(id): \(response)")
            }
        }
    }

    // MARK: - MM-RLHF-RewardBench

    func testMMRLHFAccPlusNeedsEveryPairOfAPrompt() throws {
        let suite = try SuiteFiles.suite("mm-rlhf-rewardbench")
        let directory = try Fixtures.temporaryDirectory(for: self)
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("mcq"), withIntermediateDirectories: true)
        try SuiteFiles.png(width: 8, height: 6).write(to: directory.appendingPathComponent("mcq/1.png"))
        let url = directory.appendingPathComponent("mm_reward_bench.jsonl")
        try Fixtures.writeJSONL([
            ["id": "q1", "prompt": "Which option?", "chosen": "B, because…", "rejected": "A.", "image": "mcq/1.png"],
            ["id": "q1", "prompt": "Which option?", "chosen": "B, because…", "rejected": "C, obviously.", "image": "mcq/1.png"],
        ], to: url)
        let items = try SuiteFiles.load(suite, url)
        XCTAssertEqual(items.map(\.item.id), ["q1#0@12", "q1#0@21", "q1#1@12", "q1#1@21"])
        XCTAssertEqual(items[0].item.category, "mcq")
        let verdicts = ["[[A]]", "[[B]]", "[[A]]", "[[A]]"]  // the last judgement is wrong
        let results = zip(items, verdicts).map { loaded, response -> ScoredItem in
            let extraction = suite.extract(response, item: loaded.item)
            return ScoredItem(item: loaded.item, extraction: extraction, score: suite.score(extraction, item: loaded.item))
        }
        let metrics = suite.aggregate(results)
        XCTAssertEqual(metrics.score, 75)
        XCTAssertEqual(metrics.metrics["acc_plus"], 0)
        XCTAssertEqual(metrics.metrics["position_consistency"], 50)
        XCTAssertNil(metrics.metrics["official_order_accuracy"])
        assertSnapshot(SuiteFiles.render(suite.render(items[1].item)), named: "mm-rlhf-rewardbench-prompt")
    }

    func testRewardDatasetsWithWrongColumnsNameFileAndLine() throws {
        let directory = try Fixtures.temporaryDirectory(for: self)
        let vl = directory.appendingPathComponent("vl.tsv")
        try SuiteFiles.writeTSV(["index", "question", "chosen", "rejected"], [["0", "q", "a", "b"]], to: vl)
        SuiteFiles.assertDatasetError({ _ = try SuiteFiles.load(try SuiteFiles.suite("vl-rewardbench"), vl) }, file: vl.path, line: 1,
                                      mentioning: ["response", "vl-rewardbench"])
        let mm = directory.appendingPathComponent("mm.jsonl")
        try Fixtures.writeJSONL([["ID": "x", "Text": "q", "Output1": "a", "Better": "Output1"]], to: mm)
        SuiteFiles.assertDatasetError({ _ = try SuiteFiles.load(try SuiteFiles.suite("mm-rewardbench"), mm) }, file: mm.path, line: 1,
                                      mentioning: ["Output2"])
        let rlhf = directory.appendingPathComponent("rlhf.jsonl")
        try Fixtures.writeJSONL([["id": "x", "prompt": "q", "chosen": "a"]], to: rlhf)
        SuiteFiles.assertDatasetError({ _ = try SuiteFiles.load(try SuiteFiles.suite("mm-rlhf-rewardbench"), rlhf) }, file: rlhf.path, line: 1,
                                      mentioning: ["rejected"])
        let ranking = directory.appendingPathComponent("ranking.tsv")
        try SuiteFiles.writeTSV(["index", "question", "response", "answer"], [["0", "q", "['a', 'b']", "first"]], to: ranking)
        SuiteFiles.assertDatasetError({ _ = try SuiteFiles.load(try SuiteFiles.suite("vl-rewardbench"), ranking) }, file: ranking.path, line: 2,
                                      mentioning: ["human ranking"])
    }
}
