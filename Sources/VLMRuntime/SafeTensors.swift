import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a safetensors file (or a sharded checkpoint) could not be read. Every case names the file
/// and, where there is one, the tensor.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case truncated(file: String, reason: String)
    case badHeader(file: String, reason: String)
    case tensorOutOfBounds(file: String, tensor: String, end: Int, dataSize: Int)
    case byteCountMismatch(file: String, tensor: String, shape: [Int], dtype: String, expected: Int, actual: Int)
    case unsupportedDType(file: String, tensor: String, dtype: String)
    case missingTensor(name: String, checkpoint: String)
    case wrongShape(file: String, tensor: String, expected: [Int], actual: [Int])
    case badIndex(file: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let f, let r): return "\(f): cannot read safetensors file: \(r)"
        case .truncated(let f, let r): return "\(f): truncated safetensors file: \(r)"
        case .badHeader(let f, let r): return "\(f): invalid safetensors header: \(r)"
        case .tensorOutOfBounds(let f, let t, let end, let size):
            return "\(f): tensor '\(t)' ends at byte \(end) of the data section, but the file holds only \(size) data bytes"
        case .byteCountMismatch(let f, let t, let shape, let dt, let e, let a):
            return "\(f): tensor '\(t)' has shape \(shape) × \(dt) = \(e) bytes, but its offsets span \(a) bytes"
        case .unsupportedDType(let f, let t, let d): return "\(f): tensor '\(t)' has unsupported dtype \(d)"
        case .missingTensor(let n, let c): return "\(c): required tensor '\(n)' is missing"
        case .wrongShape(let f, let t, let e, let a): return "\(f): tensor '\(t)' has shape \(a), expected \(e)"
        case .badIndex(let f, let r): return "\(f): invalid safetensors index: \(r)"
        }
    }
}

/// Element types a safetensors file may declare. Only the float types are used as weights; the
/// integer types appear in golden fixtures.
public enum DType: String, Sendable, CaseIterable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    public var byteSize: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }
}

/// A read-only memory mapping of a whole file. Weights point straight into it, so a checkpoint is
/// never copied into anonymous memory and the page cache can drop pages under pressure.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let base: UnsafeRawPointer
    public let size: Int

    public init(path: String) throws {
        self.path = path
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        let fd = open(path, O_RDONLY | O_NONBLOCK)
        guard fd >= 0 else {
            throw SafeTensorsError.unreadable(file: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw SafeTensorsError.unreadable(file: path, reason: String(cString: strerror(errno)))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw SafeTensorsError.unreadable(file: path, reason: "not a regular file")
        }
        let size = Int(st.st_size)
        guard size >= 8 else {
            throw SafeTensorsError.truncated(file: path, reason: "file has \(size) bytes, fewer than the 8-byte header length")
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw SafeTensorsError.unreadable(file: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        self.base = UnsafeRawPointer(p)
        self.size = size
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), size) }
}

/// Where one tensor lives inside a mapped safetensors file.
public struct TensorEntry: Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Absolute byte offset in the file.
    public let offset: Int
    public let byteCount: Int
    public var elementCount: Int { shape.reduce(1, *) }
}

/// One safetensors file: a validated header and the mapping its tensors point into.
///
/// The header is checked before any tensor is touched: the header length must fit the file and
/// a sane limit, every tensor's offsets must lie inside the data section, and shape × dtype must
/// equal the byte span, so a corrupt file fails with a named error instead of a wild read.
public final class SafeTensorsFile: @unchecked Sendable {
    /// The format's own limit on the JSON header (100 MB).
    public static let maxHeaderBytes = 100_000_000

