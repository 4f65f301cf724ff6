import Foundation
import VLMRuntime

/// The vision tower over one prompt's images, forward and backward: patch embedding, the blocks
/// (Qwen2-VL: LayerNorm, quick-GELU MLP, full attention per image; Qwen2.5-VL: RMSNorm, SwiGLU,
/// 2-D RoPE, windowed attention except in the full-attention blocks, run in window order) and the
/// 2×2 patch merger. Each block's input is kept (`keep`) and the block recomputed in the backward.
final class VisionPass {
    let family: ModelFamily
    let config: VisionConfig
    let layout: PolicyLayout.Vision
    let keep: Bool
    let n: Int
    let scratch = Scratch()
    /// Pixel rows in the order the blocks run (window order for Qwen2.5-VL).
    let pixels: UnsafeMutablePointer<Float>
    let rowLength: Int
    let cosT: UnsafeMutablePointer<Float>, sinT: UnsafeMutablePointer<Float>
    let windowIndex: [Int]
    let full: SegmentAttention
    let windowed: SegmentAttention
    /// Block inputs (depth + 1 buffers when keeping, else two that alternate).
    var xs: [UnsafeMutablePointer<Float>] = []

    init(family: ModelFamily, config c: VisionConfig, layout: PolicyLayout.Vision, images: ProcessedImages, keep: Bool) throws {
        self.family = family
        config = c
        self.layout = layout
        self.keep = keep
        let grids = images.grids
        n = grids.reduce(0) { $0 + $1.patches }
        rowLength = images.rowLength
        let merge = c.spatialMergeSize, unit = merge * merge
        guard n > 0, rowLength == layout.patchEmbed.inF, images.pixelValues.count == n * rowLength, n % unit == 0 else {
            throw TrainingModelError.badInput("image pixels do not match the vision tower: \(images.pixelValues.count) values for \(n) patches of \(layout.patchEmbed.inF)")
        }
        let d = c.hiddenSize, hd = d / c.numHeads, half = hd / 2, quarter = hd / 4
        let (hpos, wpos) = VisionTower.patchPositions(grids, merge: merge)
        var invFreq = [Float](repeating: 0, count: quarter)
        for j in 0..<quarter { invFreq[j] = 1 / Float(pow(c.ropeTheta, Double(Float(2 * j) / Float(half)))) }
        let cuFull = VisionTower.cuSeqlens(grids)
        var cuWindow = cuFull
        var index = Array(0..<(n / unit))
        if family == .qwen25VL {
            (index, cuWindow) = VisionTower.windowIndex(grids, windowSize: c.windowSize, merge: merge, patch: c.patchSize)
        }
        windowIndex = index
        let rl = rowLength
        let px = scratch.take(n * rl)
        pixels = px
        cosT = scratch.take(n * half)
        sinT = scratch.take(n * half)
        images.pixelValues.withUnsafeBufferPointer { src in
            guard let s = src.baseAddress else { return }
            for (k, u) in index.enumerated() {
                (px + k * unit * rl).update(from: s + u * unit * rl, count: unit * rl)
            }
        }
        for (k, u) in index.enumerated() {
            for r in 0..<unit {
                let i = u * unit + r, o = (k * unit + r) * half
                for j in 0..<quarter {
                    let ah = Float(hpos[i]) * invFreq[j], aw = Float(wpos[i]) * invFreq[j]
                    cosT[o + j] = cosf(ah); sinT[o + j] = sinf(ah)
                    cosT[o + quarter + j] = cosf(aw); sinT[o + quarter + j] = sinf(aw)
                }
            }
        }
        func segments(_ cu: [Int]) -> [AttentionSegment] {
            (0..<(cu.count - 1)).map { AttentionSegment(start: cu[$0], length: cu[$0 + 1] - cu[$0], prefix: 0, causal: false) }
        }
        full = SegmentAttention(heads: c.numHeads, kvHeads: c.numHeads, headDim: hd, segments: segments(cuFull))
        windowed = SegmentAttention(heads: c.numHeads, kvHeads: c.numHeads, headDim: hd, segments: segments(cuWindow))
    }

    private func attention(block b: Int) -> SegmentAttention {
        family == .qwen2VL || config.fullAttentionBlocks.contains(b) ? full : windowed
    }

