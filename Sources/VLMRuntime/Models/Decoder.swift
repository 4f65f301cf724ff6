import Foundation

/// One decoder block's weights. Biases are present where the family has them (Qwen2: q/k/v).
struct DecoderLayer {
    let inputNorm: [Float]
    let postNorm: [Float]
    let q: Linear, k: Linear, v: Linear, o: Linear
    let gate: Linear, up: Linear, down: Linear
}

/// Keys and values of every layer for a batch of rows that share one padded length.
final class KVCache {
    let batch: Int
    let capacity: Int
    let kvDim: Int
    var keys: [[Float]]
    var values: [[Float]]
    /// valid[b][p]: whether cache slot p of row b is a real token (left padding is not).
    var valid: [[Bool]]
    var length = 0

    init(layers: Int, batch: Int, capacity: Int, kvDim: Int) {
        self.batch = batch
        self.capacity = capacity
        self.kvDim = kvDim
        keys = Array(repeating: [Float](repeating: 0, count: batch * capacity * kvDim), count: layers)
        values = keys
        valid = Array(repeating: [Bool](repeating: false, count: capacity), count: batch)
    }

    private init(copying other: KVCache) {
        batch = other.batch
        capacity = other.capacity
        kvDim = other.kvDim
        keys = other.keys
        values = other.values
        valid = other.valid
        length = other.length
    }

    /// An independent copy: several samples of one prompt continue from one prefill.
    func copy() -> KVCache { KVCache(copying: self) }
}

/// Why a forward pass could not run on the given input.
public enum ModelInputError: Error, CustomStringConvertible, Equatable {
    case tokenOutOfRange(id: Int, vocabulary: Int)
    case imageTokenMismatch(tokens: Int, embeddings: Int)
    case contextTooLong(tokens: Int, limit: Int)
    case emptyPrompt
    case missingImage(String)
    /// The KV cache for this batch would need more memory than the machine has.
    case cacheTooLarge(bytes: Int, available: Int)

    public var description: String {
        switch self {
        case .tokenOutOfRange(let id, let v): return "token id \(id) is outside the embedding table (\(v) rows)"
        case .imageTokenMismatch(let t, let e): return "image features and image tokens do not match: \(t) tokens, \(e) embeddings"
        case .contextTooLong(let t, let l): return "prompt plus generation needs \(t) positions, more than the model's \(l)"
        case .emptyPrompt: return "empty prompt"
        case .missingImage(let r): return "image not provided: \(r)"
        case .cacheTooLarge(let b, let a):
            return "the KV cache would need \(b / 1_048_576) MiB, more than the \(a / 1_048_576) MiB of memory this machine has"
        }
    }
}

/// Intermediate results of a decoder pass, recorded only when asked for (tests).
public final class DecoderTrace: @unchecked Sendable {
    public var stages: [String: [Float]] = [:]
    public init() {}
}

/// The one decoder every family runs: pre-RMSNorm blocks of GQA attention with rotate-half RoPE
/// and a SwiGLU MLP, a final RMSNorm and a tied or separate LM head, with a KV cache and batched,
/// left-padded prefill and decode.
///
/// The families differ only in data: Llama has no biases and 1-D positions; Qwen2 adds q/k/v
/// biases; Qwen2-VL / Qwen2.5-VL add multimodal RoPE, where each rotary pair turns with one of
/// three position axes (t, h, w) — 1-D RoPE is the case where all pairs use the first axis. The
/// weights come from any `DecoderWeights` (safetensors or GGUF) as float or quantised matrices.
final class TransformerDecoder: @unchecked Sendable {
    let config: TextConfig
    let embed: LinearWeight
    let layers: [DecoderLayer]
    let norm: [Float]
    let lmHead: LinearWeight
    /// Whether `lmHead` is the embedding matrix.
    let tiedHead: Bool
    /// inv_freq[j] and the position axis (t, h, w) of each rotary pair.
    let invFreq: [Float]
    let pairAxis: [Int]
    /// How decode-sized products with quantised weights treat their activations.
    let activations: ActivationMode

