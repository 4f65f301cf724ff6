import AssayStore
import AssayTestSupport
import Foundation
import XCTest

/// The training tables' metrics round trip.
final class TrainingStoreTests: XCTestCase {
    func testNonFiniteMetricsRoundTripWithTheOthers() throws {
        let directory = try Fixtures.temporaryDirectory(for: self)
        let store = try Store(path: directory.appendingPathComponent("t.sqlite").path)
        let run = try store.ensureTrainingRun(name: "t", baseModel: "m", dataPath: "d", dataSHA256: "00", configJSON: "{}", outDir: "o")
        try store.recordTrainingStep(run.id, TrainingStepRecord(step: 1, metrics: ["loss": .nan, "grad_norm": .infinity, "kl": 0.5]), rollouts: [
            TrainingRolloutRecord(step: 1, promptIndex: 0, sample: 0, exampleID: "e", text: "x", tokens: 1, reward: 0,
                                  components: ["format": -.infinity, "accuracy": 1]),
        ])
        let metrics = try XCTUnwrap(try store.trainingSteps(run.id).first?.metrics)
        XCTAssertEqual(metrics["kl"], 0.5)
        XCTAssertTrue(metrics["loss"]?.isNaN ?? false, "\(metrics)")
        XCTAssertEqual(metrics["grad_norm"], .infinity)
        XCTAssertEqual(try store.trainingRollouts(run.id).first?.components, ["format": -.infinity, "accuracy": 1])
    }
}
