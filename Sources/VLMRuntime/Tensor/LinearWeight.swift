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
    /// (decode) inputs; prefill-sized inputs always take the exact fp32 sgemm path.
    func apply(_ x: UnsafePointer<Float>, rows m: Int, out: UnsafeMutablePointer<Float>, activations: ActivationMode) {
        guard m > 0, rows > 0 else { return }
        switch self {
        case .dense(let w):
            Kernels.linear(x, rows: m, weight: w, bias: nil, out: out)
        case .quantized(let q):
            if m >= Kernels.gemmThreshold {
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
                      activations: ActivationMode) {
        guard m > 0, m < Kernels.gemmThreshold, let first = weights.first, case .quantized(let q0) = first,
              weights.allSatisfy({ if case .quantized(let q) = $0 { return q.type == q0.type && q.columns == q0.columns } else { return false } })
        else {
            for (w, out) in zip(weights, outs) { w.apply(x, rows: m, out: out, activations: activations) }
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
    func callAsFunction(_ x: [Float], rows m: Int, activations: ActivationMode = .float32) -> [Float] {
        var y = [Float](repeating: 0, count: m * outFeatures)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                guard let xb = xp.baseAddress, let yb = yp.baseAddress else { return }
                apply(xb, rows: m, out: yb, activations: activations)
            }
        }
        return y
    }

    /// Several layers reading the same input (Q, K, V; gate, up), fused where the weights allow.
    static func group(_ layers: [Linear], _ x: [Float], rows m: Int, activations: ActivationMode) -> [[Float]] {
        let sizes = layers.map { m * $0.outFeatures }
        var all = [Float](repeating: 0, count: sizes.reduce(0, +))
        x.withUnsafeBufferPointer { xp in
            all.withUnsafeMutableBufferPointer { ap in
                guard let xb = xp.baseAddress, let base = ap.baseAddress else { return }
                var offset = 0
                var outs: [UnsafeMutablePointer<Float>] = []
                for size in sizes { outs.append(base + offset); offset += size }
                LinearWeight.apply(layers.map(\.weight), xb, rows: m, outs: outs, activations: activations)
            }
        }
        var result: [[Float]] = []
        var offset = 0
        for (layer, size) in zip(layers, sizes) {
            var out = Array(all[offset..<(offset + size)])
            if let bias = layer.bias {
                for r in 0..<m { for j in 0..<layer.outFeatures { out[r * layer.outFeatures + j] += bias[j] } }
            }
            result.append(out)
            offset += size
        }
        return result
    }

    /// `callAsFunction` into caller-owned memory.
    func apply(_ x: UnsafePointer<Float>, rows m: Int, out: UnsafeMutablePointer<Float>, activations: ActivationMode = .float32) {
        weight.apply(x, rows: m, out: out, activations: activations)
        guard let bias, m > 0 else { return }
        bias.withUnsafeBufferPointer { b in
            guard let bb = b.baseAddress else { return }
            for i in 0..<m { Kernels.add(out + i * outFeatures, bb, outFeatures) }
        }
    }
}
