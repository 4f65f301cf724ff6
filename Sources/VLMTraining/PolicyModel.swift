import CBLAS
import Foundation
import VLMRuntime

/// One prompt as the policy sees it: token ids with every image placeholder expanded, the three
/// mRoPE position axes, and the images' pixel rows.
public struct PolicyPrompt: Sendable {
    public var ids: [Int]
    /// [3][ids.count]: t, h, w positions (text repeats one position on all three).
    public var positions: [[Int]]
    /// Position of the first token after the prompt.
    public var nextPosition: Int
    public var images: ProcessedImages

    public init(ids: [Int], positions: [[Int]], nextPosition: Int, images: ProcessedImages) {
        self.ids = ids
        self.positions = positions
        self.nextPosition = nextPosition
        self.images = images
    }

    /// Renders a conversation through the model's chat template and processor, as generation does.
    public static func prepare(_ model: VLMModel, messages: [ChatMessage]) throws -> PolicyPrompt {
        let batch = try model.prepare([messages])
        guard let ids = batch.inputIds.first else { throw ModelInputError.emptyPrompt }
        let (pos, next) = try VLMModel.ropeIndex(inputIds: batch.inputIds, mask: batch.attentionMask, grids: batch.images.grids,
                                                 imageTokenId: model.config.imageTokenId ?? -1,
                                                 merge: model.config.vision?.spatialMergeSize ?? 1)
        return PolicyPrompt(ids: ids, positions: pos, nextPosition: next[0], images: batch.images)
    }

    /// A text prompt of raw token ids (no template): positions 0, 1, 2, ….
    public static func tokens(_ ids: [Int]) -> PolicyPrompt {
        let p = Array(0..<ids.count)
        return PolicyPrompt(ids: ids, positions: [p, p, p], nextPosition: ids.count,
                            images: ProcessedImages(pixelValues: [], rowLength: 0, grids: []))
    }
}

/// What one pass measured.
public struct PolicyPassStats: Sendable {
    /// Rows the decoder ran: the prompt once plus each completion's inputs.
    public var decoderRows = 0
    public var promptTokens = 0
    public var completionTokens = 0
    public var imagePatches = 0
    /// Bytes of training scratch at the pass's peak (activations, probabilities, gradients in flight).
    public var scratchPeakBytes = 0
    public var seconds = 0.0
}

/// The policy for training: the decoder (and vision tower) of a checkpoint over f32 trainable
/// parameters, with a forward that keeps each decoder layer's input and a backward that recomputes
/// the layer from it (activation checkpointing per layer) and accumulates exact gradients into the
/// parameters' `grad`.
///
/// A group of completions of one prompt runs as one packed pass: the prompt's rows once, then each
/// completion's rows attending to the prompt's keys and its own (see `AttentionSegment`), which is
/// the same arithmetic as one forward of prompt + completion per sequence (the GRPO goldens' batch
/// 1, no padding) with the prompt and its image computed once.
public final class PolicyModel: @unchecked Sendable {
    public let config: ModelConfig
    public let parameters: ParameterSet
    /// Bytes of logits the head holds at once (rows × vocab floats): it runs over the completion
    /// tokens in chunks of that many rows, each chunk's logits used for the log-probs and, in a
    /// backward with a token-wise gradient, for ∂loss/∂logits, dH and dW straight away.
    public var headChunkBytes = 64 << 20
    /// Bytes the forward may keep of layers' gate/up outputs so the recompute before each
    /// layer's backward skips those two products (the rest of the layer is always recomputed).
    public var keptActivationsBudget = 800 << 20
    let layout: PolicyLayout
    let invFreq: [Float]
    let pairAxis: [Int]

    public init(config: ModelConfig, parameters: ParameterSet) throws {
        self.config = config
        self.parameters = parameters
        layout = try PolicyLayout(config: config, parameters: parameters)
        let c = config.text
        let hd = c.headDim, half = hd / 2
        invFreq = (0..<half).map { j in
            let f = 1 / Float(pow(c.ropeTheta, Double(Float(2 * j) / Float(hd))))
            return c.ropeFrequencyDivisors.map { f / $0[j] } ?? f
        }
        var axis: [Int] = []
        for (a, n) in c.mropeSection.enumerated() { axis += Array(repeating: a, count: n) }
        if axis.count < half { axis += Array(repeating: 0, count: half - axis.count) }
        pairAxis = Array(axis.prefix(half))
    }

