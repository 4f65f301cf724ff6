import Dispatch
import Foundation

/// How a quantised dot product treats the activation vector.
///
/// Which one the SmolLM2 goldens need: `.float32`. Their reference is transformers with every
/// weight dequantised to fp32, and their tolerances (logits ≤ 2e-3, hidden states ≤ 2e-5 relative,
/// greedy ids exact) are for that path. The README measures the llama.cpp-style quantised path at
/// max-abs ~0.3–1.5 / rms ~0.1–0.3 from those logits with greedy text diverging at low margins, so
/// `.ggml` can only be checked with bounds (top-k, rms), never equality.
public enum ActivationMode: Sendable, Equatable {
    /// Activations stay exact `Float`; weights take their exact dequantised values. Matches a
    /// dequantise-to-fp32 reference (transformers, the SmolLM2 goldens) to float rounding.
    case float32
    /// Activations are quantised first to the weight type's ggml `vec_dot_type`, as llama.cpp's CPU
    /// backend does: only within quantisation noise of the fp32 model, but for Q8_0 and Q4_1 it
    /// runs on Int16 kernels (`IntegerDot`), about 1.3–1.4× faster than `.float32`.
    case ggml
}

/// Why a kernel call was refused (shapes or types the caller got wrong).
public enum QuantError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The tensor type has no kernels (see `GGMLType.isSupportedByKernels`).
    case unsupportedType(name: String, type: GGMLType)
    /// Rows, columns and byte count do not describe a valid matrix of this type.
    case invalidShape(name: String, reason: String)
    /// A vector's length is not the matrix's column count, or an output is too short.
    case lengthMismatch(name: String, expected: Int, got: Int)
    /// A row index outside the matrix.
    case rowOutOfRange(name: String, row: Int, rows: Int)
    /// An activation quantised for a different weight type.
    case activationFormatMismatch(name: String, expected: GGMLType, got: GGMLType)

    public var description: String {
        switch self {
        case let .unsupportedType(name, type):
            return "\(name): tensor type \(type) has no dequantisation/dot kernels (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)"
        case let .invalidShape(name, reason):
            return "\(name): \(reason)"
        case let .lengthMismatch(name, expected, got):
            return "\(name): vector length \(got), expected \(expected)"
        case let .rowOutOfRange(name, row, rows):
            return "\(name): row \(row) out of range 0..<\(rows)"
        case let .activationFormatMismatch(name, expected, got):
            return "\(name): activation quantised as \(got), this matrix needs \(expected)"
        }
    }
}

/// Carries a value into `concurrentPerform`, whose work item must be `@Sendable`: the kernels'
/// closures capture raw pointers, and each iteration writes disjoint output rows.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Owns the blocks of a matrix built in memory (e.g. a safetensors weight quantised to Q8_0 at load).
final class QuantizedBuffer: @unchecked Sendable {  // @unchecked: written once in init, then read-only
    let bytes: UnsafeMutableRawBufferPointer
    init(byteCount: Int) {
        bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
    }
    deinit { bytes.deallocate() }
}

/// A row-major weight matrix kept in its ggml block format: `rows` rows of `columns` values, each
/// row a whole number of blocks. The unit the decode kernels work on.
///
/// Built from a GGUF tensor (`GGUFTensor.matrix()`, no copy) or by quantising `Float` weights to
/// Q8_0 (`quantizingToQ8_0`). Shapes are validated once here; the per-row kernels run unchecked.
public struct QuantizedMatrix: @unchecked Sendable {  // @unchecked: `bytes` is immutable memory kept alive by `owner`
    /// Block format of the weights.
    public let type: GGMLType
    /// Number of rows (output features).
    public let rows: Int
    /// Values per row (input features).
    public let columns: Int
    /// Bytes per row.
    public let rowBytes: Int
    /// The blocks, `rows × rowBytes` bytes.
    public let bytes: UnsafeRawBufferPointer
    /// Label for errors (the tensor name).
    public let name: String
    private let owner: AnyObject?

