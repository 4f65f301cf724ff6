/// An activation vector laid out for `BlockDot`: values permuted into the kernels' unpacking
/// order, plus one sum and one scale per 32 values.
///
/// * Block formats: within each 32 values, `values[32c + 8k + L] = v[32c + 4L + k]` (a 4×8
///   transpose), the order in which the kernels unpack quant bytes viewed as 8 × UInt32.
/// * F16/BF16: within each 16 values, even positions then odd positions; a tail shorter than 16
///   stays in order. F32: unchanged.
///
/// For exact `Float` activations `v = x`, `sums` = Σ x per 32 and `scales` = 1. For ggml's
/// quantised activations `v` = the integer quants (exact in Float), `scales` = the activation block
/// scale d_a, and `sums` = the term the weight minimum multiplies: d_a·Σq_a for Q8_0/Q8_K, the
/// stored f16 `s` for Q8_1 (ggml uses `s`, not d·Σq, so this reproduces its rounding).
///
/// Quantised activations for Q8_0 and Q4_1 weights also carry `integers`: the quants as Int16 in
/// the lane order of the integer kernels (`IntegerDot`), which multiply 16 lanes at a time.
///
/// The native layout (`native`, for the C kernels of `NativeKernels`) is simpler: exact values in
/// natural order with their per-32 sums, or the ggml blocks exactly as encoded.
struct PreparedActivation {
    private(set) var values: [Float]
    private(set) var sums: [Float]
    private(set) var scales: [Float]
    /// Int16 quants for `IntegerDot` (empty when there is no integer kernel for the weight type).
    private(set) var integers: [Int16] = []
    /// Laid out for `NativeKernels` rather than for `BlockDot` / `IntegerDot`.
    let native: Bool
    /// The ggml-encoded blocks (native layout, quantised activations only).
    private(set) var encoded: [UInt8] = []

    /// Raw pointers for the kernels, valid inside `withView`.
    struct View {
        let values: UnsafePointer<Float>
        let sums: UnsafePointer<Float>
        let scales: UnsafePointer<Float>
        /// `HalfTable`: the f16 → f32 table the kernels read block scales through.
        let halves: UnsafePointer<Float>
        /// `integers`, or nil when empty.
        let integers: UnsafePointer<Int16>?
        /// Native layout: the encoded ggml blocks, or nil for exact values.
        let encoded: UnsafeRawPointer?
        /// Whether the activation is in the native layout.
        let native: Bool
    }

    func withView<R>(_ body: (View) -> R) -> R {
        values.withUnsafeBufferPointer { v in
            sums.withUnsafeBufferPointer { s in
                scales.withUnsafeBufferPointer { c in
                    integers.withUnsafeBufferPointer { i in
                        encoded.withUnsafeBytes { e in
                            // invariant: the Float arrays are never empty (init pads them to one element)
                            body(View(values: v.baseAddress.unsafelyUnwrapped, sums: s.baseAddress.unsafelyUnwrapped,
                                      scales: c.baseAddress.unsafelyUnwrapped, halves: HalfTable.shared.values,
                                      integers: i.isEmpty ? nil : i.baseAddress, encoded: e.isEmpty ? nil : e.baseAddress,
                                      native: native))
                        }
                    }
                }
            }
        }
    }

    /// Views of several activations at once, valid inside `body`.
    static func withViews<R>(_ list: [PreparedActivation], _ body: ([View]) -> R) -> R {
        func nest(_ i: Int, _ acc: inout [View]) -> R {
            if i == list.count { return body(acc) }
            return list[i].withView { v in
                acc.append(v)
                return nest(i + 1, &acc)
            }
        }
        var views: [View] = []
        views.reserveCapacity(list.count)
        return nest(0, &views)
    }

    /// Exact activations for `type` weights; `x` has `count` values (a whole number of blocks).
    /// `native` picks the C kernels' layout (by default where this CPU has them).
    init(exact x: UnsafePointer<Float>, count: Int, for type: GGMLType, native: Bool? = nil) {
        self.native = native ?? NativeKernels.supports(type)
        switch type {
        case _ where self.native:
            values = Array(UnsafeBufferPointer(start: x, count: count))
        case .f32:
            values = Array(UnsafeBufferPointer(start: x, count: count))
        case .f16, .bf16:
            values = Self.pairPermuted(x, count: count)
        default:
            values = Self.blockPermuted(count: count) { x[$0] }
        }
        let chunks = count / 32
        sums = (0..<chunks).map { c in
            var s = SIMD8<Float>()
            for k in 0..<4 { s += BlockDot.load8(x, 32 * c + 8 * k) }
            return s.sum()
        }
        scales = [Float](repeating: 1, count: chunks)
        pad()
    }

