/// The key/value metadata of a GGUF file, in file order, with typed look-ups.
///
/// Optional accessors (`string(_:)`, `int(_:)`, …) return nil for an absent key and throw
/// `GGUFError.typeMismatch` when the key holds another type, so a mis-typed file fails loudly
/// instead of silently falling back to a default. The `require…` variants also throw for absent keys.
public struct GGUFMetadata: Sendable, Equatable {
    /// The file the metadata came from, for error messages.
    public let file: String
    /// Keys in the order the file stores them.
    public private(set) var keys: [String]
    private var values: [String: GGUFValue]

    /// Metadata built in memory (the writer and tests use this; the reader fills it from a file).
    public init(file: String = "<memory>", entries: [(String, GGUFValue)] = []) {
        self.file = file
        self.keys = []
        self.values = [:]
        for (k, v) in entries { set(k, v) }
    }

    /// Adds or replaces a value; a new key goes to the end of the order.
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if values.updateValue(value, forKey: key) == nil { keys.append(key) }
    }

    /// Whether the key exists (used by the reader to reject duplicates).
    public func contains(_ key: String) -> Bool { values[key] != nil }

    /// Number of key/value pairs.
    public var count: Int { keys.count }

    /// The raw value of a key.
    public subscript(key: String) -> GGUFValue? { values[key] }

    /// All pairs in file order.
    public var entries: [(key: String, value: GGUFValue)] {
        keys.compactMap { k in values[k].map { (k, $0) } }
    }

    // MARK: Typed look-ups

    /// A `STRING` value.
    public func string(_ key: String) throws -> String? {
        guard let v = values[key] else { return nil }
        guard case let .string(s) = v else { throw mismatch(key, "STRING", v) }
        return s
    }

    /// Any integer value as `Int` (GGUF writers disagree on UINT32 vs UINT64 for the same key).
    public func int(_ key: String) throws -> Int? {
        guard let v = values[key] else { return nil }
        guard let i = v.intValue else { throw mismatch(key, "an integer that fits in Int", v) }
        return i
    }

    /// A `FLOAT32` or `FLOAT64` value.
    public func double(_ key: String) throws -> Double? {
        guard let v = values[key] else { return nil }
        guard let d = v.doubleValue else { throw mismatch(key, "FLOAT32 or FLOAT64", v) }
        return d
    }

    /// A `FLOAT32` or `FLOAT64` value as `Float` (a FLOAT32 key round-trips exactly).
    public func float(_ key: String) throws -> Float? {
        guard let v = values[key] else { return nil }
        switch v {
        case let .float32(f): return f
        case let .float64(d): return Float(d)
        default: throw mismatch(key, "FLOAT32 or FLOAT64", v)
        }
    }

    /// A `BOOL` value.
    public func bool(_ key: String) throws -> Bool? {
        guard let v = values[key] else { return nil }
        guard case let .bool(b) = v else { throw mismatch(key, "BOOL", v) }
        return b
    }

    /// An array value of any element type.
    public func array(_ key: String) throws -> GGUFArray? {
        guard let v = values[key] else { return nil }
        guard case let .array(a) = v else { throw mismatch(key, "ARRAY", v) }
        return a
    }

    /// An `ARRAY[STRING]` value.
    public func strings(_ key: String) throws -> [String]? {
        guard let v = values[key] else { return nil }
        guard case let .array(.string(a)) = v else { throw mismatch(key, "ARRAY[STRING]", v) }
        return a
    }

    /// An array of any integer element type as `[Int]`.
    public func ints(_ key: String) throws -> [Int]? {
        guard let v = values[key] else { return nil }
        guard case let .array(a) = v, let ints = a.intValues else { throw mismatch(key, "ARRAY of integers", v) }
        return ints
    }

    /// An array of `FLOAT32` or `FLOAT64` as `[Float]`.
    public func floats(_ key: String) throws -> [Float]? {
        guard let v = values[key] else { return nil }
        guard case let .array(a) = v, let fs = a.floatValues else { throw mismatch(key, "ARRAY of floats", v) }
        return fs
    }

    /// Like `string(_:)`, but an absent key is an error.
    public func requireString(_ key: String) throws -> String {
        guard let s = try string(key) else { throw GGUFError.missingKey(file: file, key: key) }
        return s
    }

    /// Like `int(_:)`, but an absent key is an error.
    public func requireInt(_ key: String) throws -> Int {
        guard let i = try int(key) else { throw GGUFError.missingKey(file: file, key: key) }
        return i
    }

    /// Like `float(_:)`, but an absent key is an error.
    public func requireFloat(_ key: String) throws -> Float {
        guard let f = try float(key) else { throw GGUFError.missingKey(file: file, key: key) }
        return f
    }

    /// Like `strings(_:)`, but an absent key is an error.
    public func requireStrings(_ key: String) throws -> [String] {
        guard let s = try strings(key) else { throw GGUFError.missingKey(file: file, key: key) }
        return s
    }

    private func mismatch(_ key: String, _ expected: String, _ found: GGUFValue) -> GGUFError {
        .typeMismatch(file: file, key: key, expected: expected, found: found.typeName)
    }

    public static func == (a: GGUFMetadata, b: GGUFMetadata) -> Bool {
        a.keys == b.keys && a.values == b.values
    }
}
