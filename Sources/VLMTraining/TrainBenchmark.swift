import Foundation
import VLMRuntime

/// `assay bench train`: the forward + backward of one GRPO step (G completions of C tokens after
/// a prompt of P tokens, TRL's 'dapo' loss with β = 0 and ratio 1, so ∂loss/∂logp = −A_i / ΣL),
/// on seeded random ids, timed per round.
public enum TrainBenchmark {
    public struct Figures: Sendable, Codable {
        public var groupSize: Int
        public var promptTokens: Int
        public var completionTokens: Int
        /// G · (P + C): the tokens a batch-of-G forward runs (torch's count), whatever the packing.
        public var tokensPerStep: Int
        /// Rows the packed pass actually runs: P + G · (C − 1).
        public var decoderRows: Int
        public var stepSeconds: [Double]
        public var medianStepSeconds: Double
        public var tokensPerSecond: Double
        /// FLOPs of the step's matrix products (forward, recompute, backward), counted from the shapes.
        public var matmulFLOPs: Double
        public var achievedGFLOPs: Double
        public var scratchPeakBytes: Int
        public var peakResidentBytes: Int
        public var parameterBytes: Int
        public var threads: Int
    }

    /// Runs `rounds` timed steps after one warm-up step (not counted) when `warmUp`.
    public static func run(model: PolicyModel, groupSize G: Int, promptTokens P: Int, completionTokens C: Int,
                           rounds: Int, seed: UInt64 = 0, warmUp: Bool = true, progress: ((Int, Double) -> Void)? = nil) throws -> Figures {
        guard G >= 1, P >= 1, C >= 1, rounds >= 1 else {
            throw TrainingModelError.badInput("group size, prompt and completion tokens and rounds must be at least 1")
        }
        let vocab = model.config.text.vocabSize
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        func next() -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(max(1, vocab)))
        }
        let prompt = PolicyPrompt.tokens((0..<P).map { _ in next() })
        let completions = (0..<G).map { _ in (0..<C).map { _ in next() } }
        let advantages = (0..<G).map { i in G == 1 ? 1 : Float(i) / Float(G - 1) * 2 - 1 }
        let total = Float(G * C)
        var times: [Double] = []
        var scratch = 0
        for r in (warmUp ? 0 : 1)...rounds {
            model.parameters.zeroGradients()
            var stats = PolicyPassStats()
            let t0 = Date()
            _ = try model.backward(prompt: prompt, completions: completions, temperature: 1, stats: &stats,
                                   gradient: TokenGradient { i, _, _ in -advantages[i] / total })
            let dt = Date().timeIntervalSince(t0)
            scratch = max(scratch, stats.scratchPeakBytes)
            if r > 0 { times.append(dt) }
            progress?(r, dt)
        }
        let sorted = times.sorted()
        let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        let flops = matmulFLOPs(model, promptTokens: P, completions: Array(repeating: C, count: G))
        return Figures(groupSize: G, promptTokens: P, completionTokens: C, tokensPerStep: G * (P + C), decoderRows: P + G * (C - 1),
                       stepSeconds: times, medianStepSeconds: median, tokensPerSecond: Double(G * (P + C)) / median,
                       matmulFLOPs: flops, achievedGFLOPs: flops / median / 1e9, scratchPeakBytes: scratch,
                       peakResidentBytes: RuntimeBenchmark.peakResidentBytes(), parameterBytes: model.parameters.elementCount * 4,
                       threads: RuntimeThreads.count)
    }

    /// GFLOP/s of the trainer's own matrix product (`TrainKernels.gemm`: OpenBLAS sgemm split over
    /// the cores) alone on an [m × k]·[k × n] product, the best of `repeats`: the ceiling the step's
    /// products are measured against.
    public static func gemmGFLOPs(m: Int, n: Int, k: Int, repeats: Int = 5) -> Double {
        let a = UnsafeMutablePointer<Float>.allocate(capacity: m * k), b = UnsafeMutablePointer<Float>.allocate(capacity: k * n)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        for i in 0..<(m * k) { a[i] = Float(i % 13) * 0.01 }
        for i in 0..<(k * n) { b[i] = Float(i % 7) * 0.01 }
        var best = Double.infinity
        for _ in 0..<max(1, repeats) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            TrainKernels.gemm(m: m, n: n, k: k, a, lda: k, b, ldb: n, beta: 0, c, ldc: n)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return 2 * Double(m) * Double(n) * Double(k) / best / 1e9
    }

    /// Matrix-product FLOPs of one packed step (text only), as `PolicyModel` runs it: every layer
    /// forward and backward (dx and dW: twice the forward), the recompute of every layer but the
    /// top one (without the down projection, whose output the backward does not need, nor the
    /// gate/up products of the layers whose outputs it kept), and the head
    /// forward, dH and dW (a token-wise loss, as the bench's, computes each chunk's logits once).
    public static func matmulFLOPs(_ model: PolicyModel, promptTokens P: Int, completions: [Int]) -> Double {
        let config = model.config
        let c = config.text
        let h = Double(c.hiddenSize), hd = Double(c.headDim)
        let q = Double(c.numHeads) * hd, kv = Double(c.numKVHeads) * hd, inter = Double(c.intermediateSize)
        let rowCount = P + completions.reduce(0) { $0 + $1 - 1 }
        let rows = Double(rowCount)
        let perRow = 2 * (h * q + 2 * h * kv + q * h + 3 * h * inter)
        // Attention as computed: each query against the prefix and, by row blocks, the segment keys
        // up to the block's last row (SegmentAttention.rowBlocks).
        var pairs = Double(SegmentAttention.computedPairs(AttentionSegment(start: 0, length: P, prefix: 0, causal: true)))
        for l in completions {
            pairs += Double(SegmentAttention.computedPairs(AttentionSegment(start: 0, length: l - 1, prefix: P, causal: true)))
        }
        let attention = 4 * hd * Double(c.numHeads) * pairs
        let layer = perRow * rows + attention
        let depth = c.numLayers
        let kept = model.keptGateUpLayers(rows: rowCount)
        let recompute = (layer - rows * 2 * h * inter) * Double(depth - 1) - Double(kept) * rows * 2 * 2 * h * inter
        let headTokens = completions.reduce(0, +)
        let head = 2 * h * Double(c.vocabSize) * Double(headTokens)
        return layer * Double(depth) * 3 + recompute + head * 3
    }
}
