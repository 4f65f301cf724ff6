/// Dot products in llama.cpp's numerics: the activation vector is first quantised to the weight
/// type's ggml `vec_dot_type` (Q8_0 for Q4_0/Q8_0, Q8_1 for Q4_1, Q8_K for Q4_K/Q6_K; f16/bf16 for
/// the half types), then each block is an exact integer dot scaled by both block scales.
///
/// This is the faster path (integer multiplies, no per-weight conversion to float), but it is not
/// the fp32 model: the SmolLM2 README measures the llama.cpp-style forward at max-abs ~0.3–1.5 and
/// rms ~0.1–0.3 from the fp32 logits, with greedy text diverging at low-margin steps. The goldens
/// (logits ≤ 2e-3, exact greedy ids) therefore need `FloatActivationDot`; use this path only where
/// llama.cpp parity or speed matters more and compare it with bounds, not equality.
///
/// Per block the integer sums are exact, so results differ from ggml's scalar `ggml_vec_dot_*`
/// only in the order of the float accumulation across blocks.
enum GGMLActivationDot {
    /// Σ over 32 products of two 16-lane Int16 halves, as 8 Int32 partial sums.
    @inline(__always)
    static func pairSum(_ a: SIMD16<Int16>, _ b: SIMD16<Int16>) -> SIMD8<Int32> {
        SIMD8<Int32>(truncatingIfNeeded: a.lowHalf) &+ SIMD8<Int32>(truncatingIfNeeded: a.highHalf)
            &+ SIMD8<Int32>(truncatingIfNeeded: b.lowHalf) &+ SIMD8<Int32>(truncatingIfNeeded: b.highHalf)
    }

    @inline(__always)
    static func int8x16(_ p: UnsafeRawPointer, _ offset: Int) -> SIMD16<Int16> {
        SIMD16<Int16>(truncatingIfNeeded: p.loadUnaligned(fromByteOffset: offset, as: SIMD16<Int8>.self))
    }

    @inline(__always)
    static func nibbles16(_ q: SIMD16<UInt8>) -> (low: SIMD16<Int16>, high: SIMD16<Int16>) {
        (SIMD16<Int16>(truncatingIfNeeded: q & 0x0F), SIMD16<Int16>(truncatingIfNeeded: q &>> 4))
    }

    /// Q8_0 weights · Q8_0 activations.
    static func q8_0(_ w: UnsafeRawPointer, _ a: UnsafeRawPointer, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        for b in 0..<blocks {
            let p = w + b * QuantBlocks.q8_0Bytes
            let y = a + b * QuantBlocks.q8_0Bytes
            let s = pairSum(int8x16(p, 2) &* int8x16(y, 2), int8x16(p, 18) &* int8x16(y, 18))
            acc += SIMD8<Float>(s) * (QuantBlocks.half(p, 0) * QuantBlocks.half(y, 0))
        }
        return acc.sum()
    }

    /// Q4_0 weights · Q8_0 activations.
    static func q4_0(_ w: UnsafeRawPointer, _ a: UnsafeRawPointer, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        for b in 0..<blocks {
            let p = w + b * QuantBlocks.q4_0Bytes
            let y = a + b * QuantBlocks.q8_0Bytes
            let (lo, hi) = nibbles16(p.loadUnaligned(fromByteOffset: 2, as: SIMD16<UInt8>.self))
            let s = pairSum((lo &- 8) &* int8x16(y, 2), (hi &- 8) &* int8x16(y, 18))
            acc += SIMD8<Float>(s) * (QuantBlocks.half(p, 0) * QuantBlocks.half(y, 0))
        }
        return acc.sum()
    }

