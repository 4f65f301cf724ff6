import CBLAS
import Dispatch
import Foundation

/// CPU kernels: OpenBLAS sgemm for many rows (prefill, vision), SIMD dot products over the stored
/// dtype for few rows (decode), and the element-wise pieces of the transformer blocks.
///
/// One thread pool runs everything (`KernelWorkers`): OpenBLAS is switched to one thread and large
/// products are split over the cores here, by output columns. Two pools on two cores — OpenBLAS's
/// threads spinning between calls while ours spun between matvecs — took the cores from each other.
package enum Kernels {
    /// Cores the kernels split work over.
    package static let cores = RuntimeThreads.count

    /// Row count from which a matrix product goes through sgemm instead of dot products.
    static let gemmThreshold = 8

    /// Set once, before the first sgemm: OpenBLAS runs single-threaded inside our workers.
    private static let blasSingleThreaded: Bool = {
        openblas_set_num_threads(1)
        return true
    }()

    /// Runs `body(i)` for i in 0..<n on all cores (the spinning `KernelWorkers` pool).
    @inline(__always)
    package static func parallel(_ n: Int, _ body: (Int) -> Void) {
        KernelWorkers.run(n, threads: cores, body)
    }

    /// C[m, n] = alpha · A[m, k] · B (B is [n, k] when `transposeB`, else [k, n]) + beta · C, with
    /// leading dimensions as in BLAS, single-threaded. Callers parallelise around it.
    @inline(__always)
    package static func sgemm(_ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int, _ c: UnsafeMutablePointer<Float>, ldc: Int,
                      m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0, transposeB: Bool = true) {
        guard blasSingleThreaded, m > 0, n > 0 else { return }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y[m, n] = x[m, k] · Wᵀ for a weight W [n, k] whose rows `fill(r0, r1, dst)` writes as Float32
    /// (dequantised or widened), or that is already Float32 (`floats`). The rows are cut into
    /// tiles of about `tileBytes`, but never fewer than `minimumTileRows` rows; each core takes its
    /// own tiles, fills them into its own buffer and multiplies them into its own output columns,
    /// so no core waits on another between the two steps.
    static func tiledProduct(_ x: UnsafePointer<Float>, m: Int, k: Int, n: Int, y: UnsafeMutablePointer<Float>, ldy: Int,
                             floats: UnsafePointer<Float>? = nil, tileBytes: Int = 1 << 19,
                             fill: (Int, Int, UnsafeMutablePointer<Float>) -> Void) {
        guard m > 0, n > 0, k > 0 else { return }
        let work = m * n * k
        let workers = work >= 1 << 20 ? cores : 1
        // At least one tile per core; tiles of about `tileBytes` so a filled tile is still in
        // cache when sgemm reads it, but not thinner than `minimumTileRows`: each sgemm call packs
        // all of x again, and with thin tiles (11 rows for Qwen2.5-VL-3B's down projection,
        // k = 11008) that packing and sgemm's edge kernels cost more than the products.
        let rowsByBytes = max(1, tileBytes / (k * 4))
        let tiles = max(workers, (n + max(rowsByBytes, minimumTileRows) - 1) / max(rowsByBytes, minimumTileRows))
        let tileRows = (n + tiles - 1) / tiles
        parallel(workers) { wkr in
            let range = chunk(wkr, of: workers, count: tiles)
            guard !range.isEmpty else { return }
            var scratch: UnsafeMutablePointer<Float>? = nil
            if floats == nil { scratch = .allocate(capacity: tileRows * k) }
            defer { scratch?.deallocate() }
            for t in range {
                let r0 = t * tileRows, r1 = min(n, r0 + tileRows)
                guard r0 < r1 else { continue }
                let w: UnsafePointer<Float>
                if let floats {
                    w = floats + r0 * k
                } else {
                    let buffer = scratch.unsafelyUnwrapped  // invariant: allocated above when floats is nil
                    fill(r0, r1, buffer)
                    w = UnsafePointer(buffer)
                }
                sgemm(x, lda: k, w, ldb: k, y + r0, ldc: ldy, m: m, n: r1 - r0, k: k)
            }
        }
    }

    /// The thinnest tile `tiledProduct` cuts. OpenBLAS sgemm (one thread, m = 405, the 3B model's
    /// down projection k = 11008, n = 2048) ran at 12 GFLOP/s on 11-row tiles, 21 on 16, 30 on 64
    /// and 33–38 on 128–512 (Zen 4, Haswell and Cooperlake kernels alike).
    static let minimumTileRows = 128

    /// Part `c` of `count` items split into `chunks` near-equal contiguous parts (never out of
    /// range, whatever the sizes).
    @inline(__always)
    package static func chunk(_ c: Int, of chunks: Int, count: Int) -> Range<Int> {
        (count * c / chunks)..<(count * (c + 1) / chunks)
    }

    // MARK: - Matrix products

    /// out[m, W.rows] = x[m, W.cols] · Wᵀ (+ bias).
    static func linear(_ x: UnsafePointer<Float>, rows m: Int, weight w: WeightMatrix, bias: [Float]?, out: UnsafeMutablePointer<Float>,
                       rowPath: Bool = false) {
        let n = w.rows, k = w.cols
        guard m > 0, n > 0 else { return }
        if m >= gemmThreshold && !rowPath {
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

    static let hasAVX512BF16 = KernelPath.active == .avx512 && assay_cpu_has_avx512_bf16() != 0

    /// AVX512F/BW/VL with ZMM state saved by the OS (asked once: cpuid traps to the hypervisor in a VM).
    static let hasAVX512 = KernelPath.active == .avx512

    /// bf16 GEMM (vdpbf16ps) with the bias and the residual add fused into the store:
    /// out[m, n] (=, or += when `accumulate`) a · Wᵀ (+ bias). The activations come rounded
    /// already (`BF16Rows`), so layers that read the same input share one conversion; columns are
    /// split over the cores in 32-wide tiles.
    static func gemmBF16(_ a: BF16Rows, weight w: WeightMatrix, out: UnsafeMutablePointer<Float>, ldo: Int? = nil,
                         bias: UnsafePointer<Float>? = nil, accumulate: Bool = false) {
        let n = w.rows, k = w.cols, m = a.rows
        guard m > 0, n > 0 else { return }
        let tiles = (n + 31) / 32
        let chunks = min(tiles, cores * 4)
        let weights = w.raw.assumingMemoryBound(to: UInt16.self)
        parallel(chunks) { c in
            let t0 = c * tiles / chunks, t1 = (c + 1) * tiles / chunks
            guard t0 < t1 else { return }
            let panel = UnsafeMutablePointer<UInt32>.allocate(capacity: 256 * 32)
            defer { panel.deallocate() }
            assay_bf16_gemm_cols(a.base, a.ld, m, weights, k, k, t0 * 32, min(n, t1 * 32), out, ldo ?? n, panel, bias, accumulate ? 1 : 0)
        }
    }

    /// bf16 GEMM of f32 rows: rounds them once, then `gemmBF16`.
    static func gemmBF16(_ x: UnsafePointer<Float>, rows m: Int, weight w: WeightMatrix, out: UnsafeMutablePointer<Float>) {
        let a = BF16Rows(rows: m, cols: w.cols)
        defer { a.deallocate() }
        a.fill(x)
        gemmBF16(a, weight: w, out: out)
    }

    /// sgemm; non-f32 weights are widened tile by tile so the full matrix is never held in f32.
    static func gemm(_ x: UnsafePointer<Float>, rows m: Int, weight w: WeightMatrix, out: UnsafeMutablePointer<Float>) {
        let n = w.rows, k = w.cols
        if w.bf16Matmul {
            gemmBF16(x, rows: m, weight: w, out: out)
            return
        }
        let floats = w.dtype == .f32 ? w.raw.assumingMemoryBound(to: Float.self) : nil
        tiledProduct(x, m: m, k: k, n: n, y: out, ldy: n, floats: floats) { r0, r1, dst in w.rows(r0, r1, into: dst) }
    }

    /// Plain sgemm on Float32 buffers: C[m,n] = A[m,k] · B[n,k]ᵀ, split over the cores.
    static func sgemmABt(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, m: Int, n: Int, k: Int, out: UnsafeMutablePointer<Float>) {
        tiledProduct(a, m: m, k: k, n: n, y: out, ldy: n, floats: b) { _, _, _ in }
    }

    /// Whether the shim's C row kernels (AVX2/FMA/F16C and wider, or NEON) run here.
    static let hasRowKernels = KernelPath.active != .portable

    /// Dot products straight from the stored dtype, parallel over output rows: bandwidth-bound
    /// decode reads each weight byte once per step, serving up to 8 activation rows per pass.
    /// Activation widths (floats) from which single-row decode takes 8 weight rows per pass over
    /// x (`assay_dot_8rows`): x no longer sits in L1 beside the weight stream. Measured on Zen 4
    /// (32 KB L1d): 11,008-wide rows 23 → 34 GB/s, 2,048-wide rows slightly slower (35 → 32).
    static let wideRowThreshold = 4096

    static func gemv(_ x: UnsafePointer<Float>, rows m: Int, weight w: WeightMatrix, out: UnsafeMutablePointer<Float>) {
        let n = w.rows, k = w.cols
        let chunks = min(n, cores * 8)
        let per = (n + chunks - 1) / chunks
        let rowBytes = k * w.dtype.byteSize
        let kind: Int32 = w.dtype == .bf16 ? 1 : (w.dtype == .f16 ? 2 : 0)
        parallel(chunks) { c in
            let a = c * per, b = min(n, a + per)
            guard a < b else { return }
            if hasRowKernels {
                var partial = [Float](repeating: 0, count: 8)
                partial.withUnsafeMutableBufferPointer { pp in
                    let p = pp.baseAddress!  // invariant: 8 elements
                    if m == 1 && k >= wideRowThreshold {
                        // One activation row wider than L1: 8 weight rows per pass over x.
                        var r = a
                        while r + 8 <= b {
                            assay_dot_8rows(w.raw + r * rowBytes, kind, k, x, k, out + r)
                            r += 8
                        }
                        while r < b {
                            assay_dot_rows(w.raw + r * rowBytes, kind, x, k, 1, k, p)
                            out[r] = p[0]
                            r += 1
                        }
                        return
                    }
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

    /// Chunks for an element-wise pass over `count` values: one below ~64K (not worth waking a core).
    @inline(__always)
    static func elementChunks(_ count: Int) -> Int { count >= 65536 ? cores * 4 : 1 }

    /// y += x over n values, split over the cores (the residual adds of prefill and vision).
    static func addParallel(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
        let chunks = elementChunks(n)
        parallel(chunks) { c in
            let r = chunk(c, of: chunks, count: n)
            add(y + r.lowerBound, x + r.lowerBound, r.count)
        }
    }

    /// out[i, j] += bias[j] for `rows` rows of bias.count values.
    static func addBias(_ out: UnsafeMutablePointer<Float>, rows: Int, _ bias: [Float]) {
        let n = bias.count
        let chunks = elementChunks(rows * n)
        bias.withUnsafeBufferPointer { b in
            guard let bb = b.baseAddress else { return }
            parallel(chunks) { c in
                for i in chunk(c, of: chunks, count: rows) { add(out + i * n, bb, n) }
            }
        }
    }

    /// `rmsNorm` into caller memory, rows split over the cores (same arithmetic per row).
    static func rmsNorm(_ x: UnsafePointer<Float>, rows: Int, weight: [Float], eps: Float, into y: UnsafeMutablePointer<Float>) {
        let d = weight.count
        let chunks = elementChunks(rows * d)
        weight.withUnsafeBufferPointer { wp in
            guard let w = wp.baseAddress else { return }
            parallel(chunks) { c in
                for r in chunk(c, of: chunks, count: rows) {
                    let xr = x + r * d, yr = y + r * d
                    let ms = dotF32(xr, xr, d) / Float(d)
                    let inv = 1 / (ms + eps).squareRoot()
                    for i in 0..<d { yr[i] = w[i] * (xr[i] * inv) }
                }
            }
        }
    }

    /// `layerNorm` into caller memory, rows split over the cores (same arithmetic per row).
    static func layerNorm(_ x: UnsafePointer<Float>, rows: Int, weight: [Float], bias: [Float], eps: Float, into y: UnsafeMutablePointer<Float>) {
        let d = weight.count
        let chunks = elementChunks(rows * d)
        parallel(chunks) { c in
            for r in chunk(c, of: chunks, count: rows) {
                var mean: Float = 0
                for i in 0..<d { mean += x[r * d + i] }
                mean /= Float(d)
                var v: Float = 0
                for i in 0..<d { let t = x[r * d + i] - mean; v += t * t }
                v /= Float(d)
                let inv = 1 / (v + eps).squareRoot()
                for i in 0..<d { y[r * d + i] = (x[r * d + i] - mean) * inv * weight[i] + bias[i] }
            }
        }
    }

    /// g = silu(g) · u over n values (expf: the exact path), split over the cores.
    static func swiGLU(_ g: UnsafeMutablePointer<Float>, _ u: UnsafePointer<Float>, _ n: Int) {
        let chunks = elementChunks(n)
        parallel(chunks) { c in
            for i in chunk(c, of: chunks, count: n) { g[i] = silu(g[i]) * u[i] }
        }
    }

    /// x = f(x) over n values, split over the cores.
    static func map(_ x: UnsafeMutablePointer<Float>, _ n: Int, _ f: (Float) -> Float) {
        let chunks = elementChunks(n)
        parallel(chunks) { c in
            for i in chunk(c, of: chunks, count: n) { x[i] = f(x[i]) }
        }
    }

    /// a = bf16(silu(g) · u) for rows × a.cols values (g, u: a.cols apart): the SwiGLU product
    /// rounded straight into the down projection's input (AVX512; only the bf16 path calls it).
    static func swiGLU(_ g: UnsafePointer<Float>, _ u: UnsafePointer<Float>, into a: BF16Rows) {
        let chunks = elementChunks(a.rows * a.cols)
        parallel(chunks) { c in
            let r = chunk(c, of: chunks, count: a.rows)
            guard !r.isEmpty else { return }
            assay_swiglu_bf16_rows(g, u, a.cols, r.lowerBound, r.upperBound, a.cols, a.base, a.ld)
        }
    }

    /// y = x / sqrt(mean(x²) + eps) · w, per row (Qwen2RMSNorm in fp32).
    static func rmsNorm(_ x: [Float], rows: Int, weight: [Float], eps: Float) -> [Float] {
        rowwise(x) { Kernels.rmsNorm($0, rows: rows, weight: weight, eps: eps, into: $1) }
    }

    /// torch.nn.LayerNorm per row.
    static func layerNorm(_ x: [Float], rows: Int, weight: [Float], bias: [Float], eps: Float) -> [Float] {
        rowwise(x) { Kernels.layerNorm($0, rows: rows, weight: weight, bias: bias, eps: eps, into: $1) }
    }

    /// y = body(x, y) into a fresh array of x's size (the array forms of the pointer kernels).
    private static func rowwise(_ x: [Float], _ body: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> [Float] {
        var y = [Float](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                guard let xb = xp.baseAddress, let yb = yp.baseAddress else { return }
                body(xb, yb)
            }
        }
        return y
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

    @inline(__always) package static func silu(_ v: Float) -> Float { v / (1 + expf(-v)) }
    @inline(__always) package static func quickGelu(_ v: Float) -> Float { v / (1 + expf(-1.702 * v)) }
    @inline(__always) package static func gelu(_ v: Float) -> Float { 0.5 * v * (1 + erff(v * 0.70710678118654752)) }

    // MARK: - Attention

    /// Attention with bf16 products (`assay_bf16_attention`): `heads` query heads (`qHead` /
    /// `outHead` floats apart) against one key/value head. Query i sees key j when j < keys,
    /// `keyValid[j]` (if given) and, with `causalOffset` c, j ≤ c + i; a query that sees no key
    /// gets zeros. Single-threaded: callers run one task per (segment or row, head group).
    static func bf16Attention(q: UnsafePointer<Float>, ldq: Int, qHead: Int, k: UnsafePointer<Float>, ldk: Int,
                              v: UnsafePointer<Float>, ldv: Int, out: UnsafeMutablePointer<Float>, ldo: Int, outHead: Int,
                              heads: Int, queries nq: Int, keys nk: Int, headDim: Int, scale: Float,
                              causalOffset: Int? = nil, keyValid: UnsafePointer<Bool>? = nil) {
        guard nq > 0, nk > 0, heads > 0 else { return }
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: assay_attention_scratch_bytes(nk, headDim), alignment: 64)
        defer { scratch.deallocate() }
        let valid = keyValid.map { UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self) }  // Bool is one byte, 0 or 1
        assay_bf16_attention(q, ldq, qHead, k, ldk, v, ldv, out, ldo, outHead, heads, nq, nk, headDim, scale,
                             causalOffset ?? -1, valid, scratch)
    }

    /// Attention of a block of queries against a block of keys through sgemm: scores = q·kᵀ·scale,
    /// disallowed keys −∞, row softmax, out = p·v. Query i may see key j when `keyValid[j]`
    /// (if given) and, with `causalOffset` c, when j ≤ c + i. A query that sees no key gets zeros.
    /// Single-threaded: callers run one head per task.
    static func blockAttention(q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
                               v: UnsafePointer<Float>, ldv: Int, out: UnsafeMutablePointer<Float>, ldo: Int,
                               queries nq: Int, keys nk: Int, headDim: Int, scale: Float,
                               causalOffset: Int? = nil, keyValid: UnsafePointer<Bool>? = nil) {
        guard nq > 0, nk > 0 else { return }
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: nq * nk)
        defer { scores.deallocate() }
        // Decode asks with a few query heads: sgemv streams the cached keys and values as they
        // lie, where sgemm would first pack all of them into panels for one or two rows of
        // output (the packing was 32% of a decode step at 1,280 cached tokens).
        let vectors = nq <= vectorQueries
        if vectors {
            guard blasSingleThreaded else { return }
            for i in 0..<nq {
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(nk), Int32(headDim), scale, k, Int32(ldk), q + i * ldq, 1, 0, scores + i * nk, 1)
            }
        } else {
            sgemm(q, lda: ldq, k, ldb: ldk, scores, ldc: nk, m: nq, n: nk, k: headDim, alpha: scale)
        }
        for i in 0..<nq {
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
        if vectors {
            for i in 0..<nq {
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(nk), Int32(headDim), 1, v, Int32(ldv), scores + i * nk, 1, 0, out + i * ldo, 1)
            }
        } else {
            sgemm(scores, lda: nk, v, ldb: ldv, out, ldc: ldo, m: nq, n: headDim, k: nk, transposeB: false)
        }
    }

    /// Up to this many query rows, `blockAttention` multiplies with sgemv (decode: a KV head's
    /// group of query heads, or part of it); more rows amortise sgemm's packing.
    static let vectorQueries = 4

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

/// Activation rows rounded to bf16 (round to nearest even, as `floatToBF16`) for the bf16 GEMM:
/// `ld` = cols rounded up to even (the pairs vdpbf16ps multiplies), zero padded, with room for
/// rows up to the next multiple of 8 (the kernel's row block; those rows are computed, never
/// stored). Owned by whoever allocates it.
struct BF16Rows {
    let base: UnsafeMutablePointer<UInt16>
    let rows: Int
    let cols: Int
    var ld: Int { (cols + 1) & ~1 }

    init(rows: Int, cols: Int) {
        self.rows = rows
        self.cols = cols
        let count = max(1, ((rows + 7) & ~7) * ((cols + 1) & ~1))
        base = .allocate(capacity: count)
        base.initialize(repeating: 0, count: count)
    }

    /// The same memory viewed as fewer rows or columns (a workspace sized for the widest use).
    init(reusing other: BF16Rows, rows: Int, cols: Int) {
        precondition(((rows + 7) & ~7) * ((cols + 1) & ~1) <= max(1, ((other.rows + 7) & ~7) * other.ld))  // invariant: callers size workspaces for their widest view
        base = other.base
        self.rows = rows
        self.cols = cols
    }

    func deallocate() { base.deallocate() }

    /// Rounds x [rows, cols] (`ldx` floats apart, default cols) into these rows, split over the cores.
    func fill(_ x: UnsafePointer<Float>, ldx: Int? = nil) {
        let stride = ldx ?? cols, wide: Int32 = Kernels.hasAVX512 ? 1 : 0
        let chunks = rows * cols >= 1 << 15 ? Kernels.cores * 2 : 1
        Kernels.parallel(chunks) { c in
            let r = Kernels.chunk(c, of: chunks, count: rows)
            guard !r.isEmpty else { return }
            assay_f32_to_bf16_rows(wide, x, stride, r.lowerBound, r.upperBound, cols, base, ld)
        }
    }
}

/// Memory for one forward pass: buffers taken once and reused by every layer, freed together.
/// Fresh arrays per layer cost more than the element-wise work on them: buffers of tens of MB are
/// mmapped by malloc and zero-filled by the kernel page by page on first touch, every time.
final class Workspace {
    private var buffers: [UnsafeMutableRawPointer] = []

    /// `count` floats, zeroed.
    func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64)
        buffers.append(p)
        return p.initializeMemory(as: Float.self, repeating: 0, count: max(1, count))
    }

    /// bf16 rows for the bf16 GEMM, freed with the workspace.
    func bf16(rows: Int, cols: Int) -> BF16Rows {
        let a = BF16Rows(rows: rows, cols: cols)
        buffers.append(UnsafeMutableRawPointer(a.base))
        return a
    }

    deinit { for p in buffers { p.deallocate() } }
}
