import Foundation
import XCTest
@testable import VLMRuntime

/// The hand-written matrix kernels against a float64 reference on awkward shapes.
final class KernelTests: XCTestCase {
    func reference(_ x: [Float], _ w: [Float], m: Int, n: Int, k: Int) -> [Float] {
        var y = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for r in 0..<n {
            var s = 0.0
            for j in 0..<k { s += Double(x[i * k + j]) * Double(w[r * k + j]) }
            y[i * n + r] = Float(s)
        } }
        return y
    }

    /// Values exactly representable in bf16 (and f16), so every path multiplies the same numbers.
    func values(_ count: Int, seed: UInt64) -> [Float] {
        var rng = SeededRandom(seed: seed)
        return (0..<count).map { _ in Float(Int(rng.next() % 255) - 127) / 64 }
    }

    func bytes(_ v: [Float], _ dtype: DType) -> [UInt8] {
        switch dtype {
        case .bf16: return v.flatMap { f -> [UInt8] in let b = floatToBF16(f); return [UInt8(b & 0xFF), UInt8(b >> 8)] }
        case .f16: return v.flatMap { f -> [UInt8] in let b = Float16(f).bitPattern; return [UInt8(b & 0xFF), UInt8(b >> 8)] }
        default: return v.withUnsafeBytes { Array($0) }
        }
    }

    func testGemvOverStoredTypesMatchesReference() {
        // k = 1031: one weight row at a time; k = 4101 ≥ wideRowThreshold with one activation row:
        // 8 rows per pass (n = 37: four groups of 8, then 5 single rows; an odd k tail in both).
        for k in [1031, Kernels.wideRowThreshold + 5] { gemvMatchesReference(n: 37, k: k) }
    }

    func gemvMatchesReference(n: Int, k: Int) {
        let w = values(n * k, seed: 1)
        for m in [1, 3, 9] {
            let x = values(m * k, seed: 2)
            let want = reference(x, w, m: m, n: n, k: k)
            for dtype in [DType.f32, .bf16, .f16] {
                let wm = WeightMatrix(rows: n, cols: k, dtype: dtype, bytes: bytes(w, dtype))
                var y = [Float](repeating: 0, count: m * n)
                x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                    Kernels.gemv(xp.baseAddress!, rows: m, weight: wm, out: yp.baseAddress!)
                } }
                assertClose(y, want, atol: 1e-3, rtol: 1e-5, "gemv \(dtype) m=\(m) k=\(k)")
            }
        }
    }

    func testBF16GemmMatchesReferenceOnRaggedShapes() throws {
        guard Kernels.hasAVX512BF16 else { throw XCTSkip("CPU has no AVX512-BF16") }
        for (m, n, k) in [(13, 70, 1031), (8, 32, 512), (40, 65, 1500), (9, 1, 3)] {
            let w = values(n * k, seed: 3), x = values(m * k, seed: 4)
            let wm = WeightMatrix(rows: n, cols: k, dtype: .bf16, bytes: bytes(w, .bf16), precision: .bfloat16)
            XCTAssertTrue(wm.bf16Matmul)
            var y = [Float](repeating: 0, count: m * n)
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                Kernels.gemm(xp.baseAddress!, rows: m, weight: wm, out: yp.baseAddress!)
            } }
            assertClose(y, reference(x, w, m: m, n: n, k: k), atol: 1e-3, rtol: 1e-5, "bf16 gemm \(m)x\(n)x\(k)")
        }
    }

    func testBF16PrecisionModelStaysCloseToExactLogits() throws {
        guard Kernels.hasAVX512BF16 else { throw XCTSkip("CPU has no AVX512-BF16") }
        let dir = try Fixtures.require("goldens/qwen2_5_vl_tiny_bf16_v5/checkpoint").path
        let image = try ImageDecoder.loadRGB(path: try Fixtures.image())
        let conv: [[ChatMessage]] = [[.user([.image(image), .text("What is shown in this figure? Answer briefly.")])]]
        let exact = try VLMModel.load(path: dir)
        let fast = try VLMModel.load(path: dir, precision: .bfloat16)
        let a = try exact.promptLogits(exact.prepare(conv)), b = try fast.promptLogits(fast.prepare(conv))
        var worst: Float = 0
        for i in 0..<a.count { worst = max(worst, abs(a[i] - b[i])) }
        XCTAssertLessThan(worst, 0.5, "bf16 matmuls drift too far from fp32")
        XCTAssertGreaterThan(worst, 0, "the bf16 path was not taken")
    }
}
