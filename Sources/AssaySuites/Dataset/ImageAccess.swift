import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which image files a dataset may read, and what their bytes must be before they are sent.
///
/// A dataset row's `image_path` is untrusted: a downloaded TSV could name `~/.ssh/id_rsa` and
/// have it sent, base64, to a third-party API. A path must resolve (symlinks followed) to a
/// regular file inside the dataset's own folder or one of `allowedDirectories` (`--allow-dir`),
/// and its bytes must be an image: a known signature with a sane header, then `decode` (the
/// engine passes the runtime's PNG/JPEG decoder) when given.
public struct ImageAccess: Sendable {
    /// Folders besides the dataset's own that image paths may point into.
    public var allowedDirectories: [URL]
    /// A full decode of the bytes (throws if they are not a picture); `nil` checks the header only.
    public var decode: (@Sendable (Data, String) throws -> Void)?

    public init(allowedDirectories: [URL] = [], decode: (@Sendable (Data, String) throws -> Void)? = nil) {
        self.allowedDirectories = allowedDirectories
        self.decode = decode
    }

    /// Why an image path or its bytes were refused.
    public enum Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        case notFound(String)
        case outside(path: String, resolved: String, allowed: [String])
        case notRegularFile(String)
        case notAnImage(path: String, reason: String)

        public var description: String {
            switch self {
            case .notFound(let path): return "image file not found: \(path)"
            case .outside(let path, let resolved, let allowed):
                return "image path '\(path)' resolves to \(resolved), outside the folders a dataset may read (\(allowed.joined(separator: ", "))); pass --allow-dir to allow another folder"
            case .notRegularFile(let path): return "image path '\(path)' is not a regular file"
            case .notAnImage(let path, let reason): return "\(path) is not an image: \(reason)"
            }
        }
    }

    /// The canonical path of `path` (relative to `datasetDirectory` unless absolute) if it is a
    /// regular file inside an allowed folder.
    public func resolve(_ path: String, datasetDirectory: URL) throws -> String {
        let joined = path.hasPrefix("/") ? path : datasetDirectory.appendingPathComponent(path).path
        guard let resolved = Self.realPath(joined) else { throw Refusal.notFound(joined) }
        let roots = ([datasetDirectory] + allowedDirectories).compactMap { Self.realPath($0.path) }
        guard roots.contains(where: { resolved.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") }) else {
            throw Refusal.outside(path: path, resolved: resolved, allowed: roots)
        }
        var info = stat()
        // After realpath there is no symlink left to follow; a FIFO or device would block or stream.
        guard stat(resolved, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { throw Refusal.notRegularFile(path) }
        return resolved
    }

    /// Throws unless `data` is an image: signature and header, then `decode` when set.
    public func check(_ data: Data, name: String) throws {
        do {
            try ImageSignature.check(data)
        } catch let reason as ImageSignature.Problem {
            throw Refusal.notAnImage(path: name, reason: reason.description)
        }
        if let decode {
            do {
                try decode(data, name)
            } catch {
                throw Refusal.notAnImage(path: name, reason: "\(error)")
            }
        }
    }

    static func realPath(_ path: String) -> String? {
        guard let pointer = realpath(path, nil) else { return nil }
        defer { free(pointer) }
        return String(cString: pointer)
    }
}

/// The image formats a chat request may carry, told apart by their first bytes, with the width
/// and height their headers declare checked to be positive and below 2^16 (no real benchmark
/// image is larger; a decompression bomb is).
public enum ImageSignature {
    public enum Format: String, Sendable { case png, jpeg, gif, webp, bmp }

    /// Why bytes are not an image.
    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    public static let maxSide = 65_535

    @discardableResult
    public static func check(_ data: Data) throws -> Format {
        let b = [UInt8](data.prefix(64 * 1024))
        func u16be(_ i: Int) -> Int { i + 1 < b.count ? Int(b[i]) << 8 | Int(b[i + 1]) : -1 }
        func u32be(_ i: Int) -> Int { i + 3 < b.count ? u16be(i) << 16 | u16be(i + 2) : -1 }
        func u16le(_ i: Int) -> Int { i + 1 < b.count ? Int(b[i + 1]) << 8 | Int(b[i]) : -1 }
        func sides(_ w: Int, _ h: Int, _ format: Format) throws -> Format {
            guard w > 0, h > 0, w <= maxSide, h <= maxSide else {
                throw Problem(description: "\(format.rawValue) header declares \(w)×\(h) pixels")
            }
            return format
        }
        if b.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            guard b.count >= 24, b[12...15].elementsEqual(Array("IHDR".utf8)) else { throw Problem(description: "PNG without an IHDR chunk") }
            return try sides(u32be(16), u32be(20), .png)
        }
        if b.starts(with: [0xFF, 0xD8, 0xFF]) {
            // Walk the marker segments to the first frame header (SOF0…SOF15 but DHT/JPG/DAC).
            var i = 2
            while i + 9 < b.count {
                guard b[i] == 0xFF else { throw Problem(description: "JPEG marker expected at byte \(i)") }
                let marker = b[i + 1]
                if marker == 0xFF { i += 1; continue }
                if (0xC0...0xCF).contains(marker), ![0xC4, 0xC8, 0xCC].contains(marker) {
                    return try sides(u16be(i + 7), u16be(i + 5), .jpeg)
                }
                let length = u16be(i + 2)
                guard length >= 2 else { throw Problem(description: "JPEG segment of length \(length)") }
                i += 2 + length
            }
            throw Problem(description: "JPEG without a frame header in its first 64 KiB")
        }
        if b.starts(with: Array("GIF87a".utf8)) || b.starts(with: Array("GIF89a".utf8)) {
            return try sides(u16le(6), u16le(8), .gif)
        }
        if b.count >= 30, b.starts(with: Array("RIFF".utf8)), b[8...11].elementsEqual(Array("WEBP".utf8)) {
            return .webp
        }
        if b.count >= 26, b.starts(with: Array("BM".utf8)) {
            let w = Int(Int32(bitPattern: UInt32(u16le(18)) | UInt32(u16le(20)) << 16))
            let h = Int(Int32(bitPattern: UInt32(u16le(22)) | UInt32(u16le(24)) << 16))
            return try sides(w, abs(h), .bmp)
        }
        throw Problem(description: "no PNG, JPEG, GIF, WebP or BMP signature (\(data.count) bytes)")
    }
}
