import CBLAS
import Foundation
import VLMRuntime

/// The arithmetic of training, forward and backward, on raw f32 buffers: matrix products split
/// over the runtime's worker pool (OpenBLAS single-threaded inside each worker, as inference runs
/// it), norms, rotary embeddings and activations with their exact derivatives.
enum TrainKernels {
    private static let blasSingleThreaded: Bool = {
        openblas_set_num_threads(1)
        return true
    }()

    static var cores: Int { Kernels.cores }

    /// C[m, n] = alpha · op(A) · op(B) + beta · C, row-major, with op(A) [m, k] and op(B) [k, n]:
    /// A is [m, k] (lda) or, when `transA`, [k, m]; B is [k, n] or, when `transB`, [n, k]. Split
    /// over the cores by columns of C (or by rows when C is narrow), each part one sgemm.
    static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                     _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                     beta: Float, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard blasSingleThreaded, m > 0, n > 0 else { return }
        if k == 0 {
            if beta != 1 { for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } } }
            return
        }
        let work = m * n * k
        let parts = work >= 1 << 18 ? cores : 1
        func one(_ m0: Int, _ m1: Int, _ n0: Int, _ n1: Int) {
            guard m1 > m0, n1 > n0 else { return }
            let ap = transA ? a + m0 : a + m0 * lda
            let bp = transB ? b + n0 * ldb : b + n0
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        Int32(m1 - m0), Int32(n1 - n0), Int32(k), alpha, ap, Int32(lda), bp, Int32(ldb), beta,
                        c + m0 * ldc + n0, Int32(ldc))
        }
        if parts == 1 { return one(0, m, 0, n) }
        if n >= m || n >= 64 * parts {
            // Column blocks rounded to 16 floats keep each core's stores on its own cache lines.
            Kernels.parallel(parts) { p in
                let r = Kernels.chunk(p, of: parts, count: (n + 15) / 16)
                one(0, m, r.lowerBound * 16, min(n, r.upperBound * 16))
            }
        } else {
            Kernels.parallel(parts) { p in
                let r = Kernels.chunk(p, of: parts, count: m)
                one(r.lowerBound, r.upperBound, 0, n)
            }
        }
    }

    /// y[m, out] = x[m, in] · Wᵀ (+ bias), W [out, in].
    static func linear(_ x: UnsafePointer<Float>, rows m: Int, in inF: Int, out: Int, weight w: UnsafePointer<Float>,
                       bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>, ldy: Int? = nil) {
        let ld = ldy ?? out
        if let bias {
            for i in 0..<m { (y + i * ld).update(from: bias, count: out) }
        }
        gemm(transB: true, m: m, n: out, k: inF, x, lda: inF, w, ldb: inF, beta: bias == nil ? 0 : 1, y, ldc: ld)
    }

    /// Backward of `linear`: dx (=, or += with `accumulateInput`) dy · W; dW += dyᵀ · x and
    /// db += Σ dy when those are given (trainable).
    static func linearBackward(_ dy: UnsafePointer<Float>, rows m: Int, in inF: Int, out: Int, x: UnsafePointer<Float>,
                               weight w: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, accumulateInput: Bool,
                               dW: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?, lddy: Int? = nil) {
        let ldd = lddy ?? out
        if let dx {
            gemm(m: m, n: inF, k: out, dy, lda: ldd, w, ldb: inF, beta: accumulateInput ? 1 : 0, dx, ldc: inF)
        }
        if let dW {
            gemm(transA: true, m: out, n: inF, k: m, dy, lda: ldd, x, ldb: inF, beta: 1, dW, ldc: inF)
        }
        if let db {
            for i in 0..<m { let r = dy + i * ldd; for j in 0..<out { db[j] += r[j] } }
        }
    }

    // MARK: - Norms

    /// RMSNorm rows: y = x · r · w with r = 1/√(mean(x²) + eps); r is kept per row for the backward.
    static func rmsNorm(_ x: UnsafePointer<Float>, rows: Int, width d: Int, weight w: UnsafePointer<Float>, eps: Float,
                        into y: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        parallelRows(rows, width: d) { i in
            let xi = x + i * d, yi = y + i * d
            var s: Float = 0
            for j in 0..<d { s += xi[j] * xi[j] }
            let r = 1 / (s / Float(d) + eps).squareRoot()
            rstd[i] = r
            for j in 0..<d { yi[j] = w[j] * (xi[j] * r) }
        }
    }

    /// dx (+)= r · (g − x · r² · mean(g · x)) with g = dy · w; dw += Σ dy · x · r.
    static func rmsNormBackward(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, rows: Int, width d: Int,
                                weight w: UnsafePointer<Float>, rstd: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                                accumulate: Bool, dw: UnsafeMutablePointer<Float>?) {
        parallelRows(rows, width: d) { i in
            let xi = x + i * d, gi = dy + i * d, di = dx + i * d
            let r = rstd[i]
            var dot: Float = 0
            for j in 0..<d { dot += gi[j] * w[j] * xi[j] }
            let c = r * r * r * dot / Float(d)
            for j in 0..<d {
                let v = r * gi[j] * w[j] - c * xi[j]
                di[j] = accumulate ? di[j] + v : v
            }
        }
        if let dw { columnReduce(rows, width: d, into: dw) { i, j in dy[i * d + j] * x[i * d + j] * rstd[i] } }
    }

    /// LayerNorm rows: y = (x − μ) · r · w + b; μ and r kept per row.
    static func layerNorm(_ x: UnsafePointer<Float>, rows: Int, width d: Int, weight w: UnsafePointer<Float>, bias b: UnsafePointer<Float>,
                          eps: Float, into y: UnsafeMutablePointer<Float>, mean mu: UnsafeMutablePointer<Float>,
                          rstd: UnsafeMutablePointer<Float>) {
        parallelRows(rows, width: d) { i in
            let xi = x + i * d, yi = y + i * d
            var s: Float = 0
            for j in 0..<d { s += xi[j] }
            let m = s / Float(d)
            var v: Float = 0
            for j in 0..<d { let c = xi[j] - m; v += c * c }
            let r = 1 / (v / Float(d) + eps).squareRoot()
            mu[i] = m
            rstd[i] = r
            for j in 0..<d { yi[j] = (xi[j] - m) * r * w[j] + b[j] }
        }
    }

    /// dx (+)= r · (g − mean(g) − x̂ · mean(g · x̂)) with g = dy · w, x̂ = (x − μ) r; dw += Σ dy · x̂, db += Σ dy.
    static func layerNormBackward(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, rows: Int, width d: Int,
                                  weight w: UnsafePointer<Float>, mean mu: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                  dx: UnsafeMutablePointer<Float>, accumulate: Bool,
                                  dw: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?) {
        parallelRows(rows, width: d) { i in
            let xi = x + i * d, gi = dy + i * d, di = dx + i * d
            let m = mu[i], r = rstd[i]
            var sg: Float = 0, sgx: Float = 0
            for j in 0..<d {
                let g = gi[j] * w[j]
                sg += g
                sgx += g * (xi[j] - m) * r
            }
            sg /= Float(d)
            sgx /= Float(d)
            for j in 0..<d {
                let v = r * (gi[j] * w[j] - sg - (xi[j] - m) * r * sgx)
                di[j] = accumulate ? di[j] + v : v
            }
        }
        if let dw { columnReduce(rows, width: d, into: dw) { i, j in dy[i * d + j] * (x[i * d + j] - mu[i]) * rstd[i] } }
        if let db { columnReduce(rows, width: d, into: db) { i, j in dy[i * d + j] } }
    }

    // MARK: - Rotary embeddings

    /// Rotate-half RoPE over `heads` heads of `rows` rows (ld floats apart): pairs (j, j + half)
    /// of each head turn by the row's angle j (cos/sin [rows, half]). `inverse` turns them back:
    /// the rotation is orthogonal, so the backward of RoPE is RoPE with −sin.
    static func rotary(_ x: UnsafeMutablePointer<Float>, rows: Int, ld: Int, heads: Int, headDim hd: Int,
                       cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, inverse: Bool) {
        let half = hd / 2
        let sign: Float = inverse ? -1 : 1
        parallelRows(rows, width: heads * hd) { i in
            let c = cos + i * half, s = sin + i * half
            for h in 0..<heads {
                let p = x + i * ld + h * hd
                for j in 0..<half {
                    let a = p[j], b = p[j + half], sj = sign * s[j]
                    p[j] = a * c[j] - b * sj
                    p[j + half] = b * c[j] + a * sj
                }
            }
        }
    }

    // MARK: - Activations

    /// a = silu(g) · u.
    static func swiGLU(_ g: UnsafePointer<Float>, _ u: UnsafePointer<Float>, count n: Int, into a: UnsafeMutablePointer<Float>) {
        parallelElements(n) { r in
            assay_swiglu_row(TrainKernels.rowLevel, g + r.lowerBound, u + r.lowerBound, r.count, a + r.lowerBound)
        }
    }

    /// dg = da · u · silu'(g), du = da · silu(g), written over g and u's gradient buffers.
    static func swiGLUBackward(_ da: UnsafePointer<Float>, g: UnsafePointer<Float>, u: UnsafePointer<Float>, count n: Int,
                               dg: UnsafeMutablePointer<Float>, du: UnsafeMutablePointer<Float>) {
        parallelElements(n) { r in
            let o = r.lowerBound
            assay_swiglu_grad_row(TrainKernels.rowLevel, da + o, g + o, u + o, r.count, dg + o, du + o)
        }
    }

    enum Activation { case gelu, quickGelu }

    static func activate(_ x: UnsafePointer<Float>, count n: Int, _ f: Activation, into y: UnsafeMutablePointer<Float>) {
        parallelElements(n) { r in
            switch f {
            case .gelu: for i in r { y[i] = Kernels.gelu(x[i]) }
            case .quickGelu: for i in r { y[i] = Kernels.quickGelu(x[i]) }
            }
        }
    }

    /// dx = dy · f'(x): erf GELU' = Φ(x) + x·φ(x); quick-GELU' = σ(1.702x)(1 + 1.702x(1 − σ)).
    static func activationBackward(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, count n: Int, _ f: Activation,
                                   into dx: UnsafeMutablePointer<Float>) {
        parallelElements(n) { r in
            switch f {
            case .gelu:
                for i in r {
                    let v = x[i]
                    let cdf = 0.5 * (1 + erff(v * 0.70710678118654752))
                    let pdf = expf(-0.5 * v * v) * 0.3989422804014327
                    dx[i] = dy[i] * (cdf + v * pdf)
                }
            case .quickGelu:
                for i in r {
                    let v = x[i]
                    let s = 1 / (1 + expf(-1.702 * v))
                    dx[i] = dy[i] * (s + 1.702 * v * s * (1 - s))
                }
            }
        }
    }

    // MARK: - Splitting

    static func parallelRows(_ rows: Int, width: Int, _ body: (Int) -> Void) {
        let parts = rows * width >= 1 << 15 ? min(cores, rows) : 1
        if parts <= 1 { for i in 0..<rows { body(i) }; return }
        Kernels.parallel(parts) { p in for i in Kernels.chunk(p, of: parts, count: rows) { body(i) } }
    }

    /// The level of the C row kernels (shim_train.h) on the kernel path the runtime takes, so
    /// `ASSAY_KERNELS` narrows them too: 2 AVX512, 1 AVX2, 0 plain C with expf (also on aarch64,
    /// where the compiler vectorises the loops it can).
    static let rowLevel: Int32 = {
        switch KernelPath.active {
        case .portable, .neon: return 0
        case .avx2: return 1
        case .avx512: return 2
        }
    }()

    static func parallelElements(_ n: Int, _ body: (Range<Int>) -> Void) {
        let parts = n >= 1 << 15 ? cores : 1
        if parts <= 1 { return body(0..<n) }
        Kernels.parallel(parts) { p in body(Kernels.chunk(p, of: parts, count: n)) }
    }

    /// out[j] += Σ_i f(i, j), columns split over the cores (each sum in row order).
    static func columnReduce(_ rows: Int, width d: Int, into out: UnsafeMutablePointer<Float>, _ f: (Int, Int) -> Float) {
        let parts = rows * d >= 1 << 15 ? min(cores, d) : 1
        Kernels.parallel(parts) { p in
            let cols = Kernels.chunk(p, of: parts, count: d)
            for i in 0..<rows { for j in cols { out[j] += f(i, j) } }
        }
    }
}

