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

/// Sampling groups of completions from the runtime: each prompt and its images are encoded
/// once, the G completions of every prompt of the step are decoded together (each on its own copy
/// of its prompt's cache, so a weight row read from memory serves every live sequence), every
/// completion with its own seeded generator.
///
/// Sampling is exact nucleus sampling at temperature T: softmax(logits / T) in double precision,
/// the smallest set of most likely tokens whose mass reaches top-p (ties by token id), renormalised,
/// and one uniform draw. Only tokens that could be in the nucleus are sorted (see `next`).
public enum RolloutSampler {
    public static func sample(_ model: VLMModel, messages: [ChatMessage], count: Int, maxNewTokens: Int, temperature: Float,
                              topP: Float, seeds: [UInt64]) throws -> [Rollout] {
        try sample(model, prompts: [messages], count: count, maxNewTokens: maxNewTokens, temperature: temperature, topP: topP,
                   seeds: [seeds]).first ?? []
    }

    /// `seeds[i][g]` seeds completion g of prompt i. Without `stopAtEOS` every completion runs to
    /// `maxNewTokens` (benchmarks: the same work as a generator forced to a minimum length).
    public static func sample(_ model: VLMModel, prompts: [[ChatMessage]], count: Int, maxNewTokens: Int, temperature: Float,
                              topP: Float, seeds: [[UInt64]], stopAtEOS: Bool = true) throws -> [[Rollout]] {
        guard count > 0, maxNewTokens > 0, !prompts.isEmpty else { return prompts.map { _ in [] } }
        var stats = GenerationStats()
        var sequences: [DecodingSequence] = []
        for messages in prompts {
            sequences += try model.start(try model.prepare([messages]), count: count, maxNewTokens: maxNewTokens, stats: &stats)
        }
        let total = sequences.count
        var generators = (0..<total).map { r -> SeededRandom in
            let (i, g) = (r / count, r % count)
            return SeededRandom(seed: i < seeds.count && g < seeds[i].count ? seeds[i][g] : 0)
        }
        var ids = Array(repeating: [Int](), count: total)
        var logprobs = Array(repeating: [Float](), count: total)
        var entropy = Array(repeating: 0.0, count: total)
        var stopped = Array(repeating: false, count: total)
        var alive = Array(0..<total)
        var scratch = [Double](repeating: 0, count: model.config.text.vocabSize)
        while !alive.isEmpty {
            var fed: [Int] = []
            var tokens: [Int] = []
            for r in alive {
                let draw = sequences[r].logits.withUnsafeBufferPointer { logits in
                    scratch.withUnsafeMutableBufferPointer { next(logits, temperature: temperature, topP: topP, random: &generators[r], scratch: $0) }
                }
                ids[r].append(draw.token)
                logprobs[r].append(draw.logprob)
                entropy[r] += draw.entropy
                if stopAtEOS && model.stopTokenIds.contains(draw.token) {
                    stopped[r] = true
                } else if ids[r].count < maxNewTokens {
                    fed.append(r)
                    tokens.append(draw.token)
                }
            }
            alive = fed
            if !fed.isEmpty { try model.step(fed.map { sequences[$0] }, tokens: tokens, stats: &stats, independentRows: false) }
        }
        return (0..<prompts.count).map { i in
            (0..<count).map { g in
                let r = i * count + g
                return Rollout(ids: ids[r], text: model.tokenizer.decode(ids[r], skipSpecialTokens: true), stopped: stopped[r],
                               samplingLogprobs: logprobs[r], meanEntropy: ids[r].isEmpty ? 0 : entropy[r] / Double(ids[r].count))
            }
        }
    }

    /// One draw: the token, its log-probability under softmax(logits / T) (the whole vocabulary,
    /// as the training path computes it) and that distribution's entropy.
    static func next(_ logits: UnsafeBufferPointer<Float>, temperature: Float, topP: Float, random: inout SeededRandom,
                     scratch: UnsafeMutableBufferPointer<Double>) -> (token: Int, logprob: Float, entropy: Double) {
        let t = Double(temperature > 0 ? temperature : 1)
        var mx = -Double.infinity
        for v in logits { mx = max(mx, Double(v) / t) }
        var z = 0.0, weighted = 0.0
        for (i, v) in logits.enumerated() {
            let s = Double(v) / t - mx
            let e = exp(s)
            scratch[i] = e
            z += e
            weighted += e * s
        }
        let logZ = log(z)
        let entropy = logZ - weighted / z
        func result(_ token: Int) -> (Int, Float, Double) { (token, Float(Double(logits[token]) / t - mx - logZ), entropy) }

        if topP >= 1 {
            var u = random.unit() * z
            for i in 0..<logits.count {
                u -= scratch[i]
                if u < 0 { return result(i) }
            }
            return result(logits.count - 1)
        }
        // Candidates, most likely first: every token whose weight is at least half of z·(1 − top-p)/V.
        // The others hold less than half of z·(1 − top-p) together, so the nucleus (which stops
        // once it holds top-p·z) is complete before it could reach one of them.
        let floor = 0.5 * z * (1 - Double(topP)) / Double(logits.count)
        var candidates: [Int] = []
        for i in 0..<logits.count where scratch[i] >= floor { candidates.append(i) }
        candidates.sort { scratch[$0] > scratch[$1] || (scratch[$0] == scratch[$1] && $0 < $1) }
        let target = Double(topP) * z
        var cumulative = 0.0, keep = candidates.count
        for (k, i) in candidates.enumerated() {
            cumulative += scratch[i]
            if cumulative >= target { keep = k + 1; break }
        }
        var mass = 0.0
        for k in 0..<keep { mass += scratch[candidates[k]] }
        var u = random.unit() * mass
        for k in 0..<keep {
            u -= scratch[candidates[k]]
            if u < 0 { return result(candidates[k]) }
        }
        return result(candidates[keep - 1])
    }
}
