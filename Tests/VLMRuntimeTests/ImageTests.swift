import Foundation
import XCTest
@testable import VLMRuntime

final class ImageTests: XCTestCase {
    func testDecodeConvertResizeAndPatchifyMatchPillowGoldens() throws {
        let idx = try Fixtures.json("goldens/processor/index.json")
        let g = try Fixtures.goldens("goldens/processor/goldens.safetensors")
        let dir = try Fixtures.require("goldens/processor")
        let proc = ImageProcessor(config: try ProcessorConfig.load(directory: try Fixtures.require("goldens/qwen2_5_vl_tiny/checkpoint").path))
        let images = idx["images"] as! [String: [String: Any]]
        XCTAssertFalse(images.isEmpty)
        for (file, meta) in images {
            let key = String(file[..<file.lastIndex(of: ".")!])
            let decoded = try ImageDecoder.decode(path: dir.appendingPathComponent(file).path)
            let want = try g.bytes("\(key)/decoded")
            XCTAssertEqual(decoded.pixels, want, "\(key)/decoded (\(meta["mode"] ?? "?"))")
            let rgb = ImageDecoder.convertToRGB(decoded)
            if g.entries["\(key)/rgb"] != nil { XCTAssertEqual(rgb.pixels, try g.bytes("\(key)/rgb"), "\(key)/rgb") }
            let resized = try proc.resize(decoded, name: file)
            let hw = (meta["resized_hw"] as! [NSNumber]).map(\.intValue)
            XCTAssertEqual([resized.height, resized.width], hw, "\(key) size")
            XCTAssertEqual(resized.pixels, try g.bytes("\(key)/resized_rgb"), "\(key)/resized_rgb")
            let (values, grid) = proc.patchify(resized)
            XCTAssertEqual([grid.t, grid.h, grid.w], try g.integers("\(key)/image_grid_thw"), "\(key) grid")
            if g.entries["\(key)/pixel_values"] != nil {
                assertClose(values, try g.floats("\(key)/pixel_values"), atol: 1e-6, rtol: 0, "\(key)/pixel_values")
            }
        }
    }

    func testSmartResizeTableWithHalfToEvenRounding() throws {
        let idx = try Fixtures.json("goldens/processor/index.json")
        let rows = (idx["smart_resize"] as! [String: Any])["rows"] as! [[String: Any]]
        XCTAssertFalse(rows.isEmpty)
        for r in rows {
            let h = (r["h"] as! NSNumber).intValue, w = (r["w"] as! NSNumber).intValue
            let mn = (r["min_pixels"] as! NSNumber).intValue, mx = (r["max_pixels"] as! NSNumber).intValue
            let got = try? ImageProcessor.smartResize(height: h, width: w, factor: 28, minPixels: mn, maxPixels: mx)
            if let rh = r["resized_h"] as? NSNumber, let rw = r["resized_w"] as? NSNumber {
                XCTAssertEqual(got?.height, rh.intValue, "\(h)x\(w) \(r["setting"]!)")
                XCTAssertEqual(got?.width, rw.intValue, "\(h)x\(w) \(r["setting"]!)")
            } else {
                XCTAssertNil(got, "\(h)x\(w) should be rejected")
            }
        }
    }