    /// Whether any vision parameter takes a gradient.
    var visionTrainable: Bool {
        guard let v = layout.vision else { return false }
        return parameters.parameters[v.patchEmbed.weight].trainable || v.blocks.contains { parameters.parameters[$0.qkv.weight].trainable }
    }

    /// Layers (from the bottom, never the top one, which is not recomputed) whose gate/up outputs
    /// a backward pass over `rows` decoder rows keeps within `keptActivationsBudget`.
    func keptGateUpLayers(rows: Int) -> Int {
        let c = config.text
        return min(layout.layers.count - 1, keptActivationsBudget / max(1, 2 * rows * c.intermediateSize * 4))
    }

    /// Per-token log-probabilities of each completion at temperature T (no gradient).
    public func logprobs(prompt: PolicyPrompt, completions: [[Int]], temperature: Float) throws -> [[Float]] {
        var stats = PolicyPassStats()
        return try run(prompt: prompt, completions: completions, temperature: temperature, head: .logprobs, stats: &stats)
    }

    /// Forward and backward with a loss whose ∂loss/∂logp at each token depends on that token's
    /// log-prob alone (`GRPOObjective.tokenGradient`): the head turns each chunk of logits into
    /// log-probs and gradients at once, so no pass holds more than `headChunkBytes` of logits and
    /// none is computed twice. Adds ∂loss/∂θ into every trainable parameter's `grad`; returns the
    /// log-probabilities.
    ///
    /// With `microBatch` below the group size the completions run `microBatch` at a time, each
    /// micro-batch a forward and a backward of its own (gradient accumulation): activation memory
    /// follows the micro-batch at the price of the prompt's rows once per micro-batch.
    public func backward(prompt: PolicyPrompt, completions: [[Int]], temperature: Float, microBatch: Int? = nil,
                         stats: inout PolicyPassStats, gradient: TokenGradient) throws -> [[Float]] {
        let size = microBatch ?? completions.count
        guard size >= 1, size < completions.count else {
            return try run(prompt: prompt, completions: completions, temperature: temperature, head: .tokenwise(gradient), stats: &stats)
        }
        let started = Date()
        var all: [[Float]] = [], peak = 0
        for start in stride(from: 0, to: completions.count, by: size) {
            let part = start..<min(completions.count, start + size)
            var s = PolicyPassStats()
            let shifted = TokenGradient { i, t, lp in gradient(start + i, t, lp) }
            all += try run(prompt: prompt, completions: Array(completions[part]), temperature: temperature, head: .tokenwise(shifted), stats: &s)
            peak = max(peak, s.scratchPeakBytes)
            stats.imagePatches = s.imagePatches
        }
        stats.promptTokens = prompt.ids.count
        stats.completionTokens = completions.reduce(0) { $0 + $1.count }
        stats.decoderRows = prompt.ids.count + completions.reduce(0) { $0 + $1.count - 1 }
        stats.scratchPeakBytes = peak
        stats.seconds = Date().timeIntervalSince(started)
        return all
    }

    /// Forward, then `objective(logprobs)` → ∂loss/∂logp per token for any loss of the whole group,
    /// then the backward pass, which adds ∂loss/∂θ into every trainable parameter's `grad`. The
    /// head's logits are computed twice (once for the log-probs the objective needs, once for its
    /// gradient); a token-wise loss is cheaper through `backward(…, gradient:)`.
    public func backward(prompt: PolicyPrompt, completions: [[Int]], temperature: Float, stats: inout PolicyPassStats,
                         objective: ([[Float]]) throws -> [[Float]]) throws -> [[Float]] {
        try withoutActuallyEscaping(objective) { o in
            try run(prompt: prompt, completions: completions, temperature: temperature, head: .whole(o), stats: &stats)
        }
    }

