import CBLAS

/// The C row kernels (Sources/CBLAS/shim.h) for the two formats of the embedded default model,
/// Q4_1 and Q8_0, on both activation paths, chosen at run time by what the CPU has: AVX512
/// (VNNI for the integer path) or AVX2 on x86, NEON on aarch64 (Sources/CBLAS/shim_neon.h),
/// else none and the Swift kernels (`BlockDot`, `IntegerDot`) do the work.
///
/// Why C: Swift's SIMD types top out at what the build's target CPU allows and cannot pick
/// AVX512 or VNNI at run time; the C functions carry their own target attributes. Measured on
/// SmolLM2's decode shapes (2 cores, AVX512): the f32-activation Q4_1 pass about twice as fast
/// as the SIMD8 Swift kernel.
enum NativeKernels {
    /// `assay_native_level()`: 0 none, bit 0 AVX2, bit 1 AVX512, bit 2 AVX512-VNNI, bit 3 NEON.
    static let level: Int32 = {
        switch KernelPath.active {
        case .portable: return 0
        case .avx2: return min(assay_native_level(), 1)
        case .avx512, .neon: return assay_native_level()
        }
    }()

    /// Whether `type` has native kernels on this CPU.
    static func supports(_ type: GGMLType) -> Bool {
        level != 0 && (type == .q4_1 || type == .q8_0)
    }

    /// out[i] = row i · activation for `rows` rows starting at `w`. The activation is in the
    /// native layout (`PreparedActivation.native`): natural-order floats with block sums, or ggml's
    /// Q8_1 / Q8_0 blocks.
    @inline(__always)
    static func rows(_ type: GGMLType, _ w: UnsafeRawPointer, rowBytes: Int, rows: Int, columns: Int,
                     _ a: PreparedActivation.View, into out: UnsafeMutablePointer<Float>) {
        let blocks = columns / 32
        if let encoded = a.encoded {
            if type == .q4_1 {
                assay_rows_q4_1_q8_1(level, w, rowBytes, rows, encoded, blocks, out)
            } else {
                assay_rows_q8_0_q8_0(level, w, rowBytes, rows, encoded, blocks, out)
            }
            return
        }
        var x: UnsafePointer<Float>? = a.values, xs: UnsafePointer<Float>? = a.sums
        if type == .q4_1 {
            assay_rows_q4_1_f32(level, w, rowBytes, rows, &x, &xs, 1, blocks, out, 0)
        } else {
            assay_rows_q8_0_f32(level, w, rowBytes, rows, &x, 1, blocks, out, 0)
        }
    }

    /// out[i · ldo + r] = row r · a[i] for `m` exact (f32) activations in the native layout: each
    /// block's quants are widened once for up to four vectors (batched decode), and every vector
    /// gets the same bits as through `rows` alone.
    static func rows(_ type: GGMLType, _ w: UnsafeRawPointer, rowBytes: Int, rows: Int, columns: Int,
                     exact a: UnsafePointer<PreparedActivation.View>, count m: Int,
                     into out: UnsafeMutablePointer<Float>, ldo: Int) {
        withUnsafeTemporaryAllocation(of: UnsafePointer<Float>?.self, capacity: 2 * m) { list in
            guard let p = list.baseAddress else { return }
            for i in 0..<m {
                p[i] = a[i].values
                p[m + i] = a[i].sums
            }
            if type == .q4_1 {
                assay_rows_q4_1_f32(level, w, rowBytes, rows, p, p + m, Int32(m), columns / 32, out, ldo)
            } else {
                assay_rows_q8_0_f32(level, w, rowBytes, rows, p, Int32(m), columns / 32, out, ldo)
            }
        }
    }

    /// Rows of `type` dequantised into natural order (`rows × columns` floats), bit-exact with
    /// `QuantBlocks.dequantize`. For prefill tiles.
    @inline(__always)
    static func dequantize(_ type: GGMLType, _ w: UnsafeRawPointer, rowBytes: Int, rows: Int, columns: Int,
                           into out: UnsafeMutablePointer<Float>) {
        assay_dequant_rows(level, type == .q4_1 ? 1 : 0, w, rowBytes, rows, columns / 32, out)
    }
}