    /// ggml's quantised activation: `p` holds `count` values encoded as `format` (the
    /// `QuantizedActivation` layout) for `weightType` weights.
    init(encoded p: UnsafeRawPointer, format: GGMLType, weightType: GGMLType, count: Int, native: Bool? = nil) {
        let chunks = count / 32
        self.native = native ?? NativeKernels.supports(weightType)
        if self.native {
            // The C kernels read ggml's blocks as they are.
            let bytes = format == .q8_1 ? chunks * QuantBlocks.q8_1Bytes : chunks * QuantBlocks.q8_0Bytes
            encoded = Array(UnsafeRawBufferPointer(start: p, count: bytes))
            values = []
            sums = []
            scales = []
            pad()
            return
        }
        var s: [Float] = [], d: [Float] = []
        s.reserveCapacity(chunks)
        d.reserveCapacity(chunks)
        switch format {
        case .q8_0, .q8_1, .q8_K:
            // The quants in plain order first; every layout below is a direct re-indexing of it.
            let blockValues = format == .q8_K ? 256 : 32
            let size = format == .q8_0 ? QuantBlocks.q8_0Bytes : format == .q8_1 ? QuantBlocks.q8_1Bytes : QuantBlocks.q8_KBytes
            let qOffset = format == .q8_0 ? 2 : 4
            let q = [Int16](unsafeUninitializedCapacity: count) { buf, n in
                for b in 0..<(count / blockValues) {
                    let src = (p + b * size + qOffset).assumingMemoryBound(to: Int8.self)
                    for j in 0..<blockValues { buf[b * blockValues + j] = Int16(src[j]) }
                }
                n = count
            }
            values = q.withUnsafeBufferPointer { qb in
                Self.blockPermuted(count: count) { Float(qb[$0]) }
            }
            for c in 0..<chunks {
                if format == .q8_K {
                    let block = p + (c / 8) * size
                    let scale = block.loadUnaligned(as: Float.self)
                    let g = 2 * (c % 8)
                    let total = Int32(block.loadUnaligned(fromByteOffset: 260 + 2 * g, as: Int16.self))
                        + Int32(block.loadUnaligned(fromByteOffset: 262 + 2 * g, as: Int16.self))
                    d.append(scale)
                    s.append(scale * Float(total))
                } else {
                    let block = p + c * size
                    let scale = BlockDot.half(block, 0)
                    d.append(scale)
                    if format == .q8_1 {
                        s.append(BlockDot.half(block, 2))
                    } else {
                        var total: Int32 = 0
                        for j in 0..<32 { total += Int32(q[32 * c + j]) }
                        s.append(scale * Float(total))
                    }
                }
            }
            if format == .q8_0 && weightType == .q8_0 {
                integers = q.withUnsafeBufferPointer { IntegerDot.q8_0Layout(count: count, $0) }
            } else if format == .q8_1 && weightType == .q4_1 {
                integers = q.withUnsafeBufferPointer { IntegerDot.q4_1Layout(count: count, $0) }
            }
        default:
            // Float formats: the (already rounded) values, laid out for the weight type.
            let f = p.assumingMemoryBound(to: Float.self)
            values = weightType == .f32 ? Array(UnsafeBufferPointer(start: f, count: count))
                                        : Self.pairPermuted(f, count: count)
            d = [Float](repeating: 1, count: chunks)
            s = [Float](repeating: 0, count: chunks)
        }
        sums = s
        scales = d
        pad()
    }

    private mutating func pad() {
        if values.isEmpty { values = [0] }
        if sums.isEmpty { sums = [0] }
        if scales.isEmpty { scales = [1] }
    }

    static func blockPermuted(count: Int, _ value: (Int) -> Float) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buf, n in
            for c in 0..<(count / 32) {
                for k in 0..<4 {
                    for l in 0..<8 { buf[32 * c + 8 * k + l] = value(32 * c + 4 * l + k) }
                }
            }
            n = count
        }
    }

    static func pairPermuted(_ x: UnsafePointer<Float>, count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buf, n in
            let full = count / 16 * 16
            for c in stride(from: 0, to: full, by: 16) {
                for j in 0..<8 {
                    buf[c + j] = x[c + 2 * j]
                    buf[c + 8 + j] = x[c + 2 * j + 1]
                }
            }
            for i in full..<count { buf[i] = x[i] }
            n = count
        }
    }
}