    /// The same in micro-batches of at most `microBatch` completions: a forward-only pass gives
    /// every log-prob, the objective sees them all at once, then each micro-batch runs forward and
    /// backward with its slice of ∂loss/∂logp (one more forward than the token-wise form).
    public func backward(prompt: PolicyPrompt, completions: [[Int]], temperature: Float, microBatch: Int, stats: inout PolicyPassStats,
                         objective: ([[Float]]) throws -> [[Float]]) throws -> [[Float]] {
        guard microBatch >= 1, microBatch < completions.count else {
            return try backward(prompt: prompt, completions: completions, temperature: temperature, stats: &stats, objective: objective)
        }
        let all = try logprobs(prompt: prompt, completions: completions, temperature: temperature)
        let d = try Self.checked(objective(all), completions)
        _ = try backward(prompt: prompt, completions: completions, temperature: temperature, microBatch: microBatch, stats: &stats,
                         gradient: TokenGradient { i, t, _ in d[i][t] })
        return all
    }

    /// The objective's ∂loss/∂logp, checked against the completions' lengths.
    private static func checked(_ d: [[Float]], _ completions: [[Int]]) throws -> [[Float]] {
        guard d.count == completions.count else {
            throw TrainingModelError.badInput("the objective returned \(d.count) gradients for \(completions.count) completions")
        }
        for (i, g) in d.enumerated() where g.count != completions[i].count {
            throw TrainingModelError.badInput("completion \(i): \(g.count) log-prob gradients for \(completions[i].count) tokens")
        }
        return d
    }

    /// What a pass does at the head.
    private enum Head {
        /// Log-probs only.
        case logprobs
        /// Log-probs and, chunk by chunk, their token-wise gradient.
        case tokenwise(TokenGradient)
        /// Every log-prob first, then the objective's gradient in a second pass over the head.
        case whole(([[Float]]) throws -> [[Float]])
    }

    // MARK: - The pass

