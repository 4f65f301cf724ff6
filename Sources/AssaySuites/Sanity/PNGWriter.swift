import CZlib
import Foundation

/// Encodes 8-bit RGB pixels as a PNG (zlib-compressed, filter type 0 on every row).
enum PNGWriter {
    enum EncodeError: Error { case compression(Int32) }

    static func encode(width: Int, height: Int, rgb pixels: [UInt8]) throws -> Data {
        // Raw scanlines, each preceded by its filter byte.
        var raw = [UInt8]()
        raw.reserveCapacity(height * (1 + width * 3))
        for y in 0..<height {
            raw.append(0)
            raw.append(contentsOf: pixels[(y * width * 3)..<((y + 1) * width * 3)])
        }
        var compressedLength = compressBound(uLong(raw.count))
        var compressed = [UInt8](repeating: 0, count: Int(compressedLength))
        let status = compress2(&compressed, &compressedLength, raw, uLong(raw.count), 9)
        guard status == Z_OK else { throw EncodeError.compression(status) }
        compressed.removeSubrange(Int(compressedLength)...)

        var png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        var header = Data()
        header.appendBigEndian(UInt32(width))
        header.appendBigEndian(UInt32(height))
        header.append(contentsOf: [8, 2, 0, 0, 0])  // 8-bit, truecolour, deflate, filter 0, no interlace
        appendChunk(&png, "IHDR", header)
        appendChunk(&png, "IDAT", Data(compressed))
        appendChunk(&png, "IEND", Data())
        return png
    }

    private static func appendChunk(_ png: inout Data, _ type: String, _ body: Data) {
        png.appendBigEndian(UInt32(body.count))
        let typeAndBody = Data(type.utf8) + body
        png.append(typeAndBody)
        let crc = typeAndBody.withUnsafeBytes { raw in
            crc32(0, raw.bindMemory(to: Bytef.self).baseAddress, uInt(typeAndBody.count))
        }
        png.appendBigEndian(UInt32(crc))
    }
}

extension Data {
    mutating func appendBigEndian(_ value: UInt32) {
        append(contentsOf: [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)])
    }
}
