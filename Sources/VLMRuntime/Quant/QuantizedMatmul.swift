/// Many activation vectors at once (prompt prefill): weights are dequantised a tile of rows at a
/// time into a small `Float` buffer and multiplied with OpenBLAS `sgemm`, so the dequantisation is
/// paid once per tile for all T vectors instead of once per vector. Each core dequantises and
/// multiplies its own tiles (`Kernels.tiledProduct`).
///
/// The block formats are dequantised in the kernels' permuted order (see `PreparedActivation`),
/// which is cheap to produce, and the activations' columns are permuted the same way: a product
/// over k does not care about the order of k. The values are bit-exact dequantised weights, so
/// this is the fp32 path (`ActivationMode.float32`) up to sgemm's summation order.
extension QuantizedMatrix {
    /// `y[t][r] = Σ_k self[r][k] · x[t][k]` for `count` row-major vectors `x` (count × columns);
    /// `y` is count × rows, row-major. `threads` applies to a single vector (a matvec); products of
    /// several vectors are split over every core.
    public func matmul(_ x: UnsafeBufferPointer<Float>, count: Int, into y: UnsafeMutableBufferPointer<Float>,
                       threads: Int? = nil) throws {
        guard count >= 0 else { throw QuantError.lengthMismatch(name: name, expected: 0, got: count) }
        let (xCount, o1) = count.multipliedReportingOverflow(by: columns)
        let (yCount, o2) = count.multipliedReportingOverflow(by: rows)
        guard !o1, x.count == xCount else { throw QuantError.lengthMismatch(name: name, expected: o1 ? -1 : xCount, got: x.count) }
        guard !o2, y.count == yCount else { throw QuantError.lengthMismatch(name: name, expected: o2 ? -1 : yCount, got: y.count) }
        guard let xp = x.baseAddress, let yp = y.baseAddress, count > 0, rows > 0 else { return }
        guard columns > 0 else {
            y.update(repeating: 0)
            return
        }
        if count == 1 {
            return try matvec(x, into: y, mode: .float32, threads: threads)
        }
        guard count <= Int(Int32.max), rows <= Int(Int32.max), columns <= Int(Int32.max) else {
            throw QuantError.invalidShape(name: name, reason: "too large for BLAS (\(count)×\(rows)×\(columns))")
        }
        let base = bytes.baseAddress.unsafelyUnwrapped  // invariant: init checked storage for rows > 0
        // Aligned F32 weights go to sgemm as they are (a file with alignment 1 or 2 may not be).
        let floats = type == .f32 && Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0
            ? base.assumingMemoryBound(to: Float.self) : nil

        // Native kernels dequantise in natural order; the Swift block kernels produce the permuted
        // order cheaply, and then the activations' columns are permuted to match. Half formats are
        // dequantised in natural order.
        let native = NativeKernels.supports(type)
        let permuted = !native && type.blockSize >= 32
        var xPermuted: [Float] = []
        if permuted {
            xPermuted = [Float](unsafeUninitializedCapacity: xCount) { buf, n in
                for t in 0..<count {
                    let row = PreparedActivation.blockPermuted(count: columns) { xp[t * columns + $0] }
                    for k in 0..<columns { buf[t * columns + k] = row[k] }
                }
                n = xCount
            }
        }
        let type = self.type, width = self.columns, rowBytes = self.rowBytes
        xPermuted.withUnsafeBufferPointer { xpb in
            let a = permuted ? xpb.baseAddress.unsafelyUnwrapped : xp  // invariant: non-empty when permuted
            Kernels.tiledProduct(a, m: count, k: width, n: rows, y: yp, ldy: rows, floats: floats) { r0, r1, dst in
                if native {
                    NativeKernels.dequantize(type, base + r0 * rowBytes, rowBytes: rowBytes, rows: r1 - r0, columns: width, into: dst)
                    return
                }
                for r in r0..<r1 {
                    let src = base + r * rowBytes, out = dst + (r - r0) * width
                    if permuted {
                        QuantBlocks.dequantizePermuted(type, src, count: width, into: out)
                    } else {
                        QuantBlocks.dequantize(type, src, count: width, into: out)
                    }
                }
            }
        }
    }