    init(config c: TextConfig, weights w: DecoderWeights, tied: Bool, activations: ActivationMode = .float32) throws {
        config = c
        self.activations = activations
        let h = c.hiddenSize, hd = c.headDim
        embed = try w.linearWeight("model.embed_tokens.weight", rows: c.vocabSize, cols: h)
        var layers: [DecoderLayer] = []
        for i in 0..<c.numLayers {
            let p = "model.layers.\(i)."
            let oBias = c.attentionBias && w.has(p + "self_attn.o_proj.bias")
            layers.append(DecoderLayer(
                inputNorm: try w.vector(p + "input_layernorm.weight", count: h),
                postNorm: try w.vector(p + "post_attention_layernorm.weight", count: h),
                q: try w.linear(p + "self_attn.q_proj", out: c.numHeads * hd, in: h, bias: c.attentionBias),
                k: try w.linear(p + "self_attn.k_proj", out: c.numKVHeads * hd, in: h, bias: c.attentionBias),
                v: try w.linear(p + "self_attn.v_proj", out: c.numKVHeads * hd, in: h, bias: c.attentionBias),
                o: try w.linear(p + "self_attn.o_proj", out: h, in: c.numHeads * hd, bias: oBias),
                gate: try w.linear(p + "mlp.gate_proj", out: c.intermediateSize, in: h, bias: c.mlpBias),
                up: try w.linear(p + "mlp.up_proj", out: c.intermediateSize, in: h, bias: c.mlpBias),
                down: try w.linear(p + "mlp.down_proj", out: h, in: c.intermediateSize, bias: c.mlpBias)))
        }
        self.layers = layers
        norm = try w.vector("model.norm.weight", count: h)
        // A missing lm_head means tied embeddings, whatever the config says.
        if !tied, w.has("lm_head.weight") {
            lmHead = try w.linearWeight("lm_head.weight", rows: c.vocabSize, cols: h)
            tiedHead = false
        } else {
            lmHead = embed
            tiedHead = true
        }
        let half = hd / 2
        invFreq = (0..<half).map { j in
            let f = 1 / Float(pow(c.ropeTheta, Double(Float(2 * j) / Float(hd))))
            return c.ropeFrequencyDivisors.map { f / $0[j] } ?? f
        }
        var axis: [Int] = []
        for (a, n) in c.mropeSection.enumerated() { axis += Array(repeating: a, count: n) }
        pairAxis = axis
    }

    /// Checks a cache of `batch` rows of `prompt + generate` positions against the context and
    /// the machine's memory before anything is allocated (`--max-tokens 10000000` used to reach
    /// 7.5 GB before the context error).
    func checkCache(batch: Int, prompt: Int, generate: Int, maxPositions: Int?) throws -> Int {
        let (capacity, overflow) = prompt.addingReportingOverflow(max(0, generate))
        let limit = maxPositions ?? ConfigLimits.positions
        guard !overflow, capacity <= limit else {
            throw ModelInputError.contextTooLong(tokens: overflow ? Int.max : capacity, limit: limit)
        }
        let available = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        var bytes = 2 * MemoryLayout<Float>.size  // keys and values
        for factor in [layers.count, batch, capacity, config.numKVHeads * config.headDim] {
            let (p, o) = bytes.multipliedReportingOverflow(by: factor)
            guard !o else { throw ModelInputError.cacheTooLarge(bytes: Int.max, available: available) }
            bytes = p
        }
        guard bytes <= available else { throw ModelInputError.cacheTooLarge(bytes: bytes, available: available) }
        return capacity
    }

    func makeCache(batch: Int, capacity: Int) -> KVCache {
        KVCache(layers: layers.count, batch: batch, capacity: capacity, kvDim: config.numKVHeads * config.headDim)
    }

