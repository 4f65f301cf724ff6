import AssayCore
import AssayEngine
import AssayStore
import AssaySuites
@testable import AssayTraining
import AssayTestSupport
import Foundation
import XCTest

final class CriticDataTests: XCTestCase {
    /// A run of the arithmetic suite with `answers[item][sample]`, imported and scored.
    func store(runs: [String: [[String]]], items count: Int) throws -> (Store, SuiteCatalog, [Item]) {
        let catalog = try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory)
        let suite = try catalog.suite("arithmetic")
        let (loaded, sha) = try XCTUnwrap(try suite.generatedItems())
        let items = Array(loaded.prefix(count).map(\.item))
        let store = try Store(path: try Fixtures.temporaryDirectory(for: self).appendingPathComponent("c.sqlite").path)
        for (name, table) in runs.sorted(by: { $0.key < $1.key }) {
            var responses: [NewResponse] = []
            for (item, row) in zip(items, table) {
                for (sample, text) in row.enumerated() {
                    responses.append(NewResponse(suiteID: "arithmetic", itemID: item.id, sampleIndex: sample,
                                                 cacheKey: "\(name)/\(item.id)/\(sample)", response: ModelResponse(text: text)))
                }
            }
            try store.importResponses(
                run: NewRun(name: name, model: name, backend: "replay", backendIdentity: "{\"model\":\"\(name)\"}", generationParams: "{}"),
                suite: SuiteRegistration(suiteID: "arithmetic", suiteVersion: suite.version, promptVersion: suite.promptVersion,
                                         datasetSHA256: sha, datasetPath: "generated:arithmetic", itemCount: count),
                items: items, responses: responses)
            _ = try ScoringPass.score(run: name, store: store, catalog: catalog)
        }
        return (store, catalog, items)
    }

    func testPairsFromRunsContrastACorrectAndAWrongResponseAndSplitByItem() throws {
        var a: [[String]] = [], b: [[String]] = []
        let count = 40
        let (_, _, probe) = try store(runs: [:], items: count)
        for (i, item) in probe.enumerated() {
            let gold = try XCTUnwrap(Int(item.answer))
            a.append(["The answer is \(gold).", "\(gold + 1)"])                   // one right, one wrong
            b.append([i % 4 == 0 ? "It is \(gold)" : "It is \(gold + 2)."])      // right on every fourth item
        }
        let (store, catalog, items) = try store(runs: ["a": a, "b": b], items: count)
        var summary = CriticBuildSummary()
        let pairs = try CriticDataBuilder.pairs(fromRuns: ["a", "b"], store: store, catalog: catalog, suites: nil,
                                                dataDirectory: nil, summary: &summary)
        // Per item: a#0 (right) beats a#1 and b#0 when b is wrong; b#0 (right) beats a#1 on every fourth.
        XCTAssertEqual(pairs.count, count * 2)
        for pair in pairs {
            let item = try XCTUnwrap(items.first { $0.id == pair.itemID })
            let scorer = ExactNumberScorer()
            XCTAssertEqual(scorer.score(scorer.extract(pair.better, item: item), item: item).correct, true, pair.provenance)
            XCTAssertEqual(scorer.score(scorer.extract(pair.worse, item: item), item: item).correct, false, pair.provenance)
            XCTAssertTrue(pair.question.hasPrefix(item.question), pair.question)
        }

        let out = try Fixtures.temporaryDirectory(for: self).appendingPathComponent("critic")
        try CriticDataBuilder.write(pairs, to: out, seed: 7, testFraction: 0.25, limit: nil, summary: &summary)
        XCTAssertEqual(summary.betterFirst, summary.betterSecond)
        XCTAssertEqual(summary.train + summary.test, count * 2)
        XCTAssertGreaterThan(summary.test, 0)
        let rows = try ["train", "test"].flatMap { split in
            try String(contentsOf: out.appendingPathComponent("\(split).jsonl"), encoding: .utf8).split(separator: "\n").map {
                try JSONDecoder().decode(CriticExample.self, from: Data($0.utf8))
            }
        }
        // Never the same item in both splits; labels say where the better response is.
        let trainItems = Set(rows.filter { $0.split == "train" }.map(\.item_id)), testItems = Set(rows.filter { $0.split == "test" }.map(\.item_id))
        XCTAssertTrue(trainItems.isDisjoint(with: testItems))
        let reward = CriticPreferenceReward()
        for row in rows {
            XCTAssertEqual(row.answer, row.order == "better_first" ? "1" : "2")
            XCTAssertTrue(row.problem.contains("[Response 1]") && row.problem.hasSuffix("put in \\boxed{}."))
            // A critic answering the label in the released format earns the full reward.
            XCTAssertEqual(reward.score(RewardInput(response: "<think>check</think>\\boxed{\(row.answer)}", groundTruth: row.answer)).overall, 1)
        }
        // The held-out split is the critic-pairs suite: both orders, the training prompt, the reward's rule.
        try checkCriticPairsSuite(test: out.appendingPathComponent("test.jsonl"), rows: rows.filter { $0.split == "test" }, catalog: catalog)

        // The same seed gives the same folder; another seed another order.
        let again = try Fixtures.temporaryDirectory(for: self).appendingPathComponent("again")
        var second = CriticBuildSummary()
        try CriticDataBuilder.write(pairs.reversed(), to: again, seed: 7, testFraction: 0.25, limit: nil, summary: &second)
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("train.jsonl")), try Data(contentsOf: again.appendingPathComponent("train.jsonl")))
        // Duplicates are removed and counted.
        var third = CriticBuildSummary()
        try CriticDataBuilder.write(pairs + pairs.prefix(5), to: again, seed: 7, testFraction: 0.25, limit: nil, summary: &third)
        XCTAssertEqual(third.dropped["duplicate pairs"], 5)
        XCTAssertEqual(third.train + third.test, count * 2)
    }

    func testPreferenceRowsAreCheckedAndNamedByLine() throws {
        let directory = try Fixtures.temporaryDirectory(for: self)
        let png = try XCTUnwrap(try SanityGenerator.items(count: 1, seed: 0).first?.imageData.first)
        try png.write(to: directory.appendingPathComponent("cat.png"))
        try Data("not an image".utf8).write(to: directory.appendingPathComponent("fake.png"))
        let good: [String: Any] = ["id": "q1", "question": "What is shown?", "image": "cat.png", "response_1": "A cat.", "response_2": "A dog.", "preferred": 1]
        let cases: [([String: Any], String)] = [
            (good.merging(["image": "missing.png"]) { $1 }, "image 'missing.png' cannot be read"),
            (good.merging(["image": "fake.png"]) { $1 }, "is not a PNG"),
            (good.merging(["response_2": "  "]) { $1 }, "a response is empty"),
            (good.merging(["preferred": 3]) { $1 }, "'preferred' must be 1 or 2, not '3'"),
            (good.merging(["question": ""]) { $1 }, "'question' is missing or empty"),
        ]
        for (bad, message) in cases {
            let url = directory.appendingPathComponent("prefs.jsonl")
            try Fixtures.writeJSONL([good, bad], to: url)
            XCTAssertThrowsError(try CriticDataBuilder.pairs(fromPreferenceFile: url)) { error in
                XCTAssertTrue("\(error)".hasPrefix("\(url.path):2: "), "\(error)")
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
        let url = directory.appendingPathComponent("prefs.jsonl")
        try Fixtures.writeJSONL([good, good.merging(["id": "q2", "preferred": "2"]) { $1 }], to: url)
        let pairs = try CriticDataBuilder.pairs(fromPreferenceFile: url)
        XCTAssertEqual(pairs.map(\.better), ["A cat.", "A dog."])
        XCTAssertEqual(pairs.first?.images.first, png)
        let out = directory.appendingPathComponent("data")
        var summary = CriticBuildSummary()
        try CriticDataBuilder.write(pairs, to: out, seed: 0, testFraction: 0, limit: nil, summary: &summary)
        let row = try JSONDecoder().decode(CriticExample.self, from: Data(try String(contentsOf: out.appendingPathComponent("train.jsonl"), encoding: .utf8)
            .split(separator: "\n")[0].utf8))
        XCTAssertTrue(row.problem.hasPrefix("<image>You are given"))
        XCTAssertEqual(row.images.count, 1)
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent(row.images[0])), png)
        // Nothing half-written is left beside the output.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.contains("partial") }, [])
    }

    func testTheEasyR1ExportHasTheDatasetConfigRewardAndLaunchScript() throws {
        let directory = try Fixtures.temporaryDirectory(for: self)
        let data = directory.appendingPathComponent("data")
        var summary = CriticBuildSummary()
        try CriticDataBuilder.write([CriticPair(suite: "s", itemID: "1", question: "Q?", better: "yes", worse: "no", provenance: "t")],
                                    to: data, seed: 0, testFraction: 0, limit: nil, summary: &summary)
        let out = directory.appendingPathComponent("export")
        var h = EasyR1Export.Hyperparameters()
        h.learningRate = 2e-6
        try EasyR1Export.write(dataDirectory: data, out: out, hyperparameters: h)
        for file in EasyR1Export.files { XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), file) }
        let config = try String(contentsOf: out.appendingPathComponent("config.yaml"), encoding: .utf8)
        for line in ["prompt_key: problem", "answer_key: answer", "image_key: images", "lr: 2e-06", "kl_penalty: low_var_kl", "n: 8",
                     "top_p: 0.99", "clip_ratio_dual: 3.0", "loss_avg_mode: token"] {
            XCTAssertTrue(config.contains(line), line)
        }
        let launch = try String(contentsOf: out.appendingPathComponent("launch.sh"), encoding: .utf8)
        XCTAssertTrue(launch.contains("critic_reward.py:compute_score") && launch.contains("data@train"))
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: out.appendingPathComponent("launch.sh").path))
        XCTAssertThrowsError(try EasyR1Export.write(dataDirectory: data, out: out)) { XCTAssertTrue("\($0)".contains("not empty")) }
        XCTAssertThrowsError(try EasyR1Export.write(dataDirectory: directory.appendingPathComponent("nope"), out: directory.appendingPathComponent("e2")))
    }

    /// Loads `test.jsonl` as the `critic-pairs` suite and scores three critics: one that knows the
    /// label (in the release format), one that always boxes 1, and one that never boxes.
    func checkCriticPairsSuite(test: URL, rows: [CriticExample], catalog: SuiteCatalog) throws {
        let suite = try catalog.suite("critic-pairs")
        let items = try suite.loadItems(from: DatasetFile.read(test)).map(\.item)
        XCTAssertEqual(items.count, 2 * rows.count, "each pair in both orders")
        for item in items {
            let text = suite.userText(item)
            XCTAssertTrue(text.contains("[Response 1]") && text.hasSuffix("put in \\boxed{}."), text)
            let shownFirst = try XCTUnwrap(item.meta("response_first"))
            XCTAssertTrue(text.contains("[Response 1]\n" + shownFirst.trimmingCharacters(in: .whitespacesAndNewlines)), "the order asked is the order shown")
        }
        // The order as written is the training row's own prompt.
        let original = try XCTUnwrap(items.first { $0.id.hasSuffix("@12") })
        let source = try XCTUnwrap(rows.first { original.id.hasPrefix("\($0.suite)/\($0.item_id)#") && suite.userText(original) == $0.problem })
        XCTAssertEqual(original.answers, [source.answer])

        func score(_ reply: (Item) -> String) -> SuiteMetrics {
            suite.aggregate(items.map { item in
                let extraction = suite.extract(reply(item), item: item)
                return ScoredItem(item: item, extraction: extraction, score: suite.score(extraction, item: item))
            })
        }
        let oracle = score { "<think>I compared them.</think> The better one is \\boxed{\($0.answers[0])}" }
        XCTAssertEqual(oracle.score, 100)
        XCTAssertEqual(oracle.metrics["position_consistency"], 100)
        XCTAssertEqual(oracle.metrics["format_rate"], 100)
        let first = score { _ in "\\boxed{1}" }
        XCTAssertEqual(first.score, 50, accuracy: 1e-9)
        XCTAssertEqual(first.metrics["position_consistency"], 0)
        XCTAssertEqual(first.metrics["consistent_accuracy"], 0)
        XCTAssertEqual(first.metrics["format_rate"], 0, "a bare box is not the release format")
        let silent = score { _ in "Both are fine." }
        XCTAssertEqual(silent.score, 0)
        XCTAssertEqual(silent.metrics["unparsed_rate"], 100)
    }

    func testEmptyResponsesMakeNoPairButAnEmptyShownResponseStillLoads() throws {
        let count = 6
        let (_, _, probe) = try store(runs: [:], items: count)
        let right = probe.map { ["The answer is \($0.answer)."] }
        let empty = probe.map { _ in [""] }
        let (store, catalog, _) = try store(runs: ["right": right, "empty": empty], items: count)
        var summary = CriticBuildSummary()
        let pairs = try CriticDataBuilder.pairs(fromRuns: ["right", "empty"], store: store, catalog: catalog, suites: nil,
                                                dataDirectory: nil, summary: &summary)
        XCTAssertTrue(pairs.isEmpty, "\(pairs.count) pairs against an empty response")
        XCTAssertEqual(summary.dropped["pairs with an empty response"], count)

        // A held-out row whose shown response is empty (written by hand or an older build) is still a pair to judge.
        let file = try Fixtures.temporaryDirectory(for: self).appendingPathComponent("test.jsonl")
        try Fixtures.writeJSONL([["question": "What is 2 + 2?", "response_1": "4", "response_2": "", "answer": "1", "suite": "arithmetic", "item_id": "x"]], to: file)
        let items = try catalog.suite("critic-pairs").loadItems(from: DatasetFile.read(file))
        XCTAssertEqual(items.map(\.item.id), ["arithmetic/x#0@12", "arithmetic/x#0@21"])
    }
}
