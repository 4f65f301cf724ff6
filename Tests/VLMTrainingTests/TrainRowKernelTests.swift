import CBLAS
import XCTest
import VLMRuntime
@testable import VLMTraining

/// The trainer's C row kernels (Sources/CBLAS/shim_train.h) on every level this CPU runs, against
/// the same formulas in Float64: attention softmax and its backward, the vocabulary log-softmax
/// pieces, SwiGLU and its backward. Rows of awkward lengths, masked tails, inputs far below zero.
final class TrainRowKernelTests: XCTestCase {
    /// Levels the CPU can execute: 0 always, 1 with AVX2, 2 with AVX512.
    var levels: [Int32] {
        switch KernelPath.detected {
        case .portable, .neon: return [0]
        case .avx2: return [0, 1]
        case .avx512: return [0, 1, 2]
        }
    }

    struct Rng {
        var state: UInt64
        mutating func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float((state >> 40) & 0xFFFFFF) / Float(1 << 24)
        }
    }

    func testSoftmaxRowsMatchFloat64OnEveryLevel() {
        var rng = Rng(state: 7)
        for trial in 0..<300 {
            let limit = 1 + trial % 97 + (trial % 5 == 0 ? 200 : 0), total = limit + trial % 19
            let spread: Float = trial % 3 == 0 ? 300 : 12
            let x = (0..<total).map { _ in (rng.next() - 0.5) * spread }
            let d = (0..<total).map { _ in rng.next() - 0.5 }
            let mx = x[..<limit].map(Double.init).max()!
            let e = x[..<limit].map { Foundation.exp(Double($0) - mx) }
            let sum = e.reduce(0, +)
            let p = e.map { $0 / sum }
            let scale = 0.125
            let dot = (0..<limit).map { Double(d[$0]) * p[$0] }.reduce(0, +)
            for level in levels {
                var row = x
                row.withUnsafeMutableBufferPointer { assay_softmax_row(level, $0.baseAddress, limit, total) }
                for j in 0..<total {
                    let want = j < limit ? p[j] : 0
                    XCTAssertEqual(Double(row[j]), want, accuracy: 2e-6 * want + 1e-30, "level \(level) trial \(trial) [\(j)]")
                }
                // The backward from the exact probabilities (as the pass keeps them).
                let pf = p.map(Float.init) + Array(repeating: 0, count: total - limit)
                var g = d
                g.withUnsafeMutableBufferPointer { gp in
                    pf.withUnsafeBufferPointer { assay_softmax_grad_row(level, $0.baseAddress, gp.baseAddress, limit, total, Float(scale)) }
                }
                for j in 0..<total {
                    let want = j < limit ? p[j] * (Double(d[j]) - dot) * scale : 0
                    XCTAssertEqual(Double(g[j]), want, accuracy: 1e-7, "grad level \(level) trial \(trial) [\(j)]")
                }
            }
        }
    }

    func testVocabularyLogSoftmaxPiecesMatchFloat64() {
        var rng = Rng(state: 11)
        for trial in 0..<40 {
            let n = 1 + trial * 397 % 3001
            let t: Float = trial % 2 == 0 ? 0.7 : 1
            let z = (0..<n).map { _ in (rng.next() - 0.5) * 60 }
            let scaled = z.map { $0 / t }
            let mx = scaled.max()!
            let sum = scaled.map { Foundation.exp(Double($0 - mx)) }.reduce(0, +)
            for level in levels {
                var row = z
                let got = row.withUnsafeMutableBufferPointer { assay_div_max_row(level, $0.baseAddress, n, t) }
                XCTAssertEqual(got, mx, "level \(level)")
                XCTAssertEqual(row, scaled, "z / T is a division, bit for bit (level \(level))")
                let s = row.withUnsafeBufferPointer { assay_sum_exp_row(level, $0.baseAddress, n, mx) }
                XCTAssertEqual(Double(s), sum, accuracy: 1e-5 * sum, "level \(level) n \(n)")
                let lse = mx + logf(s)
                row.withUnsafeMutableBufferPointer { assay_exp_scale_row(level, $0.baseAddress, n, lse, -0.5) }
                for j in 0..<n {
                    // z − lse is rounded to f32 first (ulp ∝ |z − lse|), then exponentiated.
                    let arg = Double(scaled[j]) - Double(lse)
                    let want = -0.5 * Foundation.exp(arg)
                    XCTAssertEqual(Double(row[j]), want, accuracy: (2e-6 + 1.2e-7 * abs(arg)) * abs(want) + 1e-37, "level \(level) [\(j)]")
                }
            }
        }
    }

    func testSwiGLURowsMatchFloat64() {
        var rng = Rng(state: 3)
        let n = 1_003
        let g = (0..<n).map { i in i < 8 ? [-120, -90, -88, -20, 0, 20, 88, 120][i] : (rng.next() - 0.5) * 24 }
        let u = (0..<n).map { _ in rng.next() - 0.5 }, da = (0..<n).map { _ in rng.next() - 0.5 }
        for level in levels {
            var a = [Float](repeating: .nan, count: n), dg = a, du = a
            a.withUnsafeMutableBufferPointer { assay_swiglu_row(level, g, u, n, $0.baseAddress) }
            dg.withUnsafeMutableBufferPointer { dgp in
                du.withUnsafeMutableBufferPointer { assay_swiglu_grad_row(level, da, g, u, n, dgp.baseAddress, $0.baseAddress) }
            }
            for j in 0..<n {
                let x = Double(g[j]), s = 1 / (1 + Foundation.exp(-x))
                let wantA = x * s * Double(u[j])
                let wantDg = Double(da[j]) * Double(u[j]) * s * (1 + x * (1 - s)), wantDu = Double(da[j]) * x * s
                XCTAssertEqual(Double(a[j]), wantA, accuracy: 1e-6 * abs(wantA) + 1e-30, "a level \(level) g \(g[j])")
                // 1 + g(1 − s) cancels near g ≈ −1.28: the tolerance follows the terms' size.
                let dgScale = abs(Double(da[j]) * Double(u[j]) * s) * (1 + abs(x) * (1 - s))
                XCTAssertEqual(Double(dg[j]), wantDg, accuracy: 1e-6 * dgScale + 1e-30, "dg level \(level) g \(g[j])")
                XCTAssertEqual(Double(du[j]), wantDu, accuracy: 1e-6 * abs(wantDu) + 1e-30, "du level \(level) g \(g[j])")
            }
        }
    }
}
