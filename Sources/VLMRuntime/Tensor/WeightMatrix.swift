import Foundation

/// A 2-D weight [rows, cols] (PyTorch `Linear` layout: out × in) kept in the dtype it was stored
/// in. Decode reads it with on-the-fly conversion, so a bf16 checkpoint stays bf16 in memory.
public final class WeightMatrix: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    public let dtype: DType
    /// Start of row 0; aligned to the element size.
    let raw: UnsafeRawPointer
    /// Multiply many rows in bf16 (activations rounded to bf16, f32 accumulation) instead of
    /// widening to f32 for sgemm; only for bf16 weights on CPUs with AVX512-BF16.
    let bf16Matmul: Bool
    /// Keeps the mapping (or owned buffer) alive while the pointer is in use.
    private let owner: AnyObject?
    private let owned: UnsafeMutableRawPointer?

    /// Points into a mapped file; copies only if the data are misaligned.
    init(rows: Int, cols: Int, dtype: DType, pointer: UnsafeRawPointer, owner: AnyObject, precision: MatmulPrecision = .float32) {
        self.rows = rows
        self.cols = cols
        self.dtype = dtype
        self.bf16Matmul = precision == .bfloat16 && dtype == .bf16 && Kernels.hasAVX512BF16
        let bytes = rows * cols * dtype.byteSize
        if Int(bitPattern: pointer) % dtype.byteSize != 0 {
            let buf = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
            buf.copyMemory(from: pointer, byteCount: bytes)
            self.raw = UnsafeRawPointer(buf)
            self.owned = buf
            self.owner = nil
        } else {
            self.raw = pointer
            self.owned = nil
            self.owner = owner
        }
    }

    /// Owns a Float32 copy of `values` (used for derived weights and tests).
    public init(rows: Int, cols: Int, floats values: [Float]) {
        self.rows = rows
        self.cols = cols
        self.dtype = .f32
        self.bf16Matmul = false
        let buf = UnsafeMutableRawPointer.allocate(byteCount: max(rows * cols * 4, 1), alignment: 64)
        values.withUnsafeBytes { src in
            if let base = src.baseAddress { buf.copyMemory(from: base, byteCount: min(src.count, rows * cols * 4)) }
        }
        self.raw = UnsafeRawPointer(buf)
        self.owned = buf
        self.owner = nil
    }

    /// Owns a copy of raw stored values (tests and converted weights).
    init(rows: Int, cols: Int, dtype: DType, bytes: [UInt8], precision: MatmulPrecision = .float32) {
        self.rows = rows
        self.cols = cols
        self.dtype = dtype
        self.bf16Matmul = precision == .bfloat16 && dtype == .bf16 && Kernels.hasAVX512BF16
        let buf = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { src in
            if let base = src.baseAddress { buf.copyMemory(from: base, byteCount: src.count) }
        }
        self.raw = UnsafeRawPointer(buf)
        self.owned = buf
        self.owner = nil
    }

    deinit { owned?.deallocate() }

    var byteCount: Int { rows * cols * dtype.byteSize }

    /// Row `r` converted to Float32 into `dst` (cols values).
    func row(_ r: Int, into dst: UnsafeMutablePointer<Float>) {
        convertToFloat(raw + r * cols * dtype.byteSize, dtype: dtype, count: cols, into: dst)
    }

    /// Rows `r0..<r1` converted to Float32 into `dst` (row-major).
    func rows(_ r0: Int, _ r1: Int, into dst: UnsafeMutablePointer<Float>) {
        convertToFloat(raw + r0 * cols * dtype.byteSize, dtype: dtype, count: (r1 - r0) * cols, into: dst)
    }

    /// All values as Float32 (tests, small matrices).
    public func floats() -> [Float] {
        [Float](unsafeUninitializedCapacity: rows * cols) { buf, n in
            if rows * cols > 0 { self.rows(0, rows, into: buf.baseAddress!) } // invariant: non-empty capacity
            n = rows * cols
        }
    }
}

/// How prefill and vision multiply bf16 weights.
public enum MatmulPrecision: String, Sendable {
    /// Widen weights to f32 and use sgemm: the fp32 maths of the reference (exact goldens).
    case float32
    /// bf16 × bf16 products with f32 accumulation (AVX512-BF16), like transformers with
    /// `dtype=bfloat16` but keeping f32 activations between layers; falls back to `float32` on
    /// CPUs without the instructions. Decode is unaffected (it always widens weights).
    case bfloat16
}