    /// Embedding rows of `ids` as Float32.
    func embed(_ ids: [Int]) throws -> [Float] {
        let h = config.hiddenSize
        var x = [Float](repeating: 0, count: ids.count * h)
        try x.withUnsafeMutableBufferPointer { xp in
            guard let base = xp.baseAddress else { return }
            for (i, id) in ids.enumerated() {
                guard id >= 0, id < embed.rows else { throw ModelInputError.tokenOutOfRange(id: id, vocabulary: embed.rows) }
                embed.row(id, into: base + i * h)
            }
        }
        return x
    }

    /// Runs `steps` new tokens per row through every layer, appending to `cache`.
    /// - x: [batch · steps, hidden], row-major by (row, step)
    /// - positions: [3][batch · steps] (t, h, w); text-only rows repeat one position thrice
    /// - mask: [batch · steps], false for padding
    /// Returns the final-norm hidden states [batch · steps, hidden].
    func forward(_ input: [Float], positions: [[Int]], mask: [Bool], steps: Int, cache: KVCache, trace: DecoderTrace? = nil) -> [Float] {
        let b = cache.batch, kvDim = config.numKVHeads * config.headDim
        let start = cache.length
        for r in 0..<b { for s in 0..<steps { cache.valid[r][start + s] = mask[r * steps + s] } }
        let scale = 1 / Float(config.headDim).squareRoot()
        let out = layers(input, positions: positions, rows: b * steps, rowPath: false, trace: trace) { li, q, k, v, bf16, attn in
            cache.keys[li].withUnsafeMutableBufferPointer { kc in
                cache.values[li].withUnsafeMutableBufferPointer { vc in
                    guard let kcb = kc.baseAddress, let vcb = vc.baseAddress else { return }
                    for r in 0..<b {
                        // A row's new steps are contiguous in both the projections and the cache.
                        let dst = (r * cache.capacity + start) * kvDim, src = r * steps * kvDim
                        (kcb + dst).update(from: k + src, count: steps * kvDim)
                        (vcb + dst).update(from: v + src, count: steps * kvDim)
                    }
                }
            }
            attention(layer: li, queries: q, cache: cache, rows: b, steps: steps, start: start, scale: scale, bf16: bf16, into: attn)
        }
        cache.length += steps
        return out
    }

