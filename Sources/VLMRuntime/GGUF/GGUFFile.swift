import Foundation

/// A GGUF model file (versions 2 and 3), memory-mapped and validated.
///
/// Opening a file parses the header, every metadata value and every tensor info, and checks them
/// against the file size before anything is allocated or read: string lengths and array counts
/// against the bytes left, tensor shapes against their type's block size, tensor byte ranges against
/// the data section (so a truncated download fails at open, naming the tensor). Tensor bytes are
/// not copied; `tensor(named:)` returns a view into the mapping.
public final class GGUFFile: @unchecked Sendable {  // @unchecked: immutable after init; storage is read-only
    /// Default `general.alignment` when the key is absent.
    public static let defaultAlignment = 32
    /// Deepest array nesting the reader accepts; real files never nest, and a bound keeps a
    /// hostile file from exhausting the stack.
    public static let maximumArrayNesting = 8
    /// ggml's `GGML_MAX_DIMS`.
    public static let maximumDimensions = 4

    /// The path (or name) the file was opened from, as used in error messages.
    public let name: String
    /// Format version, 2 or 3.
    public let version: UInt32
    /// All key/value pairs in file order.
    public let metadata: GGUFMetadata
    /// All tensor infos in file order.
    public let tensors: [GGUFTensorInfo]
    /// Alignment of the data section and of every tensor offset within it.
    public let alignment: Int
    /// Absolute file offset where the tensor data section starts.
    public let dataSectionOffset: Int
    /// The bytes of the whole file.
    public let storage: GGUFStorage
    private let tensorIndex: [String: Int]

    /// Size of the file in bytes.
    public var fileSize: Int { storage.count }

    /// Memory-maps and parses the file at `path`.
    public convenience init(path: String) throws {
        try self.init(storage: GGUFStorage(mappingFileAt: path), name: path)
    }

    /// Memory-maps and parses the file at `url`.
    public convenience init(url: URL) throws {
        try self.init(path: url.path)
    }

    /// Parses a GGUF image held in memory (tests, files produced by `GGUFWriter`).
    public convenience init(bytes: [UInt8], name: String = "<memory>") throws {
        try self.init(storage: GGUFStorage(copying: bytes), name: name)
    }

    /// Parses `storage`; `name` labels errors.
    public init(storage: GGUFStorage, name: String) throws {
        self.storage = storage
        self.name = name
        var reader = GGUFReader(storage: storage, file: name)

        let magic = try reader.bytes(4, context: "magic")
        guard magic == [0x47, 0x47, 0x55, 0x46] else { throw GGUFError.badMagic(file: name, found: magic) }
        version = try reader.u32("version")
        guard version == 2 || version == 3 else { throw GGUFError.unsupportedVersion(file: name, version: version) }
        let tensorCount = try reader.u64("tensor count")
        let kvCount = try reader.u64("metadata count")

        // A key/value pair takes at least 13 bytes (length, type, one byte), a tensor info 24.
        try reader.checkCount(kvCount, minimumBytesEach: 13, context: "metadata key/value count")
        var meta = GGUFMetadata(file: name)
        for index in 0..<kvCount {
            let key = try reader.string(context: "metadata key #\(index)")
            if meta.contains(key) { throw GGUFError.duplicateKey(file: name, key: key) }
            let rawType = try reader.u32("type of key '\(key)'")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw GGUFError.unknownValueType(file: name, key: key, rawType: rawType)
            }
            meta.set(key, try reader.value(of: type, key: key, depth: 0))
        }
        metadata = meta

        alignment = try Self.alignment(from: meta, file: name)

        try reader.checkCount(tensorCount, minimumBytesEach: 24, context: "tensor count")
        var raw: [(name: String, dims: [Int], type: GGMLType, offset: UInt64, elements: Int, bytes: Int)] = []
        raw.reserveCapacity(Int(tensorCount))  // invariant: checkCount bounded it by the file size
        var index: [String: Int] = [:]
        for i in 0..<tensorCount {
            let tensorName = try reader.string(context: "name of tensor #\(i)")
            if index[tensorName] != nil { throw GGUFError.duplicateTensor(file: name, tensor: tensorName) }
            index[tensorName] = raw.count
            let nDims = try reader.u32("dimension count of tensor '\(tensorName)'")
            guard nDims <= UInt32(Self.maximumDimensions) else {
                throw GGUFError.invalidTensorShape(file: name, tensor: tensorName,
                                                   reason: "\(nDims) dimensions (at most \(Self.maximumDimensions))")
            }
            var dims: [Int] = []
            var elements = 1
            for d in 0..<Int(nDims) {
                let extent = try reader.u64("dimension \(d) of tensor '\(tensorName)'")
                guard let e = Int(exactly: extent), e <= Int(Int64.max) else {
                    throw GGUFError.invalidTensorShape(file: name, tensor: tensorName, reason: "dimension \(d) is \(extent)")
                }
                dims.append(e)
                let (product, overflow) = elements.multipliedReportingOverflow(by: e)
                guard !overflow else {
                    throw GGUFError.invalidTensorShape(file: name, tensor: tensorName,
                                                       reason: "element count of \(dims) overflows")
                }
                elements = product
            }
            let rawType = try reader.u32("type of tensor '\(tensorName)'")
            guard let type = GGMLType(rawValue: rawType) else {
                throw GGUFError.unknownTensorType(file: name, tensor: tensorName, rawType: rawType)
            }
            let offset = try reader.u64("data offset of tensor '\(tensorName)'")
            let rowLength = dims.first ?? 1
            guard rowLength % type.blockSize == 0, let bytes = type.byteCount(elements: elements) else {
                throw GGUFError.invalidTensorShape(
                    file: name, tensor: tensorName,
                    reason: "row length \(rowLength) is not a multiple of the \(type) block size \(type.blockSize)")
            }
            raw.append((tensorName, dims, type, offset, elements, bytes))
        }