    private func run(prompt: PolicyPrompt, completions: [[Int]], temperature: Float, head mode: Head,
                     stats: inout PolicyPassStats) throws -> [[Float]] {
        let started = Date()
        let c = config.text
        let h = c.hiddenSize, vocab = c.vocabSize
        let P = prompt.ids.count
        guard P > 0 else { throw ModelInputError.emptyPrompt }
        guard temperature > 0, temperature.isFinite else { throw TrainingModelError.badInput("temperature must be positive, not \(temperature)") }
        guard prompt.positions.count == 3, prompt.positions.allSatisfy({ $0.count == P }) else {
            throw TrainingModelError.badInput("prompt positions must be 3 rows of \(P)")
        }
        for id in prompt.ids where id < 0 || id >= vocab { throw ModelInputError.tokenOutOfRange(id: id, vocabulary: vocab) }
        for (i, comp) in completions.enumerated() {
            guard !comp.isEmpty else { throw TrainingModelError.badInput("completion \(i) is empty") }
            for id in comp where id < 0 || id >= vocab {
                throw TrainingModelError.badInput("completion \(i): token id \(id) is outside the vocabulary (\(vocab))")
            }
        }
        if let limit = c.maxPositions, let longest = completions.map(\.count).max(), prompt.nextPosition + longest > limit {
            throw ModelInputError.contextTooLong(tokens: prompt.nextPosition + longest, limit: limit)
        }

        // Rows: [prompt | inputs of completion 0 | …]; a completion's last token is never an input.
        var starts: [Int] = []
        var tokens = prompt.ids
        var axes = prompt.positions
        for comp in completions {
            starts.append(tokens.count)
            for t in 0..<(comp.count - 1) {
                tokens.append(comp[t])
                for a in 0..<3 { axes[a].append(prompt.nextPosition + t) }
            }
        }
        let N = tokens.count
        var segments = [AttentionSegment(start: 0, length: P, prefix: 0, causal: true)]
        for (i, comp) in completions.enumerated() {
            segments.append(AttentionSegment(start: starts[i], length: comp.count - 1, prefix: P, causal: true))
        }
        stats.decoderRows = N
        stats.promptTokens = P
        stats.completionTokens = completions.reduce(0) { $0 + $1.count }
        stats.imagePatches = prompt.images.rows
        MemoryMeter.shared.resetPeak()
        let wantsGradient: Bool
        if case .logprobs = mode { wantsGradient = false } else { wantsGradient = true }
        // Backward passes keep their scratch for the next one (ScratchPool); forward-only passes
        // (log-probs) leave those buffers alone.
        if wantsGradient { ScratchPool.shared.beginPass() }
        defer { if wantsGradient { ScratchPool.shared.endPass() } }

        let result: [[Float]] = try parameters.withViews { pv in
            let scratch = Scratch()
            // Vision.
            var imageEmbeds: UnsafeMutablePointer<Float>? = nil
            var visionPass: VisionPass? = nil
            let imageToken = config.imageTokenId ?? -1
            let imageRows = prompt.ids.reduce(0) { $0 + ($1 == imageToken ? 1 : 0) }
            if !prompt.images.grids.isEmpty {
                guard let vl = layout.vision, let vc = config.vision else {
                    throw ModelInputError.missingImage("this model is text-only and cannot take images")
                }
                let pass = try VisionPass(family: config.family, config: vc, layout: vl, images: prompt.images, keep: wantsGradient && visionTrainable)
                let (embeds, count) = pass.forward(pv)
                guard count == imageRows else { throw ModelInputError.imageTokenMismatch(tokens: imageRows, embeddings: count) }
                imageEmbeds = embeds
                visionPass = pass
            } else if imageRows > 0 {
                throw ModelInputError.missingImage("the prompt has \(imageRows) image tokens and no image")
            }

            // Embedding rows (image tokens take the image features in order).
            let depth = layout.layers.count
            let keep = wantsGradient ? depth + 1 : 2
            let xs = (0..<keep).map { _ in scratch.take(N * h) }
            let embed = pv[layout.embed].v
            var k = 0
            for (r, id) in tokens.enumerated() {
                if r < P, id == imageToken, let e = imageEmbeds {
                    (xs[0] + r * h).update(from: e + k * h, count: h)
                    k += 1
                } else {
                    (xs[0] + r * h).update(from: embed + id * h, count: h)
                }
            }

            // RoPE tables, one row per packed row.
            let half = c.headDim / 2
            let cosT = scratch.take(N * half), sinT = scratch.take(N * half)
            for r in 0..<N {
                for j in 0..<half {
                    let a = Float(axes[pairAxis[j]][r]) * invFreq[j]
                    cosT[r * half + j] = cosf(a)
                    sinT[r * half + j] = sinf(a)
                }
            }
            let attention = SegmentAttention(heads: c.numHeads, kvHeads: c.numKVHeads, headDim: c.headDim, segments: segments)
            let acts = LayerActivations(rows: N, config: c, probabilities: attention.probabilityCount, gradients: wantsGradient)
            let rope = (cos: UnsafePointer(cosT), sin: UnsafePointer(sinT))

            // The MLP's gate and up outputs (half of a layer's product FLOPs) of as many layers as
            // `keptActivationsBudget` holds are kept, so their recompute skips those products.
            let inter = c.intermediateSize
            let keptLayers = wantsGradient ? keptGateUpLayers(rows: N) : 0
            let keptGU = (0..<keptLayers).map { _ in scratch.take(2 * N * inter) }
            func gateUp(_ l: Int) -> GateUp {
                l < keptLayers ? GateUp(g: keptGU[l], u: keptGU[l] + N * inter, kept: true) : GateUp(g: acts.g, u: acts.u, kept: false)
            }
            for l in 0..<depth {
                let input = wantsGradient ? xs[l] : xs[l % 2]
                let output = wantsGradient ? xs[l + 1] : xs[(l + 1) % 2]
                PhaseTimer.measure("forward") {
                    layerForward(layout.layers[l], pv, x: input, y: output, rows: N, acts: acts, gateUp: gateUp(l), attention: attention, rope: rope)
                }
            }
            let last = wantsGradient ? xs[depth] : xs[depth % 2]
            let hf = scratch.take(N * h), rstdF = scratch.take(N)
            TrainKernels.rmsNorm(last, rows: N, width: h, weight: pv[layout.norm.weight].v, eps: layout.norm.eps, into: hf, rstd: rstdF)

            // The head: log-probabilities at temperature T and, with a gradient, dH into dHf and dW.
            var targets: [HeadRow] = []
            for (i, comp) in completions.enumerated() {
                for t in comp.indices { targets.append(HeadRow(completion: i, token: t, row: t == 0 ? P - 1 : starts[i] + t - 1, id: comp[t])) }
            }
            let dHf = wantsGradient ? scratch.take(N * h, zeroed: true) : nil
            let headStart = DispatchTime.now().uptimeNanoseconds
            let logps: [[Float]]
            switch mode {
            case .logprobs:
                return headPass(pv, hidden: hf, targets: targets, completions: completions, temperature: temperature, gradient: nil, dHidden: nil)
            case .tokenwise(let g):
                logps = headPass(pv, hidden: hf, targets: targets, completions: completions, temperature: temperature, gradient: g, dHidden: dHf)
            case .whole(let objective):
                logps = headPass(pv, hidden: hf, targets: targets, completions: completions, temperature: temperature, gradient: nil, dHidden: nil)
                let d = try Self.checked(objective(logps), completions)
                _ = headPass(pv, hidden: hf, targets: targets, completions: completions, temperature: temperature,
                             gradient: TokenGradient { i, t, _ in d[i][t] }, dHidden: dHf)
            }
            guard let dHf else { return logps }
            PhaseTimer.record("head", since: headStart)
            // Final norm, then the layers from the top, each recomputed from its saved input.
            let dX = scratch.take(N * h)
            TrainKernels.rmsNormBackward(dHf, x: last, rows: N, width: h, weight: pv[layout.norm.weight].v, rstd: rstdF,
                                         dx: dX, accumulate: false, dw: pv[layout.norm.weight].grad)
            for l in stride(from: depth - 1, through: 0, by: -1) {
                let layer = layout.layers[l]
                // The top layer's intermediates are still those of the forward pass.
                if l < depth - 1 {
                    PhaseTimer.measure("recompute") {
                        layerForward(layer, pv, x: xs[l], y: xs[l + 1], rows: N, acts: acts, gateUp: gateUp(l), attention: attention, rope: rope,
                                     recompute: true)
                    }
                }
                PhaseTimer.measure("backward") {
                    layerBackward(layer, pv, x: xs[l], dY: dX, rows: N, acts: acts, gateUp: gateUp(l), attention: attention, rope: rope)
                }
            }

            // Embedding rows; image rows go back through the vision tower.
            var dImage: UnsafeMutablePointer<Float>? = nil
            if let pass = visionPass, pass.keep { dImage = scratch.take(imageRows * h, zeroed: true) }
            var ki = 0
            let embedGrad = pv[layout.embed].grad
            for (r, id) in tokens.enumerated() {
                if r < P, id == imageToken, imageEmbeds != nil {
                    if let dI = dImage { (dI + ki * h).update(from: dX + r * h, count: h) }
                    ki += 1
                } else if let g = embedGrad {
                    let dst = g + id * h, src = dX + r * h
                    for j in 0..<h { dst[j] += src[j] }
                }
            }
            if let pass = visionPass, let dI = dImage { pass.backward(pv, dEmbeds: dI) }
            PhaseTimer.report()
            return logps
        }
        stats.scratchPeakBytes = MemoryMeter.shared.peak
        stats.seconds = Date().timeIntervalSince(started)
        return result
    }