    /// Q4_1 weights · Q8_1 activations: d_w·d_a·Σ q·q_a + m_w·s_a.
    static func q4_1(_ w: UnsafeRawPointer, _ a: UnsafeRawPointer, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        var mins: Float = 0
        for b in 0..<blocks {
            let p = w + b * QuantBlocks.q4_1Bytes
            let y = a + b * QuantBlocks.q8_1Bytes
            let (lo, hi) = nibbles16(p.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self))
            let s = pairSum(lo &* int8x16(y, 4), hi &* int8x16(y, 20))
            acc += SIMD8<Float>(s) * (QuantBlocks.half(p, 0) * QuantBlocks.half(y, 0))
            mins += QuantBlocks.half(p, 2) * QuantBlocks.half(y, 2)
        }
        return acc.sum() + mins
    }

    /// Q4_K weights · Q8_K activations: d·d_a·Σ_k sc_k·Σ q·q_a − dmin·d_a·Σ_k m_k·(sum of q_a in k).
    static func q4_K(_ w: UnsafeRawPointer, _ a: UnsafeRawPointer, superBlocks: Int) -> Float {
        var acc = SIMD8<Float>()
        var mins: Float = 0
        for b in 0..<superBlocks {
            let p = w + b * QuantBlocks.q4_KBytes
            let y = a + b * QuantBlocks.q8_KBytes
            let dy = y.loadUnaligned(as: Float.self)
            var isum = SIMD8<Int32>()
            var msum: Int32 = 0
            for j in 0..<4 {
                let (sc0, m0) = QuantBlocks.scaleMinK4(2 * j, p + 4)
                let (sc1, m1) = QuantBlocks.scaleMinK4(2 * j + 1, p + 4)
                let (lo0, hi0) = nibbles16(p.loadUnaligned(fromByteOffset: 16 + 32 * j, as: SIMD16<UInt8>.self))
                let (lo1, hi1) = nibbles16(p.loadUnaligned(fromByteOffset: 32 + 32 * j, as: SIMD16<UInt8>.self))
                let ys = 4 + 64 * j
                let s0 = pairSum(lo0 &* int8x16(y, ys), lo1 &* int8x16(y, ys + 16))
                let s1 = pairSum(hi0 &* int8x16(y, ys + 32), hi1 &* int8x16(y, ys + 48))
                isum &+= s0 &* Int32(sc0) &+ s1 &* Int32(sc1)
                let bs = 260 + 8 * j  // Int16 sums of 16 quants: two per 32-value sub-block
                let sub0 = Int32(y.loadUnaligned(fromByteOffset: bs, as: Int16.self))
                    &+ Int32(y.loadUnaligned(fromByteOffset: bs + 2, as: Int16.self))
                let sub1 = Int32(y.loadUnaligned(fromByteOffset: bs + 4, as: Int16.self))
                    &+ Int32(y.loadUnaligned(fromByteOffset: bs + 6, as: Int16.self))
                msum &+= Int32(m0) &* sub0 &+ Int32(m1) &* sub1
            }
            acc += SIMD8<Float>(isum) * (QuantBlocks.half(p, 0) * dy)
            mins += QuantBlocks.half(p, 2) * dy * Float(msum)
        }
        return acc.sum() - mins
    }

    /// Q6_K weights · Q8_K activations: d·d_a·Σ_g sc_g·Σ (q − 32)·q_a.
    static func q6_K(_ w: UnsafeRawPointer, _ a: UnsafeRawPointer, superBlocks: Int) -> Float {
        var acc = SIMD8<Float>()
        for b in 0..<superBlocks {
            let p = w + b * QuantBlocks.q6_KBytes
            let y = a + b * QuantBlocks.q8_KBytes
            let sc = (p + 192).assumingMemoryBound(to: Int8.self)
            var isum = SIMD8<Int32>()
            for n in 0..<2 {
                let ql = p + 64 * n
                let qh = p + 128 + 32 * n
                let ys = 4 + 128 * n
                for l16 in 0..<2 {
                    let lo = ql.loadUnaligned(fromByteOffset: 16 * l16, as: SIMD16<UInt8>.self)
                    let hi = ql.loadUnaligned(fromByteOffset: 32 + 16 * l16, as: SIMD16<UInt8>.self)
                    let h = qh.loadUnaligned(fromByteOffset: 16 * l16, as: SIMD16<UInt8>.self)
                    let s = 8 * n + l16
                    let o = ys + 16 * l16
                    isum &+= pairSum(q6(lo & 0x0F, h) &* int8x16(y, o), .zero) &* Int32(sc[s])
                    isum &+= pairSum(q6(hi & 0x0F, h &>> 2) &* int8x16(y, o + 32), .zero) &* Int32(sc[s + 2])
                    isum &+= pairSum(q6(lo &>> 4, h &>> 4) &* int8x16(y, o + 64), .zero) &* Int32(sc[s + 4])
                    isum &+= pairSum(q6(hi &>> 4, h &>> 6) &* int8x16(y, o + 96), .zero) &* Int32(sc[s + 6])
                }
            }
            acc += SIMD8<Float>(isum) * (QuantBlocks.half(p, 208) * y.loadUnaligned(as: Float.self))
        }
        return acc.sum()
    }

    @inline(__always)
    static func q6(_ low: SIMD16<UInt8>, _ high: SIMD16<UInt8>) -> SIMD16<Int16> {
        SIMD16<Int16>(truncatingIfNeeded: low | ((high & 3) &<< 4)) &- 32
    }
}