        let headerEnd = reader.offset
        let (padded, overflow) = headerEnd.addingReportingOverflow(alignment - 1)
        guard !overflow else { throw GGUFError.invalidAlignment(file: name, value: "\(alignment)") }
        dataSectionOffset = padded / alignment * alignment
        let dataBytes = max(0, storage.count - dataSectionOffset)

        var infos: [GGUFTensorInfo] = []
        infos.reserveCapacity(raw.count)
        for t in raw {
            guard t.offset % UInt64(alignment) == 0 else {
                throw GGUFError.misalignedTensor(file: name, tensor: t.name, offset: t.offset, alignment: alignment)
            }
            guard t.offset <= UInt64(dataBytes), t.bytes <= dataBytes - Int(t.offset) else {
                throw GGUFError.tensorOutOfBounds(file: name, tensor: t.name, offset: t.offset, bytes: t.bytes,
                                                  dataSectionBytes: dataBytes)
            }
            infos.append(GGUFTensorInfo(name: t.name, dimensions: t.dims, type: t.type, offset: Int(t.offset),
                                        absoluteOffset: dataSectionOffset + Int(t.offset), byteCount: t.bytes,
                                        elementCount: t.elements))
        }
        let byOffset = infos.filter { $0.byteCount > 0 }.sorted { $0.offset < $1.offset }
        for (a, b) in zip(byOffset, byOffset.dropFirst()) where a.offset + a.byteCount > b.offset {
            throw GGUFError.overlappingTensors(file: name, first: a.name, second: b.name)
        }
        tensors = infos
        tensorIndex = index
    }

    private static func alignment(from meta: GGUFMetadata, file: String) throws -> Int {
        guard let value = meta["general.alignment"] else { return defaultAlignment }
        guard let a = value.intValue, a > 0, a & (a - 1) == 0 else {
            throw GGUFError.invalidAlignment(file: file, value: value.description)
        }
        return a
    }

    // MARK: Tensors

    /// The info of the tensor called `name`, or nil.
    public func tensorInfo(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The tensor called `name` with its bytes (no copy).
    public func tensor(named tensorName: String) throws -> GGUFTensor {
        guard let info = tensorInfo(named: tensorName) else {
            throw GGUFError.tensorNotFound(file: name, tensor: tensorName)
        }
        let bytes = UnsafeRawBufferPointer(start: storage.base + info.absoluteOffset, count: info.byteCount)
        return GGUFTensor(info: info, bytes: bytes, storage: storage)
    }

    /// The tensor called `name` as a kernel-ready matrix (rows × `dimensions[0]`).
    public func matrix(named tensorName: String) throws -> QuantizedMatrix {
        try tensor(named: tensorName).matrix()
    }

    /// Number of tensors of each type name, e.g. `["Q4_1": 210, "Q8_0": 1, "F32": 61]`.
    public var tensorTypeCounts: [String: Int] {
        tensors.reduce(into: [:]) { $0[$1.type.name, default: 0] += 1 }
    }
}

/// A bounds-checked little-endian cursor over the file bytes: every read first checks that the
/// bytes exist, and every count is checked against the bytes left before anything is allocated.
struct GGUFReader {
    let base: UnsafeRawPointer
    let count: Int
    let file: String
    private(set) var offset = 0

    init(storage: GGUFStorage, file: String) {
        base = storage.base
        count = storage.count
        self.file = file
    }

    var bytesLeft: Int { count - offset }

    private func need(_ n: Int, _ context: @autoclosure () -> String) throws {
        guard n <= bytesLeft else {
            throw GGUFError.truncated(file: file, context: context(), offset: offset, needed: n, available: bytesLeft)
        }
    }

    mutating func bytes(_ n: Int, context: String) throws -> [UInt8] {
        try need(n, context)
        defer { offset += n }
        return Array(UnsafeRawBufferPointer(start: base + offset, count: n))
    }

    mutating func load<T: FixedWidthInteger>(_: T.Type, _ context: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, context())
        defer { offset += MemoryLayout<T>.size }
        return T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    mutating func u32(_ context: @autoclosure () -> String) throws -> UInt32 { try load(UInt32.self, context()) }
    mutating func u64(_ context: @autoclosure () -> String) throws -> UInt64 { try load(UInt64.self, context()) }