    /// A completion token the head scores: its completion, position, the decoder row whose output
    /// predicts it and its id.
    struct HeadRow {
        let completion: Int, token: Int, row: Int, id: Int
    }

    /// The head over `targets` in chunks of at most `headChunkBytes` of logits: each chunk's rows
    /// of the final hidden states times the head, the log-softmax at T and each target's log-prob;
    /// with a gradient, dZ = g·(onehot − softmax(z/T))/T in place, dH rows += dZ·W into `dHidden`
    /// and dW += dZᵀ·H into the head's gradient. Returns the log-probs per completion.
    private func headPass(_ pv: [ParamView], hidden: UnsafePointer<Float>, targets: [HeadRow], completions: [[Int]],
                          temperature: Float, gradient: TokenGradient?, dHidden: UnsafeMutablePointer<Float>?) -> [[Float]] {
        let h = config.text.hiddenSize, vocab = config.text.vocabSize
        let head = pv[layout.head].v
        let chunk = max(1, min(targets.count, headChunkBytes / (vocab * 4)))
        let scratch = Scratch()
        let hRows = scratch.take(chunk * h), z = scratch.take(chunk * vocab)
        let dRows = gradient == nil ? nil : scratch.take(chunk * h)
        var logps = completions.map { [Float](repeating: 0, count: $0.count) }
        for c0 in stride(from: 0, to: targets.count, by: chunk) {
            let part = Array(targets[c0..<min(targets.count, c0 + chunk)])
            let n = part.count
            for (k, t) in part.enumerated() { (hRows + k * h).update(from: hidden + t.row * h, count: h) }
            PhaseTimer.measure("head-logits") {
                TrainKernels.gemm(transB: true, m: n, n: vocab, k: h, hRows, lda: h, head, ldb: h, beta: 0, z, ldc: vocab)
            }
            let rowGradient = gradient.map { g in { (k: Int, lp: Float) in g(part[k].completion, part[k].token, lp) } }
            let lp = PhaseTimer.measure("logsoftmax") {
                Self.logSoftmaxGather(z, rows: n, vocab: vocab, targets: part.map(\.id), temperature: temperature, gradient: rowGradient)
            }
            for (k, t) in part.enumerated() { logps[t.completion][t.token] = lp[k] }
            guard let dRows, let dHidden else { continue }
            PhaseTimer.measure("head-dH") { TrainKernels.gemm(m: n, n: h, k: vocab, z, lda: vocab, head, ldb: h, beta: 0, dRows, ldc: h) }
            for (k, t) in part.enumerated() {
                let src = dRows + k * h, dst = dHidden + t.row * h
                for j in 0..<h { dst[j] += src[j] }
            }
            if let gw = pv[layout.head].grad {
                PhaseTimer.measure("head-dW") { TrainKernels.gemm(transA: true, m: vocab, n: h, k: n, z, lda: vocab, hRows, ldb: h, beta: 1, gw, ldc: h) }
            }
        }
        return logps
    }

