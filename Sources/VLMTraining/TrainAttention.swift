import CBLAS
import Foundation
import VLMRuntime

/// A run of rows that attend together: queries `start ..< start + length` see the shared prefix
/// rows `0 ..< prefix` (a prompt every completion continues) and their own segment's rows, all of
/// them or (causal) those up to themselves.
///
/// A group of completions of one prompt is packed as [prompt | completion 1 | completion 2 | …]:
/// the prompt is one causal segment without prefix, each completion a causal segment with the
/// prompt as prefix. The result equals a separate forward of prompt + completion per sequence,
/// with the prompt computed once (and its gradient summed over the completions). The vision tower's
/// images and windows are non-causal segments without prefix.
struct AttentionSegment {
    let start: Int
    let length: Int
    let prefix: Int
    let causal: Bool
    var keys: Int { prefix + length }
}

/// Multi-head attention with grouped key/value heads over packed segments, forward (keeping the
/// probabilities) and backward.
struct SegmentAttention {
    let heads: Int
    let kvHeads: Int
    let headDim: Int
    let segments: [AttentionSegment]
    /// Offset of each (segment, head)'s probabilities in the probability buffer.
    let offsets: [Int]
    let probabilityCount: Int

    init(heads: Int, kvHeads: Int, headDim: Int, segments: [AttentionSegment]) {
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.segments = segments
        var offsets: [Int] = [], total = 0
        for s in segments {
            for _ in 0..<heads { offsets.append(total); total += s.length * s.keys }
        }
        self.offsets = offsets
        probabilityCount = total
    }

    private var group: Int { heads / kvHeads }

    /// Rows of a segment in blocks, each with the segment keys its rows can see: for a causal
    /// segment blocks of `causalBlock` rows see the keys up to their last row, so the products skip
    /// the masked upper triangle's whole blocks (5/8 of the in-segment square with four blocks
    /// instead of all of it); a non-causal segment is one block that sees every key. The masked
    /// entries inside a block are zeroed by the softmax rows, as before.
    static let causalBlock = 64

    static func rowBlocks(_ s: AttentionSegment) -> [(r0: Int, r1: Int, keys: Int)] {
        guard s.causal, s.length > Self.causalBlock else { return [(0, s.length, s.length)] }
        return stride(from: 0, to: s.length, by: Self.causalBlock).map { r0 in
            let r1 = min(s.length, r0 + Self.causalBlock)
            return (r0, r1, r1)
        }
    }

    /// (query, key) pairs the products compute for a segment: the prefix for every row, and each
    /// row block against the segment keys it sees.
    static func computedPairs(_ s: AttentionSegment) -> Int {
        s.length * s.prefix + rowBlocks(s).reduce(0) { $0 + ($1.r1 - $1.r0) * $1.keys }
    }

