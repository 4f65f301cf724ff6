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
        XCTAssertEqual(images.count, 6)
        for (file, meta) in images {
            let key = String(file[..<file.lastIndex(of: ".")!])
            let decoded = try ImageDecoder.decode(path: dir.appendingPathComponent(file).path)
            let want = try g.bytes("\(key)/decoded")
            XCTAssertEqual(decoded.pixels, want, "\(key)/decoded")
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
        XCTAssertEqual(rows.count, 300)
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
        let png = try Data(contentsOf: try Fixtures.require("goldens/processor/img_a_168x280.png"))
        let jpg = try Data(contentsOf: try Fixtures.require("goldens/processor/img_b_173x291.jpg"))
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
