import CBLAS
import Foundation
import XCTest
@testable import VLMRuntime

/// The bf16 path's C kernels against scalar references, over every tail the vector code has:
/// rounding, the GEMM with its packed panels and fused bias/residual, SwiGLU into bf16, attention.
final class BF16KernelTests: XCTestCase {
    func bf16Value(_ f: Float) -> Double { Double(Float(bitPattern: UInt32(floatToBF16(f)) << 16)) }

    func values(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = SeededRandom(seed: seed)
        return (0..<count).map { _ in (Float(rng.next() % 20001) / 10000 - 1) * scale }
    }

    func testRoundingMatchesScalarOnEveryTailAndSpecialValue() {
        let specials: [Float] = [0, -0, 1, -1, .infinity, -.infinity, .nan, -.nan, .leastNonzeroMagnitude, -.leastNormalMagnitude,
                                 .greatestFiniteMagnitude, Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000),
                                 Float(bitPattern: 0x3F80_7FFF), Float(bitPattern: 0x7F7F_FFFF), Float(bitPattern: 0x0000_8000)]
        for wide in Kernels.hasAVX512 ? [Int32(1), 0] : [0] {
            for k in 1...40 {
                let rows = 3, lda = (k + 1) & ~1
                var x = values(rows * k, seed: UInt64(k), scale: 100)
                for (i, s) in specials.enumerated() where i < x.count { x[(i * 7) % x.count] = s }
                var a = [UInt16](repeating: 0xFFFF, count: rows * lda)
                assay_f32_to_bf16_rows(wide, x, k, 0, rows, k, &a, lda)
                for r in 0..<rows {
                    for j in 0..<k { XCTAssertEqual(a[r * lda + j], floatToBF16(x[r * k + j]), "wide \(wide) k \(k) (\(r), \(j))") }
                    for j in k..<lda { XCTAssertEqual(a[r * lda + j], 0, "padding wide \(wide) k \(k)") }
                }
            }
        }
    }

    /// C (=, or +=) A·Bᵀ (+ bias) for ragged M, N, K, a B row stride wider than K, bias and
    /// accumulation, against a float64 sum of the bf16-rounded inputs.
    func testGemmWithBiasAndAccumulationMatchesReferenceOnTails() throws {
        guard Kernels.hasAVX512BF16 else { throw XCTSkip("CPU has no AVX512-BF16") }
        var shapes: [(Int, Int, Int, Int)] = []
        for n in [1, 15, 16, 17, 31, 32, 33, 47, 64, 65] { shapes.append((9, n, 35, 35)) }
        for k in [1, 2, 3, 31, 32, 33, 34, 511, 512, 513, 1025, 1031] { shapes.append((5, 40, k, k + (k % 3))) }
        for m in [1, 7, 8, 9, 16, 17] { shapes.append((m, 33, 100, 100)) }
        for (m, n, k, ldb) in shapes {
            let x = values(m * k, seed: UInt64(m * 1000 + k), scale: 2)
            let w = values(n * ldb, seed: UInt64(n * 7 + k), scale: 2).map { Float(bf16Value($0)) }
            let bias = values(n, seed: 5)
            let a = BF16Rows(rows: m, cols: k)
            defer { a.deallocate() }
            a.fill(x)
            let wBits = w.map(floatToBF16)
            let panel = UnsafeMutablePointer<UInt32>.allocate(capacity: 256 * 32)
            defer { panel.deallocate() }
            for (useBias, accumulate) in [(false, false), (true, false), (false, true), (true, true)] {
                let before = values(m * n, seed: 9)
                var c = before
                wBits.withUnsafeBufferPointer { wp in
                    bias.withUnsafeBufferPointer { bp in
                        assay_bf16_gemm_cols(a.base, a.ld, m, wp.baseAddress, ldb, k, 0, n, &c, n, panel,
                                             useBias ? bp.baseAddress : nil, accumulate ? 1 : 0)
                    }
                }
                var worst = 0.0
                for i in 0..<m {
                    for j in 0..<n {
                        var s = 0.0
                        for t in 0..<k { s += bf16Value(x[i * k + t]) * Double(w[j * ldb + t]) }
                        if useBias { s += Double(bias[j]) }
                        if accumulate { s += Double(before[i * n + j]) }
                        worst = max(worst, abs(s - Double(c[i * n + j])) / (1 + abs(s)))
                    }
                }
                XCTAssertLessThan(worst, 1e-5, "m \(m) n \(n) k \(k) ldb \(ldb) bias \(useBias) accumulate \(accumulate)")
            }
        }
    }

    /// Columns split between calls (as the cores split them) give the same numbers as one call.
    func testGemmColumnRangesAreIndependent() throws {
        guard Kernels.hasAVX512BF16 else { throw XCTSkip("CPU has no AVX512-BF16") }
        let m = 11, n = 150, k = 700
        let x = values(m * k, seed: 1), w = values(n * k, seed: 2).map(floatToBF16)
        let a = BF16Rows(rows: m, cols: k)
        defer { a.deallocate() }
        a.fill(x)
        let panel = UnsafeMutablePointer<UInt32>.allocate(capacity: 256 * 32)
        defer { panel.deallocate() }
        var whole = [Float](repeating: 0, count: m * n), split = whole
        assay_bf16_gemm_cols(a.base, a.ld, m, w, k, k, 0, n, &whole, n, panel, nil, 0)
        for (n0, n1) in [(0, 32), (32, 96), (96, 150)] { assay_bf16_gemm_cols(a.base, a.ld, m, w, k, k, n0, n1, &split, n, panel, nil, 0) }
        XCTAssertEqual(whole, split)
    }

    func testSwiGLUIntoBF16MatchesScalarWithinOneBF16Step() throws {
        guard Kernels.hasAVX512 else { throw XCTSkip("CPU has no AVX512") }
        for cols in [1, 15, 16, 17, 33, 100] {
            let rows = 3
            var g = values(rows * cols, seed: UInt64(cols), scale: 12), u = values(rows * cols, seed: 3, scale: 3)
            g[0] = -100; g[min(1, g.count - 1)] = 95  // exp's clamps: silu → 0 and → g
            let a = BF16Rows(rows: rows, cols: cols)
            defer { a.deallocate() }
            Kernels.swiGLU(g, u, into: a)
            for r in 0..<rows {
                for j in 0..<cols {
                    let i = r * cols + j
                    let want = Double(g[i]) / (1 + exp(-Double(g[i]))) * Double(u[i])
                    let got = Double(Float(bitPattern: UInt32(a.base[r * a.ld + j]) << 16))
                    XCTAssertLessThanOrEqual(abs(got - want), abs(want) / 128 + 1e-30, "cols \(cols) (\(r), \(j))")
                }
                if a.ld > cols { XCTAssertEqual(a.base[r * a.ld + cols], 0) }
            }
        }
    }

    /// Attention with bf16 products against a float64 softmax of the same bf16-rounded q, k, v:
    /// windows, causal prefill with an offset, invalid keys, several query heads per key head,
    /// query blocks past 64, odd sizes.
    func testAttentionMatchesReference() throws {
        guard Kernels.hasAVX512BF16 else { throw XCTSkip("CPU has no AVX512-BF16") }
        let cases: [(nq: Int, nk: Int, hd: Int, heads: Int, causal: Int?, masked: Bool)] = [
            (64, 64, 80, 1, nil, false), (130, 130, 16, 1, nil, false), (70, 70, 64, 2, 0, true),
            (100, 131, 32, 3, 31, false), (1, 40, 8, 2, 39, true), (7, 3, 6, 1, nil, true), (5, 9, 4, 2, 0, false)]
        for t in cases {
            let ldq = t.heads * t.hd + 3, ldk = t.hd + 5, ldv = t.hd + 1, ldo = t.heads * t.hd + 2
            let q = values(t.nq * ldq, seed: 1, scale: 2), k = values(t.nk * ldk, seed: 2, scale: 2), v = values(t.nk * ldv, seed: 3)
            let valid = (0..<t.nk).map { !t.masked || $0 % 5 != 3 }
            var out = [Float](repeating: 777, count: t.nq * ldo)
            let scale = 1 / Float(t.hd).squareRoot()
            valid.withUnsafeBufferPointer { vp in
                out.withUnsafeMutableBufferPointer { op in
                    Kernels.bf16Attention(q: q, ldq: ldq, qHead: t.hd, k: k, ldk: ldk, v: v, ldv: ldv, out: op.baseAddress!, ldo: ldo,
                                          outHead: t.hd, heads: t.heads, queries: t.nq, keys: t.nk, headDim: t.hd, scale: scale,
                                          causalOffset: t.causal, keyValid: vp.baseAddress)
                }
            }
            var worst = 0.0
            for h in 0..<t.heads {
                for i in 0..<t.nq {
                    let limit = t.causal.map { min(t.nk, $0 + i + 1) } ?? t.nk
                    var s = [Double](repeating: -.infinity, count: t.nk)
                    for j in 0..<limit where valid[j] {
                        var dot = 0.0
                        for c in 0..<t.hd { dot += bf16Value(q[i * ldq + h * t.hd + c]) * bf16Value(k[j * ldk + c]) }
                        s[j] = dot * Double(scale)
                    }
                    let top = s.max() ?? -.infinity
                    let e = s.map { top == -.infinity ? 0 : exp($0 - top) }
                    let sum = e.reduce(0, +)
                    for c in 0..<t.hd {
                        var want = 0.0
                        if sum > 0 { for j in 0..<t.nk { want += e[j] / sum * bf16Value(v[j * ldv + c]) } }
                        worst = max(worst, abs(want - Double(out[i * ldo + h * t.hd + c])))
                    }
                    for c in (t.heads * t.hd)..<ldo { XCTAssertEqual(out[i * ldo + c], 777, "wrote past the heads") }
                }
            }
            // The probabilities are rounded to bf16 for the second product: about 3 significant digits.
            XCTAssertLessThan(worst, 1e-2, "\(t)")
        }
    }
}
