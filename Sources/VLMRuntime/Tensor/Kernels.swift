import CBLAS
import Dispatch
import Foundation

/// CPU kernels: OpenBLAS sgemm for many rows (prefill, vision), SIMD dot products over the stored
/// dtype for few rows (decode), and the element-wise pieces of the transformer blocks.
enum Kernels {
    /// Cores used by the hand-written kernels; OpenBLAS manages its own threads.
    static let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Row count from which a matrix product goes through sgemm instead of dot products.
    static let gemmThreshold = 8

    /// Runs `body(i)` for i in 0..<n on all cores.
    @inline(__always)
    static func parallel(_ n: Int, _ body: (Int) -> Void) {
        if n <= 1 { if n == 1 { body(0) }; return }
        // The kernels hand each iteration a disjoint slice of raw buffers, which the compiler
        // cannot see; the closure is only called during this call.
        withoutActuallyEscaping(body) { escaping in
            let shared = unsafeBitCast(escaping, to: (@Sendable (Int) -> Void).self)
            DispatchQueue.concurrentPerform(iterations: n, execute: shared)
        }
    }

    /// Part `c` of `count` items split into `chunks` near-equal contiguous parts (never out of
    /// range, whatever the sizes).
    @inline(__always)
    static func chunk(_ c: Int, of chunks: Int, count: Int) -> Range<Int> {
        (count * c / chunks)..<(count * (c + 1) / chunks)
    }

    // MARK: - Matrix products

    /// out[m, W.rows] = x[m, W.cols] · Wᵀ (+ bias).
    static func linear(_ x: UnsafePointer<Float>, rows m: Int, weight w: WeightMatrix, bias: [Float]?, out: UnsafeMutablePointer<Float>) {
        let n = w.rows, k = w.cols
        guard m > 0, n > 0 else { return }
        if m >= gemmThreshold {
            gemm(x, rows: m, weight: w, out: out)
        } else {
            gemv(x, rows: m, weight: w, out: out)
        }
        if let bias {
            bias.withUnsafeBufferPointer { b in
                for i in 0..<m { add(out + i * n, b.baseAddress!, n) } // invariant: bias has n > 0 values
            }
        }
        _ = k
    }

    static let hasAVX512BF16 = assay_cpu_has_avx512_bf16() != 0

    /// bf16 GEMM (vdpbf16ps): activations rounded to bf16 once, weights read as stored, columns
    /// split over the cores in 32-wide tiles.
    static func gemmBF16(_ x: UnsafePointer<Float>, rows m: Int, weight w: WeightMatrix, out: UnsafeMutablePointer<Float>) {
        let n = w.rows, k = w.cols
        let kpad = (k + 1) & ~1, mpad = (m + 7) & ~7
        let a = UnsafeMutablePointer<UInt16>.allocate(capacity: mpad * kpad)
        defer { a.deallocate() }
        a.initialize(repeating: 0, count: mpad * kpad)
        parallel(cores) { c in
            for i in chunk(c, of: cores, count: m) {
                for j in 0..<k { a[i * kpad + j] = floatToBF16(x[i * k + j]) }
            }
        }
        let tiles = (n + 31) / 32
        let chunks = min(tiles, cores * 4)
        let weights = w.raw.assumingMemoryBound(to: UInt16.self)
        parallel(chunks) { c in
            let t0 = c * tiles / chunks, t1 = (c + 1) * tiles / chunks
            guard t0 < t1 else { return }
            let panel = UnsafeMutablePointer<UInt32>.allocate(capacity: 256 * 32)
            defer { panel.deallocate() }
            assay_bf16_gemm_cols(a, kpad, m, weights, k, t0 * 32, min(n, t1 * 32), out, n, panel)
        }
    }

