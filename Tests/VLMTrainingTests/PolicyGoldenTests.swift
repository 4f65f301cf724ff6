import AssayTestSupport
import XCTest
import VLMRuntime
@testable import VLMTraining

/// The GRPO goldens of transformers/torch for the tiny Qwen2.5-VL (../shared/fixtures/goldens/qwen2_5_vl_tiny):
/// per-token log-probs at T = 1 and 0.7, the stage-0 gradients of the TRL 'dapo' loss and the
/// global gradient norm.
final class PolicyGoldenTests: XCTestCase {
    struct Golden {
        let dir: URL
        let file: SafeTensorsFile
        let index: [String: Any]
        var grpo: [String: Any] { index["grpo"] as! [String: Any] }
        func floats(_ name: String) throws -> [Float] { try file.floats(name) }
        func ints(_ name: String) throws -> [Int] { try file.integers(name) }
    }

    static func golden() throws -> Golden {
        let dir = try Fixtures.require("goldens/qwen2_5_vl_tiny")
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("index.json"))) as! [String: Any]
        return Golden(dir: dir, file: try SafeTensorsFile(path: dir.appendingPathComponent("goldens.safetensors").path), index: index)
    }

    /// Every tensor of a Hub-layout safetensors file as an f32 parameter (the checkpoint loader's job
    /// in production; here the fixture's names are already canonical).
    static func parameters(_ path: String) throws -> ParameterSet {
        let f = try SafeTensorsFile(path: path)
        let set = ParameterSet()
        for name in f.entries.keys.sorted() {
            let e = f.entries[name]!
            set.append(Parameter(name: name, shape: e.shape, value: try f.floats(e)))
        }
        return set
    }

    struct Setup {
        let model: PolicyModel
        let prompt: PolicyPrompt
        let completions: [[Int]]
        let golden: Golden
    }

    static func setup(weights: String? = nil) throws -> Setup {
        let g = try golden()
        let ckpt = g.dir.appendingPathComponent("checkpoint")
        let runtime = try VLMModel.load(path: ckpt.path)
        let imagePath = try Fixtures.require("goldens/processor/img_a_168x280.png").path
        let prompt = (g.grpo["prompt"] as! [String: Any])
        let text = (((prompt["messages"] as! [[String: Any]])[0]["content"] as! [[String: Any]])[1]["text"] as! String)
        let image = try ImageDecoder.loadRGB(path: imagePath)
        let pp = try PolicyPrompt.prepare(runtime, messages: [.user([.image(image), .text(text)])])
        XCTAssertEqual(pp.ids, try g.ints("grpo/prompt_ids"))
        let completions = (g.grpo["completions"] as! [[String: Any]]).map { ($0["ids"] as! [NSNumber]).map(\.intValue) }
        let params = try parameters(weights ?? ckpt.appendingPathComponent("model.safetensors").path)
        return Setup(model: try PolicyModel(config: runtime.config, parameters: params), prompt: pp, completions: completions, golden: g)
    }

    static func unpad(_ flat: [Float], lengths: [Int], width: Int = 32) -> [[Float]] {
        lengths.enumerated().map { i, l in Array(flat[(i * width)..<(i * width + l)]) }
    }

    static func assertClose(_ a: [Float], _ b: [Float], atol: Float = 1e-4, rtol: Float = 1e-4, _ what: String,
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        var worst: Float = 0, at = -1
        for i in 0..<min(a.count, b.count) {
            let excess = abs(a[i] - b[i]) - (atol + rtol * abs(b[i]))
            if excess > worst || !a[i].isFinite { worst = excess; at = i }
        }
        if at >= 0 { XCTFail("\(what): element \(at) is \(a[at]), golden \(b[at])", file: file, line: line) }
    }

    func testLogprobsAtBothTemperatures() throws {
        let s = try Self.setup()
        let lengths = s.completions.map(\.count)
        for (t, name) in [(Float(1), "grpo/stage0/logp_t1"), (Float(0.7), "grpo/stage0/logp_t0.7")] {
            let lp = try s.model.logprobs(prompt: s.prompt, completions: s.completions, temperature: t)
            let golden = Self.unpad(try s.golden.floats(name), lengths: lengths)
            for i in 0..<lp.count { Self.assertClose(lp[i], golden[i], "\(name) completion \(i)") }
        }
    }

    /// With every layer's gate/up outputs kept (the default on this model), none, or only the
    /// first layer's (the rest recomputed before their backward).
    func testStage0GradientsAndGlobalNorm() throws {
        let s = try Self.setup()
        let adv = try s.golden.floats("grpo/advantages_trl")
        let total = Float(s.completions.reduce(0) { $0 + $1.count })
        let rows = s.prompt.ids.count + s.completions.reduce(0) { $0 + $1.count - 1 }
        let oneLayer = 2 * rows * s.model.config.text.intermediateSize * 4
        let named = s.golden.grpo["named_parameters"] as! [String: Any]
        let scalars = s.golden.grpo["scalars"] as! [String: Any]
        let norm = (scalars["stage0_global_grad_norm"] as! NSNumber).doubleValue
        for budget in [s.model.keptActivationsBudget, 0, oneLayer] {
            s.model.keptActivationsBudget = budget
            var stats = PolicyPassStats()
            s.model.parameters.zeroGradients()
            // TRL 'dapo', β 0, old = logp.detach(): loss = Σ −A_i·ρ / Σ m with ρ ≡ 1, so ∂loss/∂logp = −A_i / Σ m.
            _ = try s.model.backward(prompt: s.prompt, completions: s.completions, temperature: 1, stats: &stats) { lp in
                lp.enumerated().map { i, row in Array(repeating: -adv[i] / total, count: row.count) }
            }
            for name in named.keys.sorted() {
                let g = try s.golden.floats("grpo/stage0/grad/" + name)
                Self.assertClose(s.model.parameters[name]!.grad, g, "stage-0 gradient of \(name), kept gate/up budget \(budget) B")
            }
            XCTAssertEqual(s.model.parameters.globalGradientNorm(), norm, accuracy: 1e-4 * norm)
        }
    }
}

