/// The dot-product kernels: one quantised weight row against a prepared activation, straight from
/// the blocks with SIMD. The weights are never dequantised into memory.
///
/// Codegen notes (why the code looks the way it does):
/// * Swift's width-changing SIMD conversions (`SIMD16<Int32>(truncatingIfNeeded: bytes)`,
///   `SIMD16<Float>(…)`) are not inlined: each is a call into the standard library. The kernels
///   therefore only use same-size bit casts, shifts, masks, arithmetic and the same-width
///   `SIMD8<Float>(SIMD8<Int32>)` conversion, which all lower to single instructions.
/// * Bytes are unpacked in place: 32 quant bytes viewed as 8 × UInt32 give, for byte position k,
///   the bytes {k, 4+k, 8+k, …}. Rather than shuffling weights back into order, the activation is
///   permuted once per matrix-vector product into the same order (`PreparedActivation`), so the
///   inner loop is loads, shifts and multiply-adds only.
/// * Block scales (f16) are read through a 64K-entry table (`HalfTable`), as ggml does without F16C.
/// * `addingProduct` (FMA) is avoided: without FMA in the target CPU it becomes a libm call per lane.
///
/// Numerics: every product `q·x` and every partial sum of one block is computed in `Float`; the
/// factored block form `d·Σ q·x + m·Σ x` equals "dequantise, then dot" up to float rounding order.
/// With integer activations (the ggml path) each block's Σ q·q_a is an integer below 2^24 and hence
/// exact, like ggml's integer dot.
enum BlockDot {
    typealias F8 = SIMD8<Float>
    typealias U8 = SIMD8<UInt32>

    @inline(__always)
    static func floats(_ bits: U8) -> F8 { unsafeBitCast(bits, to: F8.self) }

    /// `v` (each lane < 2^23) as Float minus `bias`, exactly. The same-width Int32 → Float
    /// conversion is one instruction (it is the width-changing conversions that become calls).
    @inline(__always)
    static func toFloat(_ v: U8, bias: Float) -> F8 {
        let f = F8(unsafeBitCast(v, to: SIMD8<Int32>.self))
        return bias == 0 ? f : f - bias
    }