    /// out [rows, heads·hd] = softmax(scale · q kᵀ) v per segment and head; probabilities kept in
    /// `probs` (probabilityCount floats). q/k/v have ldq/ldk/ldv floats per row.
    func forward(q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int, v: UnsafePointer<Float>, ldv: Int,
                 out: UnsafeMutablePointer<Float>, ldo: Int, probs: UnsafeMutablePointer<Float>) {
        let hd = headDim, scale = 1 / Float(hd).squareRoot()
        Kernels.parallel(segments.count * heads) { task in
            let si = task / heads, h = task % heads, g = h / group
            let s = segments[si]
            let nk = s.keys, len = s.length
            guard len > 0 else { return }
            let p = probs + offsets[task]
            let qs = q + s.start * ldq + h * hd
            if s.prefix > 0 {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(len), Int32(s.prefix), Int32(hd), scale,
                            qs, Int32(ldq), k + g * hd, Int32(ldk), 0, p, Int32(nk))
            }
            let blocks = Self.rowBlocks(s)
            for b in blocks {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(b.r1 - b.r0), Int32(b.keys), Int32(hd), scale,
                            qs + b.r0 * ldq, Int32(ldq), k + s.start * ldk + g * hd, Int32(ldk), 0, p + b.r0 * nk + s.prefix, Int32(nk))
            }
            for i in 0..<len {
                assay_softmax_row(TrainKernels.rowLevel, p + i * nk, s.causal ? s.prefix + i + 1 : nk, nk)
            }
            let o = out + s.start * ldo + h * hd
            if s.prefix > 0 {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(len), Int32(hd), Int32(s.prefix), 1,
                            p, Int32(nk), v + g * hd, Int32(ldv), 0, o, Int32(ldo))
            }
            for b in blocks {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(b.r1 - b.r0), Int32(hd), Int32(b.keys), 1,
                            p + b.r0 * nk + s.prefix, Int32(nk), v + s.start * ldv + g * hd, Int32(ldv), s.prefix > 0 ? 1 : 0,
                            o + b.r0 * ldo, Int32(ldo))
            }
        }
    }

    /// Gradients of the inputs from d out: dq (=), dk and dv (=) for every row. Segments that share
    /// a prefix add their prefix gradients into per-segment scratch first, summed at the end, so
    /// every task writes memory of its own.
    func backward(dOut: UnsafePointer<Float>, ldo: Int, q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
                  v: UnsafePointer<Float>, ldv: Int, probs: UnsafePointer<Float>,
                  dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>, rows: Int) {
        let hd = headDim, scale = 1 / Float(hd).squareRoot()
        let kvDim = kvHeads * hd
        // dk, dv rows accumulate from several heads of a group: start from zero.
        for r in 0..<rows {
            (dk + r * ldk).update(repeating: 0, count: kvDim)
            (dv + r * ldv).update(repeating: 0, count: kvDim)
        }
        let prefixRows = segments.map { $0.prefix }.max() ?? 0
        let withPrefix = segments.indices.filter { segments[$0].prefix > 0 }
        let slot = Dictionary(uniqueKeysWithValues: withPrefix.enumerated().map { ($1, $0) })
        let scratch = Scratch()
        let pdk = scratch.take(max(1, withPrefix.count * prefixRows * kvDim), zeroed: true)
        let pdv = scratch.take(max(1, withPrefix.count * prefixRows * kvDim), zeroed: true)
        let maxWork = segments.map { $0.length * $0.keys }.max() ?? 0
        Kernels.parallel(segments.count * kvHeads) { task in
            let si = task / kvHeads, g = task % kvHeads
            let s = segments[si]
            let nk = s.keys, len = s.length
            guard len > 0 else { return }
            let dp = UnsafeMutablePointer<Float>.allocate(capacity: max(1, maxWork))
            defer { dp.deallocate() }
            let blocks = Self.rowBlocks(s)
            for h in (g * group)..<((g + 1) * group) {
                let p = probs + offsets[si * heads + h]
                let dO = dOut + s.start * ldo + h * hd
                let qs = q + s.start * ldq + h * hd
                // dP = dO · Vᵀ over the keys the segment sees.
                if s.prefix > 0 {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(len), Int32(s.prefix), Int32(hd), 1,
                                dO, Int32(ldo), v + g * hd, Int32(ldv), 0, dp, Int32(nk))
                }
                for b in blocks {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(b.r1 - b.r0), Int32(b.keys), Int32(hd), 1,
                                dO + b.r0 * ldo, Int32(ldo), v + s.start * ldv + g * hd, Int32(ldv), 0, dp + b.r0 * nk + s.prefix, Int32(nk))
                }
                // dS = P ⊙ (dP − Σ_j dP·P), scaled for the products with q and k below.
                for i in 0..<len {
                    assay_softmax_grad_row(TrainKernels.rowLevel, p + i * nk, dp + i * nk, s.causal ? s.prefix + i + 1 : nk, nk, scale)
                }
                // dQ = dS · K.
                let dqs = dq + s.start * ldq + h * hd
                if s.prefix > 0 {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(len), Int32(hd), Int32(s.prefix), 1,
                                dp, Int32(nk), k + g * hd, Int32(ldk), 0, dqs, Int32(ldq))
                }
                for b in blocks {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(b.r1 - b.r0), Int32(hd), Int32(b.keys), 1,
                                dp + b.r0 * nk + s.prefix, Int32(nk), k + s.start * ldk + g * hd, Int32(ldk), s.prefix > 0 ? 1 : 0,
                                dqs + b.r0 * ldq, Int32(ldq))
                }
                // dK += dSᵀ · Q, dV += Pᵀ · dO (own rows here, prefix rows into the segment's scratch): a
                // block of query rows reaches the keys it sees.
                for b in blocks {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(b.keys), Int32(hd), Int32(b.r1 - b.r0), 1,
                                dp + b.r0 * nk + s.prefix, Int32(nk), qs + b.r0 * ldq, Int32(ldq), 1, dk + s.start * ldk + g * hd, Int32(ldk))
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(b.keys), Int32(hd), Int32(b.r1 - b.r0), 1,
                                p + b.r0 * nk + s.prefix, Int32(nk), dO + b.r0 * ldo, Int32(ldo), 1, dv + s.start * ldv + g * hd, Int32(ldv))
                }
                if s.prefix > 0, let sl = slot[si] {
                    let base = sl * prefixRows * kvDim + g * hd
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(s.prefix), Int32(hd), Int32(len), 1,
                                dp, Int32(nk), qs, Int32(ldq), 1, pdk + base, Int32(kvDim))
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(s.prefix), Int32(hd), Int32(len), 1,
                                p, Int32(nk), dO, Int32(ldo), 1, pdv + base, Int32(kvDim))
                }
            }
        }
        // Prefix gradients, summed over the segments in order.
        for sl in 0..<withPrefix.count {
            let n = segments[withPrefix[sl]].prefix
            for r in 0..<n {
                for j in 0..<kvDim {
                    dk[r * ldk + j] += pdk[(sl * prefixRows + r) * kvDim + j]
                    dv[r * ldv + j] += pdv[(sl * prefixRows + r) * kvDim + j]
                }
            }
        }
    }
}
