import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

final class POPETests: XCTestCase {
    static let samplings = ["random", "popular", "adversarial"]

    /// The three official COCO files merged the way VLMEvalKit's POPE.tsv is: one row per
    /// (image, question), its samplings comma-joined in `category`.
    func fixtureRows() throws -> (rows: [[String: Any]], labels: [String: [String]]) {
        var order: [String] = []
        var merged: [String: (question: String, label: String, splits: [String])] = [:]
        var labels: [String: [String]] = [:]
        for sampling in Self.samplings {
            let url = try Fixtures.require("benchmarks/pope/coco_pope_\(sampling).json")
            let text = try String(contentsOf: url, encoding: .utf8)
            for line in text.split(whereSeparator: \.isNewline) where !line.isEmpty {
                let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                let image = try XCTUnwrap(object["image"] as? String)
                let question = try XCTUnwrap(object["text"] as? String)
                let label = try XCTUnwrap(object["label"] as? String)
                let key = image + "\t" + question
                if merged[key] == nil {
                    order.append(key)
                    merged[key] = (question, label, [])
                }
                XCTAssertEqual(merged[key]?.label, label, "the same question has the same label in every sampling")
                merged[key]?.splits.append(sampling)
                labels[sampling, default: []].append(label)
            }
        }
        let rows: [[String: Any]] = order.enumerated().map { offset, key in
            let entry = merged[key]!
            return ["index": offset, "question": entry.question, "answer": entry.label == "yes" ? "Yes" : "No",
                    "category": entry.splits.joined(separator: ",")]
        }
        return (rows, labels)
    }

    func testFixtureMergesToVLMEvalKitsRowCount() throws {
        let suite = try SuiteHarness.suite("pope")
        let items = try SuiteHarness.items(suite, rows: try fixtureRows().rows, test: self)
        XCTAssertEqual(items.count, suite.manifest.expectedItems)
        XCTAssertEqual(items.count, 5127)
        // Every sampling keeps its 3,000 questions.
        for sampling in Self.samplings {
            XCTAssertEqual(items.filter { POPEScorer.splits(of: $0).contains(sampling) }.count, 3000, sampling)
        }
    }

    func testGoldAnswersScoreFullAccuracyAndF1OnEachSampling() throws {
        let suite = try SuiteHarness.suite("pope")
        let items = try SuiteHarness.items(suite, rows: try fixtureRows().rows, test: self)
        let metrics = SuiteHarness.metrics(suite, items) { $0.answer }
        for sampling in Self.samplings {
            XCTAssertEqual(metrics.metrics["\(sampling)/accuracy"], 100, sampling)
            XCTAssertEqual(metrics.metrics["\(sampling)/f1"], 100, sampling)
        }
        XCTAssertEqual(metrics.score, 100, accuracy: 1e-9)
        XCTAssertEqual(metrics.metrics["f1_mean"], 100)
        XCTAssertEqual(metrics.unparsed, 0)
    }

    func testAlwaysYesGivesWhatTheLabelBalanceImplies() throws {
        let suite = try SuiteHarness.suite("pope")
        let (rows, labels) = try fixtureRows()
        let items = try SuiteHarness.items(suite, rows: rows, test: self)
        let metrics = SuiteHarness.metrics(suite, items) { _ in "Yes, there is." }
        var f1s: [Double] = []
        for sampling in Self.samplings {
            let gold = try XCTUnwrap(labels[sampling])
            let positives = Double(gold.filter { $0 == "yes" }.count)
            let share = positives / Double(gold.count)
            // Every "yes" is a positive prediction: precision = share of yes, recall = 1.
            let f1 = 2 * share / (share + 1) * 100
            f1s.append(f1)
            XCTAssertEqual(try XCTUnwrap(metrics.metrics["\(sampling)/accuracy"]), share * 100, accuracy: 1e-9, sampling)
            XCTAssertEqual(try XCTUnwrap(metrics.metrics["\(sampling)/precision"]), share * 100, accuracy: 1e-9, sampling)
            XCTAssertEqual(try XCTUnwrap(metrics.metrics["\(sampling)/recall"]), 100, accuracy: 1e-9, sampling)
            XCTAssertEqual(try XCTUnwrap(metrics.metrics["\(sampling)/f1"]), f1, accuracy: 1e-9, sampling)
            XCTAssertEqual(try XCTUnwrap(metrics.metrics["\(sampling)/yes_ratio"]), 100, accuracy: 1e-9, sampling)
        }
        // The official files are balanced (1,500 yes of 3,000): accuracy 50, F1 2/3.
        XCTAssertEqual(try XCTUnwrap(metrics.metrics["random/f1"]), 200.0 / 3, accuracy: 1e-9)
        XCTAssertEqual(metrics.score, f1s.reduce(0, +) / 3, accuracy: 1e-9)
    }