    /// Wraps existing blocks. `owner` must keep `bytes` alive (a `GGUFStorage`, say).
    public init(type: GGMLType, rows: Int, columns: Int, bytes: UnsafeRawBufferPointer, owner: AnyObject?,
                name: String = "matrix") throws {
        guard type.isSupportedByKernels else { throw QuantError.unsupportedType(name: name, type: type) }
        guard rows >= 0, columns >= 0 else {
            throw QuantError.invalidShape(name: name, reason: "negative shape \(rows)×\(columns)")
        }
        guard let rowBytes = type.byteCount(elements: columns) else {
            throw QuantError.invalidShape(
                name: name, reason: "row length \(columns) is not a multiple of the \(type) block size \(type.blockSize)")
        }
        let (total, overflow) = rowBytes.multipliedReportingOverflow(by: rows)
        guard !overflow, bytes.count >= total else {
            throw QuantError.invalidShape(name: name, reason: "\(rows)×\(columns) \(type) needs \(total) bytes, got \(bytes.count)")
        }
        guard rows == 0 || bytes.baseAddress != nil else {
            throw QuantError.invalidShape(name: name, reason: "no storage")
        }
        self.type = type
        self.rows = rows
        self.columns = columns
        self.rowBytes = rowBytes
        self.bytes = UnsafeRawBufferPointer(rebasing: bytes[0..<total])
        self.owner = owner
        self.name = name
    }

    /// Quantises row-major `values` (`rows × columns`, columns a multiple of 32) to Q8_0 with ggml's
    /// `quantize_row_q8_0_ref` rounding: the `--quantize q8_0` load path for safetensors weights.
    public static func quantizingToQ8_0(_ values: UnsafeBufferPointer<Float>, rows: Int, columns: Int,
                                        name: String = "matrix") throws -> QuantizedMatrix {
        guard rows >= 0, columns >= 0, columns % 32 == 0 else {
            throw QuantError.invalidShape(name: name, reason: "Q8_0 needs a row length that is a multiple of 32, got \(columns)")
        }
        let (count, overflow) = rows.multipliedReportingOverflow(by: columns)
        guard !overflow, values.count == count else {
            throw QuantError.lengthMismatch(name: name, expected: overflow ? -1 : count, got: values.count)
        }
        let rowBytes = columns / 32 * QuantBlocks.q8_0Bytes
        let buffer = QuantizedBuffer(byteCount: rows * rowBytes)
        if let src = values.baseAddress, let dst = buffer.bytes.baseAddress {
            parallelFor(rows, threads: defaultThreadCount, minimumWork: columns) { r in
                ActivationQuantization.quantizeQ8_0(src + r * columns, count: columns, into: dst + r * rowBytes)
            }
        }
        return try QuantizedMatrix(type: .q8_0, rows: rows, columns: columns, bytes: UnsafeRawBufferPointer(buffer.bytes),
                                   owner: buffer, name: name)
    }

    /// `quantizingToQ8_0` for an array.
    public static func quantizingToQ8_0(_ values: [Float], rows: Int, columns: Int, name: String = "matrix") throws -> QuantizedMatrix {
        try values.withUnsafeBufferPointer { try quantizingToQ8_0($0, rows: rows, columns: columns, name: name) }
    }

    /// Worker threads used when a call does not say: every active core. Read once: on Linux
    /// `activeProcessorCount` reads cgroup files, which cost more than a small matvec.
    public static let defaultThreadCount = RuntimeThreads.count

    @inline(__always)
    func row(_ r: Int) -> UnsafeRawPointer {
        bytes.baseAddress.unsafelyUnwrapped + r * rowBytes  // invariant: init checked storage for rows > 0
    }

    private func checkRow(_ r: Int) throws {
        guard r >= 0, r < rows else { throw QuantError.rowOutOfRange(name: name, row: r, rows: rows) }
    }

    private func checkLength(_ n: Int, _ expected: Int) throws {
        guard n == expected else { throw QuantError.lengthMismatch(name: name, expected: expected, got: n) }
    }

    // MARK: Dequantisation

    /// Row `r` as `Float`, bit-exact with ggml's `dequantize_row_*`.
    public func dequantizeRow(_ r: Int) throws -> [Float] {
        try checkRow(r)
        return [Float](unsafeUninitializedCapacity: columns) { buf, n in
            if let p = buf.baseAddress { QuantBlocks.dequantize(type, row(r), count: columns, into: p) }
            n = columns
        }
    }

