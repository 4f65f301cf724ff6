#if _endian(big)
#error("The GGUF reader and the quantised kernels read little-endian data in place; big-endian hosts are not supported.")
#endif

/// IEEE binary16 and bfloat16 conversions done with integer and float bit arithmetic.
///
/// Swift's `Float16` is unavailable on some platforms and, without F16C in the target CPU, lowers to
/// a library call per value; a quantised dot product converts one or two scales per 32 weights, so
/// the conversion has to be a handful of inline instructions. All conversions here are exact
/// (half → float) or round to nearest even (float → half), as ggml's `GGML_FP16_TO_FP32` /
/// `GGML_FP32_TO_FP16` are.
public enum HalfFloat {
    // 2^112 moves a half's exponent field (bias 15), placed in float position, to float bias 127;
    // multiplying (rather than adding to the exponent) also renormalises half subnormals exactly.
    @usableFromInline static let exponentShift = Float(bitPattern: UInt32(254 - 15) << 23)
    // After the shift, anything at or above 2^16 came from the all-ones (inf/NaN) exponent.
    @usableFromInline static let infNaNThreshold = Float(bitPattern: UInt32(127 + 16) << 23)

    /// The value of an IEEE binary16 bit pattern, exactly.
    @inlinable @inline(__always)
    public static func float(fromHalfBits h: UInt16) -> Float {
        let magnitude = Float(bitPattern: UInt32(h & 0x7fff) << 13) * exponentShift
        var bits = magnitude.bitPattern
        if magnitude >= infNaNThreshold { bits |= 0xff << 23 }
        return Float(bitPattern: bits | (UInt32(h & 0x8000) << 16))
    }

    /// Eight binary16 values held in the low 16 bits of each lane (the same arithmetic, lane-wise;
    /// the upper 16 bits must be zero).
    @inlinable @inline(__always)
    public static func float(fromHalfBitsInLanes h: SIMD8<UInt32>) -> SIMD8<Float> {
        let magnitude = unsafeBitCast((h & 0x7fff) &<< 13, to: SIMD8<Float>.self) * exponentShift
        var bits = unsafeBitCast(magnitude, to: SIMD8<UInt32>.self)
        bits.replace(with: bits | (0xff << 23), where: magnitude .>= infNaNThreshold)
        return unsafeBitCast(bits | ((h & 0x8000) &<< 16), to: SIMD8<Float>.self)
    }

    /// The binary16 bit pattern nearest to `f` (ties to even), with overflow to infinity and
    /// gradual underflow to subnormals; NaN becomes a quiet NaN.
    @inlinable
    public static func halfBits(from f: Float) -> UInt16 {
        let x = f.bitPattern
        let sign = UInt16(truncatingIfNeeded: (x >> 16) & 0x8000)
        let absX = x & 0x7fff_ffff
        if absX >= 0x7f80_0000 {
            return absX > 0x7f80_0000 ? sign | 0x7e00 : sign | 0x7c00
        }
        // 65520 is halfway between the largest half (65504) and 2^16; ties to even go up.
        if absX >= 0x477f_f000 { return sign | 0x7c00 }
        if absX < 0x3880_0000 {
            // Below 2^-14 the result is a subnormal half: an integer count of 2^-24 units. Scaling by
            // 2^24 is exact, and rounding that to an integer is exactly the half rounding; a result
            // of 1024 is the bit pattern of the smallest normal half, which is also right.
            let units = (Float(bitPattern: absX) * 16_777_216).rounded(.toNearestOrEven)
            return sign | UInt16(units)
        }
        let exponent = (absX >> 23) &- 112  // rebias 127 → 15
        let mantissa = absX & 0x7f_ffff
        var h = (exponent << 10) | (mantissa >> 13)
        let rest = mantissa & 0x1fff
        if rest > 0x1000 || (rest == 0x1000 && (h & 1) == 1) { h &+= 1 }  // a carry into the exponent is correct
        return sign | UInt16(truncatingIfNeeded: h)
    }

    /// The value of a bfloat16 bit pattern (the top half of a float), exactly.
    @inlinable @inline(__always)
    public static func float(fromBFloat16Bits b: UInt16) -> Float {
        Float(bitPattern: UInt32(b) << 16)
    }

    /// The bfloat16 nearest to `f` (ties to even), NaN kept quiet: ggml's `GGML_FP32_TO_BF16`.
    @inlinable
    public static func bfloat16Bits(from f: Float) -> UInt16 {
        let x = f.bitPattern
        if x & 0x7fff_ffff > 0x7f80_0000 { return UInt16(truncatingIfNeeded: (x >> 16) | 64) }
        return UInt16(truncatingIfNeeded: (x &+ (0x7fff &+ ((x >> 16) & 1))) >> 16)
    }
}

/// All 65,536 half values as Float (256 KB), for the kernels' per-block scales: one load instead
/// of ~10 integer and float operations, as ggml does on CPUs without F16C. Built once, never freed.
final class HalfTable: @unchecked Sendable {  // @unchecked: written once in init, then read-only
    static let shared = HalfTable()
    let values: UnsafePointer<Float>

    private init() {
        let table = UnsafeMutablePointer<Float>.allocate(capacity: 65_536)
        for h in 0...UInt16.max { table[Int(h)] = HalfFloat.float(fromHalfBits: h) }
        values = UnsafePointer(table)
    }
}