    /// sgemm; non-f32 weights are widened tile by tile so the full matrix is never held in f32.
    static func gemm(_ x: UnsafePointer<Float>, rows m: Int, weight w: WeightMatrix, out: UnsafeMutablePointer<Float>) {
        let n = w.rows, k = w.cols
        if w.bf16Matmul {
            gemmBF16(x, rows: m, weight: w, out: out)
            return
        }
        if w.dtype == .f32 {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1,
                        x, Int32(k), w.raw.assumingMemoryBound(to: Float.self), Int32(k), 0, out, Int32(n))
            return
        }
        let tile = max(64, min(n, (8 << 20) / max(1, k * 4)))
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: tile * k)
        defer { scratch.deallocate() }
        var r0 = 0
        while r0 < n {
            let r1 = min(n, r0 + tile)
            let chunk = (r1 - r0 + cores - 1) / cores
            parallel(cores) { c in
                let a = r0 + c * chunk, b = min(r1, a + chunk)
                if a < b { w.rows(a, b, into: scratch + (a - r0) * k) }
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(r1 - r0), Int32(k), 1,
                        x, Int32(k), scratch, Int32(k), 0, out + r0, Int32(n))
            r0 = r1
        }
    }

    /// Plain sgemm on Float32 buffers: C[m,n] = A[m,k] · B[n,k]ᵀ.
    static func sgemmABt(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, m: Int, n: Int, k: Int, out: UnsafeMutablePointer<Float>) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(k), 0, out, Int32(n))
    }

    /// Whether the AVX2/FMA/F16C kernels of the CBLAS shim can run here.
    static let hasAVX2 = assay_cpu_has_avx2_fma_f16c() != 0

    /// Dot products straight from the stored dtype, parallel over output rows: bandwidth-bound
    /// decode reads each weight byte once per step, serving up to 8 activation rows per pass.
    static func gemv(_ x: UnsafePointer<Float>, rows m: Int, weight w: WeightMatrix, out: UnsafeMutablePointer<Float>) {
        let n = w.rows, k = w.cols
        let chunks = min(n, cores * 8)
        let per = (n + chunks - 1) / chunks
        let rowBytes = k * w.dtype.byteSize
        let kind: Int32 = w.dtype == .bf16 ? 1 : (w.dtype == .f16 ? 2 : 0)
        parallel(chunks) { c in
            let a = c * per, b = min(n, a + per)
            guard a < b else { return }
            if hasAVX2 {
                var partial = [Float](repeating: 0, count: 8)
                partial.withUnsafeMutableBufferPointer { pp in
                    let p = pp.baseAddress!  // invariant: 8 elements
                    var i0 = 0
                    while i0 < m {
                        let mm = min(8, m - i0)
                        for r in a..<b {
                            assay_dot_rows(w.raw + r * rowBytes, kind, x + i0 * k, k, Int32(mm), k, p)
                            for i in 0..<mm { out[(i0 + i) * n + r] = p[i] }
                        }
                        i0 += mm
                    }
                }
            } else if m == 1 {
                for r in a..<b { out[r] = dot(w.raw + r * rowBytes, w.dtype, x, k) }
            } else if w.dtype == .f32 {
                for r in a..<b {
                    let wr = (w.raw + r * rowBytes).assumingMemoryBound(to: Float.self)
                    for i in 0..<m { out[i * n + r] = dotF32(wr, x + i * k, k) }
                }
            } else {
                let buf = UnsafeMutablePointer<Float>.allocate(capacity: k)
                defer { buf.deallocate() }
                for r in a..<b {
                    w.row(r, into: buf)
                    for i in 0..<m { out[i * n + r] = dotF32(buf, x + i * k, k) }
                }
            }
        }
    }

    @inline(__always)
    static func dot(_ w: UnsafeRawPointer, _ dtype: DType, _ x: UnsafePointer<Float>, _ k: Int) -> Float {
        switch dtype {
        case .bf16: return dotBF16(w, x, k)
        case .f16: return dotF16(w, x, k)
        default: return dotF32(w.assumingMemoryBound(to: Float.self), x, k)
        }
    }

    @inline(__always)
    static func dotF32(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        let ar = UnsafeRawPointer(a), br = UnsafeRawPointer(b)
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
        var i = 0
        while i + 32 <= n {
            s0 += ar.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) * br.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            s1 += ar.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self) * br.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self)
            s2 += ar.loadUnaligned(fromByteOffset: i * 4 + 64, as: SIMD8<Float>.self) * br.loadUnaligned(fromByteOffset: i * 4 + 64, as: SIMD8<Float>.self)
            s3 += ar.loadUnaligned(fromByteOffset: i * 4 + 96, as: SIMD8<Float>.self) * br.loadUnaligned(fromByteOffset: i * 4 + 96, as: SIMD8<Float>.self)
            i += 32
        }
        while i + 8 <= n {
            s0 += ar.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) * br.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        var s = ((s0 + s1) + (s2 + s3)).sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    @inline(__always)
    static func widenBF16(_ v: SIMD8<UInt16>) -> SIMD8<Float> {
        unsafeBitCast(SIMD8<UInt32>(truncatingIfNeeded: v) &<< 16, to: SIMD8<Float>.self)
    }

    @inline(__always)
    static func dotBF16(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        let xr = UnsafeRawPointer(x)
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
        var i = 0
        while i + 32 <= n {
            s0 += widenBF16(w.loadUnaligned(fromByteOffset: i * 2, as: SIMD8<UInt16>.self)) * xr.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            s1 += widenBF16(w.loadUnaligned(fromByteOffset: i * 2 + 16, as: SIMD8<UInt16>.self)) * xr.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self)
            s2 += widenBF16(w.loadUnaligned(fromByteOffset: i * 2 + 32, as: SIMD8<UInt16>.self)) * xr.loadUnaligned(fromByteOffset: i * 4 + 64, as: SIMD8<Float>.self)
            s3 += widenBF16(w.loadUnaligned(fromByteOffset: i * 2 + 48, as: SIMD8<UInt16>.self)) * xr.loadUnaligned(fromByteOffset: i * 4 + 96, as: SIMD8<Float>.self)
            i += 32
        }
        while i + 8 <= n {
            s0 += widenBF16(w.loadUnaligned(fromByteOffset: i * 2, as: SIMD8<UInt16>.self)) * xr.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        var s = ((s0 + s1) + (s2 + s3)).sum()
        while i < n {
            s += Float(bitPattern: UInt32(w.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16) * x[i]
            i += 1
        }
        return s
    }

    static func dotF16(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var s: Float = 0
        for i in 0..<n { s += halfToFloat(w.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) * x[i] }
        return s
    }

    // MARK: - Element-wise

    @inline(__always)
    static func add(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] += x[i] }
    }

    /// y = x / sqrt(mean(x²) + eps) · w, per row (Qwen2RMSNorm in fp32).
    static func rmsNorm(_ x: [Float], rows: Int, weight: [Float], eps: Float) -> [Float] {
        let d = weight.count
        var y = [Float](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                weight.withUnsafeBufferPointer { wp in
                    for r in 0..<rows {
                        let xr = xp.baseAddress! + r * d, yr = yp.baseAddress! + r * d // invariant: rows·d == count > 0
                        let ms = dotF32(xr, xr, d) / Float(d)
                        let inv = 1 / (ms + eps).squareRoot()
                        for i in 0..<d { yr[i] = wp[i] * (xr[i] * inv) }
                    }
                }
            }
        }
        return y
    }

    /// torch.nn.LayerNorm per row.
    static func layerNorm(_ x: [Float], rows: Int, weight: [Float], bias: [Float], eps: Float) -> [Float] {
        let d = weight.count
        var y = [Float](repeating: 0, count: x.count)
        for r in 0..<rows {
            var mean: Float = 0
            for i in 0..<d { mean += x[r * d + i] }
            mean /= Float(d)
            var v: Float = 0
            for i in 0..<d { let t = x[r * d + i] - mean; v += t * t }
            v /= Float(d)
            let inv = 1 / (v + eps).squareRoot()
            for i in 0..<d { y[r * d + i] = (x[r * d + i] - mean) * inv * weight[i] + bias[i] }
        }
        return y
    }

    /// g = silu(g) · u, split over the cores (prefill and vision run this over millions of values).
    static func swiGLU(_ g: inout [Float], _ u: [Float]) {
        let n = g.count
        let chunks = n >= 65536 ? cores * 4 : 1
        g.withUnsafeMutableBufferPointer { gp in
            u.withUnsafeBufferPointer { up in
                guard let gb = gp.baseAddress, let ub = up.baseAddress else { return }
                parallel(chunks) { c in
                    for i in chunk(c, of: chunks, count: n) { gb[i] = silu(gb[i]) * ub[i] }
                }
            }
        }
    }

    /// x = f(x) element-wise, split over the cores.
    static func map(_ x: inout [Float], _ f: (Float) -> Float) {
        let n = x.count
        let chunks = n >= 65536 ? cores * 4 : 1
        x.withUnsafeMutableBufferPointer { xp in
            guard let xb = xp.baseAddress else { return }
            parallel(chunks) { c in
                for i in chunk(c, of: chunks, count: n) { xb[i] = f(xb[i]) }
            }
        }
    }

    @inline(__always) static func silu(_ v: Float) -> Float { v / (1 + expf(-v)) }
    @inline(__always) static func quickGelu(_ v: Float) -> Float { v / (1 + expf(-1.702 * v)) }
    @inline(__always) static func gelu(_ v: Float) -> Float { 0.5 * v * (1 + erff(v * 0.70710678118654752)) }

    // MARK: - Attention

    /// Softmax attention of one query against keys `keyRows` (each of `headDim` values at
    /// `k + j·kStride`), writing Σ softmax(q·k·scale)·v to `out`. `scores` needs keyRows.count floats.
    @inline(__always)
    static func attend(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, stride: Int,
                       keys: [Int], count: Int, headDim: Int, scale: Float, scores: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>) {
        var mx = -Float.infinity
        for i in 0..<count {
            let j = keys[i]
            let s = dotF32(q, k + j * stride, headDim) * scale
            scores[i] = s
            if s > mx { mx = s }
        }
        var sum: Float = 0
        for i in 0..<count { let e = expf(scores[i] - mx); scores[i] = e; sum += e }
        for d in 0..<headDim { out[d] = 0 }
        let inv = 1 / sum
        for i in 0..<count {
            axpy(scores[i] * inv, v + keys[i] * stride, out, headDim)
        }
    }

    /// y += a·x over n values, eight lanes at a time (the compiler cannot vectorise the plain loop:
    /// x and y might alias).
    @inline(__always)
    static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        let xr = UnsafeRawPointer(x), yr = UnsafeMutableRawPointer(y)
        let av = SIMD8<Float>(repeating: a)
        var d = 0
        while d + 8 <= n {
            let cur = yr.loadUnaligned(fromByteOffset: d * 4, as: SIMD8<Float>.self)
            yr.storeBytes(of: cur + av * xr.loadUnaligned(fromByteOffset: d * 4, as: SIMD8<Float>.self), toByteOffset: d * 4, as: SIMD8<Float>.self)
            d += 8
        }
        while d < n { y[d] += a * x[d]; d += 1 }
    }

    /// Same, over a contiguous key range [k0, k1).
    @inline(__always)
    static func attend(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, stride: Int,
                       from k0: Int, to k1: Int, headDim: Int, scale: Float, scores: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>) {
        var mx = -Float.infinity
        for j in k0..<k1 {
            let s = dotF32(q, k + j * stride, headDim) * scale
            scores[j - k0] = s
            if s > mx { mx = s }
        }
        var sum: Float = 0
        for i in 0..<(k1 - k0) { let e = expf(scores[i] - mx); scores[i] = e; sum += e }
        for d in 0..<headDim { out[d] = 0 }
        let inv = 1 / sum
        for j in k0..<k1 {
            let p = scores[j - k0] * inv
            let vr = v + j * stride
            for d in 0..<headDim { out[d] += p * vr[d] }
        }
    }

    /// Attention of a block of queries against a block of keys through sgemm: scores = q·kᵀ·scale,
    /// disallowed keys −∞, row softmax, out = p·v. Query i may see key j when `keyValid[j]`
    /// (if given) and, with `causalOffset` c, when j ≤ c + i. A query that sees no key gets zeros.
    static func blockAttention(q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
                               v: UnsafePointer<Float>, ldv: Int, out: UnsafeMutablePointer<Float>, ldo: Int,
                               queries nq: Int, keys nk: Int, headDim: Int, scale: Float,
                               causalOffset: Int? = nil, keyValid: UnsafePointer<Bool>? = nil) {
        guard nq > 0, nk > 0 else { return }
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: nq * nk)
        defer { scores.deallocate() }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(nq), Int32(nk), Int32(headDim), scale,
                    q, Int32(ldq), k, Int32(ldk), 0, scores, Int32(nk))
        let chunks = min(nq, cores * 4)
        parallel(chunks) { c in
            for i in chunk(c, of: chunks, count: nq) {
                let row = scores + i * nk
                let limit = causalOffset.map { min(nk, $0 + i + 1) } ?? nk
                var mx = -Float.infinity
                for j in 0..<limit where keyValid?[j] ?? true { mx = max(mx, row[j]) }
                if mx == -Float.infinity {
                    for j in 0..<nk { row[j] = 0 }
                    continue
                }
                var sum: Float = 0
                for j in 0..<limit {
                    if keyValid?[j] ?? true {
                        let e = expf(row[j] - mx)
                        row[j] = e
                        sum += e
                    } else {
                        row[j] = 0
                    }
                }
                for j in limit..<nk { row[j] = 0 }
                let inv = 1 / sum
                for j in 0..<limit { row[j] *= inv }
            }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(nq), Int32(headDim), Int32(nk), 1,
                    scores, Int32(nk), v, Int32(ldv), 0, out, Int32(ldo))
    }

    /// Rotate-half RoPE on one head vector: pairs (j, j + half) turn by the angle whose cos/sin are given.
    @inline(__always)
    static func rotate(_ x: UnsafeMutablePointer<Float>, cos c: UnsafePointer<Float>, sin s: UnsafePointer<Float>, half: Int) {
        for j in 0..<half {
            let a = x[j], b = x[j + half]
            x[j] = a * c[j] - b * s[j]
            x[j + half] = b * c[j] + a * s[j]
        }
    }
}