    /// Rows `range` as `Float` into `output` (row-major, `range.count × columns`).
    public func dequantizeRows(_ range: Range<Int>, into output: UnsafeMutableBufferPointer<Float>) throws {
        guard range.lowerBound >= 0, range.upperBound <= rows else {
            throw QuantError.rowOutOfRange(name: name, row: range.upperBound - 1, rows: rows)
        }
        try checkLength(output.count, range.count * columns)
        guard let out = output.baseAddress else { return }
        for (i, r) in range.enumerated() {
            QuantBlocks.dequantize(type, row(r), count: columns, into: out + i * columns)
        }
    }

    /// The whole matrix as `Float`, row-major.
    public func dequantizeAll() throws -> [Float] {
        let count = rows * columns
        return try [Float](unsafeUninitializedCapacity: count) { buf, n in
            try dequantizeRows(0..<rows, into: buf)
            n = count
        }
    }

    // MARK: Single-row dot products

    /// Row `r` · `vector` with exact `Float` activations (`ActivationMode.float32`).
    public func dot(row r: Int, vector: [Float]) throws -> Float {
        try checkRow(r)
        try checkLength(vector.count, columns)
        return vector.withUnsafeBufferPointer { x in
            guard let xp = x.baseAddress else { return 0 }
            return PreparedActivation(exact: xp, count: columns, for: type).withView { a in product(row: r, a) }
        }
    }

    /// Row `r` · an activation already quantised for this matrix (`ActivationMode.ggml`).
    public func dot(row r: Int, vector: QuantizedActivation) throws -> Float {
        try checkRow(r)
        try checkActivation(vector)
        return vector.prepared.withView { a in product(row: r, a) }
    }

    // MARK: Matrix-vector products

    /// `self · x` (length `rows`), rows split across `threads` cores.
    public func matvec(_ x: [Float], mode: ActivationMode = .float32, threads: Int? = nil) throws -> [Float] {
        try x.withUnsafeBufferPointer { xb in
            try [Float](unsafeUninitializedCapacity: rows) { out, n in
                try matvec(xb, into: out, mode: mode, threads: threads)
                n = rows
            }
        }
    }

    /// `self · x` into `y` (length `rows`) without allocating the result.
    public func matvec(_ x: UnsafeBufferPointer<Float>, into y: UnsafeMutableBufferPointer<Float>,
                       mode: ActivationMode = .float32, threads: Int? = nil) throws {
        try checkLength(x.count, columns)
        try checkLength(y.count, rows)
        guard let yp = y.baseAddress else { return }
        guard let xp = x.baseAddress, columns > 0 else {
            y.update(repeating: 0)  // an empty sum
            return
        }
        let prepared: PreparedActivation
        switch mode {
        case .float32: prepared = PreparedActivation(exact: xp, count: columns, for: type)
        case .ggml: prepared = QuantizedActivation(unchecked: xp, count: columns, for: type).prepared
        }
        prepared.withView { a in
            rowProducts(a, into: yp, threads: threads ?? Self.defaultThreadCount)
        }
    }

    /// `self · a` for an activation quantised once and shared by several matrices of the same type
    /// (Q, K and V projections read the same normed input).
    public func matvec(_ a: QuantizedActivation, into y: UnsafeMutableBufferPointer<Float>, threads: Int? = nil) throws {
        try checkActivation(a)
        try checkLength(y.count, rows)
        guard let yp = y.baseAddress else { return }
        guard columns > 0 else {
            y.update(repeating: 0)
            return
        }
        a.prepared.withView { view in
            rowProducts(view, into: yp, threads: threads ?? Self.defaultThreadCount)
        }
    }

    private func checkActivation(_ a: QuantizedActivation) throws {
        try checkLength(a.count, columns)
        let expected = QuantizedActivation.format(for: type)
        guard a.format == expected else {
            throw QuantError.activationFormatMismatch(name: name, expected: expected, got: a.format)
        }
        // Float formats share `.f32` storage but differ in rounding (f16/bf16) and layout.
        if expected == .f32 && a.weightType != type {
            throw QuantError.activationFormatMismatch(name: name, expected: type, got: a.weightType)
        }
    }

