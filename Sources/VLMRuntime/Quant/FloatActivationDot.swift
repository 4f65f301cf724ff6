/// Dot products of one quantised weight row with an exact `Float` activation vector, computed
/// straight from the blocks with SIMD: the weights are never dequantised into memory.
///
/// Numerics: each weight takes exactly its dequantised value (see `QuantBlocks`), but the sum is
/// factored per block, `d·Σ q·x + m·Σ x`, with `Σ x` per 32 values precomputed once per vector
/// (`blockSums`). This differs from "dequantise, then a float dot" only in rounding order, i.e. at
/// the level of a few float ulps of Σ|w·x|: the fp32-path tolerance of the SmolLM2 goldens
/// (logits ≤ 2e-3) has orders of magnitude to spare. It is the path that matches Hugging Face
/// transformers (which dequantises to fp32), not llama.cpp (see `GGMLActivationDot`).
///
/// All pointers are unchecked; `QuantizedMatrix` validates shapes once and calls these.
enum FloatActivationDot {
    /// Σ of each 32-value block of `x`: the `Σ x` factor of the Q4_0/Q4_1/Q4_K dots.
    static func blockSums(_ x: UnsafePointer<Float>, count: Int, into sums: UnsafeMutablePointer<Float>) {
        for b in 0..<(count / 32) {
            let v = QuantBlocks.load16(x + 32 * b) + QuantBlocks.load16(x + 32 * b + 16)
            sums[b] = v.sum()
        }
    }

