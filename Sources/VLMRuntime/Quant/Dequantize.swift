/// Block layouts of the ggml formats the kernels decode, and their dequantisation to `Float`,
/// bit-exact with ggml's `dequantize_row_*` (ggml-quants.c).
///
/// Exactness argument, so the SIMD code may reorder freely: in every format here the product of a
/// block scale (an f16 with an 11-bit significand, times at most a 7-bit sub-scale in the K formats)
/// and a quant (at most 8 bits) has at most 24 significant bits, so it is exact in `Float`; the only
/// rounding is the one addition of the block minimum in Q4_1 and Q4_K, which ggml also performs
/// last. Hence `d*q + m` and `fma(d, q, m)` agree, and the lane order of the SIMD code cannot change
/// a bit.
public enum QuantBlocks {
    /// `block_q4_0`: f16 d, 16 bytes of nibbles; y = (q - 8)·d, low nibbles first.
    public static let q4_0Bytes = 18
    /// `block_q4_1`: f16 d, f16 m, 16 bytes of nibbles; y = q·d + m.
    public static let q4_1Bytes = 20
    /// `block_q8_0`: f16 d, 32 signed bytes; y = q·d.
    public static let q8_0Bytes = 34
    /// `block_q8_1`: f16 d, f16 s (= d·Σq), 32 signed bytes: the activation format for Q4_1.
    public static let q8_1Bytes = 36
    /// `block_q4_K`: f16 d, f16 dmin, 12 bytes of packed 6-bit scales/mins, 128 bytes of nibbles (256 weights).
    public static let q4_KBytes = 144
    /// `block_q6_K`: 128 bytes low nibbles, 64 bytes high 2-bit pairs, 16 signed scales, f16 d (256 weights).
    public static let q6_KBytes = 210
    /// `block_q8_K`: f32 d, 256 signed bytes, 16 Int16 sums of 16: the activation format for the K types.
    public static let q8_KBytes = 292

    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        HalfFloat.float(fromHalfBits: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    /// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` (0..<8) of a Q4_K/Q5_K block.
    @inline(__always)
    static func scaleMinK4(_ j: Int, _ s: UnsafeRawPointer) -> (scale: UInt8, min: UInt8) {
        let b = s.assumingMemoryBound(to: UInt8.self)
        if j < 4 {
            return (b[j] & 63, b[j + 4] & 63)
        }
        return ((b[j + 4] & 0xF) | ((b[j - 4] >> 6) << 4), (b[j + 4] >> 4) | ((b[j] >> 6) << 4))
    }

    /// Dequantises `count` values (a whole number of blocks) of `type` from `src` into `dst`.
    /// The caller guarantees the sizes; `QuantizedMatrix` checks them once at construction.
    static func dequantize(_ type: GGMLType, _ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        let blocks = count / type.blockSize
        switch type {
        case .f32:
            // A file with alignment 1 or 2 can place F32 data off a 4-byte boundary: copy bytes.
            UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: 4 * count)
        case .f16:
            for i in 0..<count { dst[i] = half(src, 2 * i) }
        case .bf16:
            for i in 0..<count {
                dst[i] = HalfFloat.float(fromBFloat16Bits: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            }
        case .q8_0, .q4_0, .q4_1, .q4_K, .q6_K:
            // The SIMD unpacking produces each 32 values transposed (see `dequantizePermuted`);
            // undoing that with scalar moves is still far cheaper than per-lane integer widening.
            let chunk = type.blockSize  // 32 or 256 values, a whole number of 32-value groups
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 256) { tmp in
                let t = tmp.baseAddress.unsafelyUnwrapped  // invariant: capacity 256 > 0
                for b in 0..<blocks {
                    dequantizePermuted(type, src + b * type.blockBytes, count: chunk, into: t)
                    let out = dst + b * chunk
                    for g in stride(from: 0, to: chunk, by: 32) {
                        for k in 0..<4 {
                            for l in 0..<8 { out[g + 4 * l + k] = t[g + 8 * k + l] }
                        }
                    }
                }
            }
        default:
            // invariant: QuantizedMatrix.init rejects every type without kernels
            dst.update(repeating: .nan, count: count)
        }
    }
}
