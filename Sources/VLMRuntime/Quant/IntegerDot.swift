/// Integer kernels for the ggml activation path of the two SmolLM2 formats: Q8_0 weights ·
/// Q8_0 activations and Q4_1 weights · Q8_1 activations, 16 Int16 multiplies per vector
/// instruction (the float kernels do 8 multiply-adds).
///
/// Quant bytes are viewed as 16 × UInt16 lanes and split into planes with shifts (sign-extending
/// shifts for Q8_0's signed bytes, masks for Q4_1's nibbles); the activation quants are stored
/// as Int16 in the matching lane order (`q8_0Layout`, `q4_1Layout`). Per block the products
/// are summed in Int16 (|Σ| ≤ 32,512 for Q8_0 — activations are within ±127 — and ≤ 7,620 for
/// Q4_1), then neighbouring lanes are added as Int32 and converted to Float: the block's integer
/// dot is exact, as in ggml, and only the float accumulation across blocks differs in order.
enum IntegerDot {
    typealias I16 = SIMD16<Int16>
    typealias I32 = SIMD8<Int32>

    @inline(__always)
    static func load16(_ p: UnsafePointer<Int16>, _ i: Int) -> I16 {
        UnsafeRawPointer(p + i).loadUnaligned(as: I16.self)
    }

    /// Adjacent Int16 lanes summed into 8 Int32 lanes (lanes 2i and 2i+1 → lane i).
    @inline(__always)
    static func pairSums(_ v: I16) -> I32 {
        let w = unsafeBitCast(v, to: I32.self)
        return ((w &<< 16) &>> 16) &+ (w &>> 16)
    }

    /// Q8_0 lane order: per block, the even bytes then the odd bytes (lane L of a UInt16 view
    /// holds bytes 2L and 2L + 1).
    static func q8_0Layout(count: Int, _ q: UnsafeBufferPointer<Int16>) -> [Int16] {
        [Int16](unsafeUninitializedCapacity: count) { buf, n in
            for b in 0..<(count / 32) {
                for l in 0..<16 {
                    buf[32 * b + l] = q[32 * b + 2 * l]
                    buf[32 * b + 16 + l] = q[32 * b + 2 * l + 1]
                }
            }
            n = count
        }
    }

    /// Q4_1 lane order, per pair of blocks (lanes 0–7 the first block, 8–15 the second): plane j
    /// = nibble j of each UInt16 lane, i.e. weights 2l, 2l + 16, 2l + 1, 2l + 17 for j = 0…3. An odd
    /// last block is stored in plain order for the scalar tail.
    static func q4_1Layout(count: Int, _ q: UnsafeBufferPointer<Int16>) -> [Int16] {
        let blocks = count / 32
        return [Int16](unsafeUninitializedCapacity: count) { buf, n in
            for pair in 0..<(blocks / 2) {
                for j in 0..<4 {
                    let offset = (j & 1) * 16 + (j >> 1)  // nibble j of lane l is weight 2l + offset
                    for lane in 0..<16 {
                        let block = 2 * pair + lane / 8
                        buf[64 * pair + 16 * j + lane] = q[32 * block + 2 * (lane % 8) + offset]
                    }
                }
            }
            if blocks % 2 == 1 {
                for i in (32 * (blocks - 1))..<count { buf[i] = q[i] }
            }
            n = count
        }
    }

    static func q8_0(_ w: UnsafeRawPointer, _ a: PreparedActivation.View, _ ints: UnsafePointer<Int16>, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        for b in 0..<blocks {
            let p = w + b * QuantBlocks.q8_0Bytes
            let v = p.loadUnaligned(fromByteOffset: 2, as: I16.self)
            let even = (v &<< 8) &>> 8, odd = v &>> 8
            let s = even &* load16(ints, 32 * b) &+ odd &* load16(ints, 32 * b + 16)
            acc += SIMD8<Float>(pairSums(s)) * (BlockDot.half(p, 0, a.halves) * a.scales[b])
        }
        return acc.sum()
    }

    static func q4_1(_ w: UnsafeRawPointer, _ a: PreparedActivation.View, _ ints: UnsafePointer<Int16>, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        var mins: Float = 0
        var b = 0
        while b + 1 < blocks {
            let p = w + b * QuantBlocks.q4_1Bytes
            let v = SIMD16<UInt16>(lowHalf: p.loadUnaligned(fromByteOffset: 4, as: SIMD8<UInt16>.self),
                                   highHalf: p.loadUnaligned(fromByteOffset: 24, as: SIMD8<UInt16>.self))
            let x = ints + 32 * b
            var s = I16()
            for j in 0..<4 {
                let plane = unsafeBitCast((v &>> SIMD16<UInt16>(repeating: UInt16(4 * j))) & 0xF, to: I16.self)
                s &+= plane &* load16(x, 16 * j)
            }
            let d0 = BlockDot.half(p, 0, a.halves) * a.scales[b]
            let d1 = BlockDot.half(p, 20, a.halves) * a.scales[b + 1]
            acc += SIMD8<Float>(pairSums(s)) * SIMD8(lowHalf: SIMD4(repeating: d0), highHalf: SIMD4(repeating: d1))
            mins += BlockDot.half(p, 2, a.halves) * a.sums[b] + BlockDot.half(p, 22, a.halves) * a.sums[b + 1]
            b += 2
        }
        var tail: Float = 0
        if b < blocks {
            let p = w + b * QuantBlocks.q4_1Bytes
            var sum: Int32 = 0
            for j in 0..<16 {
                let byte = p.load(fromByteOffset: 4 + j, as: UInt8.self)
                sum += Int32(byte & 0xF) * Int32(ints[32 * b + j]) + Int32(byte >> 4) * Int32(ints[32 * b + j + 16])
            }
            tail = Float(sum) * (BlockDot.half(p, 0, a.halves) * a.scales[b]) + BlockDot.half(p, 2, a.halves) * a.sums[b]
        }
        return acc.sum() + mins + tail
    }
}