    /// One decode step for sequences that each own a single-row cache of its own length
    /// (continuous batching): the projections and the MLP run over all rows at once, on the
    /// per-row (decode) kernels whatever the row count, and attention runs per sequence against
    /// its own cache exactly as a batch of one would. A sequence's numbers are therefore the
    /// same as when it is generated alone.
    /// - tokens' embeddings: x [caches.count, hidden]; positions: [3][caches.count]
    func decodeStep(_ input: [Float], positions: [[Int]], caches: [KVCache], rowPath: Bool = true) -> [Float] {
        let kvDim = config.numKVHeads * config.headDim, qDim = config.numHeads * config.headDim
        for cache in caches { cache.valid[0][cache.length] = true }
        let scale = 1 / Float(config.headDim).squareRoot()
        let c = config
        let hd = c.headDim, heads = c.numHeads, kvHeads = c.numKVHeads, group = heads / kvHeads
        // The split of each sequence's query groups is the one a batch of one uses (see
        // `attention`), so the products are the same calls with the same arguments.
        let parts = group > 1 && kvHeads < 2 * Kernels.cores ? 2 : 1
        let out = layers(input, positions: positions, rows: caches.count, rowPath: rowPath, trace: nil) { li, q, k, v, _, attn in
            for (r, cache) in caches.enumerated() {
                let start = cache.length
                cache.keys[li].withUnsafeMutableBufferPointer { kc in
                    cache.values[li].withUnsafeMutableBufferPointer { vc in
                        guard let kcb = kc.baseAddress, let vcb = vc.baseAddress else { return }
                        (kcb + start * kvDim).update(from: k + r * kvDim, count: kvDim)
                        (vcb + start * kvDim).update(from: v + r * kvDim, count: kvDim)
                    }
                }
            }
            // One parallel job for every sequence's heads: a job per sequence would wait for the
            // workers once per sequence and layer, which a busy machine makes expensive.
            Kernels.parallel(caches.count * kvHeads * parts) { task in
                let r = task / (kvHeads * parts), kh = (task / parts) % kvHeads
                let members = Kernels.chunk(task % parts, of: parts, count: group)
                guard !members.isEmpty else { return }
                let cache = caches[r]
                let total = cache.length + 1
                // Concurrent reads of the caches; nothing writes them during the job.
                cache.keys[li].withUnsafeBufferPointer { kc in
                    cache.values[li].withUnsafeBufferPointer { vc in
                        cache.valid[0].withUnsafeBufferPointer { rowValid in
                            guard let kb = kc.baseAddress, let vb = vc.baseAddress else { return }
                            let first = (kh * group + members.lowerBound) * hd
                            Kernels.blockAttention(q: q + r * qDim + first, ldq: hd, k: kb + kh * hd, ldk: kvDim, v: vb + kh * hd, ldv: kvDim,
                                                   out: attn + r * qDim + first, ldo: hd, queries: members.count, keys: total,
                                                   headDim: hd, scale: scale, keyValid: rowValid.baseAddress)
                        }
                    }
                }
            }
        }
        for cache in caches { cache.length += 1 }
        return out
    }