    /// `matmul` for arrays.
    public func matmul(_ x: [Float], count: Int, threads: Int? = nil) throws -> [Float] {
        let n = count * rows
        return try x.withUnsafeBufferPointer { xb in
            try [Float](unsafeUninitializedCapacity: max(n, 0)) { out, written in
                try matmul(xb, count: count, into: out, threads: threads)
                written = max(n, 0)
            }
        }
    }
}

extension QuantBlocks {
    /// Dequantises block formats into the kernels' permuted order: within each 32 values,
    /// `out[8k + L] = w[4L + k]`. Each value is computed with the same single operations as
    /// `dequantize`, so the values are bit-identical, only placed differently.
    static func dequantizePermuted(_ type: GGMLType, _ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        typealias F8 = SIMD8<Float>
        typealias U8 = SIMD8<UInt32>
        @inline(__always) func put(_ v: F8, _ p: UnsafeMutablePointer<Float>) {
            UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self)
        }
        @inline(__always) func plane(_ q: U8, _ shift: UInt32, _ mask: UInt32, _ k: Int) -> F8 {
            BlockDot.toFloat((q &>> U8(repeating: shift + 8 * UInt32(k))) & mask, bias: 0)
        }
        switch type {
        case .q8_0:
            for b in 0..<(count / 32) {
                let p = src + b * q8_0Bytes
                let q = p.loadUnaligned(fromByteOffset: 2, as: SIMD8<Int32>.self)
                let d = half(p, 0)
                for k in 0..<4 {
                    put(F8((q &<< SIMD8<Int32>(repeating: Int32(24 - 8 * k))) &>> 24) * d, dst + 32 * b + 8 * k)
                }
            }
        case .q4_0, .q4_1:
            let size = type == .q4_0 ? q4_0Bytes : q4_1Bytes
            for b in 0..<(count / 32) {
                let p = src + b * size
                let q = BlockDot.nibbleLanes(p, type == .q4_0 ? 2 : 4)
                let d = half(p, 0)
                for k in 0..<4 {
                    let v = plane(q, 0, 0xF, k)
                    put(type == .q4_0 ? (v - 8) * d : v * d + half(p, 2), dst + 32 * b + 8 * k)
                }
            }
        case .q4_K:
            for b in 0..<(count / 256) {
                let p = src + b * q4_KBytes
                let d = half(p, 0), dmin = half(p, 2)
                for j in 0..<4 {
                    let q = p.loadUnaligned(fromByteOffset: 16 + 32 * j, as: U8.self)
                    for nib in 0..<2 {
                        let (sc, m) = scaleMinK4(2 * j + nib, p + 4)
                        let d1 = d * Float(sc), m1 = dmin * Float(m)
                        for k in 0..<4 {
                            put(plane(q, UInt32(4 * nib), 0xF, k) * d1 - m1, dst + 256 * b + 64 * j + 32 * nib + 8 * k)
                        }
                    }
                }
            }
        case .q6_K:
            for b in 0..<(count / 256) {
                let p = src + b * q6_KBytes
                let d = half(p, 208)
                let sc = (p + 192).assumingMemoryBound(to: Int8.self)
                for n in 0..<2 {
                    let lo = p.loadUnaligned(fromByteOffset: 64 * n, as: U8.self)
                    let hi = p.loadUnaligned(fromByteOffset: 64 * n + 32, as: U8.self)
                    let h = p.loadUnaligned(fromByteOffset: 128 + 32 * n, as: U8.self)
                    for g in 0..<4 {
                        let srcBytes = g & 1 == 0 ? lo : hi
                        let nib: UInt32 = g < 2 ? 0 : 4
                        let scale = F8(lowHalf: SIMD4(repeating: d * Float(sc[8 * n + 2 * g])),
                                       highHalf: SIMD4(repeating: d * Float(sc[8 * n + 2 * g + 1])))
                        for k in 0..<4 {
                            let s = U8(repeating: UInt32(8 * k))
                            let q = ((srcBytes &>> (s &+ nib)) & 0xF) | (((h &>> (s &+ UInt32(2 * g))) & 3) &<< 4)
                            put(BlockDot.toFloat(q, bias: 32) * scale, dst + 256 * b + 128 * n + 32 * g + 8 * k)
                        }
                    }
                }
            }
        default:
            dequantize(type, src, count: count, into: dst)
        }
    }
}
