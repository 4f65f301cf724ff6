import AssayCore
import AssayStore
import AssaySuites
@testable import AssayTraining
import AssayTestSupport
import Foundation
@testable import VLMTraining
import XCTest

/// The training loop on the tiny Qwen2.5-VL checkpoint of ../shared (vision tower included, with
/// pictures in the prompts): a run interrupted after a checkpoint and started again ends with the
/// same weights, optimizer state and step records as one that never stopped.
final class GRPOTrainingRunTests: XCTestCase {
    struct Crash: Error {}

    override func tearDown() {
        GRPOTrainingRun.afterStep = nil
        TrainingCheckpoint.faultInjection = nil
        super.tearDown()
    }

    func tinyModel() throws -> String {
        try Fixtures.require("goldens/qwen2_5_vl_tiny/checkpoint/config.json").deletingLastPathComponent().path
    }

    /// Critic-style rows with one of two pictures each, and labels 1 and 2.
    func writeData(in dir: URL) throws -> URL {
        let images = dir.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        for name in ["img_f_180x300.png", "img_c_450x380.png"] {
            try FileManager.default.copyItem(at: try Fixtures.require("goldens/processor/\(name)"), to: images.appendingPathComponent(name))
        }
        var rows: [[String: Any]] = []
        for i in 0..<6 {
            rows.append(["problem": "<image>Which answer is better, \(i)? Put 1 or 2 in \\boxed{}.", "answer": i % 2 == 0 ? "1" : "2",
                         "images": ["images/" + (i % 2 == 0 ? "img_f_180x300.png" : "img_c_450x380.png")], "suite": "critic", "item_id": "q\(i)"])
        }
        let file = dir.appendingPathComponent("train.jsonl")
        try Fixtures.writeJSONL(rows, to: file)
        return file
    }

    func configuration(model: String, data: URL, out: URL) -> GRPOTrainingConfiguration {
        var c = GRPOTrainingConfiguration(modelPath: model, dataPath: data.path, outDir: out.path, runName: "tiny", threads: 2)
        c.steps = 4
        c.promptsPerStep = 2
        c.groupSize = 3
        c.maxNewTokens = 6
        c.lr = 1e-3
        c.beta = 0.05
        c.saveEvery = 2
        c.seed = 11
        c.reward = .critic
        return c
    }