    public let file: MappedFile
    public let entries: [String: TensorEntry]
    public let metadata: [String: String]
    public var path: String { file.path }

    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws {
        self.file = file
        let path = file.path
        let headerLength = file.base.loadUnaligned(as: UInt64.self).littleEndian
        guard headerLength <= UInt64(Self.maxHeaderBytes) else {
            throw SafeTensorsError.badHeader(file: path, reason: "header length \(headerLength) exceeds the \(Self.maxHeaderBytes)-byte limit")
        }
        let n = Int(headerLength)
        guard 8 + n <= file.size else {
            throw SafeTensorsError.truncated(file: path, reason: "header claims \(n) bytes but the file has only \(file.size - 8) after the length field")
        }
        let headerData = Data(bytes: file.base + 8, count: n)
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: headerData) } catch {
            throw SafeTensorsError.badHeader(file: path, reason: "header is not valid JSON")
        }
        guard let dict = json as? [String: Any] else {
            throw SafeTensorsError.badHeader(file: path, reason: "header is not a JSON object")
        }
        let dataStart = 8 + n
        let dataSize = file.size - dataStart
        var entries: [String: TensorEntry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in dict {
            if name == "__metadata__" {
                if let m = value as? [String: Any] {
                    for (k, v) in m { metadata[k] = v as? String ?? "\(v)" }
                }
                continue
            }
            guard let info = value as? [String: Any] else {
                throw SafeTensorsError.badHeader(file: path, reason: "entry '\(name)' is not an object")
            }
            guard let dtypeName = info["dtype"] as? String else {
                throw SafeTensorsError.badHeader(file: path, reason: "entry '\(name)' has no dtype")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw SafeTensorsError.unsupportedDType(file: path, tensor: name, dtype: dtypeName)
            }
            guard let shapeAny = info["shape"] as? [Any], let offsAny = info["data_offsets"] as? [Any], offsAny.count == 2 else {
                throw SafeTensorsError.badHeader(file: path, reason: "entry '\(name)' needs 'shape' and two 'data_offsets'")
            }
            let shape = try shapeAny.map { v -> Int in
                guard let i = Self.integer(v), i >= 0 else {
                    throw SafeTensorsError.badHeader(file: path, reason: "entry '\(name)' has a negative or non-integer dimension")
                }
                return i
            }
            guard let begin = Self.integer(offsAny[0]), let end = Self.integer(offsAny[1]), begin >= 0, end >= begin else {
                throw SafeTensorsError.badHeader(file: path, reason: "entry '\(name)' has invalid data_offsets")
            }
            guard end <= dataSize else {
                throw SafeTensorsError.tensorOutOfBounds(file: path, tensor: name, end: end, dataSize: dataSize)
            }
            var expected = dtype.byteSize
            for d in shape {
                let (p, overflow) = expected.multipliedReportingOverflow(by: d)
                guard !overflow else {
                    throw SafeTensorsError.badHeader(file: path, reason: "entry '\(name)' shape \(shape) overflows")
                }
                expected = p
            }
            guard expected == end - begin else {
                throw SafeTensorsError.byteCountMismatch(file: path, tensor: name, shape: shape, dtype: dtypeName, expected: expected, actual: end - begin)
            }
            entries[name] = TensorEntry(name: name, dtype: dtype, shape: shape, offset: dataStart + begin, byteCount: end - begin)
        }
        // Two tensors over the same bytes make writing one change the other (and hide a broken
        // or hand-crafted header); the format's own validator refuses them too.
        let ranges = entries.values.filter { $0.byteCount > 0 }.sorted { ($0.offset, $0.name) < ($1.offset, $1.name) }
        for (a, b) in zip(ranges, ranges.dropFirst()) where a.offset + a.byteCount > b.offset {
            throw SafeTensorsError.badHeader(file: path, reason: "tensors '\(a.name)' and '\(b.name)' overlap in data_offsets")
        }
        self.entries = entries
        self.metadata = metadata
    }

    private static func integer(_ v: Any) -> Int? {
        if let n = v as? NSNumber {
            let d = n.doubleValue
            guard d == d.rounded(), abs(d) < 9.0e15 else { return nil }
            return n.intValue
        }
        return nil
    }

    public func pointer(_ entry: TensorEntry) -> UnsafeRawPointer { file.base + entry.offset }

    /// The tensor converted to Float32 (bf16 exactly as `bits << 16`).
    public func floats(_ name: String) throws -> [Float] {
        guard let e = entries[name] else { throw SafeTensorsError.missingTensor(name: name, checkpoint: path) }
        return try floats(e)
    }

    public func floats(_ e: TensorEntry) throws -> [Float] {
        let p = pointer(e)
        let n = e.elementCount
        if n == 0 { return [] }
        switch e.dtype {
        case .f32, .f16, .bf16:
            return [Float](unsafeUninitializedCapacity: n) { buf, count in
                convertToFloat(p, dtype: e.dtype, count: n, into: buf.baseAddress!) // invariant: n > 0 (checked above)
                count = n
            }
        case .f64: return (0..<n).map { Float(p.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self)) }
        case .i64, .i32, .i16, .i8, .u8, .bool: return try integers(e).map { Float($0) }
        }
    }

    /// The tensor as integers (for index tensors in fixtures).
    public func integers(_ name: String) throws -> [Int] {
        guard let e = entries[name] else { throw SafeTensorsError.missingTensor(name: name, checkpoint: path) }
        return try integers(e)
    }

    public func integers(_ e: TensorEntry) throws -> [Int] {
        let p = pointer(e)
        let n = e.elementCount
        switch e.dtype {
        case .i64: return (0..<n).map { Int(p.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self).littleEndian) }
        case .i32: return (0..<n).map { Int(p.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self).littleEndian) }
        case .i16: return (0..<n).map { Int(p.loadUnaligned(fromByteOffset: $0 * 2, as: Int16.self).littleEndian) }
        case .i8: return (0..<n).map { Int(p.load(fromByteOffset: $0, as: Int8.self)) }
        case .u8, .bool: return (0..<n).map { Int(p.load(fromByteOffset: $0, as: UInt8.self)) }
        default: throw SafeTensorsError.unsupportedDType(file: path, tensor: e.name, dtype: e.dtype.rawValue)
        }
    }

    public func bytes(_ name: String) throws -> [UInt8] {
        guard let e = entries[name] else { throw SafeTensorsError.missingTensor(name: name, checkpoint: path) }
        return Array(UnsafeRawBufferPointer(start: pointer(e), count: e.byteCount))
    }
}

