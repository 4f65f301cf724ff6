import Foundation

/// A cheap content fingerprint of a checkpoint folder for cache keys: it hashes config,
/// tokenizer and processor files whole, and for each weight file its size, header and 64
/// samples of 4 KiB spread over the data, so re-randomised or re-trained weights change it
/// without reading many gigabytes.
public enum CheckpointFingerprint {
    /// A folder's fingerprint, or a single model file's (GGUF): its size, its first 4 MiB (header,
    /// metadata, tokenizer) and 64 samples of 4 KiB spread over the rest.
    public static func compute(path: String) throws -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else {
            return try compute(directory: path)
        }
        var h = FNV128()
        let file = try MappedFile(path: path)
        addWeights(file, head: min(file.size, 4 << 20), to: &h)
        return h.hex
    }

    public static func compute(directory: String) throws -> String {
        var h = FNV128()
        let fm = FileManager.default
        let names = try fm.contentsOfDirectory(atPath: directory).sorted()
        for name in names {
            let path = (directory as NSString).appendingPathComponent(name)
            if name.hasSuffix(".json") || name.hasSuffix(".jinja") {
                h.add(Array(name.utf8))
                if let d = fm.contents(atPath: path) { h.add([UInt8](d)) }
            } else if name.hasSuffix(".safetensors") {
                h.add(Array(name.utf8))
                let file = try MappedFile(path: path)
                // The JSON header, whose length is the first 8 bytes.
                let headerLength = file.size >= 8 ? file.base.loadUnaligned(as: UInt64.self) : 0
                addWeights(file, head: min(file.size, 8 + Int(min(headerLength, UInt64(file.size)))), to: &h)
            }
        }
        return h.hex
    }

    /// A weight file's size, its first `head` bytes whole and 64 samples of 4 KiB after them.
    private static func addWeights(_ file: MappedFile, head: Int, to h: inout FNV128) {
        h.add(withUnsafeBytes(of: UInt64(file.size), Array.init))
        h.add(UnsafeRawBufferPointer(start: file.base, count: head))
        let span = max(1, file.size - head)
        for k in 0..<64 {
            let offset = head + span / 64 * k
            let count = min(4096, file.size - offset)
            if count > 0 { h.add(UnsafeRawBufferPointer(start: file.base + offset, count: count)) }
        }
    }
}

/// FNV-1a over 128 bits (two independent 64-bit lanes with different offsets).
struct FNV128 {
    var a: UInt64 = 0xcbf2_9ce4_8422_2325
    var b: UInt64 = 0x6c62_272e_07bb_0142
    mutating func add<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        for x in bytes {
            a = (a ^ UInt64(x)) &* 0x0000_0100_0000_01B3
            b = (b ^ UInt64(x)) &* 0x0000_0100_0000_01B3 &+ 0x9E37_79B9
        }
    }
    var hex: String { String(format: "%016llx%016llx", a, b) }
}