    func run(_ c: GRPOTrainingConfiguration, db: URL) async throws -> (GRPOTrainingRun.Outcome, Store) {
        let store = try Store(path: db.path)
        let catalog = try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory)
        let outcome = try await GRPOTrainingRun(configuration: c, store: store, catalog: catalog, log: { _ in }).run()
        return (outcome, store)
    }

    func bytes(_ dir: URL, _ step: Int, _ file: String) throws -> Data {
        try Data(contentsOf: dir.appendingPathComponent(String(format: "checkpoints/step-%06d/", step) + file))
    }

    func testAnInterruptedRunResumesToTheSameWeightsBitForBit() async throws {
        let model = try tinyModel()
        let dir = try Fixtures.temporaryDirectory(for: self)
        let data = try writeData(in: dir)

        let straightOut = dir.appendingPathComponent("straight")
        let (straight, straightStore) = try await run(configuration(model: model, data: data, out: straightOut), db: dir.appendingPathComponent("a.sqlite"))
        XCTAssertEqual(straight.stepsDone, 4)
        XCTAssertNil(straight.resumedFrom)

        // The second run dies after step 3 (its records stored, checkpoint 2 the last complete one).
        let resumedOut = dir.appendingPathComponent("resumed")
        let db = dir.appendingPathComponent("b.sqlite")
        GRPOTrainingRun.afterStep = { if $0 == 3 { throw Crash() } }
        do {
            _ = try await run(configuration(model: model, data: data, out: resumedOut), db: db)
            XCTFail("the injected crash did not happen")
        } catch is Crash {}
        GRPOTrainingRun.afterStep = nil
        XCTAssertFalse(FileManager.default.fileExists(atPath: resumedOut.appendingPathComponent("checkpoints/step-000004").path))
        let (resumed, resumedStore) = try await run(configuration(model: model, data: data, out: resumedOut), db: db)
        XCTAssertEqual(resumed.resumedFrom, 2)
        XCTAssertEqual(resumed.stepsDone, 4)

        let weights = try bytes(straightOut, 4, "model/model.safetensors")
        XCTAssertEqual(weights, try bytes(resumedOut, 4, "model/model.safetensors"), "final weights differ after a resume")
        XCTAssertEqual(try bytes(straightOut, 4, "state/optimizer.safetensors"), try bytes(resumedOut, 4, "state/optimizer.safetensors"))
        XCTAssertNotEqual(weights, try Data(contentsOf: URL(fileURLWithPath: model).appendingPathComponent("model.safetensors")),
                          "the weights did not change: the test would pass without training")

        // The same step records (timings aside) and rollouts.
        let a = try XCTUnwrap(try straightStore.trainingRun(named: "tiny")), b = try XCTUnwrap(try resumedStore.trainingRun(named: "tiny"))
        let timing: Set<String> = ["seconds", "rollout_seconds", "update_seconds", "tokens_per_second"]
        let stepsA = try straightStore.trainingSteps(a.id), stepsB = try resumedStore.trainingSteps(b.id)
        XCTAssertEqual(stepsA.map(\.step), [1, 2, 3, 4])
        XCTAssertEqual(stepsA.map { $0.metrics.filter { !timing.contains($0.key) } }, stepsB.map { $0.metrics.filter { !timing.contains($0.key) } })
        XCTAssertEqual(try straightStore.trainingRollouts(a.id).map(\.text), try resumedStore.trainingRollouts(b.id).map(\.text))
        XCTAssertEqual(try straightStore.trainingRollouts(a.id).count, 4 * 2 * 3)
        XCTAssertEqual(try resumedStore.trainingCheckpoints(b.id).map(\.step), [2, 4])
        XCTAssertEqual(try resumedStore.trainingRun(named: "tiny")?.status, "finished")
        // Only the newest checkpoint keeps what a resume needs.
        XCTAssertFalse(FileManager.default.fileExists(atPath: resumedOut.appendingPathComponent("checkpoints/step-000002/state").path))

        // Steps measure what they say: the log-prob gap between the sampler and the training path is tiny,
        // the first step's KL is zero (the policy is the reference), rewards are 0, 0.1, 0.9 or 1.
        for s in stepsA {
            XCTAssertLessThan(s.metrics["logprob_gap_max"] ?? 1, 1e-3, "step \(s.step)")
            XCTAssertEqual(s.metrics["response_length"] ?? 0, 6, accuracy: 6)
        }
        XCTAssertEqual(stepsA[0].metrics["kl"] ?? 1, 0, accuracy: 1e-6)
        XCTAssertGreaterThan(stepsA[3].metrics["kl"] ?? 0, 0)
        for r in try straightStore.trainingRollouts(a.id) { XCTAssertTrue([0, 0.1, 0.9, 1].contains { abs($0 - r.reward) < 1e-9 }, "\(r.reward)") }

        // The same command once more does nothing new; other settings under the same name are refused.
        let again = try await run(configuration(model: model, data: data, out: resumedOut), db: db)
        XCTAssertEqual(again.0.resumedFrom, 4)
        var changed = configuration(model: model, data: data, out: resumedOut)
        changed.lr = 2e-3
        do {
            _ = try await run(changed, db: db)
            XCTFail("a changed configuration was accepted")
        } catch let e as StoreError {
            XCTAssertTrue("\(e)".contains("other settings"), "\(e)")
        }
    }

    func testAnInterruptedSaveNeverLooksComplete() async throws {
        let model = try tinyModel()
        let dir = try Fixtures.temporaryDirectory(for: self)
        let data = try writeData(in: dir)
        let out = dir.appendingPathComponent("run")
        var c = configuration(model: model, data: data, out: out)
        c.steps = 2
        c.saveEvery = 1
        var saves = 0
        TrainingCheckpoint.faultInjection = { stage in
            if stage == "before-rename" { saves += 1; if saves == 2 { throw Crash() } }
        }
        do {
            _ = try await run(c, db: dir.appendingPathComponent("t.sqlite"))
            XCTFail("the injected fault did not stop the run")
        } catch is Crash {}
        TrainingCheckpoint.faultInjection = nil
        let training = GRPOTrainingRun(configuration: c, store: try Store(path: dir.appendingPathComponent("t.sqlite").path),
                                       catalog: try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory), log: { _ in })
        XCTAssertEqual(try training.lastCompleteCheckpoint(), 1, "the checkpoint whose save was cut looks complete")
        let (resumed, _) = try await run(c, db: dir.appendingPathComponent("t.sqlite"))
        XCTAssertEqual(resumed.resumedFrom, 1)
        XCTAssertEqual(resumed.stepsDone, 2)
    }

    func testBadRowsAndUntrainableCheckpointsAreNamed() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let catalog = try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory)
        func load(_ lines: [String], reward: TrainingRewardKind = .critic) throws {
            let file = dir.appendingPathComponent("d.jsonl")
            try Data(lines.joined(separator: "\n").utf8).write(to: file)
            let data = try TrainingData.load(path: file.path)
            try TrainingRewarder(kind: reward, catalog: catalog).check(data)
        }
        func expect(_ lines: [String], reward: TrainingRewardKind = .critic, _ fragment: String, line: Int) {
            XCTAssertThrowsError(try load(lines, reward: reward)) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error)")
                XCTAssertTrue("\(error)".contains("d.jsonl:\(line):"), "\(error)")
            }
        }
        let good = #"{"problem": "Which? \\boxed{}", "answer": "1"}"#
        XCTAssertNoThrow(try load([good]))
        expect([good, #"{"problem": "<image>Which?", "answer": "2", "images": ["nowhere.png"]}"#], "image nowhere.png is missing", line: 2)
        expect([#"{"problem": "Which?", "answer": ""}"#], "\"answer\" is empty", line: 1)
        expect([good, good, #"{"problem": "Which?", "answer": "3"}"#], "is not a critic label", line: 3)
        expect([#"{"problem": "Which?"}"#], "\"answer\" is missing", line: 1)
        expect([#"not json"#], "not a JSON object", line: 1)
        expect([#"{"problem": "What is 2 + 2?", "answer": "4", "suite": "no-such-suite"}"#], reward: .suite, "not in the catalog", line: 1)
        try Data("hello".utf8).write(to: dir.appendingPathComponent("fake.png"))
        expect([#"{"problem": "<image>Which?", "answer": "1", "images": ["fake.png"]}"#], "is not a PNG", line: 1)

        // A checkpoint that cannot be trained: an unknown architecture names its file.
        let bad = dir.appendingPathComponent("bad-model")
        try FileManager.default.createDirectory(at: bad, withIntermediateDirectories: true)
        try Data(#"{"model_type": "mamba"}"#.utf8).write(to: bad.appendingPathComponent("config.json"))
        try Data(good.utf8).write(to: dir.appendingPathComponent("ok.jsonl"))
        let c = GRPOTrainingConfiguration(modelPath: bad.path, dataPath: dir.appendingPathComponent("ok.jsonl").path,
                                          outDir: dir.appendingPathComponent("out").path, runName: "bad", threads: 1)
        do {
            _ = try await GRPOTrainingRun(configuration: c, store: try Store(path: dir.appendingPathComponent("x.sqlite").path),
                                          catalog: catalog, log: { _ in }).run()
            XCTFail("an unknown architecture was accepted")
        } catch {
            XCTAssertTrue("\(error)".contains("config.json") || "\(error)".contains("mamba"), "\(error)")
        }
    }
}
