import AssayTestSupport
import XCTest
import VLMRuntime
@testable import VLMTraining

/// Central finite differences of the policy's gradient, element by element, for every parameter
/// tensor of three architectures: the Qwen2-VL tower (LayerNorm, quick-GELU, no windows, tied
/// embeddings), the Qwen2.5-VL tower (RMSNorm, SwiGLU, windows and full-attention blocks, separate
/// head) and a Llama-family decoder with tied embeddings (1-D RoPE, grouped KV heads, no biases).
///
/// The loss is L = Σ w·logp(T) with fixed random weights w, so ∂L/∂logp = w. For each tensor the
/// elements with the largest |∂L/∂θ| and a random one are perturbed by ±ε and (L₊ − L₋)/2ε, summed
/// in Float64, must match the backward pass.
final class FiniteDifferenceTests: XCTestCase {
    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 11 }
        mutating func uniform() -> Double { Double(next()) / Double(1 << 53) }
        mutating func normal() -> Float { Float((-2 * log(max(uniform(), 1e-300))).squareRoot() * cos(2 * .pi * uniform())) }
    }

    static func check(model: PolicyModel, prompt: PolicyPrompt, completions: [[Int]], temperature: Float,
                      samplesPerTensor: Int = 2, file: StaticString = #filePath, line: UInt = #line) throws {
        var rng = Rng(state: 42)
        let weights = completions.map { c in c.map { _ in rng.normal() } }
        func loss() throws -> Double {
            let lp = try model.logprobs(prompt: prompt, completions: completions, temperature: temperature)
            var s = 0.0
            for (i, row) in lp.enumerated() { for (t, v) in row.enumerated() { s += Double(weights[i][t]) * Double(v) } }
            return s
        }
        model.parameters.zeroGradients()
        var stats = PolicyPassStats()
        _ = try model.backward(prompt: prompt, completions: completions, temperature: temperature, stats: &stats) { _ in weights }
        var checked = 0, worst = 0.0, worstName = ""
        for p in model.parameters.parameters {
            let g = p.grad
            var picks = Array(g.indices.sorted { abs(g[$0]) > abs(g[$1]) }.prefix(max(1, samplesPerTensor - 1)))
            picks.append(Int(rng.next() % UInt64(g.count)))
            for i in picks {
                let original = p.value[i]
                let eps = Float(1e-2) * max(1, abs(original))
                p.value[i] = original + eps
                let up = try loss()
                p.value[i] = original - eps
                let down = try loss()
                p.value[i] = original
                let fd = (up - down) / Double(2 * eps)
                let an = Double(g[i])
                let err = abs(fd - an) / (abs(an) + 2e-3)
                if err > worst { worst = err; worstName = "\(p.name)[\(i)] fd \(fd) backward \(an)" }
                XCTAssertLessThanOrEqual(abs(fd - an), 2e-2 * abs(an) + 2e-3, "\(p.name)[\(i)]: finite difference \(fd), backward \(an)",
                                         file: file, line: line)
                checked += 1
            }
        }
        // Along each tensor's own gradient: the slope there is |g| when g is right (a stronger signal
        // than any single element against the f32 noise of the loss, about 1e-5 here).
        for p in model.parameters.parameters {
            let g = p.grad
            let norm = g.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            guard norm > 1e-3 else { continue }
            let original = p.value
            let eps = Float(1e-3) * max(1, original.reduce(0) { max($0, abs($1)) })
            p.value = zip(original, g).map { $0 + eps * $1 / Float(norm) }
            let up = try loss()
            p.value = zip(original, g).map { $0 - eps * $1 / Float(norm) }
            let down = try loss()
            p.value = original
            let fd = (up - down) / Double(2 * eps)
            XCTAssertLessThanOrEqual(abs(fd - norm), 1e-2 * norm + 1e-3, "\(p.name): slope along the gradient \(fd), |g| \(norm)",
                                     file: file, line: line)
            checked += 1
        }
        XCTAssertGreaterThan(checked, 10, file: file, line: line)
        print("finite differences: \(checked) elements of \(model.parameters.parameters.count) tensors, worst relative \(worst) at \(worstName)")
    }

    static func imagePrompt(_ checkpoint: URL) throws -> (PolicyModel, PolicyPrompt, VLMModel) {
        let runtime = try VLMModel.load(path: checkpoint.path)
        let image = try ImageDecoder.loadRGB(path: try Fixtures.require("goldens/processor/img_a_168x280.png").path)
        let prompt = try PolicyPrompt.prepare(runtime, messages: [.user([.image(image), .text("How many circles?")])])
        let params = try PolicyGoldenTests.parameters(checkpoint.appendingPathComponent("model.safetensors").path)
        return (try PolicyModel(config: runtime.config, parameters: params), prompt, runtime)
    }

    func testQwen2VLTowerAndTiedDecoder() throws {
        let (model, prompt, runtime) = try Self.imagePrompt(try Fixtures.require("goldens/qwen2_vl_tiny/checkpoint"))
        XCTAssertNil(model.parameters["lm_head.weight"], "the Qwen2-VL fixture ties its head to the embedding")
        XCTAssertNotNil(model.parameters["visual.blocks.0.norm1.bias"], "LayerNorm")
        let completions = [runtime.tokenizer.encode("three circles"), runtime.tokenizer.encode("2")]
        try Self.check(model: model, prompt: prompt, completions: completions, temperature: 0.7)
    }

    func testQwen25VLTowerWithWindows() throws {
        let (model, prompt, runtime) = try Self.imagePrompt(try Fixtures.require("goldens/qwen2_5_vl_tiny/checkpoint"))
        XCTAssertFalse(model.config.vision!.fullAttentionBlocks.isEmpty)
        let completions = [runtime.tokenizer.encode("<think>3</think> \\boxed{3}"), runtime.tokenizer.encode("two")]
        try Self.check(model: model, prompt: prompt, completions: completions, temperature: 1)
    }

    func testLlamaDecoderWithTiedEmbeddings() throws {
        let json: [String: Any] = [
            "model_type": "llama", "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
            "vocab_size": 50, "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2, "max_position_embeddings": 512,
        ]
        let config = try ModelConfig.parse(try JSONSerialization.data(withJSONObject: json), file: "config.json")
        var rng = Rng(state: 7)
        let set = ParameterSet()
        for (name, shape) in RandomCheckpoint.tensorShapes(config) {
            let n = shape.reduce(1, *)
            let values: [Float]
            if name.hasSuffix("norm.weight") {
                values = (0..<n).map { _ in 1 + 0.1 * rng.normal() }
            } else if name.contains("embed_tokens") {
                values = (0..<n).map { _ in 0.5 * rng.normal() }
            } else {
                let scale = 1 / Float(shape.last ?? 1).squareRoot()
                values = (0..<n).map { _ in scale * rng.normal() }
            }
            set.append(Parameter(name: name, shape: shape, value: values))
        }
        XCTAssertNil(set["lm_head.weight"])
        let model = try PolicyModel(config: config, parameters: set)
        let prompt = PolicyPrompt.tokens([1, 5, 9, 13, 22, 4, 7])
        try Self.check(model: model, prompt: prompt, completions: [[3, 8, 40, 2], [11], [30, 31, 32, 33, 34, 2]], temperature: 0.8)
    }
}
