/// The 13 GGUF metadata value types; the raw value is the on-disk type id.
public enum GGUFValueType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Bytes of one value of a fixed-size type; nil for strings and arrays.
    public var fixedSize: Int? {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string, .array: return nil
        }
    }

    /// The fewest bytes one value can take on disk: a lower bound that lets the reader reject an
    /// array count before allocating for it (a string is at least its 8-byte length, an array at
    /// least its element type and count).
    var minimumEncodedSize: Int {
        switch self {
        case .string: return 8
        case .array: return 12
        default: return fixedSize ?? 1  // invariant: every other case has a fixed size
        }
    }

    /// The upper-case name GGUF tools print (`UINT32`, `ARRAY`, …).
    public var description: String {
        switch self {
        case .uint8: return "UINT8"
        case .int8: return "INT8"
        case .uint16: return "UINT16"
        case .int16: return "INT16"
        case .uint32: return "UINT32"
        case .int32: return "INT32"
        case .float32: return "FLOAT32"
        case .bool: return "BOOL"
        case .string: return "STRING"
        case .array: return "ARRAY"
        case .uint64: return "UINT64"
        case .int64: return "INT64"
        case .float64: return "FLOAT64"
        }
    }
}

/// One metadata value, typed exactly as the file stores it.
public enum GGUFValue: Sendable, Equatable, CustomStringConvertible {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case string(String)
    case array(GGUFArray)
    case uint64(UInt64)
    case int64(Int64)
    case float64(Double)

    /// The on-disk type of this value.
    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        }
    }

    /// `UINT32`, `ARRAY[STRING]`, `ARRAY[ARRAY]`: the spelling the fixture index uses.
    public var typeName: String {
        if case let .array(a) = self { return "ARRAY[\(a.elementType)]" }
        return type.description
    }

    /// Any integer type as `Int`, when it fits; nil for other types.
    public var intValue: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return Int(exactly: v)
        case let .int64(v): return Int(exactly: v)
        default: return nil
        }
    }

    /// A float of either width as `Double`; nil for other types (integers are not silently
    /// accepted as floats, which would hide a mis-typed key).
    public var doubleValue: Double? {
        switch self {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case let .uint8(v): return "\(v)"
        case let .int8(v): return "\(v)"
        case let .uint16(v): return "\(v)"
        case let .int16(v): return "\(v)"
        case let .uint32(v): return "\(v)"
        case let .int32(v): return "\(v)"
        case let .float32(v): return "\(v)"
        case let .bool(v): return "\(v)"
        case let .string(v): return "\"\(v)\""
        case let .array(a): return "[\(a.count) × \(a.elementType)]"
        case let .uint64(v): return "\(v)"
        case let .int64(v): return "\(v)"
        case let .float64(v): return "\(v)"
        }
    }
}

/// A metadata array: homogeneous, stored as a typed Swift array (49,152 token strings or ids
/// should not become 49,152 boxed enum values). Nested arrays are arrays of `GGUFArray`, each
/// with its own element type, as the format allows.
public enum GGUFArray: Sendable, Equatable {
    case uint8([UInt8])
    case int8([Int8])
    case uint16([UInt16])
    case int16([Int16])
    case uint32([UInt32])
    case int32([Int32])
    case float32([Float])
    case bool([Bool])
    case string([String])
    case array([GGUFArray])
    case uint64([UInt64])
    case int64([Int64])
    case float64([Double])

    /// The type of every element.
    public var elementType: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        }
    }

    /// Number of elements.
    public var count: Int {
        switch self {
        case let .uint8(a): return a.count
        case let .int8(a): return a.count
        case let .uint16(a): return a.count
        case let .int16(a): return a.count
        case let .uint32(a): return a.count
        case let .int32(a): return a.count
        case let .float32(a): return a.count
        case let .bool(a): return a.count
        case let .string(a): return a.count
        case let .array(a): return a.count
        case let .uint64(a): return a.count
        case let .int64(a): return a.count
        case let .float64(a): return a.count
        }
    }

    /// Elements of any integer type as `Int`; nil if the elements are not integers or one does
    /// not fit.
    public var intValues: [Int]? {
        switch self {
        case let .uint8(a): return a.map { Int($0) }
        case let .int8(a): return a.map { Int($0) }
        case let .uint16(a): return a.map { Int($0) }
        case let .int16(a): return a.map { Int($0) }
        case let .uint32(a): return a.map { Int($0) }
        case let .int32(a): return a.map { Int($0) }
        case let .uint64(a):
            var out: [Int] = []
            out.reserveCapacity(a.count)
            for v in a { guard let i = Int(exactly: v) else { return nil }; out.append(i) }
            return out
        case let .int64(a):
            var out: [Int] = []
            out.reserveCapacity(a.count)
            for v in a { guard let i = Int(exactly: v) else { return nil }; out.append(i) }
            return out
        default: return nil
        }
    }

    /// Elements of either float width as `Float`; nil for other element types.
    public var floatValues: [Float]? {
        switch self {
        case let .float32(a): return a
        case let .float64(a): return a.map { Float($0) }
        default: return nil
        }
    }
}