/// A growable set of f32 scratch buffers owned by one pass; freed together (buffers from 256 KB up
/// go back to `ScratchPool` while a pass runs, for the next pass to reuse).
final class Scratch {
    private var buffers: [(pointer: UnsafeMutableRawPointer, capacity: Int)] = []
    private(set) var bytes = 0

    func take(_ count: Int, zeroed: Bool = false) -> UnsafeMutablePointer<Float> {
        let size = max(1, count) * 4
        let buffer = ScratchPool.shared.take(size)
        let p = buffer.pointer.bindMemory(to: Float.self, capacity: max(1, count))
        if zeroed { p.initialize(repeating: 0, count: max(1, count)) }
        buffers.append(buffer)
        bytes += size
        MemoryMeter.shared.add(size)
        return p
    }

    deinit {
        for b in buffers { ScratchPool.shared.give(b) }
        MemoryMeter.shared.add(-bytes)
    }
}

/// Scratch memory kept from one training pass to the next.
///
/// A step's forward and backward take about a gigabyte of scratch (the kept logits alone are
/// G·C × vocabulary floats). Freed, it goes back to the kernel (glibc maps allocations this large
/// on their own), and the next pass faults every page in again inside its products: on the 2-core
/// VMs this runs on, first-touching the 403 MB of SmolLM2's logits from two threads took 1.0 s of a
/// 15 s step. So a pass's large buffers are kept and the next pass takes them back.
///
/// Sizes are rounded up to classes an eighth of a power of two apart (pages a pass never touches
/// are never resident), so passes whose lengths differ a little reuse the same buffers. A pass
/// (`beginPass`…`endPass`, nested passes join the outer one) starts with every kept buffer stale;
/// a request takes a stale buffer of its class, else one given back earlier in the same pass, else
/// new memory; at the end the buffers still stale are freed. So what is kept between passes is what
/// the last pass used, and a pass holds more than it would without the pool only by the stale
/// buffers it did not take (none when the shapes repeat; at most the last pass's scratch when they
/// all change). Outside a pass nothing is kept or reused (forward-only passes do not take part, so
/// they leave the kept buffers to the next backward).
///
/// `ASSAY_TRAIN_SCRATCH_POOL=0` turns it off (to measure what it saves).
final class ScratchPool: @unchecked Sendable {
    static let shared = ScratchPool()
    static let enabled = ProcessInfo.processInfo.environment["ASSAY_TRAIN_SCRATCH_POOL"] != "0"
    static let minimumBytes = 256 << 10
    private let lock = NSLock()
    private var stale: [Int: [UnsafeMutableRawPointer]] = [:]
    private var fresh: [Int: [UnsafeMutableRawPointer]] = [:]
    private var depth = 0