    func testHeadlineIsTheMeanF1AndItsIntervalSurroundsIt() throws {
        let suite = try SuiteHarness.suite("pope")
        // random: 2 TP, 1 FP, 1 TN → P 2/3, R 1, F1 0.8; popular: 1 TP, 1 FN → F1 2/3.
        let rows: [[String: Any]] = [
            ["index": 1, "question": "Is there a dog in the image?", "answer": "Yes", "category": "random"],
            ["index": 2, "question": "Is there a cat in the image?", "answer": "Yes", "category": "random,popular"],
            ["index": 3, "question": "Is there a car in the image?", "answer": "No", "category": "random"],
            ["index": 4, "question": "Is there a bus in the image?", "answer": "No", "category": "random"],
            ["index": 5, "question": "Is there a cup in the image?", "answer": "Yes", "category": "popular"],
        ]
        let items = try SuiteHarness.items(suite, rows: rows, test: self)
        let answers = ["1": "Yes", "2": "Yes", "3": "Yes", "4": "No", "5": "No"]
        let results = SuiteHarness.scored(suite, items) { answers[$0.id] ?? "" }
        let metrics = suite.aggregate(results)
        XCTAssertEqual(try XCTUnwrap(metrics.metrics["random/f1"]), 80, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(metrics.metrics["popular/f1"]), 200.0 / 3, accuracy: 1e-9)
        XCTAssertEqual(metrics.score, (80 + 200.0 / 3) / 2, accuracy: 1e-9)
        let interval = Statistics.bootstrap(suite.bootstrapUnits(results), statistic: suite.headlineStatistic, resamples: 500)
        XCTAssertLessThanOrEqual(interval.lower * 100, metrics.score)
        XCTAssertGreaterThanOrEqual(interval.upper * 100, metrics.score)
    }

    func testUnparsedAnswersAreWrongInEveryMetricAndCounted() throws {
        let suite = try SuiteHarness.suite("pope")
        let rows: [[String: Any]] = [
            ["index": 1, "question": "Is there a dog in the image?", "answer": "Yes", "category": "adversarial"],
            ["index": 2, "question": "Is there a car in the image?", "answer": "No", "category": "adversarial"],
        ]
        let items = try SuiteHarness.items(suite, rows: rows, test: self)
        let metrics = SuiteHarness.metrics(suite, items) { _ in "I am not sure what the picture shows." }
        XCTAssertEqual(metrics.unparsed, 2)
        XCTAssertEqual(metrics.metrics["adversarial/accuracy"], 0)
        // Gold yes → false negative, gold no → false positive.
        XCTAssertEqual(metrics.metrics["adversarial/recall"], 0)
        XCTAssertEqual(metrics.metrics["adversarial/precision"], 0)
        XCTAssertEqual(metrics.metrics["adversarial/f1"], 0)
        XCTAssertEqual(metrics.metrics["adversarial/unparsed_count"], 2)
        XCTAssertEqual(metrics.score, 0)
    }

    /// Answer styles from the POPE paper's examples and common model outputs.
    func testExtractionOfTypicalAnswers() throws {
        let suite = try SuiteHarness.suite("pope")
        let item = Item(id: "1", question: "Is there a dining table in the image?", answers: ["Yes"],
                        metadata: [POPEScorer.splitsKey: .array([.string("random")])])
        let cases: [(String, String?)] = [
            ("Yes, there is a dining table in the image.", "Yes"),
            ("No, there is no car in the image.", "No"),
            ("yes", "Yes"),
            ("NO", "No"),
            ("Yes.", "Yes"),
            ("No. The image shows a kitchen without a dining table.", "No"),
            ("<think>The table is visible at the bottom left.</think>Yes", "Yes"),
            ("The answer is \\boxed{No}.", "No"),
            ("There is a dining table in the image.", nil),
            ("Yes and no: part of a table is visible.", nil),
            ("", nil),
            ("I cannot determine that from the image.", nil),
        ]
        for (response, expected) in cases {
            XCTAssertExtraction(suite.extract(response, item: item), expected, response)
        }
    }

    func testMissingSamplingColumnIsADatasetErrorNamingFileAndLine() throws {
        let suite = try SuiteHarness.suite("pope")
        let rows: [[String: Any]] = [
            ["index": 1, "question": "Is there a dog in the image?", "answer": "Yes", "category": "random"],
            ["index": 2, "question": "Is there a car in the image?", "answer": "No"],
        ]
        let error = try XCTUnwrap(try SuiteHarness.datasetError(suite, rows: rows, test: self))
        XCTAssertTrue(error.file.hasSuffix("bad.jsonl"))
        XCTAssertEqual(error.line, 2)
        XCTAssertTrue(error.message.contains("category"), error.description)
    }

    func testAnswerThatIsNotYesOrNoIsADatasetError() throws {
        let suite = try SuiteHarness.suite("pope")
        let rows: [[String: Any]] = [["index": 7, "question": "Is there a dog?", "answer": "maybe", "category": "random"]]
        let error = try XCTUnwrap(try SuiteHarness.datasetError(suite, rows: rows, test: self))
        XCTAssertEqual(error.line, 1)
        XCTAssertTrue(error.message.contains("yes or no"), error.description)
    }

    func testPromptSnapshot() throws {
        let suite = try SuiteHarness.suite("pope")
        let rows: [[String: Any]] = [["index": 1, "question": "Is there a snowboard in the image?", "answer": "Yes",
                                      "category": "popular,random", "image": SuiteHarness.image]]
        let item = try XCTUnwrap(try SuiteHarness.items(suite, rows: rows, test: self).first)
        assertSnapshot(SuiteHarness.transcript(suite.render(item)), named: "pope-prompt")
    }
}
