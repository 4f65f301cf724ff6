import CJPEG
import CPNG
import Foundation

/// Why an image could not be turned into pixels; names the file.
public enum ImageError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case unsupportedFormat(file: String)
    case corrupt(file: String, reason: String)
    case tooLarge(file: String, reason: String)
    case badSize(file: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let f, let r): return "\(f): cannot read image: \(r)"
        case .unsupportedFormat(let f): return "\(f): not a PNG or JPEG image"
        case .corrupt(let f, let r): return "\(f): corrupt image: \(r)"
        case .tooLarge(let f, let r): return "\(f): image too large: \(r)"
        case .badSize(let f, let r): return "\(f): \(r)"
        }
    }
}

/// 8-bit interleaved pixels, row-major: 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA) channels.
public struct PixelImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }
}

/// PNG and JPEG decoding through libpng / libjpeg-turbo, with the conversions Pillow and
/// transformers apply on the way to an RGB image.
public enum ImageDecoder {
    /// Pillow's decompression-bomb limit (twice `MAX_IMAGE_PIXELS`).
    public static let maxPixels = 178_956_970

    public static func decode(path: String) throws -> PixelImage {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ImageError.unreadable(file: path, reason: "file not found or unreadable")
        }
        return try decode(data: data, name: path)
    }

    /// Decodes a PNG or JPEG as Pillow would (`np.asarray(Image.open(f))`): L, LA, RGB or RGBA
    /// (palettes expanded). EXIF orientation is not applied here (see `applyOrientation`).
    public static func decode(data: Data, name: String) throws -> PixelImage {
        let bytes = [UInt8](data)
        if bytes.count >= 8 && bytes[0] == 0x89 && bytes[1] == 0x50 && bytes[2] == 0x4E && bytes[3] == 0x47 {
            return try decodePNG(bytes, name: name)
        }
        if bytes.count >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF {
            return try decodeJPEG(bytes, name: name)
        }
        throw ImageError.unsupportedFormat(file: name)
    }

    /// Decode, apply EXIF orientation (as transformers' `load_image` does with
    /// `ImageOps.exif_transpose`) and convert to RGB.
    public static func loadRGB(data: Data, name: String) throws -> PixelImage {
        var img = try decode(data: data, name: name)
        if let o = exifOrientation([UInt8](data)), o != 1 { img = applyOrientation(img, o) }
        return convertToRGB(img)
    }

    public static func loadRGB(path: String) throws -> PixelImage {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ImageError.unreadable(file: path, reason: "file not found or unreadable")
        }
        return try loadRGB(data: data, name: path)
    }

    static func decodePNG(_ bytes: [UInt8], name: String) throws -> PixelImage {
        var out: UnsafeMutablePointer<UInt8>? = nil
        var w: Int32 = 0, h: Int32 = 0, ch: Int32 = 0
        var err = [CChar](repeating: 0, count: 256)
        let status = bytes.withUnsafeBufferPointer { bp in
            assay_png_decode(bp.baseAddress, bp.count, maxPixels, &out, &w, &h, &ch, &err)
        }
        let message = String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if status == 2 { throw ImageError.tooLarge(file: name, reason: message) }
        guard status == 0, let p = out else { throw ImageError.corrupt(file: name, reason: message) }
        defer { free(p) }
        let n = Int(w) * Int(h) * Int(ch)
        return PixelImage(width: Int(w), height: Int(h), channels: Int(ch), pixels: Array(UnsafeBufferPointer(start: p, count: n)))
    }

    static func decodeJPEG(_ bytes: [UInt8], name: String) throws -> PixelImage {
        var out: UnsafeMutablePointer<UInt8>? = nil
        var w: Int32 = 0, h: Int32 = 0, ch: Int32 = 0, inverted: Int32 = 0
        var err = [CChar](repeating: 0, count: 256)
        let status = bytes.withUnsafeBufferPointer { bp in
            assay_jpeg_decode(bp.baseAddress, bp.count, maxPixels, &out, &w, &h, &ch, &inverted, &err)
        }
        let message = String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if status == 2 { throw ImageError.tooLarge(file: name, reason: message) }
        guard status == 0, let p = out else { throw ImageError.corrupt(file: name, reason: message) }
        defer { free(p) }
        let count = Int(w) * Int(h)
        if ch == 1 || ch == 3 {
            return PixelImage(width: Int(w), height: Int(h), channels: Int(ch), pixels: Array(UnsafeBufferPointer(start: p, count: count * Int(ch))))
        }
        guard ch == 4 else { throw ImageError.corrupt(file: name, reason: "unexpected \(ch) JPEG components") }
        // Pillow's CMYK → RGB: channel = (255 − k)·(255 − c)/255 with its MULDIV255 rounding.
        var rgb = [UInt8](repeating: 0, count: count * 3)
        for i in 0..<count {
            var c = [Int(p[4 * i]), Int(p[4 * i + 1]), Int(p[4 * i + 2]), Int(p[4 * i + 3])]
            if inverted != 0 { c = c.map { 255 - $0 } }
            let nk = 255 - c[3]
            for j in 0..<3 {
                let t = c[j] * nk + 128
                rgb[3 * i + j] = UInt8(clamping: nk - (((t >> 8) + t) >> 8))
            }
        }
        return PixelImage(width: Int(w), height: Int(h), channels: 3, pixels: rgb)
    }

    /// transformers' `convert_to_rgb`: gray is replicated, anything with alpha is composited over
    /// opaque white with Pillow's integer `alpha_composite`, then alpha is dropped.
    public static func convertToRGB(_ img: PixelImage) -> PixelImage {
        let n = img.width * img.height
        switch img.channels {
        case 3: return img
        case 1: return PixelImage(width: img.width, height: img.height, channels: 3, pixels: img.pixels.flatMap { [$0, $0, $0] })
        case 2:
            var rgba = [UInt8](repeating: 0, count: n * 4)
            for i in 0..<n {
                let g = img.pixels[2 * i]
                rgba[4 * i] = g; rgba[4 * i + 1] = g; rgba[4 * i + 2] = g; rgba[4 * i + 3] = img.pixels[2 * i + 1]
            }
            return convertToRGB(PixelImage(width: img.width, height: img.height, channels: 4, pixels: rgba))
        default: break
        }
        var rgb = [UInt8](repeating: 0, count: n * 3)
        for i in 0..<n {
            let sa = Int(img.pixels[4 * i + 3])
            if sa == 0 {
                rgb[3 * i] = 255; rgb[3 * i + 1] = 255; rgb[3 * i + 2] = 255
                continue
            }
            let blend = 255 * (255 - sa)
            let outa255 = sa * 255 + blend
            let coef1 = sa * 255 * 255 * (1 << 7) / outa255
            let coef2 = 255 * (1 << 7) - coef1
            for j in 0..<3 {
                let tmp = Int(img.pixels[4 * i + j]) * coef1 + 255 * coef2 + (0x80 << 7)
                rgb[3 * i + j] = UInt8(clamping: (((tmp >> 8) + tmp) >> 8) >> 7)
            }
        }
        return PixelImage(width: img.width, height: img.height, channels: 3, pixels: rgb)
    }

    // MARK: - EXIF orientation

    /// The EXIF orientation tag (1…8) of a JPEG (APP1) or PNG (eXIf chunk), if any.
    public static func exifOrientation(_ b: [UInt8]) -> Int? {
        if b.count > 4 && b[0] == 0xFF && b[1] == 0xD8 {
            var i = 2
            while i + 4 <= b.count, b[i] == 0xFF {
                let marker = b[i + 1]
                if marker == 0xD9 || marker == 0xDA { break }
                let len = Int(b[i + 2]) << 8 | Int(b[i + 3])
                guard len >= 2, i + 2 + len <= b.count else { break }
                if marker == 0xE1, len >= 8, Array(b[(i + 4)..<(i + 10)]) == [0x45, 0x78, 0x69, 0x66, 0, 0] {
                    return tiffOrientation(Array(b[(i + 10)..<(i + 2 + len)]))
                }
                i += 2 + len
            }
            return nil
        }
        if b.count > 8 && b[0] == 0x89 {
            var i = 8
            while i + 12 <= b.count {
                let len = Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3])
                guard len >= 0, i + 12 + len <= b.count else { break }
                let type = String(decoding: b[(i + 4)..<(i + 8)], as: UTF8.self)
                if type == "eXIf" { return tiffOrientation(Array(b[(i + 8)..<(i + 8 + len)])) }
                if type == "IDAT" || type == "IEND" { break }
                i += 12 + len
            }
        }
        return nil
    }

    static func tiffOrientation(_ t: [UInt8]) -> Int? {
        guard t.count >= 8 else { return nil }
        let little = t[0] == 0x49
        func u16(_ o: Int) -> Int? { o + 2 <= t.count ? (little ? Int(t[o]) | Int(t[o + 1]) << 8 : Int(t[o]) << 8 | Int(t[o + 1])) : nil }
        func u32(_ o: Int) -> Int? {
            guard o + 4 <= t.count else { return nil }
            let v = (0..<4).map { Int(t[o + $0]) }
            return little ? v[0] | v[1] << 8 | v[2] << 16 | v[3] << 24 : v[0] << 24 | v[1] << 16 | v[2] << 8 | v[3]
        }
        guard let ifd = u32(4), let count = u16(ifd) else { return nil }
        for k in 0..<count {
            let e = ifd + 2 + 12 * k
            guard let tag = u16(e) else { return nil }
            if tag == 0x0112, let v = u16(e + 8), (1...8).contains(v) { return v }
        }
        return nil
    }

    /// Pillow's `exif_transpose` for orientations 2…8.
    public static func applyOrientation(_ img: PixelImage, _ o: Int) -> PixelImage {
        let w = img.width, h = img.height, c = img.channels
        let swap = o >= 5
        let ow = swap ? h : w, oh = swap ? w : h
        var out = [UInt8](repeating: 0, count: img.pixels.count)
        for oy in 0..<oh {
            for ox in 0..<ow {
                let (sx, sy): (Int, Int)
                switch o {
                case 2: (sx, sy) = (w - 1 - ox, oy)            // FLIP_LEFT_RIGHT
                case 3: (sx, sy) = (w - 1 - ox, h - 1 - oy)    // ROTATE_180
                case 4: (sx, sy) = (ox, h - 1 - oy)            // FLIP_TOP_BOTTOM
                case 5: (sx, sy) = (oy, ox)                    // TRANSPOSE
                case 6: (sx, sy) = (oy, h - 1 - ox)            // ROTATE_270 (clockwise)
                case 7: (sx, sy) = (w - 1 - oy, h - 1 - ox)    // TRANSVERSE
                case 8: (sx, sy) = (w - 1 - oy, ox)            // ROTATE_90 (counter-clockwise)
                default: (sx, sy) = (ox, oy)
                }
                let d = (oy * ow + ox) * c, s = (sy * w + sx) * c
                for j in 0..<c { out[d + j] = img.pixels[s + j] }
            }
        }
        return PixelImage(width: ow, height: oh, channels: c, pixels: out)
    }
}
