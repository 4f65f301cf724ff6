import Foundation

/// MD5 (RFC 1321), streaming. Only for checking downloads against the checksums VLMEvalKit
/// publishes (`DATASET_MD5`); Assay's own content hashes are SHA-256.
public struct MD5: Sendable {
    private var state: (UInt32, UInt32, UInt32, UInt32) = (0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476)
    private var buffer: [UInt8] = []
    private var length: UInt64 = 0

    private static let shifts: [UInt32] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
        5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
        4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
        6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ]

    /// floor(abs(sin(i + 1)) × 2³²), as the RFC tabulates.
    private static let table: [UInt32] = (0..<64).map { UInt32(truncatingIfNeeded: Int64(abs(sin(Double($0 + 1))) * 4_294_967_296)) }

    public init() {}

    public mutating func update(_ data: Data) {
        length &+= UInt64(data.count)
        data.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            var index = 0
            while !buffer.isEmpty && index < bytes.count {
                buffer.append(bytes[index])
                index += 1
                if buffer.count == 64 {
                    buffer.withUnsafeBufferPointer { compress($0) }
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            while index + 64 <= bytes.count {
                compress(UnsafeBufferPointer(rebasing: bytes[index..<(index + 64)]))
                index += 64
            }
            if index < bytes.count { buffer.append(contentsOf: bytes[index...]) }
        }
    }

    public mutating func update(_ string: String) { update(Data(string.utf8)) }

    public mutating func finalize() -> [UInt8] {
        let bitLength = length &* 8
        var tail = buffer
        tail.append(0x80)
        while tail.count % 64 != 56 { tail.append(0) }
        for i in 0..<8 { tail.append(UInt8(truncatingIfNeeded: bitLength >> (8 * UInt64(i)))) }
        for start in stride(from: 0, to: tail.count, by: 64) {
            tail[start..<(start + 64)].withUnsafeBufferPointer { compress($0) }
        }
        buffer.removeAll()
        var out: [UInt8] = []
        for word in [state.0, state.1, state.2, state.3] {
            for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: word >> (8 * UInt32(i)))) }
        }
        return out
    }

    private mutating func compress(_ block: UnsafeBufferPointer<UInt8>) {
        var m = [UInt32](repeating: 0, count: 16)
        for i in 0..<16 {
            m[i] = UInt32(block[4 * i]) | UInt32(block[4 * i + 1]) << 8 | UInt32(block[4 * i + 2]) << 16 | UInt32(block[4 * i + 3]) << 24
        }
        var (a, b, c, d) = state
        for i in 0..<64 {
            var f: UInt32
            let g: Int
            switch i {
            case 0..<16: f = (b & c) | (~b & d); g = i
            case 16..<32: f = (d & b) | (~d & c); g = (5 * i + 1) % 16
            case 32..<48: f = b ^ c ^ d; g = (3 * i + 5) % 16
            default: f = c ^ (b | ~d); g = (7 * i) % 16
            }
            f = f &+ a &+ Self.table[i] &+ m[g]
            a = d
            d = c
            c = b
            b = b &+ ((f << Self.shifts[i]) | (f >> (32 - Self.shifts[i])))
        }
        state = (state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d)
    }

    /// Lower-case hex MD5 of `data`.
    public static func hex(_ data: Data) -> String {
        var md5 = MD5()
        md5.update(data)
        return md5.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Lower-case hex MD5 of a file, read in 4 MiB chunks.
    public static func hex(fileAt url: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var md5 = MD5()
        while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty {
            md5.update(chunk)
        }
        return md5.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