    @inline(__always)
    static func nibbles(_ q: SIMD16<UInt8>) -> (low: SIMD16<Float>, high: SIMD16<Float>) {
        (SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: q & 0x0F)),
         SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: q &>> 4)))
    }

    static func f32(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, count: Int) -> Float {
        var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
        var i = 0
        while i + 32 <= count {
            acc0 += w.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self) * QuantBlocks.load16(x + i)
            acc1 += w.loadUnaligned(fromByteOffset: 4 * i + 64, as: SIMD16<Float>.self) * QuantBlocks.load16(x + i + 16)
            i += 32
        }
        var tail: Float = 0
        while i < count {
            tail += w.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) * x[i]
            i += 1
        }
        return (acc0 + acc1).sum() + tail
    }

    static func f16(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, count: Int) -> Float {
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= count {
            let h0 = HalfFloat.float(fromHalfBits: w.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<UInt16>.self))
            let h1 = HalfFloat.float(fromHalfBits: w.loadUnaligned(fromByteOffset: 2 * i + 16, as: SIMD8<UInt16>.self))
            acc0 += h0 * UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            acc1 += h1 * UnsafeRawPointer(x + i + 8).loadUnaligned(as: SIMD8<Float>.self)
            i += 16
        }
        var tail: Float = 0
        while i < count {
            tail += QuantBlocks.half(w, 2 * i) * x[i]
            i += 1
        }
        return (acc0 + acc1).sum() + tail
    }

    static func bf16(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, count: Int) -> Float {
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= count {
            let h0 = HalfFloat.float(fromBFloat16Bits: w.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<UInt16>.self))
            let h1 = HalfFloat.float(fromBFloat16Bits: w.loadUnaligned(fromByteOffset: 2 * i + 16, as: SIMD8<UInt16>.self))
            acc0 += h0 * UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            acc1 += h1 * UnsafeRawPointer(x + i + 8).loadUnaligned(as: SIMD8<Float>.self)
            i += 16
        }
        var tail: Float = 0
        while i < count {
            tail += HalfFloat.float(fromBFloat16Bits: w.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) * x[i]
            i += 1
        }
        return (acc0 + acc1).sum() + tail
    }

    static func q8_0(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, blocks: Int) -> Float {
        var acc = SIMD16<Float>()
        for b in 0..<blocks {
            let p = w + b * QuantBlocks.q8_0Bytes
            let q0 = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: p.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int8>.self)))
            let q1 = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: p.loadUnaligned(fromByteOffset: 18, as: SIMD16<Int8>.self)))
            let t = q0 * QuantBlocks.load16(x + 32 * b) + q1 * QuantBlocks.load16(x + 32 * b + 16)
            acc += t * QuantBlocks.half(p, 0)
        }
        return acc.sum()
    }

    /// Q4_0 weights are (q - 8)·d: d·(Σ q·x − 8·Σ x).
    static func q4_0(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ sums: UnsafePointer<Float>, blocks: Int) -> Float {
        var acc = SIMD16<Float>()
        var offsets: Float = 0
        for b in 0..<blocks {
            let p = w + b * QuantBlocks.q4_0Bytes
            let (lo, hi) = nibbles(p.loadUnaligned(fromByteOffset: 2, as: SIMD16<UInt8>.self))
            let t = lo * QuantBlocks.load16(x + 32 * b) + hi * QuantBlocks.load16(x + 32 * b + 16)
            let d = QuantBlocks.half(p, 0)
            acc += t * d
            offsets += d * sums[b]
        }
        return acc.sum() - 8 * offsets
    }

    /// Q4_1 weights are q·d + m: d·Σ q·x + m·Σ x.
    static func q4_1(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ sums: UnsafePointer<Float>, blocks: Int) -> Float {
        var acc = SIMD16<Float>()
        var mins: Float = 0
        for b in 0..<blocks {
            let p = w + b * QuantBlocks.q4_1Bytes
            let (lo, hi) = nibbles(p.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self))
            let t = lo * QuantBlocks.load16(x + 32 * b) + hi * QuantBlocks.load16(x + 32 * b + 16)
            acc += t * QuantBlocks.half(p, 0)
            mins += QuantBlocks.half(p, 2) * sums[b]
        }
        return acc.sum() + mins
    }

    /// Q4_K sub-block k (32 weights) is q·(d·sc_k) − dmin·m_k.
    static func q4_K(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ sums: UnsafePointer<Float>, superBlocks: Int) -> Float {
        var acc = SIMD16<Float>()
        var mins: Float = 0
        for b in 0..<superBlocks {
            let p = w + b * QuantBlocks.q4_KBytes
            let d = QuantBlocks.half(p, 0)
            let dmin = QuantBlocks.half(p, 2)
            let xb = x + 256 * b
            for j in 0..<4 {
                let (sc0, m0) = QuantBlocks.scaleMinK4(2 * j, p + 4)
                let (sc1, m1) = QuantBlocks.scaleMinK4(2 * j + 1, p + 4)
                let (lo0, hi0) = nibbles(p.loadUnaligned(fromByteOffset: 16 + 32 * j, as: SIMD16<UInt8>.self))
                let (lo1, hi1) = nibbles(p.loadUnaligned(fromByteOffset: 32 + 32 * j, as: SIMD16<UInt8>.self))
                let xs = xb + 64 * j
                let t0 = lo0 * QuantBlocks.load16(xs) + lo1 * QuantBlocks.load16(xs + 16)
                let t1 = hi0 * QuantBlocks.load16(xs + 32) + hi1 * QuantBlocks.load16(xs + 48)
                acc += t0 * (d * Float(sc0)) + t1 * (d * Float(sc1))
                mins += (dmin * Float(m0)) * sums[8 * b + 2 * j] + (dmin * Float(m1)) * sums[8 * b + 2 * j + 1]
            }
        }
        return acc.sum() - mins
    }

    /// Q6_K group g (16 weights) is (q − 32)·(d·sc_g).
    static func q6_K(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, superBlocks: Int) -> Float {
        var acc = SIMD16<Float>()
        for b in 0..<superBlocks {
            let p = w + b * QuantBlocks.q6_KBytes
            let d = QuantBlocks.half(p, 208)
            let sc = (p + 192).assumingMemoryBound(to: Int8.self)
            for n in 0..<2 {
                let ql = p + 64 * n
                let qh = p + 128 + 32 * n
                let xs = x + 256 * b + 128 * n
                for l16 in 0..<2 {
                    let a = ql.loadUnaligned(fromByteOffset: 16 * l16, as: SIMD16<UInt8>.self)
                    let c = ql.loadUnaligned(fromByteOffset: 32 + 16 * l16, as: SIMD16<UInt8>.self)
                    let h = qh.loadUnaligned(fromByteOffset: 16 * l16, as: SIMD16<UInt8>.self)
                    let s = 8 * n + l16
                    let o = 16 * l16
                    acc += (QuantBlocks.q6Values(a & 0x0F, h) * QuantBlocks.load16(xs + o)) * (d * Float(sc[s]))
                    acc += (QuantBlocks.q6Values(c & 0x0F, h &>> 2) * QuantBlocks.load16(xs + 32 + o)) * (d * Float(sc[s + 2]))
                    acc += (QuantBlocks.q6Values(a &>> 4, h &>> 4) * QuantBlocks.load16(xs + 64 + o)) * (d * Float(sc[s + 4]))
                    acc += (QuantBlocks.q6Values(c &>> 4, h &>> 6) * QuantBlocks.load16(xs + 96 + o)) * (d * Float(sc[s + 6]))
                }
            }
        }
        return acc.sum()
    }
}
