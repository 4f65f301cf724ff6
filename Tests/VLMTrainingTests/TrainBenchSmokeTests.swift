import AssayTestSupport
import XCTest
import VLMRuntime
@testable import VLMTraining

/// The training benchmark runs end to end on a tiny random model (the figures themselves are for
/// `assay bench train`, not asserted).
final class TrainBenchSmokeTests: XCTestCase {
    static func randomModel(_ json: [String: Any], seed: UInt64 = 3) throws -> PolicyModel {
        let config = try ModelConfig.parse(try JSONSerialization.data(withJSONObject: json), file: "config.json")
        var rng = FiniteDifferenceTests.Rng(state: seed)
        let set = ParameterSet()
        for (name, shape) in RandomCheckpoint.tensorShapes(config) {
            let n = shape.reduce(1, *)
            let scale: Float = name.hasSuffix("norm.weight") ? 0 : 1 / Float(shape.last ?? 1).squareRoot()
            set.append(Parameter(name: name, shape: shape, value: (0..<n).map { _ in name.hasSuffix("norm.weight") ? 1 : scale * rng.normal() }))
        }
        return try PolicyModel(config: config, parameters: set)
    }

    func testBenchmarkRunsAndCountsRows() throws {
        let model = try Self.randomModel([
            "model_type": "llama", "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
            "vocab_size": 64, "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2, "max_position_embeddings": 512,
        ])
        let f = try TrainBenchmark.run(model: model, groupSize: 3, promptTokens: 5, completionTokens: 4, rounds: 2)
        XCTAssertEqual(f.stepSeconds.count, 2)
        XCTAssertEqual(f.tokensPerStep, 27)
        XCTAssertEqual(f.decoderRows, 5 + 3 * 3)
        XCTAssertGreaterThan(model.parameters.globalGradientNorm(), 0)
    }

    /// SmolLM2-135M dimensions, random weights: `ASSAY_TRAIN_PERF=1` prints the step figures.
    func testSmolLM2SizedStep() throws {
        guard ProcessInfo.processInfo.environment["ASSAY_TRAIN_PERF"] == "1" else { throw XCTSkip("set ASSAY_TRAIN_PERF=1 to time a SmolLM2-sized step") }
        let model = try Self.randomModel([
            "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
            "num_attention_heads": 9, "num_key_value_heads": 3, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
            "vocab_size": 49152, "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2, "max_position_embeddings": 8192,
        ])
        let env = ProcessInfo.processInfo.environment
        let f = try TrainBenchmark.run(model: model, groupSize: Int(env["G"] ?? "8")!, promptTokens: Int(env["P"] ?? "128")!,
                                       completionTokens: Int(env["C"] ?? "256")!, rounds: 1) { r, dt in print("round \(r): \(dt) s") }
        let data = try JSONEncoder().encode(f)
        print(String(decoding: data, as: UTF8.self))
    }
}
