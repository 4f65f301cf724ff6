import Foundation

/// A projection weight [out, in] in whatever storage the checkpoint gave it: a float matrix kept in
/// its stored dtype (safetensors f32/bf16/f16, GGUF F32/F16/BF16) or a ggml block-quantised matrix
/// (GGUF Q4_1/Q8_0/…, or safetensors quantised at load with `--quantize q8_0`).
///
/// The decoder only sees this one interface; each case brings its own kernels. Many rows go through
/// sgemm either way (quantised weights are dequantised a tile at a time), few rows through dot
/// products straight from the stored bytes.
enum LinearWeight: @unchecked Sendable {  // @unchecked: both payloads are immutable views of weights
    case dense(WeightMatrix)
    case quantized(QuantizedMatrix)

    /// Output features.
    var rows: Int {
        switch self {
        case .dense(let w): return w.rows
        case .quantized(let q): return q.rows
        }
    }

    /// Input features.
    var cols: Int {
        switch self {
        case .dense(let w): return w.cols
        case .quantized(let q): return q.columns
        }
    }

    /// Bytes of weights a full pass reads.
    var byteCount: Int {
        switch self {
        case .dense(let w): return w.byteCount
        case .quantized(let q): return q.rows * q.rowBytes
        }
    }

    /// The storage format's name: `BF16`, `F32`, `Q4_1`, …
    var formatName: String {
        switch self {
        case .dense(let w): return w.dtype.rawValue
        case .quantized(let q): return q.type.name
        }
    }

    /// Row `r` as Float32 (embedding lookup). `r` is in range (the caller checked).
    func row(_ r: Int, into dst: UnsafeMutablePointer<Float>) {
        switch self {
        case .dense(let w): w.row(r, into: dst)
        case .quantized(let q): QuantBlocks.dequantize(q.type, q.row(r), count: q.columns, into: dst)
        }
    }

    /// out[m, rows] = x[m, cols] · Wᵀ. `activations` picks how quantised weights treat few-row
    /// (decode) inputs; prefill-sized inputs always take the exact fp32 sgemm path, unless
    /// `rowPath` keeps every row on the decode kernels (many sequences decoding together, whose
    /// numbers must not depend on how many there are).
    func apply(_ x: UnsafePointer<Float>, rows m: Int, out: UnsafeMutablePointer<Float>, activations: ActivationMode, rowPath: Bool = false) {
        guard m > 0, rows > 0 else { return }
        switch self {
        case .dense(let w):
            Kernels.linear(x, rows: m, weight: w, bias: nil, out: out, rowPath: rowPath)
        case .quantized(let q):
            if m >= Kernels.gemmThreshold && !rowPath {
                try? q.matmul(UnsafeBufferPointer(start: x, count: m * q.columns), count: m,  // invariant: the decoder sizes x as m·cols
                              into: UnsafeMutableBufferPointer(start: out, count: m * q.rows))  // and out as m·rows, the only checks matmul makes
            } else {
                let prepared = (0..<m).map { q.prepare(x + $0 * q.columns, mode: activations) }
                q.multiply(prepared: prepared, into: out, threads: QuantizedMatrix.defaultThreadCount)
            }
        }
    }
}

extension LinearWeight {
    /// outs[j][m, rows_j] = x[m, cols] · W_jᵀ for weights that read the same input. Few-row inputs
    /// with quantised weights of one type share one activation preparation and one parallel job;
    /// anything else runs weight by weight.
    static func apply(_ weights: [LinearWeight], _ x: UnsafePointer<Float>, rows m: Int, outs: [UnsafeMutablePointer<Float>],
                      activations: ActivationMode, rowPath: Bool = false) {
        guard m > 0, m < Kernels.gemmThreshold || rowPath, let first = weights.first, case .quantized(let q0) = first,
              weights.allSatisfy({ if case .quantized(let q) = $0 { return q.type == q0.type && q.columns == q0.columns } else { return false } })
        else {
            for (w, out) in zip(weights, outs) { w.apply(x, rows: m, out: out, activations: activations, rowPath: rowPath) }
            return
        }
        var jobs: [QuantizedMatrix.RowJob] = []
        for (w, out) in zip(weights, outs) {
            guard case .quantized(let q) = w, q.rows > 0, let base = q.bytes.baseAddress else { continue }
            jobs.append(.init(base: base, rows: q.rows, out: out))
        }
        let prepared = (0..<m).map { q0.prepare(x + $0 * q0.columns, mode: activations) }
        PreparedActivation.withViews(prepared) { list in
            list.withUnsafeBufferPointer { views in
                guard let v = views.baseAddress else { return }
                QuantizedMatrix.rowProducts(jobs, type: q0.type, columns: q0.columns, rowBytes: q0.rowBytes, v, count: m,
                                            threads: QuantizedMatrix.defaultThreadCount)
            }
        }
    }
}

/// A `Linear` layer: weight [out, in] plus an optional bias.
struct Linear: @unchecked Sendable {
    let weight: LinearWeight
    let bias: [Float]?
    var outFeatures: Int { weight.rows }
    var inFeatures: Int { weight.cols }

