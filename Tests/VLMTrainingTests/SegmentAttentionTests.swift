import XCTest
@testable import VLMTraining

/// The packed attention (`SegmentAttention`) against the same formulas in Float64, forward and
/// backward: grouped heads, a causal prompt, completions that see it as a prefix, segments longer
/// than the causal row block (so the products that skip the masked triangle's blocks are
/// exercised, with a partial last block) and a non-causal segment.
final class SegmentAttentionTests: XCTestCase {
    struct Rng {
        var state: UInt64
        mutating func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float((state >> 40) & 0xFFFFFF) / Float(1 << 24) * 2 - 1
        }
    }

    func testForwardAndBackwardMatchFloat64() {
        let heads = 4, kvHeads = 2, hd = 16, group = heads / kvHeads
        let block = SegmentAttention.causalBlock
        let segments = [
            AttentionSegment(start: 0, length: block + 6, prefix: 0, causal: true),
            AttentionSegment(start: block + 6, length: 2 * block + 11, prefix: block + 6, causal: true),
            AttentionSegment(start: 3 * block + 17, length: 9, prefix: block + 6, causal: true),
            AttentionSegment(start: 3 * block + 26, length: 40, prefix: 0, causal: false),
        ]
        let rows = 3 * block + 66
        let qDim = heads * hd, kvDim = kvHeads * hd
        var rng = Rng(state: 7)
        let q = (0..<(rows * qDim)).map { _ in rng.next() }
        let k = (0..<(rows * kvDim)).map { _ in rng.next() }
        let v = (0..<(rows * kvDim)).map { _ in rng.next() }
        let dOut = (0..<(rows * qDim)).map { _ in rng.next() }
        let attention = SegmentAttention(heads: heads, kvHeads: kvHeads, headDim: hd, segments: segments)

        var out = [Float](repeating: .nan, count: rows * qDim)
        // Probabilities and gradients start as garbage: the kernels must not read what they did not write.
        var probs = [Float](repeating: .nan, count: attention.probabilityCount)
        var dq = [Float](repeating: .nan, count: rows * qDim), dk = [Float](repeating: .nan, count: rows * kvDim)
        var dv = [Float](repeating: .nan, count: rows * kvDim)
        attention.forward(q: q, ldq: qDim, k: k, ldk: kvDim, v: v, ldv: kvDim, out: &out, ldo: qDim, probs: &probs)
        attention.backward(dOut: dOut, ldo: qDim, q: q, ldq: qDim, k: k, ldk: kvDim, v: v, ldv: kvDim, probs: probs,
                           dq: &dq, dk: &dk, dv: &dv, rows: rows)

        // Float64 reference.
        var rOut = [Double](repeating: 0, count: rows * qDim), rdq = rOut
        var rdk = [Double](repeating: 0, count: rows * kvDim), rdv = rdk
        let scale = 1 / Double(hd).squareRoot()
        for s in segments {
            for h in 0..<heads {
                let g = h / group
                for i in 0..<s.length {
                    let qi = s.start + i
                    var keys = Array(0..<s.prefix)
                    keys += (0..<(s.causal ? i + 1 : s.length)).map { s.start + $0 }
                    var scores = keys.map { key in
                        (0..<hd).reduce(0.0) { $0 + Double(q[qi * qDim + h * hd + $1]) * Double(k[key * kvDim + g * hd + $1]) } * scale
                    }
                    let top = scores.max()!
                    scores = scores.map { exp($0 - top) }
                    let sum = scores.reduce(0, +)
                    let p = scores.map { $0 / sum }
                    for c in 0..<hd {
                        rOut[qi * qDim + h * hd + c] = zip(p, keys).reduce(0.0) { $0 + $1.0 * Double(v[$1.1 * kvDim + g * hd + c]) }
                    }
                    // dP_j = dO·v_j; dS_j = P_j (dP_j − Σ P·dP); dq += dS_j k_j scale; dk_j += dS_j q scale; dv_j += P_j dO.
                    let dO = (0..<hd).map { Double(dOut[qi * qDim + h * hd + $0]) }
                    let dP = keys.map { key in (0..<hd).reduce(0.0) { $0 + dO[$1] * Double(v[key * kvDim + g * hd + $1]) } }
                    let dot = zip(p, dP).reduce(0.0) { $0 + $1.0 * $1.1 }
                    for (j, key) in keys.enumerated() {
                        let dS = p[j] * (dP[j] - dot) * scale
                        for c in 0..<hd {
                            rdq[qi * qDim + h * hd + c] += dS * Double(k[key * kvDim + g * hd + c])
                            rdk[key * kvDim + g * hd + c] += dS * Double(q[qi * qDim + h * hd + c])
                            rdv[key * kvDim + g * hd + c] += p[j] * dO[c]
                        }
                    }
                }
            }
        }
        func assertClose(_ a: [Float], _ b: [Double], _ what: String) {
            var worst = 0.0, at = -1
            for i in 0..<b.count {
                let err = abs(Double(a[i]) - b[i]) - (1e-5 + 1e-4 * abs(b[i]))
                if err > worst || !a[i].isFinite { worst = err.isFinite ? err : .infinity; at = i }
            }
            if at >= 0 { XCTFail("\(what): element \(at) is \(a[at]), Float64 gives \(b[at])") }
        }
        assertClose(out, rOut, "out")
        assertClose(dq, rdq, "dq")
        assertClose(dk, rdk, "dk")
        assertClose(dv, rdv, "dv")
    }
}