    /// Bytes kept for the next pass now (stale and returned).
    var keptBytes: Int {
        lock.lock(); defer { lock.unlock() }
        return (stale.map { $0.key * $0.value.count } + fresh.map { $0.key * $0.value.count }).reduce(0, +)
    }

    /// The size class of a request: itself below `minimumBytes`, else rounded up to the next of
    /// 8 steps per power of two (at most 12.5% of address space more, none of it touched).
    static func sizeClass(_ size: Int) -> Int {
        guard size >= minimumBytes else { return size }
        let top = Int.bitWidth - 1 - size.leadingZeroBitCount
        let step = 1 << (top - 3)
        return (size + step - 1) / step * step
    }

    func beginPass() {
        guard Self.enabled else { return }
        lock.lock(); defer { lock.unlock() }
        depth += 1
        guard depth == 1 else { return }
        for (c, list) in fresh { stale[c, default: []].append(contentsOf: list) }
        fresh = [:]
    }

    func endPass() {
        guard Self.enabled else { return }
        lock.lock(); defer { lock.unlock() }
        depth = max(0, depth - 1)
        guard depth == 0 else { return }
        releaseStale()
    }

    /// Frees everything kept (e.g. before a phase that needs the memory for something else).
    func drain() {
        lock.lock(); defer { lock.unlock() }
        releaseStale()
        for (_, list) in fresh { for p in list { p.deallocate() } }
        fresh = [:]
    }