    /// Rejects `count` items of at least `minimumBytesEach` bytes when they cannot fit in the rest
    /// of the file: the guard that keeps a hostile count from becoming a huge allocation or loop.
    func checkCount(_ n: UInt64, minimumBytesEach: Int, context: String) throws {
        guard n <= UInt64(bytesLeft / max(minimumBytesEach, 1)) else {
            throw GGUFError.countTooLarge(file: file, context: context, count: n, bytesLeft: bytesLeft)
        }
    }

    mutating func string(context: @autoclosure () -> String) throws -> String {
        let length = try u64("length of \(context())")
        guard length <= UInt64(bytesLeft) else {
            throw GGUFError.truncated(file: file, context: context(), offset: offset,
                                      needed: Int(clamping: length), available: bytesLeft)
        }
        let n = Int(length)
        let raw = UnsafeRawBufferPointer(start: base + offset, count: n)
        guard let s = String(validating: raw, as: UTF8.self) else {
            throw GGUFError.invalidUTF8(file: file, context: context())
        }
        offset += n
        return s
    }

    mutating func value(of type: GGUFValueType, key: String, depth: Int) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try load(UInt8.self, "value of '\(key)'"))
        case .int8: return .int8(try load(Int8.self, "value of '\(key)'"))
        case .uint16: return .uint16(try load(UInt16.self, "value of '\(key)'"))
        case .int16: return .int16(try load(Int16.self, "value of '\(key)'"))
        case .uint32: return .uint32(try load(UInt32.self, "value of '\(key)'"))
        case .int32: return .int32(try load(Int32.self, "value of '\(key)'"))
        case .float32: return .float32(Float(bitPattern: try load(UInt32.self, "value of '\(key)'")))
        case .bool: return .bool(try bool(key: key))
        case .string: return .string(try string(context: "value of '\(key)'"))
        case .array: return .array(try array(key: key, depth: depth + 1))
        case .uint64: return .uint64(try load(UInt64.self, "value of '\(key)'"))
        case .int64: return .int64(try load(Int64.self, "value of '\(key)'"))
        case .float64: return .float64(Double(bitPattern: try load(UInt64.self, "value of '\(key)'")))
        }
    }

    private mutating func bool(key: String) throws -> Bool {
        let b = try load(UInt8.self, "value of '\(key)'")
        guard b <= 1 else { throw GGUFError.invalidBool(file: file, key: key, byte: b) }
        return b == 1
    }

    private mutating func array(key: String, depth: Int) throws -> GGUFArray {
        guard depth <= GGUFFile.maximumArrayNesting else {
            throw GGUFError.nestingTooDeep(file: file, key: key, limit: GGUFFile.maximumArrayNesting)
        }
        let rawType = try u32("array element type of '\(key)'")
        guard let type = GGUFValueType(rawValue: rawType) else {
            throw GGUFError.unknownValueType(file: file, key: key, rawType: rawType)
        }
        let n64 = try u64("array length of '\(key)'")
        try checkCount(n64, minimumBytesEach: type.minimumEncodedSize, context: "array '\(key)'")
        let n = Int(n64)  // invariant: checkCount bounded it by the bytes left
        switch type {
        case .uint8: return .uint8(try fixedArray(UInt8.self, n, key))
        case .int8: return .int8(try fixedArray(Int8.self, n, key))
        case .uint16: return .uint16(try fixedArray(UInt16.self, n, key))
        case .int16: return .int16(try fixedArray(Int16.self, n, key))
        case .uint32: return .uint32(try fixedArray(UInt32.self, n, key))
        case .int32: return .int32(try fixedArray(Int32.self, n, key))
        case .float32: return .float32(try fixedArray(UInt32.self, n, key).map { Float(bitPattern: $0) })
        case .uint64: return .uint64(try fixedArray(UInt64.self, n, key))
        case .int64: return .int64(try fixedArray(Int64.self, n, key))
        case .float64: return .float64(try fixedArray(UInt64.self, n, key).map { Double(bitPattern: $0) })
        case .bool:
            var out: [Bool] = []
            out.reserveCapacity(n)
            for _ in 0..<n { out.append(try bool(key: key)) }
            return .bool(out)
        case .string:
            var out: [String] = []
            out.reserveCapacity(n)
            for i in 0..<n { out.append(try string(context: "element \(i) of '\(key)'")) }
            return .string(out)
        case .array:
            var out: [GGUFArray] = []
            out.reserveCapacity(n)
            for _ in 0..<n { out.append(try array(key: key, depth: depth + 1)) }
            return .array(out)
        }
    }

    private mutating func fixedArray<T: FixedWidthInteger>(_: T.Type, _ n: Int, _ key: String) throws -> [T] {
        let size = MemoryLayout<T>.size
        try need(n * size, "array '\(key)'")  // invariant: n * size ≤ bytesLeft by checkCount, no overflow
        let start = base + offset
        offset += n * size
        return (0..<n).map { T(littleEndian: start.loadUnaligned(fromByteOffset: $0 * size, as: T.self)) }
    }
}