/// Stage 1 of the GRPO goldens (at θ1, with the given old and reference log-probs) and θ1 itself
/// from our own stage-0 gradient and AdamW.
final class PolicyGoldenStage1Tests: XCTestCase {
    func testStage1LogprobsGradientsAndNorms() throws {
        let g0 = try PolicyGoldenTests.golden()
        let s = try PolicyGoldenTests.setup(weights: g0.dir.appendingPathComponent("grpo_theta1.safetensors").path)
        let lengths = s.completions.map(\.count)
        for (t, name) in [(Float(1), "grpo/stage1/logp_t1"), (Float(0.7), "grpo/stage1/logp_t0.7")] {
            let lp = try s.model.logprobs(prompt: s.prompt, completions: s.completions, temperature: t)
            let golden = PolicyGoldenTests.unpad(try s.golden.floats(name), lengths: lengths)
            for i in 0..<lp.count { PolicyGoldenTests.assertClose(lp[i], golden[i], "\(name) completion \(i)") }
        }
        let old = PolicyGoldenTests.unpad(try s.golden.floats("grpo/stage1/old_logp"), lengths: lengths)
        let ref = PolicyGoldenTests.unpad(try s.golden.floats("grpo/stage1/ref_logp"), lengths: lengths)
        let adv = GRPOObjective.advantages(rewards: try s.golden.floats("grpo/rewards"), kind: .trl)
        let scalars = s.golden.grpo["scalars"] as! [String: Any]
        let named = (s.golden.grpo["named_parameters"] as! [String: Any]).keys.sorted()
        func gradients() -> [String: [Float]] { Dictionary(uniqueKeysWithValues: s.model.parameters.parameters.map { ($0.name, $0.grad) }) }
        for agg in LossAggregation.allCases {
            for beta in [0.0, 0.04] {
                // The training path: the head's chunks turn logits into log-probs and gradients at once.
                let settings = GRPOSettings(temperature: 1, advantage: .trl, policyLoss: .trl, aggregation: agg, beta: beta)
                let gradient = try GRPOObjective.tokenGradient(lengths: lengths, old: old, ref: ref, advantages: adv, settings: settings)
                s.model.parameters.zeroGradients()
                var stats = PolicyPassStats()
                let lp = try s.model.backward(prompt: s.prompt, completions: s.completions, temperature: 1, stats: &stats, gradient: gradient)
                let loss = try GRPOObjective.evaluate(logprobs: lp, old: old, ref: ref, advantages: adv, settings: settings).loss
                let key = "stage1_global_grad_norm_\(agg.rawValue)_beta\(beta == 0 ? "0" : "0.04")"
                let norm = (scalars[key] as! NSNumber).doubleValue
                XCTAssertEqual(s.model.parameters.globalGradientNorm(), norm, accuracy: 1e-4 * norm, key)
                let lossKey = "trl_adv-trl_\(agg.rawValue)_beta\(beta == 0 ? "0" : "0.04")"
                let goldenLoss = ((s.golden.grpo["losses_stage1"] as! [String: Any])[lossKey] as! NSNumber).floatValue
                XCTAssertEqual(loss, goldenLoss, accuracy: 1e-4 + 1e-4 * abs(goldenLoss), lossKey)
                guard agg == .dapo && beta == 0.04 else { continue }  // the primary loss
                for name in named {
                    PolicyGoldenTests.assertClose(s.model.parameters[name]!.grad, try s.golden.floats("grpo/stage1/grad/" + name),
                                                  "stage-1 gradient of \(name)")
                }
                // A whole-group objective (log-probs first, then a second pass over the head) gives
                // the same gradients bit for bit.
                let tokenwise = gradients()
                s.model.parameters.zeroGradients()
                _ = try s.model.backward(prompt: s.prompt, completions: s.completions, temperature: 1, stats: &stats) { lp in
                    try GRPOObjective.evaluate(logprobs: lp, old: old, ref: ref, advantages: adv, settings: settings).dLogprobs
                }
                XCTAssertEqual(gradients(), tokenwise, "whole-group objective against the token-wise one")
                // Chunks of 5 rows, most of them spanning two completions, still give torch's gradients.
                let chunkBytes = s.model.headChunkBytes
                s.model.headChunkBytes = 5 * s.model.config.text.vocabSize * 4
                defer { s.model.headChunkBytes = chunkBytes }
                s.model.parameters.zeroGradients()
                let lp5 = try s.model.backward(prompt: s.prompt, completions: s.completions, temperature: 1, stats: &stats, gradient: gradient)
                XCTAssertEqual(lp5, lp)
                for name in named {
                    PolicyGoldenTests.assertClose(s.model.parameters[name]!.grad, try s.golden.floats("grpo/stage1/grad/" + name),
                                                  "stage-1 gradient of \(name), head chunks of 5 rows")
                }
            }
        }
    }

