import Foundation

/// Builds GGUF files (version 3 by default): metadata of any value type plus tensors whose bytes
/// are already in their block format.
///
/// Used to write small valid files (and, by patching bytes, corrupt ones) in tests, and to save
/// weights quantised at load time so the next start can map them directly.
public struct GGUFWriter: Sendable {
    /// One tensor to write.
    public struct Tensor: Sendable {
        public let name: String
        public let dimensions: [Int]
        public let type: GGMLType
        public let data: [UInt8]
    }

    /// Format version written into the header (2 and 3 have the same layout).
    public var version: UInt32
    /// Key/value pairs, written in order. Set `general.alignment` here to change the alignment.
    public var metadata: GGUFMetadata
    /// Tensors, written in order.
    public private(set) var tensors: [Tensor] = []

    public init(version: UInt32 = 3, metadata: GGUFMetadata = GGUFMetadata()) {
        self.version = version
        self.metadata = metadata
    }

    /// Adds a tensor; `data` must be exactly the bytes its shape and type need.
    public mutating func addTensor(name: String, dimensions: [Int], type: GGMLType, data: [UInt8]) throws {
        var elements: Int? = 1
        for d in dimensions {
            if let e = elements { let (p, o) = e.multipliedReportingOverflow(by: d); elements = o ? nil : p }
        }
        guard let elements, dimensions.count <= GGUFFile.maximumDimensions, dimensions.allSatisfy({ $0 >= 0 }),
              (dimensions.first ?? 1) % type.blockSize == 0,
              let bytes = type.byteCount(elements: elements), bytes == data.count
        else {
            throw GGUFError.invalidTensorShape(file: "<writer>", tensor: name,
                                               reason: "\(dimensions) \(type) does not match \(data.count) bytes")
        }
        tensors.append(Tensor(name: name, dimensions: dimensions, type: type, data: data))
    }

    /// Adds `Float` values as an F32 tensor.
    public mutating func addTensor(name: String, dimensions: [Int], floats: [Float]) throws {
        var data: [UInt8] = []
        data.reserveCapacity(floats.count * 4)
        for f in floats { GGUFWriter.append(f.bitPattern, to: &data) }
        try addTensor(name: name, dimensions: dimensions, type: .f32, data: data)
    }

    /// The alignment the file will use (`general.alignment` or 32).
    public var alignment: Int {
        metadata["general.alignment"]?.intValue ?? GGUFFile.defaultAlignment
    }

    /// The complete file image.
    public func serialize() -> [UInt8] {
        var out: [UInt8] = Array("GGUF".utf8)
        Self.append(version, to: &out)
        Self.append(UInt64(tensors.count), to: &out)
        Self.append(UInt64(metadata.count), to: &out)
        for (key, value) in metadata.entries {
            Self.append(string: key, to: &out)
            Self.append(value.type.rawValue, to: &out)
            Self.append(value: value, to: &out)
        }
        // A hostile or mistyped alignment must not overflow the offset arithmetic; GGUFFile rejects
        // the file on reading if the key itself is invalid.
        let align = (1...(1 << 30)).contains(alignment) ? alignment : GGUFFile.defaultAlignment
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            offset = (offset + t.data.count + align - 1) / align * align
        }
        for (t, off) in zip(tensors, offsets) {
            Self.append(string: t.name, to: &out)
            Self.append(UInt32(t.dimensions.count), to: &out)
            for d in t.dimensions { Self.append(UInt64(d), to: &out) }
            Self.append(t.type.rawValue, to: &out)
            Self.append(UInt64(off), to: &out)
        }
        Self.pad(&out, to: align)
        for t in tensors {
            out += t.data
            Self.pad(&out, to: align)
        }
        return out
    }

    /// Writes the file image to `path`.
    public func write(to path: String) throws {
        try Data(serialize()).write(to: URL(fileURLWithPath: path))
    }

    // MARK: Encoding primitives (public so tests can hand-build malformed files)

    /// Appends a little-endian integer.
    public static func append<T: FixedWidthInteger>(_ v: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out += $0 }
    }

    /// Appends a GGUF string: UInt64 byte length, then UTF-8 bytes.
    public static func append(string s: String, to out: inout [UInt8]) {
        append(UInt64(s.utf8.count), to: &out)
        out += Array(s.utf8)
    }

    /// Appends a value's payload (its type id is written by the caller).
    public static func append(value: GGUFValue, to out: inout [UInt8]) {
        switch value {
        case let .uint8(v): append(v, to: &out)
        case let .int8(v): append(v, to: &out)
        case let .uint16(v): append(v, to: &out)
        case let .int16(v): append(v, to: &out)
        case let .uint32(v): append(v, to: &out)
        case let .int32(v): append(v, to: &out)
        case let .float32(v): append(v.bitPattern, to: &out)
        case let .bool(v): out.append(v ? 1 : 0)
        case let .string(v): append(string: v, to: &out)
        case let .array(a): append(array: a, to: &out)
        case let .uint64(v): append(v, to: &out)
        case let .int64(v): append(v, to: &out)
        case let .float64(v): append(v.bitPattern, to: &out)
        }
    }

    /// Appends an array: element type id, UInt64 count, elements.
    public static func append(array a: GGUFArray, to out: inout [UInt8]) {
        append(a.elementType.rawValue, to: &out)
        append(UInt64(a.count), to: &out)
        switch a {
        case let .uint8(v): v.forEach { append($0, to: &out) }
        case let .int8(v): v.forEach { append($0, to: &out) }
        case let .uint16(v): v.forEach { append($0, to: &out) }
        case let .int16(v): v.forEach { append($0, to: &out) }
        case let .uint32(v): v.forEach { append($0, to: &out) }
        case let .int32(v): v.forEach { append($0, to: &out) }
        case let .float32(v): v.forEach { append($0.bitPattern, to: &out) }
        case let .bool(v): v.forEach { out.append($0 ? 1 : 0) }
        case let .string(v): v.forEach { append(string: $0, to: &out) }
        case let .array(v): v.forEach { append(array: $0, to: &out) }
        case let .uint64(v): v.forEach { append($0, to: &out) }
        case let .int64(v): v.forEach { append($0, to: &out) }
        case let .float64(v): v.forEach { append($0.bitPattern, to: &out) }
        }
    }

    private static func pad(_ out: inout [UInt8], to align: Int) {
        let rem = out.count % align
        if rem != 0 { out += [UInt8](repeating: 0, count: align - rem) }
    }
}
