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
        case .q8_0:
            for b in 0..<blocks { dequantizeQ8_0Block(src + b * q8_0Bytes, dst + 32 * b) }
        case .q4_0:
            for b in 0..<blocks { dequantizeQ4_0Block(src + b * q4_0Bytes, dst + 32 * b) }
        case .q4_1:
            for b in 0..<blocks { dequantizeQ4_1Block(src + b * q4_1Bytes, dst + 32 * b) }
        case .q4_K:
            for b in 0..<blocks { dequantizeQ4_KBlock(src + b * q4_KBytes, dst + 256 * b) }
        case .q6_K:
            for b in 0..<blocks { dequantizeQ6_KBlock(src + b * q6_KBytes, dst + 256 * b) }
        default:
            // invariant: QuantizedMatrix.init rejects every type without kernels
            dst.update(repeating: .nan, count: count)
        }
    }

    @inline(__always)
    static func dequantizeQ8_0Block(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p, 0)
        let q0 = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: p.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int8>.self)))
        let q1 = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: p.loadUnaligned(fromByteOffset: 18, as: SIMD16<Int8>.self)))
        store(q0 * d, y)
        store(q1 * d, y + 16)
    }

    @inline(__always)
    static func dequantizeQ4_0Block(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p, 0)
        let q = p.loadUnaligned(fromByteOffset: 2, as: SIMD16<UInt8>.self)
        let lo = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: q & 0x0F) &- 8)
        let hi = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: q &>> 4) &- 8)
        store(lo * d, y)
        store(hi * d, y + 16)
    }

    @inline(__always)
    static func dequantizeQ4_1Block(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p, 0)
        let m = half(p, 2)
        let q = p.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self)
        let lo = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: q & 0x0F))
        let hi = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: q &>> 4))
        store(lo * d + m, y)
        store(hi * d + m, y + 16)
    }

    static func dequantizeQ4_KBlock(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p, 0)
        let dmin = half(p, 2)
        let scales = p + 4
        let qs = p + 16
        for j in 0..<4 {
            let (sc0, m0) = scaleMinK4(2 * j, scales)
            let (sc1, m1) = scaleMinK4(2 * j + 1, scales)
            let d0 = d * Float(sc0), min0 = dmin * Float(m0)
            let d1 = d * Float(sc1), min1 = dmin * Float(m1)
            for half16 in 0..<2 {
                let q = qs.loadUnaligned(fromByteOffset: 32 * j + 16 * half16, as: SIMD16<UInt8>.self)
                let lo = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: q & 0x0F))
                let hi = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: q &>> 4))
                store(lo * d0 - min0, y + 64 * j + 16 * half16)
                store(hi * d1 - min1, y + 64 * j + 32 + 16 * half16)
            }
        }
    }

    static func dequantizeQ6_KBlock(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p, 208)
        let sc = (p + 192).assumingMemoryBound(to: Int8.self)
        for n in 0..<2 {
            let ql = p + 64 * n
            let qh = p + 128 + 32 * n
            for l16 in 0..<2 {
                let a = ql.loadUnaligned(fromByteOffset: 16 * l16, as: SIMD16<UInt8>.self)
                let b = ql.loadUnaligned(fromByteOffset: 32 + 16 * l16, as: SIMD16<UInt8>.self)
                let h = qh.loadUnaligned(fromByteOffset: 16 * l16, as: SIMD16<UInt8>.self)
                let q1 = q6Values(a & 0x0F, h)
                let q2 = q6Values(b & 0x0F, h &>> 2)
                let q3 = q6Values(a &>> 4, h &>> 4)
                let q4 = q6Values(b &>> 4, h &>> 6)
                let s = 8 * n + l16  // ggml's `is = l/16`, plus 8 per 128 values
                let base = y + 128 * n + 16 * l16
                store(q1 * (d * Float(sc[s + 0])), base)
                store(q2 * (d * Float(sc[s + 2])), base + 32)
                store(q3 * (d * Float(sc[s + 4])), base + 64)
                store(q4 * (d * Float(sc[s + 6])), base + 96)
            }
        }
    }

    /// The signed 6-bit Q6_K quants (-32...31) from 4 low bits and the 2 high bits in `high & 3`.
    @inline(__always)
    static func q6Values(_ low: SIMD16<UInt8>, _ high: SIMD16<UInt8>) -> SIMD16<Float> {
        let q = low | ((high & 3) &<< 4)
        return SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: q) &- 32)
    }

    @inline(__always)
    static func store(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
    }

    @inline(__always)
    static func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
    }
}
