import Foundation
import VLMRuntime

/// One sampled completion of a GRPO group.
public struct Rollout: Sendable {
    /// Generated ids, the stop token included when the model produced one.
    public var ids: [Int]
    /// Decoded text without special tokens.
    public var text: String
    /// Whether it ended with a stop token (else it hit the token limit).
    public var stopped: Bool
    /// log π(token) at the training temperature over the whole vocabulary, from the logits the
    /// token was sampled from: the "old" log-probs as the sampling engine saw them. The gap to the
    /// log-probs recomputed on the training path is recorded each step.
    public var samplingLogprobs: [Float]
    /// Mean entropy (nats) of the temperature-scaled next-token distributions it was sampled from.
    public var meanEntropy: Double
}

/// Sampling a group of completions for one prompt from the runtime: the prompt and its images
/// are encoded once, the G completions are decoded together (each on its own copy of the
/// prompt's cache), every completion with its own seeded sampler.
public enum RolloutSampler {
    public static func sample(_ model: VLMModel, messages: [ChatMessage], count: Int, maxNewTokens: Int, temperature: Float,
                              topP: Float, seeds: [UInt64]) throws -> [Rollout] {
        guard count > 0, maxNewTokens > 0 else { return [] }
        var stats = GenerationStats()
        let prompt = try model.prepare([messages])
        let sequences = try model.start(prompt, count: count, maxNewTokens: maxNewTokens, stats: &stats)
        let sampling = SamplingParameters(temperature: temperature, topP: topP)
        var samplers = (0..<count).map { Sampler(parameters: sampling, seed: $0 < seeds.count ? seeds[$0] : 0) }
        var histories = sequences.map(\.promptIds)
        var ids = Array(repeating: [Int](), count: count)
        var logprobs = Array(repeating: [Float](), count: count)
        var entropy = Array(repeating: 0.0, count: count)
        var stopped = Array(repeating: false, count: count)
        var alive = Array(0..<count)
        while !alive.isEmpty {
            var fed: [Int] = []
            var tokens: [Int] = []
            for r in alive {
                let logits = sequences[r].logits
                let token = logits.withUnsafeBufferPointer { samplers[r].next(logits: $0, history: histories[r]) }
                let (lp, h) = logits.withUnsafeBufferPointer { logprobAndEntropy($0, token: token, temperature: temperature) }
                ids[r].append(token)
                histories[r].append(token)
                logprobs[r].append(lp)
                entropy[r] += h
                if model.stopTokenIds.contains(token) {
                    stopped[r] = true
                } else if ids[r].count < maxNewTokens {
                    fed.append(r)
                    tokens.append(token)
                }
            }
            alive = fed
            if !fed.isEmpty { try model.step(fed.map { sequences[$0] }, tokens: tokens, stats: &stats) }
        }
        return (0..<count).map { r in
            Rollout(ids: ids[r], text: model.tokenizer.decode(ids[r], skipSpecialTokens: true), stopped: stopped[r],
                    samplingLogprobs: logprobs[r], meanEntropy: ids[r].isEmpty ? 0 : entropy[r] / Double(ids[r].count))
        }
    }

    /// log softmax(logits / T)[token] and the entropy of softmax(logits / T), in double precision.
    static func logprobAndEntropy(_ logits: UnsafeBufferPointer<Float>, token: Int, temperature: Float) -> (Float, Double) {
        let t = Double(temperature > 0 ? temperature : 1)
        var mx = -Double.infinity
        for v in logits { mx = max(mx, Double(v) / t) }
        var z = 0.0, weighted = 0.0
        for v in logits {
            let s = Double(v) / t - mx
            let e = exp(s)
            z += e
            weighted += e * s
        }
        let logZ = log(z)
        let lp = Double(logits[token]) / t - mx - logZ
        return (Float(lp), logZ - weighted / z)
    }
}