    fileprivate func take(_ size: Int) -> (pointer: UnsafeMutableRawPointer, capacity: Int) {
        let c = Self.sizeClass(size)
        if c >= Self.minimumBytes {
            lock.lock()
            if depth > 0, let p = stale[c]?.popLast() ?? fresh[c]?.popLast() {
                lock.unlock()
                return (p, c)
            }
            lock.unlock()
        }
        return (UnsafeMutableRawPointer.allocate(byteCount: c, alignment: 64), c)
    }

    fileprivate func give(_ buffer: (pointer: UnsafeMutableRawPointer, capacity: Int)) {
        if buffer.capacity >= Self.minimumBytes {
            lock.lock()
            if depth > 0 {
                fresh[buffer.capacity, default: []].append(buffer.pointer)
                lock.unlock()
                return
            }
            lock.unlock()
        }
        buffer.pointer.deallocate()
    }

    /// Caller holds the lock.
    private func releaseStale() {
        for (_, list) in stale { for p in list { p.deallocate() } }
        stale = [:]
    }
}

/// Bytes of training scratch alive now and at most (a lower bound of the process's peak: the
/// report also reads the kernel's high-water mark of resident memory).
final class MemoryMeter: @unchecked Sendable {
    static let shared = MemoryMeter()
    private let lock = NSLock()
    private var current = 0
    private(set) var peak = 0