    /// logp[t] = z[t, target]/T − logsumexp(z[t]/T) for each row of `logits`, overwritten with
    /// g·(onehot − softmax(z/T))/T when `gradient` gives g = ∂loss/∂logp of row t from its log-prob.
    /// Row sums in Float64 would differ from torch's f32 log_softmax by less than its own rounding;
    /// f32 max-shifted sums are used.
    static func logSoftmaxGather(_ logits: UnsafeMutablePointer<Float>, rows: Int, vocab: Int, targets: [Int], temperature: Float,
                                 gradient: ((Int, Float) -> Float)?) -> [Float] {
        var out = [Float](repeating: 0, count: rows)
        out.withUnsafeMutableBufferPointer { op in
            TrainKernels.parallelRows(rows, width: vocab) { t in
                let z = logits + t * vocab
                let level = TrainKernels.rowLevel
                let mx = assay_div_max_row(level, z, vocab, temperature)
                let lse = mx + logf(assay_sum_exp_row(level, z, vocab, mx))
                op[t] = z[targets[t]] - lse
                if let gradient {
                    let g = gradient(t, op[t]) / temperature
                    assay_exp_scale_row(level, z, vocab, lse, -g)
                    z[targets[t]] += g
                }
            }
        }
        return out
    }

    // MARK: - Decoder layers

    typealias Rope = (cos: UnsafePointer<Float>, sin: UnsafePointer<Float>)

