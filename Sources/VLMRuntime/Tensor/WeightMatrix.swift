import Foundation

/// A 2-D weight [rows, cols] (PyTorch `Linear` layout: out × in) kept in the dtype it was stored
/// in. Decode reads it with on-the-fly conversion, so a bf16 checkpoint stays bf16 in memory.
public final class WeightMatrix: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    public let dtype: DType
    /// Start of row 0; aligned to the element size.
    let raw: UnsafeRawPointer
    /// Keeps the mapping (or owned buffer) alive while the pointer is in use.
    private let owner: AnyObject?
    private let owned: UnsafeMutableRawPointer?

    /// Points into a mapped file; copies only if the data are misaligned.
    init(rows: Int, cols: Int, dtype: DType, pointer: UnsafeRawPointer, owner: AnyObject) {
        self.rows = rows
        self.cols = cols
        self.dtype = dtype
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
        let buf = UnsafeMutableRawPointer.allocate(byteCount: max(rows * cols * 4, 1), alignment: 64)
        values.withUnsafeBytes { src in
            if let base = src.baseAddress { buf.copyMemory(from: base, byteCount: min(src.count, rows * cols * 4)) }
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

/// A `Linear` layer: weight [out, in] plus an optional bias.
struct Linear: @unchecked Sendable {
    let weight: WeightMatrix
    let bias: [Float]?
    var outFeatures: Int { weight.rows }
    var inFeatures: Int { weight.cols }

    /// y[m, out] = x[m, in] · Wᵀ + b.
    func callAsFunction(_ x: [Float], rows m: Int) -> [Float] {
        var y = [Float](repeating: 0, count: m * outFeatures)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                guard let xb = xp.baseAddress, let yb = yp.baseAddress else { return }
                Kernels.linear(xb, rows: m, weight: weight, bias: bias, out: yb)
            }
        }
        return y
    }
}