    @inline(__always)
    static func load8(_ p: UnsafePointer<Float>, _ i: Int) -> F8 {
        UnsafeRawPointer(p + i).loadUnaligned(as: F8.self)
    }

    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        HalfFloat.float(fromHalfBits: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    /// A block scale through the f16 table (see `HalfTable`).
    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ offset: Int, _ table: UnsafePointer<Float>) -> Float {
        table[Int(p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))]
    }

    /// Σ over the 4 byte positions of the 32 values in `q` (bytes as 8 × UInt32, low nibble or
    /// whole byte selected by `shift`/`mask`) times the matching permuted activations `x[0..<32]`.
    ///
    /// The shift is a splatted vector inside a loop on purpose: with literal shift amounts LLVM
    /// rewrites the byte extraction into byte shuffles and splits the 8-lane vectors, which
    /// measured 2–3× slower.
    @inline(__always)
    static func planes(_ q: U8, shift: UInt32, mask: UInt32, bias: Float, _ x: UnsafePointer<Float>) -> F8 {
        var t = F8()
        for k in 0..<4 {
            let s = U8(repeating: shift + 8 * UInt32(k))
            t += toFloat((q &>> s) & mask, bias: bias) * load8(x, 8 * k)
        }
        return t
    }

    /// `planes` for signed bytes (Q8_0): an arithmetic shift sign-extends byte k.
    @inline(__always)
    static func signedBytePlanes(_ q: SIMD8<Int32>, _ x: UnsafePointer<Float>) -> F8 {
        var t = F8()
        for k in 0..<4 {
            let left = SIMD8<Int32>(repeating: Int32(24 - 8 * k))
            t += F8((q &<< left) &>> 24) * load8(x, 8 * k)
        }
        return t
    }

    /// 16 nibble bytes of a Q4_0/Q4_1 block as 8 lanes: lanes 0–3 the low nibbles (weights 0–15),
    /// lanes 4–7 the high nibbles (weights 16–31), so plane k holds weights 4L + k in both halves.
    @inline(__always)
    static func nibbleLanes(_ p: UnsafeRawPointer, _ offset: Int) -> U8 {
        let w = p.loadUnaligned(fromByteOffset: offset, as: SIMD4<UInt32>.self)
        return U8(lowHalf: w, highHalf: w &>> 4)
    }

    // MARK: Block formats (activation permuted per 32 values; sums/scales per 32 values)

    static func q8_0(_ w: UnsafeRawPointer, _ a: PreparedActivation.View, blocks: Int) -> Float {
        var acc = F8()
        for b in 0..<blocks {
            let p = w + b * QuantBlocks.q8_0Bytes
            let t = signedBytePlanes(p.loadUnaligned(fromByteOffset: 2, as: SIMD8<Int32>.self), a.values + 32 * b)
            acc += t * (half(p, 0, a.halves) * a.scales[b])
        }
        return acc.sum()
    }

    static func q4_0(_ w: UnsafeRawPointer, _ a: PreparedActivation.View, blocks: Int) -> Float {
        var acc = F8()
        var offsets: Float = 0
        for b in 0..<blocks {
            let p = w + b * QuantBlocks.q4_0Bytes
            let t = planes(nibbleLanes(p, 2), shift: 0, mask: 0xF, bias: 0, a.values + 32 * b)
            let d = half(p, 0, a.halves)
            acc += t * (d * a.scales[b])
            offsets += d * a.sums[b]
        }
        return acc.sum() - 8 * offsets
    }

    static func q4_1(_ w: UnsafeRawPointer, _ a: PreparedActivation.View, blocks: Int) -> Float {
        var acc0 = F8(), acc1 = F8()
        var mins: Float = 0
        var b = 0
        while b + 1 < blocks {
            let p = w + b * QuantBlocks.q4_1Bytes
            let t0 = planes(nibbleLanes(p, 4), shift: 0, mask: 0xF, bias: 0, a.values + 32 * b)
            let t1 = planes(nibbleLanes(p, 24), shift: 0, mask: 0xF, bias: 0, a.values + (32 * b + 32))
            acc0 += t0 * (half(p, 0, a.halves) * a.scales[b])
            acc1 += t1 * (half(p, 20, a.halves) * a.scales[b + 1])
            mins += half(p, 2, a.halves) * a.sums[b] + half(p, 22, a.halves) * a.sums[b + 1]
            b += 2
        }
        if b < blocks {
            let p = w + b * QuantBlocks.q4_1Bytes
            let t = planes(nibbleLanes(p, 4), shift: 0, mask: 0xF, bias: 0, a.values + 32 * b)
            acc0 += t * (half(p, 0, a.halves) * a.scales[b])
            mins += half(p, 2, a.halves) * a.sums[b]
        }
        return (acc0 + acc1).sum() + mins
    }

    static func q4_K(_ w: UnsafeRawPointer, _ a: PreparedActivation.View, superBlocks: Int) -> Float {
        var acc = F8()
        var mins: Float = 0
        for b in 0..<superBlocks {
            let p = w + b * QuantBlocks.q4_KBytes
            let d = half(p, 0, a.halves)
            let dmin = half(p, 2, a.halves)
            for j in 0..<4 {
                let c = 8 * b + 2 * j  // 32-value chunk of the low nibbles; c + 1 for the high ones
                let (sc0, m0) = QuantBlocks.scaleMinK4(2 * j, p + 4)
                let (sc1, m1) = QuantBlocks.scaleMinK4(2 * j + 1, p + 4)
                let q = p.loadUnaligned(fromByteOffset: 16 + 32 * j, as: U8.self)
                let t0 = planes(q, shift: 0, mask: 0xF, bias: 0, a.values + 32 * c)
                let t1 = planes(q, shift: 4, mask: 0xF, bias: 0, a.values + (32 * c + 32))
                acc += t0 * (d * Float(sc0) * a.scales[c]) + t1 * (d * Float(sc1) * a.scales[c + 1])
                mins += (dmin * Float(m0)) * a.sums[c] + (dmin * Float(m1)) * a.sums[c + 1]
            }
        }
        return acc.sum() - mins
    }

    static func q6_K(_ w: UnsafeRawPointer, _ a: PreparedActivation.View, superBlocks: Int) -> Float {
        var acc = F8()
        for b in 0..<superBlocks {
            let p = w + b * QuantBlocks.q6_KBytes
            let d = half(p, 208, a.halves)
            let sc = (p + 192).assumingMemoryBound(to: Int8.self)
            for n in 0..<2 {
                let lo = p.loadUnaligned(fromByteOffset: 64 * n, as: U8.self)       // ql[l], l < 32
                let hi = p.loadUnaligned(fromByteOffset: 64 * n + 32, as: U8.self)  // ql[l + 32]
                let h = p.loadUnaligned(fromByteOffset: 128 + 32 * n, as: U8.self)  // qh[l]
                for g in 0..<4 {
                    let c = 8 * b + 4 * n + g  // weights 128n + 32g + l
                    let src = g & 1 == 0 ? lo : hi
                    let nib: UInt32 = g < 2 ? 0 : 4
                    let hs = UInt32(2 * g)
                    let x = a.values + 32 * c
                    var t = F8()
                    for k in 0..<4 {
                        let s = UInt32(8 * k)
                        let q = ((src &>> (s + nib)) & 0xF) | (((h &>> (s + hs)) & 3) &<< 4)
                        t += toFloat(q, bias: 32) * load8(x, 8 * k)
                    }
                    // Lanes 0–3 hold l < 16 (scale 2g), lanes 4–7 hold l ≥ 16 (scale 2g + 1).
                    let s0 = d * Float(sc[8 * n + 2 * g]) * a.scales[c]
                    let s1 = d * Float(sc[8 * n + 2 * g + 1]) * a.scales[c]
                    acc += t * F8(lowHalf: SIMD4(repeating: s0), highHalf: SIMD4(repeating: s1))
                }
            }
        }
        return acc.sum()
    }

    // MARK: Float formats (activation pair-permuted per 16 values, tail in order)

    static func f32(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, count: Int) -> Float {
        var acc0 = F8(), acc1 = F8()
        var i = 0
        while i + 16 <= count {
            acc0 += w.loadUnaligned(fromByteOffset: 4 * i, as: F8.self) * load8(x, i)
            acc1 += w.loadUnaligned(fromByteOffset: 4 * i + 32, as: F8.self) * load8(x, i + 8)
            i += 16
        }
        var tail: Float = 0
        while i < count {
            tail += w.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) * x[i]
            i += 1
        }
        return (acc0 + acc1).sum() + tail
    }

    /// F16 (`brain == false`) or BF16 weights: 16 halves as 8 × UInt32 split into even and odd
    /// halves, against the activation's even/odd pair permutation.
    static func halves(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, count: Int, brain: Bool) -> Float {
        var acc0 = F8(), acc1 = F8()
        var i = 0
        while i + 16 <= count {
            let v = w.loadUnaligned(fromByteOffset: 2 * i, as: U8.self)
            let even = v & 0xFFFF, odd = v &>> 16
            if brain {
                acc0 += floats(even &<< 16) * load8(x, i)
                acc1 += floats(odd &<< 16) * load8(x, i + 8)
            } else {
                acc0 += HalfFloat.float(fromHalfBitsInLanes: even) * load8(x, i)
                acc1 += HalfFloat.float(fromHalfBitsInLanes: odd) * load8(x, i + 8)
            }
            i += 16
        }
        var tail: Float = 0
        while i < count {
            let bits = w.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
            tail += (brain ? HalfFloat.float(fromBFloat16Bits: bits) : HalfFloat.float(fromHalfBits: bits)) * x[i]
            i += 1
        }
        return (acc0 + acc1).sum() + tail
    }
}