    private func parallelRows(_ threads: Int?, _ body: (Int) -> Void) {
        parallelFor(rows, threads: threads ?? Self.defaultThreadCount, minimumWork: rowBytes, body)
    }

    /// Runs `body` for 0..<count over up to `threads` cores (`KernelWorkers`). Small jobs stay on
    /// the calling thread: handing work to another core costs about a microsecond even when it is
    /// spinning, more than a few thousand bytes of kernel work.
    static func parallelFor(_ count: Int, threads: Int, minimumWork: Int, _ body: (Int) -> Void) {
        let totalWork = count * max(minimumWork, 1)
        let workers = min(max(threads, 1), max(1, totalWork / 32_768))
        KernelWorkers.run(count, threads: workers, body)
    }

    private func parallelFor(_ count: Int, threads: Int, minimumWork: Int, _ body: (Int) -> Void) {
        Self.parallelFor(count, threads: threads, minimumWork: minimumWork, body)
    }

    // MARK: Few vectors at once (batched decode)

    /// The activation layout `mode` asks for, built once per vector and shared by every matrix of
    /// this type that reads the same vector (Q, K and V; gate and up).
    func prepare(_ x: UnsafePointer<Float>, mode: ActivationMode) -> PreparedActivation {
        switch mode {
        case .float32: return PreparedActivation(exact: x, count: columns, for: type)
        case .ggml: return QuantizedActivation(unchecked: x, count: columns, for: type).prepared
        }
    }

    /// `y[i][r] = self[r] · a[i]` for prepared vectors `a` (`y` is `a.count × rows`, row-major),
    /// every weight row read once for all vectors. The caller checked the activations' layout.
    func multiply(prepared a: [PreparedActivation], into y: UnsafeMutablePointer<Float>, threads: Int) {
        guard rows > 0, !a.isEmpty else { return }
        guard columns > 0 else {
            y.update(repeating: 0, count: rows * a.count)
            return
        }
        let m = a.count
        if m == 1 {
            a[0].withView { view in rowProducts(view, into: y, threads: threads) }
            return
        }
        PreparedActivation.withViews(a) { list in
            list.withUnsafeBufferPointer { views in
                guard let v = views.baseAddress else { return }
                rowProducts(v, count: m, into: y, threads: threads)
            }
        }
    }

    /// `y[r] = self[r] · a` for every row, split over the cores in contiguous chunks.
    ///
    /// The parallel body captures only raw values (no `self`, no arrays): a per-row closure that
    /// touched a reference-counted object had both cores retaining and releasing the same object,
    /// and the cache line bouncing between them cost more than the dot products.
    func rowProducts(_ a: PreparedActivation.View, into y: UnsafeMutablePointer<Float>, threads: Int) {
        withUnsafePointer(to: a) { rowProducts($0, count: 1, into: y, threads: threads) }
    }

    /// `y[i · rows + r] = self[r] · a[i]` for `count` activations, each weight row read once for all.
    func rowProducts(_ a: UnsafePointer<PreparedActivation.View>, count m: Int, into y: UnsafeMutablePointer<Float>, threads: Int) {
        guard rows > 0, let base = bytes.baseAddress else { return }
        let type = self.type, columns = self.columns, rowBytes = self.rowBytes, n = rows
        let workers = min(max(threads, 1), max(1, n * rowBytes * m / 32_768))
        let chunks = workers == 1 ? 1 : min(n, workers * 8)
        KernelWorkers.run(chunks, threads: workers) { c in
            let r0 = n * c / chunks, r1 = n * (c + 1) / chunks
            Self.products(type, columns, rowBytes, base, r0..<r1, a, count: m, y + r0, ldy: n)
        }
    }

    /// One row against one prepared activation, through the same kernels as the matrix products.
    private func product(row r: Int, _ a: PreparedActivation.View) -> Float {
        var y: Float = 0
        Self.products(type, columns, rowBytes, bytes.baseAddress.unsafelyUnwrapped, r..<(r + 1), a, &y)  // invariant: callers checked r < rows, so storage exists
        return y
    }

