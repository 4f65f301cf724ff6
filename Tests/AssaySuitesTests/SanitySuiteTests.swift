import AssayCore
@testable import AssaySuites
import AssayTestSupport
import CZlib
import Foundation
import XCTest

/// The generated sanity suite: deterministic, valid PNGs, and answers that the pictures bear out.
final class SanitySuiteTests: XCTestCase {
    /// Decodes the PNGs PNGWriter writes (8-bit RGB, filter 0) back to pixels.
    func decode(_ png: Data) throws -> (width: Int, height: Int, rgb: [UInt8]) {
        let bytes = [UInt8](png)
        XCTAssertEqual(Array(bytes[0..<8]), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        var offset = 8, width = 0, height = 0
        var idat: [UInt8] = []
        func be32(_ at: Int) -> Int { Int(bytes[at]) << 24 | Int(bytes[at + 1]) << 16 | Int(bytes[at + 2]) << 8 | Int(bytes[at + 3]) }
        while offset < bytes.count {
            let length = be32(offset)
            let type = String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self)
            let body = Array(bytes[(offset + 8)..<(offset + 8 + length)])
            let covered: [UInt8] = Array(bytes[(offset + 4)..<(offset + 8 + length)])
            let crc: uLong = crc32(0, covered, uInt(length + 4))
            let stored: Int = be32(offset + 8 + length)
            XCTAssertEqual(UInt32(crc), UInt32(stored), "CRC of \(type)")
            if type == "IHDR" {
                width = be32(offset + 8)
                height = be32(offset + 12)
                let format: [UInt8] = Array(body[8..<13])
                XCTAssertEqual(format, [8, 2, 0, 0, 0])
            }
            if type == "IDAT" { idat += body }
            offset += 12 + length
        }
        var raw = [UInt8](repeating: 0, count: height * (1 + width * 3))
        var rawLength = uLongf(raw.count)
        XCTAssertEqual(uncompress(&raw, &rawLength, idat, uLong(idat.count)), Z_OK)
        var rgb: [UInt8] = []
        let stride = 1 + width * 3
        for y in 0..<height {
            let start: Int = y * stride
            XCTAssertEqual(raw[start], 0)
            rgb.append(contentsOf: raw[(start + 1)..<(start + stride)])
        }
        return (width, height, rgb)
    }