    /// Image features [n / merge², out] in image-token order, and their row count.
    func forward(_ pv: [ParamView]) -> (UnsafeMutablePointer<Float>, Int) {
        let d = config.hiddenSize
        let depth = layout.blocks.count
        xs = (0..<(keep ? depth + 1 : 2)).map { _ in scratch.take(n * d) }
        TrainKernels.linear(pixels, rows: n, in: rowLength, out: d, weight: pv[layout.patchEmbed.weight].v, bias: nil, into: xs[0])
        let acts = VisionActivations(rows: n, config: config, probabilities: max(full.probabilityCount, windowed.probabilityCount), gradients: false)
        for b in 0..<depth {
            let x = keep ? xs[b] : xs[b % 2], y = keep ? xs[b + 1] : xs[(b + 1) % 2]
            blockForward(b, pv, x: x, y: y, acts: acts)
        }
        let last = keep ? xs[depth] : xs[depth % 2]
        let m = MergerActivations(rows: n, config: config, scratch: scratch)
        let merged = mergerForward(pv, x: last, acts: m)
        // Back to image-token order.
        let out = config.outHiddenSize, units = n / (config.spatialMergeSize * config.spatialMergeSize)
        let embeds = scratch.take(units * out)
        for (k, u) in windowIndex.enumerated() { (embeds + u * out).update(from: merged + k * out, count: out) }
        return (embeds, units)
    }

    /// Adds every vision parameter's gradient from d features (image-token order).
    func backward(_ pv: [ParamView], dEmbeds: UnsafePointer<Float>) {
        let d = config.hiddenSize, out = config.outHiddenSize
        let depth = layout.blocks.count
        let units = n / (config.spatialMergeSize * config.spatialMergeSize)
        let dMerged = scratch.take(units * out)
        for (k, u) in windowIndex.enumerated() { (dMerged + k * out).update(from: dEmbeds + u * out, count: out) }
        let m = MergerActivations(rows: n, config: config, scratch: scratch)
        let dX = scratch.take(n * d)
        _ = mergerForward(pv, x: xs[depth], acts: m)
        mergerBackward(pv, x: xs[depth], acts: m, dOut: dMerged, dX: dX)
        let acts = VisionActivations(rows: n, config: config, probabilities: max(full.probabilityCount, windowed.probabilityCount), gradients: true)
        for b in stride(from: depth - 1, through: 0, by: -1) {
            blockForward(b, pv, x: xs[b], y: xs[b + 1], acts: acts)
            blockBackward(b, pv, x: xs[b], dY: dX, acts: acts)
        }
        if let gw = pv[layout.patchEmbed.weight].grad {
            TrainKernels.gemm(transA: true, m: d, n: rowLength, k: n, dX, lda: d, pixels, ldb: rowLength, beta: 1, gw, ldc: rowLength)
        }
    }

    // MARK: - Blocks

    private func norm(_ p: PolicyLayout.Norm, _ pv: [ParamView], _ x: UnsafePointer<Float>, rows: Int, width: Int,
                      into y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        if let b = p.bias {
            TrainKernels.layerNorm(x, rows: rows, width: width, weight: pv[p.weight].v, bias: pv[b].v, eps: p.eps, into: y, mean: mean, rstd: rstd)
        } else {
            TrainKernels.rmsNorm(x, rows: rows, width: width, weight: pv[p.weight].v, eps: p.eps, into: y, rstd: rstd)
        }
    }

    private func normBackward(_ p: PolicyLayout.Norm, _ pv: [ParamView], _ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, rows: Int, width: Int,
                              mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, accumulate: Bool) {
        if let b = p.bias {
            TrainKernels.layerNormBackward(dy, x: x, rows: rows, width: width, weight: pv[p.weight].v, mean: mean, rstd: rstd, dx: dx,
                                           accumulate: accumulate, dw: pv[p.weight].grad, db: pv[b].grad)
        } else {
            TrainKernels.rmsNormBackward(dy, x: x, rows: rows, width: width, weight: pv[p.weight].v, rstd: rstd, dx: dx,
                                         accumulate: accumulate, dw: pv[p.weight].grad)
        }
    }

    private func project(_ p: PolicyLayout.Proj, _ pv: [ParamView], _ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        TrainKernels.linear(x, rows: rows, in: p.inF, out: p.out, weight: pv[p.weight].v, bias: p.bias.map { pv[$0].v }, into: y)
    }

