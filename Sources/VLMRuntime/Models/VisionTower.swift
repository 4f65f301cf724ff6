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
}

enum VisionMLP {
    /// Qwen2.5-VL: down(silu(gate(x)) · up(x)), all with bias.
    case gated(gate: Linear, up: Linear, down: Linear)
    /// Qwen2-VL: fc2(act(fc1(x))).
    case plain(fc1: Linear, fc2: Linear, quickGelu: Bool)

    func callAsFunction(_ x: [Float], rows: Int) -> [Float] {
        switch self {
        case .gated(let gate, let up, let down):
            var g = gate(x, rows: rows)
            let u = up(x, rows: rows)
            Kernels.swiGLU(&g, u)
            return down(g, rows: rows)
        case .plain(let fc1, let fc2, let quick):
            var h = fc1(x, rows: rows)
            if quick { Kernels.map(&h, Kernels.quickGelu) } else { Kernels.map(&h, Kernels.gelu) }
            return fc2(h, rows: rows)
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
final class VisionTower: @unchecked Sendable {
    let family: ModelFamily
    let config: VisionConfig
    let patchEmbed: WeightMatrix
    let blocks: [VisionBlock]
    let mergerNorm: VisionNorm
    let mergerFC1: Linear
    let mergerFC2: Linear

    init(family: ModelFamily, config c: VisionConfig, weights w: WeightLoader) throws {
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
    static func patchPositions(_ grids: [ImageGrid], merge: Int) -> (h: [Int], w: [Int]) {
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
    static func cuSeqlens(_ grids: [ImageGrid]) -> [Int] {
        var cu = [0]
        for g in grids { for _ in 0..<g.t { cu.append(cu[cu.count - 1] + g.h * g.w) } }
        return cu
    }

    /// Qwen2.5-VL window permutation of merge units and window boundaries in patches
    /// (empty windows dropped, as `unique_consecutive` does).
    static func windowIndex(_ grids: [ImageGrid], windowSize: Int, merge: Int, patch: Int) -> (index: [Int], cu: [Int]) {
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

        for (bi, block) in blocks.enumerated() {
            let full = family == .qwen2VL || c.fullAttentionBlocks.contains(bi)
            let cu = full ? cuFull : cuWindow
            let h = block.norm1(x, rows: n)
            var qkv = block.qkv(h, rows: n)
            applyRotary(&qkv, rows: n, width: d, heads: heads, cos: cosT, sin: sinT)
            let attn = segmentAttention(qkv, rows: n, width: d, heads: heads, cu: cu)
            let o = block.proj(attn, rows: n)
            for i in 0..<x.count { x[i] += o[i] }
            let m = block.mlp(block.norm2(x, rows: n), rows: n)
            for i in 0..<x.count { x[i] += m[i] }
            trace?.stages["block_\(bi)"] = x
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

    private func applyRotary(_ qkv: inout [Float], rows n: Int, width d: Int, heads: Int, cos: [Float], sin: [Float]) {
        let hd = d / heads, half = hd / 2
        qkv.withUnsafeMutableBufferPointer { q in
            cos.withUnsafeBufferPointer { cp in
                sin.withUnsafeBufferPointer { sp in
                    for i in 0..<n {
                        for part in 0..<2 {
                            for h in 0..<heads {
                                Kernels.rotate(q.baseAddress! + i * 3 * d + part * d + h * hd, // invariant: in bounds by construction
                                               cos: cp.baseAddress! + i * half, sin: sp.baseAddress! + i * half, half: half) // invariant: inside a loop over n > 0 rows
                            }
                        }
                    }
                }
            }
        }
    }

    /// Non-causal attention inside each segment of `cu`, one sgemm pair per (segment, head).
    private func segmentAttention(_ qkv: [Float], rows n: Int, width d: Int, heads: Int, cu: [Int]) -> [Float] {
        let hd = d / heads
        let scale = 1 / Float(hd).squareRoot()
        var out = [Float](repeating: 0, count: n * d)
        qkv.withUnsafeBufferPointer { qp in
            out.withUnsafeMutableBufferPointer { op in
                guard let q = qp.baseAddress, let o = op.baseAddress else { return }
                let segments = cu.count - 1
                Kernels.parallel(segments * heads) { task in
                    let s = task / heads, h = task % heads
                    let a = cu[s], len = cu[s + 1] - cu[s]
                    Kernels.blockAttention(q: q + a * 3 * d + h * hd, ldq: 3 * d, k: q + a * 3 * d + d + h * hd, ldk: 3 * d,
                                           v: q + a * 3 * d + 2 * d + h * hd, ldv: 3 * d, out: o + a * d + h * hd, ldo: d,
                                           queries: len, keys: len, headDim: hd, scale: scale)
                }
            }
        }
        return out
    }
}