    func add(_ n: Int) {
        lock.lock(); defer { lock.unlock() }
        current += n
        peak = max(peak, current)
    }

    func resetPeak() {
        lock.lock(); defer { lock.unlock() }
        peak = current
    }
}

/// Wall time per phase of a pass, printed to stderr after each pass when `ASSAY_TRAIN_PROFILE=1`.
final class PhaseTimer: @unchecked Sendable {
    static let enabled = ProcessInfo.processInfo.environment["ASSAY_TRAIN_PROFILE"] == "1"
    static let shared = PhaseTimer()
    private var totals: [String: Double] = [:]
    private var order: [String] = []

    @inline(__always)
    static func measure<R>(_ name: String, _ body: () throws -> R) rethrows -> R {
        guard enabled else { return try body() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        defer { shared.add(name, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9) }
        return try body()
    }

    static func record(_ name: String, since start: UInt64) {
        guard enabled else { return }
        shared.add(name, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }

    private func add(_ name: String, _ s: Double) {
        if totals[name] == nil { order.append(name) }
        totals[name, default: 0] += s
    }

    static func report() {
        guard enabled else { return }
        let line = shared.order.map { String(format: "%@ %.2fs", $0, shared.totals[$0] ?? 0) }.joined(separator: ", ")
        FileHandle.standardError.write(Data(("profile: " + line + "\n").utf8))
        shared.totals = [:]
        shared.order = []
    }
}