    private func projectBackward(_ p: PolicyLayout.Proj, _ pv: [ParamView], _ dy: UnsafePointer<Float>, input x: UnsafePointer<Float>, rows: Int,
                                 dInput: UnsafeMutablePointer<Float>?, accumulate: Bool) {
        TrainKernels.linearBackward(dy, rows: rows, in: p.inF, out: p.out, x: x, weight: pv[p.weight].v, dx: dInput,
                                    accumulateInput: accumulate, dW: pv[p.weight].grad, db: p.bias.flatMap { pv[$0].grad })
    }

    private func blockForward(_ bi: Int, _ pv: [ParamView], x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, acts a: VisionActivations) {
        let B = layout.blocks[bi]
        let d = config.hiddenSize, heads = config.numHeads, hd = d / heads
        norm(B.norm1, pv, x, rows: n, width: d, into: a.h1, mean: a.mean1, rstd: a.rstd1)
        project(B.qkv, pv, a.h1, rows: n, into: a.qkv)
        TrainKernels.rotary(a.qkv, rows: n, ld: 3 * d, heads: heads, headDim: hd, cos: cosT, sin: sinT, inverse: false)
        TrainKernels.rotary(a.qkv + d, rows: n, ld: 3 * d, heads: heads, headDim: hd, cos: cosT, sin: sinT, inverse: false)
        attention(block: bi).forward(q: a.qkv, ldq: 3 * d, k: a.qkv + d, ldk: 3 * d, v: a.qkv + 2 * d, ldv: 3 * d,
                                     out: a.attn, ldo: d, probs: a.probs)
        project(B.proj, pv, a.attn, rows: n, into: a.x2)
        addInPlace(a.x2, x, n * d)
        norm(B.norm2, pv, a.x2, rows: n, width: d, into: a.h2, mean: a.mean2, rstd: a.rstd2)
        let inter = config.intermediateSize
        switch B.mlp {
        case .gated(let gate, let up, let down):
            project(gate, pv, a.h2, rows: n, into: a.g)
            project(up, pv, a.h2, rows: n, into: a.u)
            TrainKernels.swiGLU(a.g, a.u, count: n * inter, into: a.act)
            project(down, pv, a.act, rows: n, into: y)
        case .plain(let fc1, let fc2, let quick):
            project(fc1, pv, a.h2, rows: n, into: a.g)
            TrainKernels.activate(a.g, count: n * inter, quick ? .quickGelu : .gelu, into: a.act)
            project(fc2, pv, a.act, rows: n, into: y)
        }
        addInPlace(y, a.x2, n * d)
    }

    private func blockBackward(_ bi: Int, _ pv: [ParamView], x: UnsafePointer<Float>, dY: UnsafeMutablePointer<Float>, acts a: VisionActivations) {
        let B = layout.blocks[bi]
        let d = config.hiddenSize, heads = config.numHeads, hd = d / heads, inter = config.intermediateSize
        switch B.mlp {
        case .gated(let gate, let up, let down):
            projectBackward(down, pv, dY, input: a.act, rows: n, dInput: a.dAct, accumulate: false)
            TrainKernels.swiGLUBackward(a.dAct, g: a.g, u: a.u, count: n * inter, dg: a.dG, du: a.dU)
            projectBackward(gate, pv, a.dG, input: a.h2, rows: n, dInput: a.dH, accumulate: false)
            projectBackward(up, pv, a.dU, input: a.h2, rows: n, dInput: a.dH, accumulate: true)
        case .plain(let fc1, let fc2, let quick):
            projectBackward(fc2, pv, dY, input: a.act, rows: n, dInput: a.dAct, accumulate: false)
            TrainKernels.activationBackward(a.dAct, x: a.g, count: n * inter, quick ? .quickGelu : .gelu, into: a.dG)
            projectBackward(fc1, pv, a.dG, input: a.h2, rows: n, dInput: a.dH, accumulate: false)
        }
        a.dX2.update(from: dY, count: n * d)
        normBackward(B.norm2, pv, a.dH, x: a.x2, rows: n, width: d, mean: a.mean2, rstd: a.rstd2, dx: a.dX2, accumulate: true)
        projectBackward(B.proj, pv, a.dX2, input: a.attn, rows: n, dInput: a.dAttn, accumulate: false)
        attention(block: bi).backward(dOut: a.dAttn, ldo: d, q: a.qkv, ldq: 3 * d, k: a.qkv + d, ldk: 3 * d, v: a.qkv + 2 * d, ldv: 3 * d,
                                      probs: a.probs, dq: a.dQKV, dk: a.dQKV + d, dv: a.dQKV + 2 * d, rows: n)
        TrainKernels.rotary(a.dQKV, rows: n, ld: 3 * d, heads: heads, headDim: hd, cos: cosT, sin: sinT, inverse: true)
        TrainKernels.rotary(a.dQKV + d, rows: n, ld: 3 * d, heads: heads, headDim: hd, cos: cosT, sin: sinT, inverse: true)
        projectBackward(B.qkv, pv, a.dQKV, input: a.h1, rows: n, dInput: a.dH, accumulate: false)
        dY.update(from: a.dX2, count: n * d)
        normBackward(B.norm1, pv, a.dH, x: x, rows: n, width: d, mean: a.mean1, rstd: a.rstd1, dx: dY, accumulate: true)
    }

