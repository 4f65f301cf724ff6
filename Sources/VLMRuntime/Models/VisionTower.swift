import Foundation

/// Intermediate results of a vision forward pass, recorded only when asked for (tests).
public final class VisionTrace: @unchecked Sendable {
    public var stages: [String: [Float]] = [:]
    public var windowIndex: [Int] = []
    public var cuWindowSeqlens: [Int] = []
    public var cuSeqlens: [Int] = []
    public var rotaryAngles: [Float] = []
    public init() {}
}

/// A norm layer of the vision tower: RMSNorm (Qwen2.5-VL) or LayerNorm (Qwen2-VL), eps 1e-6
/// fixed in the modelling code.
struct VisionNorm {
    let weight: [Float]
    let bias: [Float]?
    func callAsFunction(_ x: [Float], rows: Int) -> [Float] {
        if let bias { return Kernels.layerNorm(x, rows: rows, weight: weight, bias: bias, eps: 1e-6) }
        return Kernels.rmsNorm(x, rows: rows, weight: weight, eps: 1e-6)
    }

    /// The same into caller memory, rows split over the cores.
    func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        if let bias { return Kernels.layerNorm(x, rows: rows, weight: weight, bias: bias, eps: 1e-6, into: y) }
        Kernels.rmsNorm(x, rows: rows, weight: weight, eps: 1e-6, into: y)
    }
}

enum VisionMLP {
    /// Qwen2.5-VL: down(silu(gate(x)) · up(x)), all with bias.
    case gated(gate: Linear, up: Linear, down: Linear)
    /// Qwen2-VL: fc2(act(fc1(x))).
    case plain(fc1: Linear, fc2: Linear, quickGelu: Bool)
}

extension VisionMLP {
    /// y += mlp(x) for n rows, in workspace memory: `gate`/`up` hold n · intermediate floats each;
    /// `bf16` holds bf16 rows of x's width and of the intermediate width, used when the layers
    /// take the bf16 GEMM (the SwiGLU product is then rounded straight into the second one).
    func add(_ x: UnsafePointer<Float>, rows n: Int, into y: UnsafeMutablePointer<Float>, gate g: UnsafeMutablePointer<Float>,
             up u: UnsafeMutablePointer<Float>, bf16: (BF16Rows?, BF16Rows?), scratch: UnsafeMutablePointer<Float>) {
        switch self {
        case .gated(let gate, let up, let down):
            let inter = gate.outFeatures
            let xb = gate.takesBF16(rows: n) && up.takesBF16(rows: n) ? bf16.0 : nil
            Linear.project([gate, up], x, bf16: xb, rows: n, outs: [g, u], activations: .float32)
            if down.takesBF16(rows: n), let gb = bf16.1 {
                Kernels.swiGLU(g, u, into: gb)
                down.addProjection(g, bf16: gb, rows: n, into: y, scratch: scratch)
            } else {
                Kernels.swiGLU(g, u, n * inter)
                down.addProjection(g, bf16: nil, rows: n, into: y, scratch: scratch)
            }
        case .plain(let fc1, let fc2, let quick):
            let inter = fc1.outFeatures
            let xb = fc1.takesBF16(rows: n) ? bf16.0 : nil
            xb?.fill(x)
            fc1.project(x, bf16: xb, rows: n, out: g)
            Kernels.map(g, n * inter, quick ? Kernels.quickGelu : Kernels.gelu)
            let hb = fc2.takesBF16(rows: n) ? bf16.1 : nil
            hb?.fill(g)
            fc2.addProjection(g, bf16: hb, rows: n, into: y, scratch: scratch)
        }
    }
}

struct VisionBlock {
    let norm1: VisionNorm
    let norm2: VisionNorm
    let qkv: Linear
    let proj: Linear
    let mlp: VisionMLP
}