    /// out[i] = row (rows.lowerBound + i) · a: the native row kernels when the activation is in
    /// their layout, else the Swift kernel row by row.
    @inline(__always)
    static func products(_ type: GGMLType, _ columns: Int, _ rowBytes: Int, _ base: UnsafeRawPointer, _ rows: Range<Int>,
                         _ a: PreparedActivation.View, _ out: UnsafeMutablePointer<Float>) {
        guard !rows.isEmpty else { return }
        if a.native {
            NativeKernels.rows(type, base + rows.lowerBound * rowBytes, rowBytes: rowBytes, rows: rows.count, columns: columns, a, into: out)
            return
        }
        for r in rows { out[r - rows.lowerBound] = kernel(type, columns, base + r * rowBytes, a) }
    }

    /// out[i · ldy + r - rows.lowerBound] = row r · a[i] for `m` activations: exact activations in
    /// the native layout go through the C kernel that widens each block once for several vectors;
    /// anything else row by row per vector.
    @inline(__always)
    static func products(_ type: GGMLType, _ columns: Int, _ rowBytes: Int, _ base: UnsafeRawPointer, _ rows: Range<Int>,
                         _ a: UnsafePointer<PreparedActivation.View>, count m: Int, _ out: UnsafeMutablePointer<Float>, ldy: Int) {
        guard !rows.isEmpty else { return }
        if m > 1 && NativeKernels.supports(type) && (0..<m).allSatisfy({ a[$0].native && a[$0].encoded == nil }) {
            NativeKernels.rows(type, base + rows.lowerBound * rowBytes, rowBytes: rowBytes, rows: rows.count, columns: columns,
                               exact: a, count: m, into: out, ldo: ldy)
            return
        }
        for i in 0..<m { products(type, columns, rowBytes, base, rows, a[i], out + i * ldy) }
    }

    /// One matrix's part of a fused job: where its rows are and where its outputs go.
    struct RowJob {
        let base: UnsafeRawPointer
        let rows: Int
        let out: UnsafeMutablePointer<Float>
    }

    /// Several matrices of one type and width against the same prepared activations, as one
    /// parallel job over all their rows (Q, K and V; gate and up): one hand-off to the workers
    /// instead of one per matrix. `out` of job j receives `count × rows_j` values, row-major.
    static func rowProducts(_ jobs: [RowJob], type: GGMLType, columns: Int, rowBytes: Int,
                            _ a: UnsafePointer<PreparedActivation.View>, count m: Int, threads: Int) {
        let total = jobs.reduce(0) { $0 + $1.rows }
        guard total > 0 else { return }
        let workers = min(max(threads, 1), max(1, total * rowBytes * m / 32_768))
        let chunks = workers == 1 ? 1 : min(total, workers * 8)
        jobs.withUnsafeBufferPointer { list in
            KernelWorkers.run(chunks, threads: workers) { c in
                var g = total * c / chunks
                let end = total * (c + 1) / chunks
                // Walk the jobs that global rows g..<end fall in.
                var j = 0, offset = 0
                while g < end {
                    while offset + list[j].rows <= g { offset += list[j].rows; j += 1 }
                    let job = list[j]
                    let stop = min(end, offset + job.rows)
                    products(type, columns, rowBytes, job.base, (g - offset)..<(stop - offset), a, count: m,
                             job.out + (g - offset), ldy: job.rows)
                    g = stop
                }
            }
        }
    }

    // MARK: Kernel dispatch

    @inline(__always)
    static func kernel(_ type: GGMLType, _ columns: Int, _ w: UnsafeRawPointer, _ a: PreparedActivation.View) -> Float {
        switch type {
        case .f32: return BlockDot.f32(w, a.values, count: columns)
        case .f16: return BlockDot.halves(w, a.values, count: columns, brain: false)
        case .bf16: return BlockDot.halves(w, a.values, count: columns, brain: true)
        case .q8_0:
            if let ints = a.integers { return IntegerDot.q8_0(w, a, ints, blocks: columns / 32) }
            return BlockDot.q8_0(w, a, blocks: columns / 32)
        case .q4_0: return BlockDot.q4_0(w, a, blocks: columns / 32)
        case .q4_1:
            if let ints = a.integers { return IntegerDot.q4_1(w, a, ints, blocks: columns / 32) }
            return BlockDot.q4_1(w, a, blocks: columns / 32)
        case .q4_K: return BlockDot.q4_K(w, a, superBlocks: columns / 256)
        case .q6_K: return BlockDot.q6_K(w, a, superBlocks: columns / 256)
        default: return .nan  // invariant: init rejects types without kernels
        }
    }
}