    /// Where a layer's gate and up outputs live: the pass's activations, or buffers kept from the
    /// forward to the backward (`kept`: a recompute finds them there and skips their products).
    struct GateUp {
        let g: UnsafeMutablePointer<Float>, u: UnsafeMutablePointer<Float>
        let kept: Bool
    }

    private func layerForward(_ L: PolicyLayout.Layer, _ pv: [ParamView], x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows N: Int,
                              acts a: LayerActivations, gateUp gu: GateUp, attention: SegmentAttention, rope: Rope, recompute: Bool = false) {
        let c = config.text
        let h = c.hiddenSize, hd = c.headDim, qDim = c.numHeads * hd, kvDim = c.numKVHeads * hd, inter = c.intermediateSize
        TrainKernels.rmsNorm(x, rows: N, width: h, weight: pv[L.inNorm.weight].v, eps: L.inNorm.eps, into: a.xn1, rstd: a.rstd1)
        project(L.q, pv, a.xn1, rows: N, into: a.q)
        project(L.k, pv, a.xn1, rows: N, into: a.k)
        project(L.v, pv, a.xn1, rows: N, into: a.v)
        TrainKernels.rotary(a.q, rows: N, ld: qDim, heads: c.numHeads, headDim: hd, cos: rope.cos, sin: rope.sin, inverse: false)
        TrainKernels.rotary(a.k, rows: N, ld: kvDim, heads: c.numKVHeads, headDim: hd, cos: rope.cos, sin: rope.sin, inverse: false)
        PhaseTimer.measure("attention") { attention.forward(q: a.q, ldq: qDim, k: a.k, ldk: kvDim, v: a.v, ldv: kvDim, out: a.attn, ldo: qDim, probs: a.probs) }
        project(L.o, pv, a.attn, rows: N, into: a.x2)
        addInPlace(a.x2, x, N * h)
        TrainKernels.rmsNorm(a.x2, rows: N, width: h, weight: pv[L.postNorm.weight].v, eps: L.postNorm.eps, into: a.xn2, rstd: a.rstd2)
        if !(recompute && gu.kept) {
            project(L.gate, pv, a.xn2, rows: N, into: gu.g)
            project(L.up, pv, a.xn2, rows: N, into: gu.u)
        }
        TrainKernels.swiGLU(gu.g, gu.u, count: N * inter, into: a.act)
        // A recompute before the backward needs the intermediates, not the output: y is the next
        // layer's saved input already, and the down projection's backward reads only `act`.
        if recompute { return }
        project(L.down, pv, a.act, rows: N, into: y)
        addInPlace(y, a.x2, N * h)
    }

    /// dY (the gradient of the layer's output) in, the gradient of its input out (in place).
    private func layerBackward(_ L: PolicyLayout.Layer, _ pv: [ParamView], x: UnsafePointer<Float>, dY: UnsafeMutablePointer<Float>, rows N: Int,
                               acts a: LayerActivations, gateUp gu: GateUp, attention: SegmentAttention, rope: Rope) {
        let c = config.text
        let h = c.hiddenSize, hd = c.headDim, qDim = c.numHeads * hd, kvDim = c.numKVHeads * hd, inter = c.intermediateSize
        // MLP: y = x2 + down(silu(gate(xn2)) · up(xn2)).
        projectBackward(L.down, pv, dY, input: a.act, rows: N, dInput: a.dAct, accumulate: false)
        TrainKernels.swiGLUBackward(a.dAct, g: gu.g, u: gu.u, count: N * inter, dg: a.dG, du: a.dU)
        projectBackward(L.gate, pv, a.dG, input: a.xn2, rows: N, dInput: a.dXn, accumulate: false)
        projectBackward(L.up, pv, a.dU, input: a.xn2, rows: N, dInput: a.dXn, accumulate: true)
        a.dX2.update(from: dY, count: N * h)
        TrainKernels.rmsNormBackward(a.dXn, x: a.x2, rows: N, width: h, weight: pv[L.postNorm.weight].v, rstd: a.rstd2,
                                     dx: a.dX2, accumulate: true, dw: pv[L.postNorm.weight].grad)
        // Attention: x2 = x + o(attention(rope(q(xn1)), rope(k(xn1)), v(xn1))).
        projectBackward(L.o, pv, a.dX2, input: a.attn, rows: N, dInput: a.dAttn, accumulate: false)
        PhaseTimer.measure("attention-backward") { attention.backward(dOut: a.dAttn, ldo: qDim, q: a.q, ldq: qDim, k: a.k, ldk: kvDim, v: a.v, ldv: kvDim, probs: a.probs,
                           dq: a.dQ, dk: a.dK, dv: a.dV, rows: N) }
        TrainKernels.rotary(a.dQ, rows: N, ld: qDim, heads: c.numHeads, headDim: hd, cos: rope.cos, sin: rope.sin, inverse: true)
        TrainKernels.rotary(a.dK, rows: N, ld: kvDim, heads: c.numKVHeads, headDim: hd, cos: rope.cos, sin: rope.sin, inverse: true)
        projectBackward(L.q, pv, a.dQ, input: a.xn1, rows: N, dInput: a.dXn, accumulate: false)
        projectBackward(L.k, pv, a.dK, input: a.xn1, rows: N, dInput: a.dXn, accumulate: true)
        projectBackward(L.v, pv, a.dV, input: a.xn1, rows: N, dInput: a.dXn, accumulate: true)
        dY.update(from: a.dX2, count: N * h)
        TrainKernels.rmsNormBackward(a.dXn, x: x, rows: N, width: h, weight: pv[L.inNorm.weight].v, rstd: a.rstd1,
                                     dx: dY, accumulate: true, dw: pv[L.inNorm.weight].grad)
    }