    init(weight: LinearWeight, bias: [Float]?) {
        self.weight = weight
        self.bias = bias
    }

    init(weight: WeightMatrix, bias: [Float]?) {
        self.init(weight: .dense(weight), bias: bias)
    }

    /// y[m, out] = x[m, in] · Wᵀ + b.
    func callAsFunction(_ x: [Float], rows m: Int, activations: ActivationMode = .float32, rowPath: Bool = false) -> [Float] {
        var y = [Float](repeating: 0, count: m * outFeatures)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                guard let xb = xp.baseAddress, let yb = yp.baseAddress else { return }
                apply(xb, rows: m, out: yb, activations: activations, rowPath: rowPath)
            }
        }
        return y
    }

    /// `callAsFunction` into caller-owned memory.
    func apply(_ x: UnsafePointer<Float>, rows m: Int, out: UnsafeMutablePointer<Float>, activations: ActivationMode = .float32,
               rowPath: Bool = false) {
        weight.apply(x, rows: m, out: out, activations: activations, rowPath: rowPath)
        guard let bias, m > 0 else { return }
        bias.withUnsafeBufferPointer { b in
            guard let bb = b.baseAddress else { return }
            for i in 0..<m { Kernels.add(out + i * outFeatures, bb, outFeatures) }
        }
    }
}

// MARK: - Products into workspace memory (prefill and vision)

extension Linear {
    /// Whether `m` rows through this layer take the bf16 GEMM (bf16 weights loaded with
    /// `MatmulPrecision.bfloat16` on an AVX512-BF16 CPU, and enough rows for a GEMM).
    func takesBF16(rows m: Int) -> Bool {
        guard m >= Kernels.gemmThreshold, case .dense(let w) = weight else { return false }
        return w.bf16Matmul
    }

    /// out = x · Wᵀ + b (m rows). `xb` is x already rounded to bf16 when `takesBF16(rows: m)`;
    /// then the bias is fused into the GEMM. Otherwise the exact path: the product, then the
    /// bias added row by row (split over the cores).
    func project(_ x: UnsafePointer<Float>, bf16 xb: BF16Rows?, rows m: Int, out: UnsafeMutablePointer<Float>,
                 activations: ActivationMode = .float32, rowPath: Bool = false) {
        guard m > 0 else { return }
        if let xb, case .dense(let w) = weight, w.bf16Matmul, m >= Kernels.gemmThreshold {
            withBias { Kernels.gemmBF16(xb, weight: w, out: out, bias: $0) }
            return
        }
        weight.apply(x, rows: m, out: out, activations: activations, rowPath: rowPath)
        if let bias { Kernels.addBias(out, rows: m, bias) }
    }

    /// y += x · Wᵀ + b (the residual connection after attention and after the MLP). On the bf16
    /// path (`xb` given) the GEMM adds into y directly; the exact path keeps the reference's
    /// order — product and bias into `scratch` (m · outFeatures floats), then y += scratch.
    func addProjection(_ x: UnsafePointer<Float>, bf16 xb: BF16Rows?, rows m: Int, into y: UnsafeMutablePointer<Float>,
                       scratch: UnsafeMutablePointer<Float>, activations: ActivationMode = .float32, rowPath: Bool = false) {
        guard m > 0 else { return }
        if let xb, case .dense(let w) = weight, w.bf16Matmul, m >= Kernels.gemmThreshold {
            withBias { Kernels.gemmBF16(xb, weight: w, out: y, bias: $0, accumulate: true) }
            return
        }
        project(x, bf16: nil, rows: m, out: scratch, activations: activations, rowPath: rowPath)
        Kernels.addParallel(y, scratch, m * outFeatures)
    }

    private func withBias(_ body: (UnsafePointer<Float>?) -> Void) {
        guard let bias else { return body(nil) }
        bias.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    /// Several layers reading the same input (Q, K, V; gate, up) into caller memory: one bf16
    /// rounding of x shared by all when they take the bf16 GEMM (`xb`, sized for x), else the
    /// exact path, where few-row inputs with quantised weights share one activation preparation.
    static func project(_ layers: [Linear], _ x: UnsafePointer<Float>, bf16 xb: BF16Rows?, rows m: Int,
                        outs: [UnsafeMutablePointer<Float>], activations: ActivationMode, rowPath: Bool = false) {
        guard m > 0 else { return }
        if !rowPath, let xb, layers.allSatisfy({ $0.takesBF16(rows: m) }) {
            xb.fill(x)
            for (layer, out) in zip(layers, outs) { layer.project(x, bf16: xb, rows: m, out: out) }
            return
        }
        LinearWeight.apply(layers.map(\.weight), x, rows: m, outs: outs, activations: activations, rowPath: rowPath)
        for (layer, out) in zip(layers, outs) {
            if let bias = layer.bias { Kernels.addBias(out, rows: m, bias) }
        }
    }
}