    // MARK: - Merger

    private func mergerForward(_ pv: [ParamView], x: UnsafePointer<Float>, acts m: MergerActivations) -> UnsafeMutablePointer<Float> {
        let d = config.hiddenSize, m2 = config.spatialMergeSize * config.spatialMergeSize, units = n / m2
        norm(layout.mergerNorm, pv, x, rows: n, width: d, into: m.normed, mean: m.mean, rstd: m.rstd)
        project(layout.fc1, pv, m.normed, rows: units, into: m.hidden)
        TrainKernels.activate(m.hidden, count: units * d * m2, .gelu, into: m.act)
        project(layout.fc2, pv, m.act, rows: units, into: m.out)
        return m.out
    }

    private func mergerBackward(_ pv: [ParamView], x: UnsafePointer<Float>, acts m: MergerActivations, dOut: UnsafePointer<Float>,
                                dX: UnsafeMutablePointer<Float>) {
        let d = config.hiddenSize, m2 = config.spatialMergeSize * config.spatialMergeSize, units = n / m2
        projectBackward(layout.fc2, pv, dOut, input: m.act, rows: units, dInput: m.dAct, accumulate: false)
        TrainKernels.activationBackward(m.dAct, x: m.hidden, count: units * d * m2, .gelu, into: m.dHidden)
        projectBackward(layout.fc1, pv, m.dHidden, input: m.normed, rows: units, dInput: m.dNormed, accumulate: false)
        normBackward(layout.mergerNorm, pv, m.dNormed, x: x, rows: n, width: d, mean: m.mean, rstd: m.rstd, dx: dX, accumulate: false)
    }
}

final class VisionActivations {
    let scratch = Scratch()
    let h1, mean1, rstd1, qkv, probs, attn, x2, h2, mean2, rstd2, g, u, act: UnsafeMutablePointer<Float>
    let dAct, dG, dU, dH, dX2, dAttn, dQKV: UnsafeMutablePointer<Float>

    init(rows n: Int, config c: VisionConfig, probabilities: Int, gradients: Bool) {
        let d = c.hiddenSize, inter = c.intermediateSize
        h1 = scratch.take(n * d); mean1 = scratch.take(n); rstd1 = scratch.take(n)
        qkv = scratch.take(n * 3 * d); probs = scratch.take(probabilities); attn = scratch.take(n * d)
        x2 = scratch.take(n * d); h2 = scratch.take(n * d); mean2 = scratch.take(n); rstd2 = scratch.take(n)
        g = scratch.take(n * inter); u = scratch.take(n * inter); act = scratch.take(n * inter)
        let gn = gradients ? n : 0
        dAct = scratch.take(gn * inter); dG = scratch.take(gn * inter); dU = scratch.take(gn * inter)
        dH = scratch.take(gn * d); dX2 = scratch.take(gn * d); dAttn = scratch.take(gn * d); dQKV = scratch.take(gn * 3 * d)
    }
}

final class MergerActivations {
    let normed, mean, rstd, hidden, act, out, dAct, dHidden, dNormed: UnsafeMutablePointer<Float>

    init(rows n: Int, config c: VisionConfig, scratch: Scratch) {
        let d = c.hiddenSize, m2 = c.spatialMergeSize * c.spatialMergeSize, units = n / m2
        normed = scratch.take(n * d); mean = scratch.take(n); rstd = scratch.take(n)
        hidden = scratch.take(units * d * m2); act = scratch.take(units * d * m2); out = scratch.take(units * c.outHiddenSize)
        dAct = scratch.take(units * d * m2); dHidden = scratch.take(units * d * m2); dNormed = scratch.take(n * d)
    }
}