    /// Connected regions of non-white pixels: (pixel count, colour, centroid, bounding box).
    func regions(_ image: (width: Int, height: Int, rgb: [UInt8])) -> [(count: Int, color: [UInt8], cx: Double, cy: Double, box: (Int, Int, Int, Int))] {
        let w = image.width, h = image.height
        var seen = [Bool](repeating: false, count: w * h)
        var result: [(Int, [UInt8], Double, Double, (Int, Int, Int, Int))] = []
        func color(_ i: Int) -> [UInt8] { Array(image.rgb[(3 * i)..<(3 * i + 3)]) }
        for start in 0..<(w * h) where !seen[start] && color(start) != [255, 255, 255] {
            var stack = [start]
            seen[start] = true
            var count = 0, sx = 0.0, sy = 0.0, box = (Int.max, Int.max, 0, 0)
            while let i = stack.popLast() {
                count += 1
                let x = i % w, y = i / w
                sx += Double(x); sy += Double(y)
                box = (min(box.0, x), min(box.1, y), max(box.2, x), max(box.3, y))
                for (nx, ny) in [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)] where nx >= 0 && ny >= 0 && nx < w && ny < h {
                    let j = ny * w + nx
                    if !seen[j] && color(j) != [255, 255, 255] { seen[j] = true; stack.append(j) }
                }
            }
            result.append((count, color(start), sx / Double(count), sy / Double(count), box))
        }
        return result
    }

    func testItemsAreDeterministicAndTheTasksTakeTurns() throws {
        let a = try SanityGenerator.items(count: 20, seed: 7)
        let b = try SanityGenerator.items(count: 20, seed: 7)
        let c = try SanityGenerator.items(count: 20, seed: 8)
        XCTAssertEqual(a.map(\.item), b.map(\.item))
        XCTAssertEqual(SanityGenerator.checksum(a), SanityGenerator.checksum(b))
        XCTAssertNotEqual(SanityGenerator.checksum(a), SanityGenerator.checksum(c))
        XCTAssertEqual(a.prefix(5).map { $0.item.category }, ["count", "colour", "bigger", "position", "shape"])
        XCTAssertEqual(Set(a.map(\.item.id)).count, 20)
    }

    func testPicturesBearOutTheAnswers() throws {
        let items = try SanityGenerator.items(count: 100, seed: 0)
        for loaded in items {
            let item = loaded.item
            let image = try decode(loaded.imageData[0])
            XCTAssertEqual(image.width, SanityGenerator.imageSize)
            XCTAssertEqual(loaded.item.images[0].sha256, SHA256.hex(loaded.imageData[0]))
            let found = regions(image)
            let answer = item.meta("answer_text") ?? ""
            XCTAssertEqual(item.options.first { $0.label == item.answer }?.text, answer)
            switch item.category {
            case "count":
                XCTAssertEqual(found.count, Int(answer), item.id)
            case "colour":
                XCTAssertEqual(found.count, 1)
                let rgb = SanityColor(rawValue: answer)!.rgb
                XCTAssertEqual(found.first?.color, [rgb.r, rgb.g, rgb.b], item.id)
            case "bigger":
                XCTAssertEqual(found.count, 2)
                let big = found.max { $0.count < $1.count }!
                let named = SanityColor.allCases.first { answer.contains($0.rawValue) }!.rgb
                XCTAssertEqual(big.color, [named.r, named.g, named.b], item.id)
            case "position":
                let region = try XCTUnwrap(found.first)
                let half = Double(image.width) / 2
                let where_ = (region.cy < half ? "top" : "bottom") + " " + (region.cx < half ? "left" : "right")
                XCTAssertEqual(where_, answer, item.id)
            case "shape":
                let region = try XCTUnwrap(found.first)
                let (x0, y0, x1, y1) = region.box
                let fill = Double(region.count) / Double((x1 - x0 + 1) * (y1 - y0 + 1))
                switch answer {
                case "square": XCTAssertGreaterThan(fill, 0.95, item.id)
                case "circle": XCTAssertEqual(fill, Double.pi / 4, accuracy: 0.05, item.id)
                case "diamond", "triangle":
                    XCTAssertEqual(fill, 0.5, accuracy: 0.08, item.id)
                    // A triangle has its centroid below the middle of its box; a diamond at it.
                    let middle = Double(y0 + y1) / 2
                    if answer == "triangle" { XCTAssertGreaterThan(region.cy - middle, 2, item.id) }
                    else { XCTAssertEqual(region.cy, middle, accuracy: 1, item.id) }
                default: XCTFail("unknown shape \(answer)")
                }
            default:
                XCTFail("unknown task \(item.category ?? "")")
            }
        }
    }

    func testTheSuiteGeneratesItsItemsAndScoresThem() throws {
        let suite = try builtInCatalog().suite("sanity")
        let generated = try XCTUnwrap(try suite.generatedItems())
        XCTAssertEqual(generated.items.count, 200)
        XCTAssertNil(try builtInCatalog().suite("mmstar").generatedItems())
        let items = generated.items.map(\.item)
        // Perfect answers score 100, the option text works as well as the letter.
        var predictions = Dictionary(uniqueKeysWithValues: items.map { ($0.id, $0.answer) })
        XCTAssertEqual(scoreRaw(suite, items: items, predictions: predictions).score, 100)
        predictions = Dictionary(uniqueKeysWithValues: items.map { ($0.id, "The answer is \($0.meta("answer_text")!).") })
        XCTAssertEqual(scoreRaw(suite, items: items, predictions: predictions).score, 100)
        // Always "A" is about chance.
        let constant = scoreRaw(suite, items: items, predictions: Dictionary(uniqueKeysWithValues: items.map { ($0.id, "A") }))
        XCTAssertLessThan(constant.score, 45)
        assertSnapshot(suite.render(items[0]).map(\.renderedText).joined(separator: "\n"), named: "sanity")
    }
}