    /// θ0 → our stage-0 gradient → AdamW → θ1 of torch, every parameter, within 1e-6 where |g0| ≥ 1e-5 or g0 = 0
    /// (the first Adam step is ≈ lr·sign(g) and amplifies noise where g is about 0: the README's caveat).
    func testTheta1EndToEnd() throws {
        let s = try PolicyGoldenTests.setup()
        let adv = try s.golden.floats("grpo/advantages_trl")
        s.model.parameters.zeroGradients()
        var stats = PolicyPassStats()
        _ = try s.model.backward(prompt: s.prompt, completions: s.completions, temperature: 1, stats: &stats) { lp in
            try GRPOObjective.evaluate(logprobs: lp, old: nil, ref: nil, advantages: adv,
                                       settings: GRPOSettings(aggregation: .dapo, beta: 0)).dLogprobs
        }
        let grads = Dictionary(uniqueKeysWithValues: s.model.parameters.parameters.map { ($0.name, $0.grad) })
        let opt = try AdamW(lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01)
        try opt.step(s.model.parameters)
        let theta1 = try SafeTensorsFile(path: s.golden.dir.appendingPathComponent("grpo_theta1.safetensors").path)
        XCTAssertEqual(Set(theta1.entries.keys), Set(s.model.parameters.names))
        var compared = 0, skipped = 0
        for p in s.model.parameters.parameters {
            let want = try theta1.floats(p.name), g = grads[p.name]!
            for i in 0..<want.count {
                guard abs(g[i]) >= 1e-5 || g[i] == 0 else { skipped += 1; continue }  // exact zeros: rows no token used
                compared += 1
                if abs(p.value[i] - want[i]) > 1e-6 {
                    XCTFail("θ1 \(p.name)[\(i)]: \(p.value[i]) vs torch \(want[i]) (g0 \(g[i]))")
                    return
                }
            }
        }
        XCTAssertGreaterThan(compared, 100_000)
        print("θ1: \(compared) elements within 1e-6 of torch, \(skipped) with |g0| < 1e-5 not compared")
    }
}

final class MicroBatchTests: XCTestCase {
    /// Gradient accumulation over micro-batches of 1 and 3 gives the whole group's gradient (the
    /// stage-1 primary loss, whose token-mean denominator spans every completion).
    func testMicroBatchesAccumulateTheGroupGradient() throws {
        let s = try PolicyGoldenTests.setup()
        let lengths = s.completions.map(\.count)
        let old = PolicyGoldenTests.unpad(try s.golden.floats("grpo/stage1/old_logp"), lengths: lengths)
        let ref = PolicyGoldenTests.unpad(try s.golden.floats("grpo/stage1/ref_logp"), lengths: lengths)
        let adv = GRPOObjective.advantages(rewards: try s.golden.floats("grpo/rewards"), kind: .trl)
        let gradient = try GRPOObjective.tokenGradient(lengths: lengths, old: old, ref: ref, advantages: adv, settings: GRPOSettings())
        func grads(_ micro: Int, tokenwise: Bool) throws -> ([[Float]], [String: [Float]]) {
            s.model.parameters.zeroGradients()
            var stats = PolicyPassStats()
            let lp = tokenwise
                ? try s.model.backward(prompt: s.prompt, completions: s.completions, temperature: 1, microBatch: micro, stats: &stats, gradient: gradient)
                : try s.model.backward(prompt: s.prompt, completions: s.completions, temperature: 1, microBatch: micro, stats: &stats) { lp in
                    try GRPOObjective.evaluate(logprobs: lp, old: old, ref: ref, advantages: adv, settings: GRPOSettings()).dLogprobs
                }
            return (lp, Dictionary(uniqueKeysWithValues: s.model.parameters.parameters.map { ($0.name, $0.grad) }))
        }
        let (lpAll, whole) = try grads(4, tokenwise: true)
        for micro in [1, 3] {
            for tokenwise in [true, false] {
                let (lp, parts) = try grads(micro, tokenwise: tokenwise)
                XCTAssertEqual(lp, lpAll)
                for (name, g) in whole {
                    PolicyGoldenTests.assertClose(parts[name]!, g, atol: 1e-6, rtol: 1e-5, "micro-batch \(micro) (token-wise \(tokenwise)): \(name)")
                }
            }
        }
    }
}