    /// The layer stack over `rows` input rows. `attend(layer, q, k, v, bf16, out)` stores the
    /// layer's keys and values in the cache(s) and writes the attention output; `rowPath` keeps
    /// the projections on the per-row kernels at any row count (decode of many sequences).
    private func layers(_ input: [Float], positions: [[Int]], rows: Int, rowPath: Bool, trace: DecoderTrace?,
                        attend: (Int, UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Bool, UnsafeMutablePointer<Float>) -> Void) -> [Float] {
        let c = config
        let hd = c.headDim, half = hd / 2
        let heads = c.numHeads, kvHeads = c.numKVHeads, kvDim = kvHeads * hd

        // RoPE: pair j turns by pos[axis(j)] · inv_freq[j].
        var cosT = [Float](repeating: 0, count: rows * half), sinT = cosT
        for i in 0..<rows {
            for j in 0..<half {
                let a = Float(positions[pairAxis[j]][i]) * invFreq[j]
                cosT[i * half + j] = cosf(a)
                sinT[i * half + j] = sinf(a)
            }
        }
        let mode = activations

        // Every layer runs in one workspace: its buffers are taken once per forward pass.
        let qDim = heads * hd, inter = c.intermediateSize
        let work = Workspace()
        let xn = work.floats(rows * c.hiddenSize), q = work.floats(rows * qDim), k = work.floats(rows * kvDim), v = work.floats(rows * kvDim)
        let attn = work.floats(rows * qDim), scratch = work.floats(rows * max(c.hiddenSize, qDim))
        let g = work.floats(rows * inter), u = work.floats(rows * inter)
        // bf16 rows for the bf16 GEMM (bf16 weights loaded for bf16 matmuls, prefill-sized inputs):
        // one of the widest input (hidden or attention output), one of the MLP's intermediate width.
        let bf16 = !rowPath && layers.contains { $0.q.takesBF16(rows: rows) }
        let aB = bf16 ? work.bf16(rows: rows, cols: max(c.hiddenSize, qDim)) : nil
        let gB = bf16 ? work.bf16(rows: rows, cols: inter) : nil
        let hB = aB.map { BF16Rows(reusing: $0, rows: rows, cols: c.hiddenSize) }
        let oB = aB.map { BF16Rows(reusing: $0, rows: rows, cols: qDim) }

        var x = input
        x.withUnsafeMutableBufferPointer { xp in
            guard let xb = xp.baseAddress else { return }
            for (li, layer) in layers.enumerated() {
                Kernels.rmsNorm(xb, rows: rows, weight: layer.inputNorm, eps: c.rmsNormEps, into: xn)
                Linear.project([layer.q, layer.k, layer.v], xn, bf16: hB, rows: rows, outs: [q, k, v], activations: mode, rowPath: rowPath)
                // RoPE on q and k, rows split over the cores.
                cosT.withUnsafeBufferPointer { cp in
                    sinT.withUnsafeBufferPointer { sp in
                        guard let cb = cp.baseAddress, let sb = sp.baseAddress else { return }
                        let chunks = Kernels.elementChunks(rows * (qDim + kvDim))
                        Kernels.parallel(chunks) { ch in
                            for i in Kernels.chunk(ch, of: chunks, count: rows) {
                                let cs = cb + i * half, sn = sb + i * half
                                for hh in 0..<heads { Kernels.rotate(q + i * qDim + hh * hd, cos: cs, sin: sn, half: half) }
                                for hh in 0..<kvHeads { Kernels.rotate(k + i * kvDim + hh * hd, cos: cs, sin: sn, half: half) }
                            }
                        }
                    }
                }
                attend(li, q, k, v, !rowPath && layer.q.takesBF16(rows: rows), attn)
                let attnB = !rowPath && layer.o.takesBF16(rows: rows) ? oB : nil
                attnB?.fill(attn)
                layer.o.addProjection(attn, bf16: attnB, rows: rows, into: xb, scratch: scratch, activations: mode, rowPath: rowPath)
                Kernels.rmsNorm(xb, rows: rows, weight: layer.postNorm, eps: c.rmsNormEps, into: xn)
                Linear.project([layer.gate, layer.up], xn, bf16: hB, rows: rows, outs: [g, u], activations: mode, rowPath: rowPath)
                if !rowPath, layer.down.takesBF16(rows: rows), let gB {
                    Kernels.swiGLU(g, u, into: gB)
                    layer.down.addProjection(g, bf16: gB, rows: rows, into: xb, scratch: scratch, activations: mode)
                } else {
                    Kernels.swiGLU(g, u, rows * inter)
                    layer.down.addProjection(g, bf16: nil, rows: rows, into: xb, scratch: scratch, activations: mode, rowPath: rowPath)
                }
                if let trace { trace.stages["layer_\(li)"] = Array(UnsafeBufferPointer(start: xb, count: rows * c.hiddenSize)) }
            }
        }
        let out = Kernels.rmsNorm(x, rows: rows, weight: norm, eps: c.rmsNormEps)
        trace?.stages["final_norm"] = out
        return out
    }