/// Converts `count` stored values of a float dtype to Float32. bf16 is exact (`bits << 16`).
func convertToFloat(_ src: UnsafeRawPointer, dtype: DType, count: Int, into dst: UnsafeMutablePointer<Float>) {
    switch dtype {
    case .f32:
        (UnsafeMutableRawPointer(dst)).copyMemory(from: src, byteCount: count * 4)
    case .bf16:
        var i = 0
        while i + 8 <= count {
            let v = src.loadUnaligned(fromByteOffset: i * 2, as: SIMD8<UInt16>.self)
            let f = unsafeBitCast(SIMD8<UInt32>(truncatingIfNeeded: v) &<< 16, to: SIMD8<Float>.self)
            UnsafeMutableRawPointer(dst + i).storeBytes(of: f, as: SIMD8<Float>.self)
            i += 8
        }
        while i < count {
            dst[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16)
            i += 1
        }
    case .f16:
        for i in 0..<count {
            dst[i] = halfToFloat(src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
        }
    default:
        for i in 0..<count { dst[i] = 0 }
    }
}

/// IEEE half → single, by bits, so it does not depend on `Float16` support of the target.
@inline(__always)
func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exp = Int((h >> 10) & 0x1F)
    let mant = UInt32(h & 0x3FF)
    if exp == 0 {
        if mant == 0 { return Float(bitPattern: sign) }
        // subnormal half: value = mant · 2^-24
        let v = Float(mant) * Float(bitPattern: 0x3380_0000)
        return sign != 0 ? -v : v
    }
    if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
    return Float(bitPattern: sign | (UInt32(exp + 112) << 23) | (mant << 13))
}

/// Float32 → bf16 with round-to-nearest-even, as torch does when casting.
@inline(__always)
package func floatToBF16(_ f: Float) -> UInt16 {
    let bits = f.bitPattern
    if f.isNaN { return 0x7FC0 }
    let rounding = ((bits >> 16) & 1) + 0x7FFF
    return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
}

/// A checkpoint's tensors, possibly sharded over several files through `model.safetensors.index.json`.
public final class SafeTensorsCheckpoint: @unchecked Sendable {
    public let directory: String
    public let files: [SafeTensorsFile]
    /// Tensor name → index into `files`.
    private let location: [String: Int]

    public init(directory: String) throws {
        self.directory = directory
        let fm = FileManager.default
        let indexPath = (directory as NSString).appendingPathComponent("model.safetensors.index.json")
        var shardNames: [String] = []
        if fm.fileExists(atPath: indexPath) {
            guard let data = fm.contents(atPath: indexPath),
                  let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw SafeTensorsError.badIndex(file: indexPath, reason: "not a JSON object")
            }
            guard let map = obj["weight_map"] as? [String: String] else {
                throw SafeTensorsError.badIndex(file: indexPath, reason: "missing 'weight_map'")
            }
            for shard in Set(map.values).sorted() {
                guard !shard.contains("/"), !shard.hasPrefix(".") else {
                    throw SafeTensorsError.badIndex(file: indexPath, reason: "shard name '\(shard)' leaves the checkpoint folder")
                }
                shardNames.append(shard)
            }
        } else {
            let listing = (try? fm.contentsOfDirectory(atPath: directory)) ?? []
            shardNames = listing.filter { $0.hasSuffix(".safetensors") }.sorted()
        }
        guard !shardNames.isEmpty else {
            throw SafeTensorsError.unreadable(file: directory, reason: "no .safetensors files in the checkpoint folder")
        }
        var files: [SafeTensorsFile] = []
        var location: [String: Int] = [:]
        for name in shardNames {
            let f = try SafeTensorsFile(path: (directory as NSString).appendingPathComponent(name))
            for key in f.entries.keys { location[key] = files.count }
            files.append(f)
        }
        self.files = files
        self.location = location
    }

    public var tensorNames: [String] { Array(location.keys) }

    public func contains(_ name: String) -> Bool { location[name] != nil }

    /// The file and entry of a tensor.
    public func lookup(_ name: String) throws -> (SafeTensorsFile, TensorEntry) {
        guard let i = location[name], let e = files[i].entries[name] else {
            throw SafeTensorsError.missingTensor(name: name, checkpoint: directory)
        }
        return (files[i], e)
    }
}