    func testCorruptAndTruncatedImagesGiveNamedErrors() throws {
        let idx = try Fixtures.json("goldens/processor/index.json")
        let names = ((idx["images"] as? [String: Any]) ?? [:]).keys.sorted()
        guard let pngName = names.first(where: { $0.hasSuffix(".png") }), let jpgName = names.first(where: { $0.hasSuffix(".jpg") || $0.hasSuffix(".jpeg") }) else {
            throw XCTSkip("fixtures lack a PNG and a JPEG")
        }
        let png = try Data(contentsOf: try Fixtures.require("goldens/processor/\(pngName)"))
        let jpg = try Data(contentsOf: try Fixtures.require("goldens/processor/\(jpgName)"))
        for (data, name) in [(png.prefix(png.count / 2), "half.png"), (jpg.prefix(jpg.count / 2), "half.jpg"),
                             (png.prefix(40), "header.png"), (Data([0xFF, 0xD8, 0xFF, 0xE0, 0, 2]), "stub.jpg"),
                             (Data("hello".utf8), "text.png")] {
            XCTAssertThrowsError(try ImageDecoder.decode(data: Data(data), name: name)) { error in
                XCTAssertTrue("\(error)".contains(name), "error should name the file: \(error)")
            }
        }
        var garbled = png
        for i in stride(from: 100, to: min(garbled.count, 4000), by: 7) { garbled[i] ^= 0x5A }
        XCTAssertThrowsError(try ImageDecoder.decode(data: garbled, name: "garbled.png"))
        XCTAssertThrowsError(try ImageDecoder.decode(path: "/nonexistent/x.png")) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent/x.png"))
        }
    }

    /// Gray and gray+alpha files decode to Pillow's L / LA arrays and convert like transformers'
    /// `convert_to_rgb` (values from Pillow 13).
    func testGrayscaleDecodesAsPillowModesLAndLA() throws {
        let l = Data(base64Encoded: "iVBORw0KGgoAAAANSUhEUgAAAAQAAAADCAAAAACRn/EaAAAAF0lEQVR4nGNkEBERYQwQERFhCRAREQEACTgBW2nziVsAAAAASUVORK5CYII=")!
        let gray = try ImageDecoder.decode(data: l, name: "l.png")
        XCTAssertEqual(gray.channels, 1)
        let wantGray: [UInt8] = (0..<12).map { i -> UInt8 in UInt8(i * 20) }
        XCTAssertEqual(gray.pixels, wantGray)
        let wantL: [UInt8] = (0..<12).flatMap { i -> [UInt8] in let v = UInt8(i * 20); return [v, v, v] }
        XCTAssertEqual(ImageDecoder.convertToRGB(gray).pixels, wantL)
        let la = Data(base64Encoded: "iVBORw0KGgoAAAANSUhEUgAAAAQAAAADCAQAAAAe/WZNAAAAHElEQVR4nGNgYBBx0Giw+c8SwCDCIMIgwgBnAAA5gANYX9y0ZwAAAABJRU5ErkJggg==")!
        let grayAlpha = try ImageDecoder.decode(data: la, name: "la.png")
        XCTAssertEqual(grayAlpha.channels, 2)
        let alphas: [UInt8] = [0, 64, 128, 255]
        var wantLA: [UInt8] = []
        for i in 0..<12 { wantLA += [UInt8(i * 20), alphas[i % 4]] }
        XCTAssertEqual(grayAlpha.pixels, wantLA)
        let want: [UInt8] = [255, 196, 147, 60, 255, 216, 187, 140, 255, 236, 227, 220]
        let wantRGB: [UInt8] = want.flatMap { v -> [UInt8] in [v, v, v] }
        XCTAssertEqual(ImageDecoder.convertToRGB(grayAlpha).pixels, wantRGB)
        let jpg = Data(base64Encoded: "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAIBAQEBAQIBAQECAgICAgQDAgICAgUEBAMEBgUGBgYFBgYGBwkIBgcJBwYGCAsICQoKCgoKBggLDAsKDAkKCgr/wAALCAAIAAgBAREA/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/9oACAEBAAA/APD6/9k=")!
        let gj = try ImageDecoder.decode(data: jpg, name: "g.jpg")
        XCTAssertEqual(gj.channels, 1)
        XCTAssertEqual(gj.pixels, [UInt8](repeating: 100, count: 64))
    }

    func testExifOrientationRotatesLikePillowExifTranspose() {
        // 2×1 image: red, green.
        let img = PixelImage(width: 2, height: 1, channels: 3, pixels: [255, 0, 0, 0, 255, 0])
        XCTAssertEqual(ImageDecoder.applyOrientation(img, 2).pixels, [0, 255, 0, 255, 0, 0])
        let cw = ImageDecoder.applyOrientation(img, 6)   // rotate 90° clockwise: red on top
        XCTAssertEqual([cw.width, cw.height], [1, 2])
        XCTAssertEqual(cw.pixels, [255, 0, 0, 0, 255, 0])
        let ccw = ImageDecoder.applyOrientation(img, 8)  // counter-clockwise: green on top
        XCTAssertEqual(ccw.pixels, [0, 255, 0, 255, 0, 0])
        // A minimal EXIF APP1 (big-endian TIFF) carrying orientation 6.
        var exif: [UInt8] = [0x45, 0x78, 0x69, 0x66, 0, 0, 0x4D, 0x4D, 0, 0x2A, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]
        let len = exif.count + 2
        exif = [0xFF, 0xD8, 0xFF, 0xE1, UInt8(len >> 8), UInt8(len & 0xFF)] + exif + [0xFF, 0xD9]
        XCTAssertEqual(ImageDecoder.exifOrientation(exif), 6)
    }
}