    func project(_ p: PolicyLayout.Proj, _ pv: [ParamView], _ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        TrainKernels.linear(x, rows: rows, in: p.inF, out: p.out, weight: pv[p.weight].v, bias: p.bias.map { pv[$0].v }, into: y)
    }

    func projectBackward(_ p: PolicyLayout.Proj, _ pv: [ParamView], _ dy: UnsafePointer<Float>, input x: UnsafePointer<Float>, rows: Int,
                         dInput: UnsafeMutablePointer<Float>?, accumulate: Bool) {
        TrainKernels.linearBackward(dy, rows: rows, in: p.inF, out: p.out, x: x, weight: pv[p.weight].v, dx: dInput,
                                    accumulateInput: accumulate, dW: pv[p.weight].grad, db: p.bias.flatMap { pv[$0].grad })
    }
}

@inline(__always)
func addInPlace(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
    TrainKernels.parallelElements(n) { r in for i in r { y[i] += x[i] } }
}

/// One decoder layer's intermediate values (forward) and gradients in flight (backward), shared
/// by every layer of a pass: a layer is recomputed from its saved input right before its backward.
final class LayerActivations {
    let scratch = Scratch()
    let xn1, rstd1, q, k, v, probs, attn, x2, xn2, rstd2, g, u, act: UnsafeMutablePointer<Float>
    let dAct, dG, dU, dXn, dX2, dAttn, dQ, dK, dV: UnsafeMutablePointer<Float>

    init(rows n: Int, config c: TextConfig, probabilities: Int, gradients: Bool) {
        let h = c.hiddenSize, qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim, inter = c.intermediateSize
        xn1 = scratch.take(n * h); rstd1 = scratch.take(n)
        q = scratch.take(n * qDim); k = scratch.take(n * kvDim); v = scratch.take(n * kvDim)
        probs = scratch.take(probabilities); attn = scratch.take(n * qDim)
        x2 = scratch.take(n * h); xn2 = scratch.take(n * h); rstd2 = scratch.take(n)
        g = scratch.take(n * inter); u = scratch.take(n * inter); act = scratch.take(n * inter)
        let gn = gradients ? n : 0
        dAct = scratch.take(gn * inter); dG = scratch.take(gn * inter); dU = scratch.take(gn * inter)
        dXn = scratch.take(gn * h); dX2 = scratch.take(gn * h); dAttn = scratch.take(gn * qDim)
        dQ = scratch.take(gn * qDim); dK = scratch.take(gn * kvDim); dV = scratch.take(gn * kvDim)
    }
}