/// An activation vector converted to a weight type's ggml `vec_dot_type`: Q8_0 for Q8_0/Q4_0
/// weights, Q8_1 for Q4_1, Q8_K for Q4_K/Q6_K, and `Float` values rounded to f16/bf16 for the half
/// types (F32 weights keep the vector as is). Quantise once, use with every matrix of that type.
public struct QuantizedActivation: Sendable {
    /// The block format of `bytes` (`.f32` for the float types, whose values are stored as Float).
    public let format: GGMLType
    /// Number of values represented.
    public let count: Int
    /// The weight type this activation was prepared for.
    public let weightType: GGMLType
    private let storage: [UInt8]
    /// The values in the kernels' layout, computed once and shared by every matvec using this activation.
    let prepared: PreparedActivation

    /// The activation format ggml pairs with `weightType`.
    public static func format(for weightType: GGMLType) -> GGMLType {
        switch weightType {
        case .q8_0, .q4_0: return .q8_0
        case .q4_1: return .q8_1
        case .q4_K, .q6_K: return .q8_K
        default: return .f32
        }
    }

    /// Quantises `x` for dot products with `weightType` weights.
    public init(quantizing x: [Float], for weightType: GGMLType) throws {
        guard weightType.isSupportedByKernels else {
            throw QuantError.unsupportedType(name: "activation", type: weightType)
        }
        let block = weightType.blockSize
        guard x.count % block == 0 else {
            throw QuantError.invalidShape(name: "activation", reason: "length \(x.count) is not a multiple of \(block)")
        }
        let values = x.isEmpty ? [0] : x  // an empty array may have no base address
        self = values.withUnsafeBufferPointer { b in
            QuantizedActivation(unchecked: b.baseAddress.unsafelyUnwrapped, count: x.count, for: weightType)  // invariant: non-empty
        }
    }

    /// Quantises without checks; `count` is a whole number of `weightType` blocks.
    init(unchecked x: UnsafePointer<Float>, count: Int, for weightType: GGMLType) {
        let format = Self.format(for: weightType)
        self.format = format
        self.count = count
        self.weightType = weightType
        let bytes: Int
        switch format {
        case .q8_0: bytes = count / 32 * QuantBlocks.q8_0Bytes
        case .q8_1: bytes = count / 32 * QuantBlocks.q8_1Bytes
        case .q8_K: bytes = count / 256 * QuantBlocks.q8_KBytes
        default: bytes = count * 4
        }
        storage = [UInt8](unsafeUninitializedCapacity: max(bytes, 1)) { buf, n in
            let out = UnsafeMutableRawPointer(buf.baseAddress.unsafelyUnwrapped)  // invariant: capacity ≥ 1
            switch format {
            case .q8_0: ActivationQuantization.quantizeQ8_0(x, count: count, into: out)
            case .q8_1: ActivationQuantization.quantizeQ8_1(x, count: count, into: out)
            case .q8_K: ActivationQuantization.quantizeQ8_K(x, count: count, into: out)
            default:
                let f = out.bindMemory(to: Float.self, capacity: count)
                for i in 0..<count {
                    switch weightType {
                    // ggml converts the activation to the weight's half type before an F16/BF16 dot.
                    case .f16: f[i] = HalfFloat.float(fromHalfBits: HalfFloat.halfBits(from: x[i]))
                    case .bf16: f[i] = HalfFloat.float(fromBFloat16Bits: HalfFloat.bfloat16Bits(from: x[i]))
                    default: f[i] = x[i]
                    }
                }
            }
            n = max(bytes, 1)
        }
        prepared = storage.withUnsafeBytes { raw in
            PreparedActivation(encoded: raw.baseAddress.unsafelyUnwrapped, format: format, weightType: weightType,
                               count: count)  // invariant: storage has at least one byte
        }
    }

    /// The encoded blocks (ggml's byte layout for Q8_0/Q8_1/Q8_K; little-endian Floats otherwise).
    public var encodedBytes: [UInt8] { count == 0 ? [] : storage }
}
