/// ggml's reference quantisers to the 8-bit block formats: Q8_0 (also the weight format that
/// `--quantize q8_0` produces), Q8_1 and Q8_K (the formats ggml converts activations to before a
/// Q4_1 or K-quant dot product).
///
/// These follow `quantize_row_q8_0_ref` / `_q8_1_ref` / `_q8_K_ref` in ggml-quants.c: scale from the
/// block's absolute maximum, reciprocal taken from the unrounded f32 scale, `roundf` (half away
/// from zero) for Q8_0/Q8_1 and ggml's `nearest_int` (half to even) for Q8_K. `llama-quantize`
/// uses exactly these for Q8_0 weights. Note that ggml's AVX2 activation path for Q8_0/Q8_1
/// multiplies by `127/amax` and rounds half to even instead, so llama.cpp's own activations can
/// differ from these in the last unit of a few quants; nothing in the goldens depends on it (the
/// quantised-activation path is only ever compared with bounds, see `GGMLActivationDot`).
///
/// Non-finite inputs never trap: NaN quants become 0 and the scale carries the NaN/inf.
public enum ActivationQuantization {
    @inline(__always)
    static func absMax32(_ x: UnsafePointer<Float>) -> Float {
        var amax: Float = 0
        for j in 0..<32 {
            let a = abs(x[j])
            amax = amax > a ? amax : a  // ggml's MAX(amax, fabsf(v)), including its NaN behaviour
        }
        return amax
    }

    /// `roundf(v)` as an Int8, saturating instead of trapping on out-of-range or NaN values.
    ///
    /// `rounded(.toNearestOrAwayFromZero)` is a libm call per value on a baseline x86-64 build;
    /// for the clamped range here truncation plus a comparison of the exact fraction is the same
    /// rounding (adding 0.5 before truncating would not be: 0.49999997 + 0.5 rounds up to 1).
    @inline(__always)
    static func roundAwayInt8(_ v: Float) -> Int8 {
        guard v == v else { return 0 }
        let a = min(abs(v), 128)
        let whole = Int32(a)                        // truncation; a is in 0...128
        let up: Int32 = a - Float(whole) >= 0.5 ? 1 : 0  // the difference is exact below 2^23
        let r = whole + up
        return Int8(clamping: v < 0 ? -r : r)
    }

    /// Quantises `count` (a multiple of 32) values to Q8_0 blocks (34 bytes each) at `y`.
    public static func quantizeQ8_0(_ x: UnsafePointer<Float>, count: Int, into y: UnsafeMutableRawPointer) {
        for b in 0..<(count / 32) {
            let xb = x + 32 * b
            let out = y + b * QuantBlocks.q8_0Bytes
            let amax = absMax32(xb)
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            out.storeBytes(of: HalfFloat.halfBits(from: d), as: UInt16.self)
            for j in 0..<32 {
                out.storeBytes(of: roundAwayInt8(xb[j] * id), toByteOffset: 2 + j, as: Int8.self)
            }
        }
    }

    /// Quantises `count` (a multiple of 32) values to Q8_1 blocks (36 bytes: f16 d, f16 d·Σq, 32 quants).
    public static func quantizeQ8_1(_ x: UnsafePointer<Float>, count: Int, into y: UnsafeMutableRawPointer) {
        for b in 0..<(count / 32) {
            let xb = x + 32 * b
            let out = y + b * QuantBlocks.q8_1Bytes
            let amax = absMax32(xb)
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            var sum: Int32 = 0
            for j in 0..<32 {
                let q = roundAwayInt8(xb[j] * id)
                sum += Int32(q)
                out.storeBytes(of: q, toByteOffset: 4 + j, as: Int8.self)
            }
            out.storeBytes(of: HalfFloat.halfBits(from: d), as: UInt16.self)
            out.storeBytes(of: HalfFloat.halfBits(from: Float(sum) * d), toByteOffset: 2, as: UInt16.self)
        }
    }

    /// ggml's `nearest_int`: adding 1.5·2^23 leaves the integer nearest to `v` (ties to even) in the
    /// low mantissa bits. Valid for |v| < 2^22, which the ±127 quant range guarantees; garbage in
    /// (NaN) gives garbage out without trapping.
    @inline(__always)
    static func nearestInt(_ v: Float) -> Int32 {
        let bits = Int32(bitPattern: (v + 12_582_912).bitPattern)
        return (bits & 0x007f_ffff) &- 0x0040_0000
    }

    /// Quantises `count` (a multiple of 256) values to Q8_K blocks (292 bytes: f32 d, 256 quants,
    /// 16 Int16 sums of 16 quants).
    public static func quantizeQ8_K(_ x: UnsafePointer<Float>, count: Int, into y: UnsafeMutableRawPointer) {
        for b in 0..<(count / 256) {
            let xb = x + 256 * b
            let out = y + b * QuantBlocks.q8_KBytes
            var maxValue: Float = 0, amax: Float = 0
            for j in 0..<256 {
                let a = abs(xb[j])
                if a > amax { amax = a; maxValue = xb[j] }
            }
            if amax == 0 {
                out.initializeMemory(as: UInt8.self, repeating: 0, count: QuantBlocks.q8_KBytes)
                continue
            }
            let iscale = -127 / maxValue
            for g in 0..<16 {
                var sum: Int32 = 0
                for j in 0..<16 {
                    let v = min(127, nearestInt(iscale * xb[16 * g + j]))
                    let q = Int8(truncatingIfNeeded: v)
                    sum &+= Int32(q)
                    out.storeBytes(of: q, toByteOffset: 4 + 16 * g + j, as: Int8.self)
                }
                out.storeBytes(of: Int16(truncatingIfNeeded: sum), toByteOffset: 260 + 2 * g, as: Int16.self)
            }
            out.storeBytes(of: 1 / iscale, as: Float.self)
        }
    }
}