    /// Attention of the new steps of every row against the cache of layer `li`, into attn
    /// [b · steps, heads · hd]: sgemm in f32 (the exact path) or bf16 products (`bf16`, prefill).
    private func attention(layer li: Int, queries qb: UnsafePointer<Float>, cache: KVCache, rows b: Int, steps: Int, start: Int,
                           scale: Float, bf16: Bool, into ab: UnsafeMutablePointer<Float>) {
        let c = config
        let hd = c.headDim, heads = c.numHeads, kvHeads = c.numKVHeads, kvDim = kvHeads * hd, group = heads / kvHeads
        let total = start + steps
        let valid = cache.valid
        cache.keys[li].withUnsafeBufferPointer { kc in
            cache.values[li].withUnsafeBufferPointer { vc in
                guard let kb = kc.baseAddress, let vb = vc.baseAddress else { return }
                if steps == 1 {
                    // Decode: query heads that share a KV head attend together, one sgemm pair
                    // per (row, KV head, part of its group), so cached keys and values are read
                    // once per part. Groups are halved when there are too few of them to keep
                    // every core busy (SmolLM2: 3 KV heads on 2 cores).
                    let parts = group > 1 && b * kvHeads < 2 * Kernels.cores ? 2 : 1
                    Kernels.parallel(b * kvHeads * parts) { task in
                        let r = task / (kvHeads * parts), kh = (task / parts) % kvHeads
                        let members = Kernels.chunk(task % parts, of: parts, count: group)
                        valid[r].withUnsafeBufferPointer { rowValid in
                            let base = r * cache.capacity * kvDim + kh * hd
                            let first = r * heads * hd + (kh * group + members.lowerBound) * hd
                            Kernels.blockAttention(q: qb + first, ldq: hd, k: kb + base, ldk: kvDim, v: vb + base, ldv: kvDim,
                                                   out: ab + first, ldo: hd, queries: members.count, keys: total,
                                                   headDim: hd, scale: scale, keyValid: rowValid.baseAddress)
                        }
                    }
                } else if bf16 {
                    // Prefill in bf16: one task per (row, KV head, part of its group); the task
                    // rounds the shared keys and values once for its query heads.
                    let parts = min(group, max(1, (4 * Kernels.cores + b * kvHeads - 1) / (b * kvHeads)))
                    Kernels.parallel(b * kvHeads * parts) { task in
                        let r = task / (kvHeads * parts), kh = (task / parts) % kvHeads
                        let members = Kernels.chunk(task % parts, of: parts, count: group)
                        guard !members.isEmpty else { return }
                        valid[r].withUnsafeBufferPointer { rowValid in
                            let base = r * cache.capacity * kvDim + kh * hd
                            let first = r * steps * heads * hd + (kh * group + members.lowerBound) * hd
                            Kernels.bf16Attention(q: qb + first, ldq: heads * hd, qHead: hd, k: kb + base, ldk: kvDim, v: vb + base, ldv: kvDim,
                                                  out: ab + first, ldo: heads * hd, outHead: hd, heads: members.count,
                                                  queries: steps, keys: total, headDim: hd, scale: scale,
                                                  causalOffset: start, keyValid: rowValid.baseAddress)
                        }
                    }
                } else {
                    // Prefill: one sgemm pair per (row, head, block of queries) over the keys
                    // those queries may see; several query blocks per head keep both cores
                    // busy when heads do not divide evenly between them.
                    let blocks = steps >= 64 ? 4 : 1
                    Kernels.parallel(b * heads * blocks) { task in
                        let r = task / (heads * blocks), hh = (task / blocks) % heads
                        let queries = Kernels.chunk(task % blocks, of: blocks, count: steps)
                        guard !queries.isEmpty else { return }
                        valid[r].withUnsafeBufferPointer { rowValid in
                            let base = r * cache.capacity * kvDim + (hh / group) * hd
                            let first = (r * steps + queries.lowerBound) * heads * hd + hh * hd
                            Kernels.blockAttention(q: qb + first, ldq: heads * hd,
                                                   k: kb + base, ldk: kvDim, v: vb + base, ldv: kvDim,
                                                   out: ab + first, ldo: heads * hd,
                                                   queries: queries.count, keys: start + queries.upperBound, headDim: hd,
                                                   scale: scale, causalOffset: start + queries.lowerBound,
                                                   keyValid: rowValid.baseAddress)
                        }
                    }
                }
                // Padded query slots attend to nothing and stay zero.
                for r in 0..<b { for s in 0..<steps where !valid[r][start + s] {
                    for j in 0..<(heads * hd) { ab[(r * steps + s) * heads * hd + j] = 0 }
                } }
            }
        }
    }

    /// Logits [rows, vocab] of final-norm hidden rows.
    func logits(_ hidden: [Float], rows: Int, rowPath: Bool = false) -> [Float] {
        Linear(weight: lmHead, bias: nil)(hidden, rows: rows, activations: activations, rowPath: rowPath)
    }
}