/// The vision tower of Qwen2-VL (LayerNorm, quick-GELU, full attention per image) and
/// Qwen2.5-VL (RMSNorm, SwiGLU with bias, 2-D RoPE, windowed attention except in the
/// full-attention blocks, window reordering and its inverse), with the 2×2 patch merger.
package final class VisionTower: @unchecked Sendable {
    let family: ModelFamily
    let config: VisionConfig
    let patchEmbed: WeightMatrix
    let blocks: [VisionBlock]
    let mergerNorm: VisionNorm
    let mergerFC1: Linear
    let mergerFC2: Linear

    init(family: ModelFamily, config c: VisionConfig, weights w: some VisionWeights) throws {
        self.family = family
        self.config = c
        let d = c.hiddenSize
        patchEmbed = try w.patchEmbed("visual.patch_embed.proj.weight", out: d, channels: c.inChannels, temporal: c.temporalPatchSize, patch: c.patchSize)
        let layerNorm = family == .qwen2VL
        func norm(_ p: String) throws -> VisionNorm {
            VisionNorm(weight: try w.vector(p + ".weight", count: d), bias: layerNorm ? try w.vector(p + ".bias", count: d) : nil)
        }
        var blocks: [VisionBlock] = []
        for i in 0..<c.depth {
            let p = "visual.blocks.\(i)."
            let mlp: VisionMLP
            if family == .qwen25VL {
                mlp = .gated(gate: try w.denseLinear(p + "mlp.gate_proj", out: c.intermediateSize, in: d, bias: true),
                             up: try w.denseLinear(p + "mlp.up_proj", out: c.intermediateSize, in: d, bias: true),
                             down: try w.denseLinear(p + "mlp.down_proj", out: d, in: c.intermediateSize, bias: true))
            } else {
                mlp = .plain(fc1: try w.denseLinear(p + "mlp.fc1", out: c.intermediateSize, in: d, bias: true),
                             fc2: try w.denseLinear(p + "mlp.fc2", out: d, in: c.intermediateSize, bias: true),
                             quickGelu: c.hiddenAct == "quick_gelu")
            }
            blocks.append(VisionBlock(norm1: try norm(p + "norm1"), norm2: try norm(p + "norm2"),
                                      qkv: try w.denseLinear(p + "attn.qkv", out: 3 * d, in: d, bias: true),
                                      proj: try w.denseLinear(p + "attn.proj", out: d, in: d, bias: true), mlp: mlp))
        }
        self.blocks = blocks
        let m2 = c.spatialMergeSize * c.spatialMergeSize
        mergerNorm = try norm("visual.merger.ln_q")
        mergerFC1 = try w.denseLinear("visual.merger.mlp.0", out: d * m2, in: d * m2, bias: true)
        mergerFC2 = try w.denseLinear("visual.merger.mlp.2", out: c.outHiddenSize, in: d * m2, bias: true)
    }

    // MARK: - Index bookkeeping

    /// (row, col) of every patch in processor (merge-block) order.
    package static func patchPositions(_ grids: [ImageGrid], merge: Int) -> (h: [Int], w: [Int]) {
        var hs: [Int] = [], ws: [Int] = []
        for g in grids {
            for _ in 0..<g.t {
                for bh in 0..<(g.h / merge) { for bw in 0..<(g.w / merge) { for mh in 0..<merge { for mw in 0..<merge {
                    hs.append(bh * merge + mh)
                    ws.append(bw * merge + mw)
                } } } }
            }
        }
        return (hs, ws)
    }

    /// Full-attention boundaries: one segment per frame of each image.
    package static func cuSeqlens(_ grids: [ImageGrid]) -> [Int] {
        var cu = [0]
        for g in grids { for _ in 0..<g.t { cu.append(cu[cu.count - 1] + g.h * g.w) } }
        return cu
    }

    /// Qwen2.5-VL window permutation of merge units and window boundaries in patches
    /// (empty windows dropped, as `unique_consecutive` does).
    package static func windowIndex(_ grids: [ImageGrid], windowSize: Int, merge: Int, patch: Int) -> (index: [Int], cu: [Int]) {
        let ws = max(1, windowSize / merge / patch)
        var idx: [Int] = [], cu = [0], offset = 0
        let unit = merge * merge
        for g in grids {
            let H = g.h / merge, W = g.w / merge
            for t in 0..<g.t {
                for wi in 0..<((H + ws - 1) / ws) {
                    for wj in 0..<((W + ws - 1) / ws) {
                        var count = 0
                        for r in (wi * ws)..<min(H, wi * ws + ws) {
                            for c in (wj * ws)..<min(W, wj * ws + ws) {
                                idx.append(offset + t * H * W + r * W + c)
                                count += 1
                            }
                        }
                        if count > 0 { cu.append(cu[cu.count - 1] + unit * count) }
                    }
                }
            }
            offset += g.t * H * W
        }
        return (idx, cu)
    }

    // MARK: - Forward

    /// pixel rows [N, C·T·P·P] → image embeddings [N / merge², outHidden] in image-token order.
    func forward(_ pixels: [Float], grids: [ImageGrid], trace: VisionTrace? = nil) -> [Float] {
        let c = config
        let n = grids.reduce(0) { $0 + $1.patches }
        let d = c.hiddenSize, heads = c.numHeads, hd = d / heads, half = hd / 2, quarter = hd / 4
        let merge = c.spatialMergeSize, unit = merge * merge
        var x = [Float](repeating: 0, count: n * d)
        pixels.withUnsafeBufferPointer { p in
            x.withUnsafeMutableBufferPointer { o in
                Kernels.linear(p.baseAddress!, rows: n, weight: patchEmbed, bias: nil, out: o.baseAddress!) // invariant: n > 0 checked by caller
            }
        }
        trace?.stages["patch_embed"] = x

        // 2-D rotary angles: pairs j < hd/4 turn with the row, the rest with the column.
        let (hpos, wpos) = Self.patchPositions(grids, merge: merge)
        var invFreq = [Float](repeating: 0, count: quarter)
        for j in 0..<quarter {
            invFreq[j] = 1 / Float(pow(c.ropeTheta, Double(Float(2 * j) / Float(half))))
        }
        var cosT = [Float](repeating: 0, count: n * half), sinT = cosT
        var angles = [Float](repeating: 0, count: n * half)
        for i in 0..<n {
            for j in 0..<quarter {
                angles[i * half + j] = Float(hpos[i]) * invFreq[j]
                angles[i * half + quarter + j] = Float(wpos[i]) * invFreq[j]
            }
        }
        trace?.rotaryAngles = angles
        for i in 0..<(n * half) { cosT[i] = cosf(angles[i]); sinT[i] = sinf(angles[i]) }

        let cuFull = Self.cuSeqlens(grids)
        trace?.cuSeqlens = cuFull
        var cuWindow = cuFull
        var winIndex: [Int] = []
        if family == .qwen25VL {
            (winIndex, cuWindow) = Self.windowIndex(grids, windowSize: c.windowSize, merge: merge, patch: c.patchSize)
            trace?.windowIndex = winIndex
            trace?.cuWindowSeqlens = cuWindow
            x = permuteUnits(x, winIndex, unit: unit, width: d)
            cosT = permuteUnits(cosT, winIndex, unit: unit, width: half)
            sinT = permuteUnits(sinT, winIndex, unit: unit, width: half)
        }

        // The blocks run in one workspace: every buffer is taken once for all 32 blocks.
        let inter = c.intermediateSize
        let work = Workspace()
        let h = work.floats(n * d), qkv = work.floats(n * 3 * d), attn = work.floats(n * d), scratch = work.floats(n * d)
        let g = work.floats(n * inter), u = work.floats(n * inter)
        let bf16 = blocks.contains { $0.qkv.takesBF16(rows: n) }
        let hB = bf16 ? work.bf16(rows: n, cols: d) : nil, gB = bf16 ? work.bf16(rows: n, cols: inter) : nil
        x.withUnsafeMutableBufferPointer { xp in
            guard let xb = xp.baseAddress else { return }
            for (bi, block) in blocks.enumerated() {
                let full = family == .qwen2VL || c.fullAttentionBlocks.contains(bi)
                let cu = full ? cuFull : cuWindow
                // Attention: x += proj(attention(rotary(qkv(norm1(x))))).
                block.norm1.apply(xb, rows: n, into: h)
                let viaBF16 = block.qkv.takesBF16(rows: n) ? hB : nil
                viaBF16?.fill(h)
                block.qkv.project(h, bf16: viaBF16, rows: n, out: qkv)
                applyRotary(qkv, rows: n, width: d, heads: heads, cos: cosT, sin: sinT)
                segmentAttention(qkv, rows: n, width: d, heads: heads, cu: cu, bf16: viaBF16 != nil, into: attn)
                let attnB = block.proj.takesBF16(rows: n) ? hB : nil
                attnB?.fill(attn)
                block.proj.addProjection(attn, bf16: attnB, rows: n, into: xb, scratch: scratch)
                // MLP: x += mlp(norm2(x)).
                block.norm2.apply(xb, rows: n, into: h)
                block.mlp.add(h, rows: n, into: xb, gate: g, up: u, bf16: (hB, gB), scratch: scratch)
                if let trace { trace.stages["block_\(bi)"] = Array(UnsafeBufferPointer(start: xb, count: n * d)) }
            }
        }

        let normed = mergerNorm(x, rows: n)
        var hidden = mergerFC1(normed, rows: n / unit)
        Kernels.map(&hidden, Kernels.gelu)
        var merged = mergerFC2(hidden, rows: n / unit)
        trace?.stages["merger"] = merged
        if family == .qwen25VL {
            let out = c.outHiddenSize
            var restored = [Float](repeating: 0, count: merged.count)
            for (k, u) in winIndex.enumerated() {
                for j in 0..<out { restored[u * out + j] = merged[k * out + j] }
            }
            merged = restored
        }
        trace?.stages["image_embeds"] = merged
        return merged
    }

    /// Gathers merge units (groups of `unit` rows) in the order `index` lists them.
    private func permuteUnits(_ x: [Float], _ index: [Int], unit: Int, width: Int) -> [Float] {
        var y = [Float](repeating: 0, count: x.count)
        let block = unit * width
        for (k, u) in index.enumerated() {
            for j in 0..<block { y[k * block + j] = x[u * block + j] }
        }
        return y
    }

    /// Rotate-half RoPE on the q and k parts of every row of qkv [n, 3d], rows split over the cores.
    private func applyRotary(_ qkv: UnsafeMutablePointer<Float>, rows n: Int, width d: Int, heads: Int, cos: [Float], sin: [Float]) {
        let hd = d / heads, half = hd / 2
        let chunks = Kernels.elementChunks(n * 2 * d)
        cos.withUnsafeBufferPointer { cp in
            sin.withUnsafeBufferPointer { sp in
                guard let cb = cp.baseAddress, let sb = sp.baseAddress else { return }
                Kernels.parallel(chunks) { ch in
                    for i in Kernels.chunk(ch, of: chunks, count: n) {
                        for part in 0..<2 {
                            for h in 0..<heads {
                                Kernels.rotate(qkv + i * 3 * d + part * d + h * hd, cos: cb + i * half, sin: sb + i * half, half: half)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Non-causal attention inside each segment of `cu`, one task per (segment, head): sgemm in
    /// f32 (the exact path) or bf16 products (`bf16`), into out [n, d].
    private func segmentAttention(_ qkv: UnsafePointer<Float>, rows n: Int, width d: Int, heads: Int, cu: [Int], bf16: Bool,
                                  into o: UnsafeMutablePointer<Float>) {
        let hd = d / heads
        let scale = 1 / Float(hd).squareRoot()
        let segments = cu.count - 1
        Kernels.parallel(segments * heads) { task in
            let s = task / heads, h = task % heads
            let a = cu[s], len = cu[s + 1] - cu[s]
            let q = qkv + a * 3 * d + h * hd
            if bf16 {
                Kernels.bf16Attention(q: q, ldq: 3 * d, qHead: hd, k: q + d, ldk: 3 * d, v: q + 2 * d, ldv: 3 * d,
                                      out: o + a * d + h * hd, ldo: d, outHead: hd, heads: 1, queries: len, keys: len,
                                      headDim: hd, scale: scale)
            } else {
                Kernels.blockAttention(q: q, ldq: 3 * d, k: q + d, ldk: 3 * d, v: q + 2 * d, ldv: 3 * d, out: o + a * d + h * hd, ldo: d,
                                       queries: len, keys: len, headDim: hd, scale: scale)
            }
        }
    }
}
