import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

/// VLMEvalKit TSV and JSONL reading, with the malformed inputs users actually hit.
final class DatasetReaderTests: XCTestCase {
    // A 1×1 PNG, as VLMEvalKit embeds images.
    static let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    static let png2 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

    func write(_ text: String, _ name: String) throws -> URL {
        let url = try Fixtures.temporaryDirectory(for: self).appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    func mmstar() throws -> Suite { try builtInCatalog().suite("mmstar") }

    func testVLMEvalKitTSVWithQuotingImagesAndMetadata() throws {
        let tsv = [
            "index\tquestion\thint\tA\tB\tC\tD\tanswer\tcategory\tl2-category\timage\tbench",
            "0\tWhat is shown?\t\tcat\tdog\t\t\tA\tcoarse perception\timage emotion\t\(Self.png)\tSEED",
            // A quoted field with a tab, a doubled quote and a newline inside; C and D left empty.
            "1\t\"Line one\twith \"\"quote\"\"\nline two\"\tsome hint\tx\ty\tz\tnan\tC\tmath\tgeometry\t0\tMMBench",
            "2\tTwo images\t\tp\tq\t\t\tB\tmath\tgeometry\t['\(Self.png)', '\(Self.png2)']\tMathVista",
        ].joined(separator: "\n") + "\n"
        let file = try DatasetFile.read(write(tsv, "MMStar.tsv"))
        XCTAssertEqual(file.rows.map(\.line), [2, 3, 5])
        let items = try mmstar().loadItems(from: file).map(\.item)
        XCTAssertEqual(items.map(\.id), ["0", "1", "2"])
        XCTAssertEqual(items[0].options.map(\.label), ["A", "B"])
        XCTAssertNil(items[0].hint)
        XCTAssertEqual(items[1].question, "Line one\twith \"quote\"\nline two")
        XCTAssertEqual(items[1].hint, "some hint")
        XCTAssertEqual(items[1].options.map(\.label), ["A", "B", "C"], "pandas writes NaN as 'nan'")
        XCTAssertEqual(items[1].subcategory, "geometry")
        XCTAssertEqual(items[0].metadata["bench"], .string("SEED"))
        // Row 1's image "0" refers to row 0's image.
        XCTAssertEqual(items[1].images.map(\.sha256), items[0].images.map(\.sha256))
        XCTAssertEqual(items[2].images.count, 2)
        XCTAssertNotEqual(items[2].images[0].sha256, items[2].images[1].sha256)
        XCTAssertEqual(items[0].images[0].sha256, SHA256.hex(Data(base64Encoded: Self.png)!))
    }

    func testJSONLWithListAnswersAndImagePaths() throws {
        let directory = try Fixtures.temporaryDirectory(for: self)
        try Data(base64Encoded: Self.png)!.write(to: directory.appendingPathComponent("a.png"))
        try Fixtures.writeJSONL([
            ["index": 7, "question": "Which?", "answer": "[\"Tampa\", \"Florida\"]", "category": "geo", "image_path": "a.png", "question_type": "open"],
            ["index": 8, "question": "Which?", "answer": ["x", "y"], "category": "geo", "image_path": ["a.png", "a.png"], "question_type": "open"],
        ], to: directory.appendingPathComponent("items.jsonl"))
        let suite = try builtInCatalog().suite("mmmu")
        let loaded = try suite.loadItems(from: DatasetFile.read(directory.appendingPathComponent("items.jsonl")))
        XCTAssertEqual(loaded[0].item.id, "7")
        XCTAssertEqual(loaded[0].item.answers, ["Tampa", "Florida"])
        XCTAssertEqual(loaded[1].item.answers, ["x", "y"])
        XCTAssertEqual(loaded[1].item.images.count, 2)
        XCTAssertEqual(loaded[0].imageData.first, Data(base64Encoded: Self.png))
    }

    func testListLiteralParsing() {
        XCTAssertEqual(ListLiteral.parse("['a', \"b's\", 3, ]"), ["a", "b's", "3"])
        XCTAssertEqual(ListLiteral.parse("[]"), [])
        XCTAssertEqual(ListLiteral.parse("[\"\\u00e9t\\u00e9\"]"), ["été"])
        XCTAssertNil(ListLiteral.parse("['unterminated]"))
        XCTAssertNil(ListLiteral.parse("[1, 2] trailing"))
    }

    func testMissingRequiredColumnNamesTheFileAndHeaderLine() throws {
        let url = try write("index\tquestion\tanswer\n0\tq\tA\n", "MMStar.tsv")
        XCTAssertThrowsError(try mmstar().loadItems(from: DatasetFile.read(url))) { error in
            let e = error as! DatasetError
            XCTAssertEqual(e.file, url.path)
            XCTAssertEqual(e.line, 1)
            XCTAssertTrue(e.message.contains("'category'"), e.message)
        }
    }

    func testMissingKeyInAJSONLRowNamesItsLine() throws {
        let url = try write("{\"index\": 1, \"question\": \"q\", \"answer\": \"A\", \"category\": \"c\", \"l2-category\": \"d\"}\n{\"index\": 2, \"question\": \"q\", \"answer\": \"A\"}\n", "items.jsonl")
        XCTAssertThrowsError(try mmstar().loadItems(from: DatasetFile.read(url))) { error in
            XCTAssertEqual((error as! DatasetError).line, 2)
        }
    }

    func testUndecodableBase64NamesTheLine() throws {
        let tsv = "index\tquestion\tanswer\tcategory\tl2-category\timage\n0\tq\tA\tc\td\t\(Self.png)\n1\tq\tB\tc\td\tnot*base64!!!not*base64!!!not*base64!!!not*base64!!!not*base64!!!\n"
        let url = try write(tsv, "MMStar.tsv")
        XCTAssertThrowsError(try mmstar().loadItems(from: DatasetFile.read(url))) { error in
            let e = error as! DatasetError
            XCTAssertEqual(e.line, 3)
            XCTAssertTrue(e.message.contains("base64"), e.message)
        }
    }

    func testDanglingImageReferenceIsAnError() throws {
        let tsv = "index\tquestion\tanswer\tcategory\tl2-category\timage\n0\tq\tA\tc\td\t42\n"
        XCTAssertThrowsError(try mmstar().loadItems(from: DatasetFile.read(write(tsv, "MMStar.tsv")))) { error in
            XCTAssertTrue((error as! DatasetError).message.contains("'42'"))
        }
    }

    func testNonUTF8FileNamesTheLine() throws {
        var data = Data("index\tquestion\tanswer\tcategory\tl2-category\n0\tq\tA\tc\td\n".utf8)
        data.append(contentsOf: [0x31, 0x09, 0xC3, 0x28, 0x09, 0x41, 0x09, 0x63, 0x09, 0x64, 0x0A])  // "1\t\xC3(\tA\tc\td"
        let url = try Fixtures.temporaryDirectory(for: self).appendingPathComponent("MMStar.tsv")
        try data.write(to: url)
        XCTAssertThrowsError(try DatasetFile.read(url)) { error in
            let e = error as! DatasetError
            XCTAssertEqual(e.line, 3)
            XCTAssertTrue(e.message.contains("UTF-8"))
        }
        let jsonl = try Fixtures.temporaryDirectory(for: self).appendingPathComponent("p.jsonl")
        try (Data("{\"index\": 1}\n".utf8) + Data([0x7B, 0xFF, 0x7D, 0x0A])).write(to: jsonl)
        XCTAssertThrowsError(try DatasetFile.read(jsonl)) { XCTAssertEqual(($0 as! DatasetError).line, 2) }
    }

    func testDuplicateIndexAndRaggedRows() throws {
        let duplicate = "index\tquestion\tanswer\tcategory\tl2-category\n0\tq\tA\tc\td\n0\tq\tB\tc\td\n"
        XCTAssertThrowsError(try mmstar().loadItems(from: DatasetFile.read(write(duplicate, "MMStar.tsv")))) { error in
            let e = error as! DatasetError
            XCTAssertEqual(e.line, 3)
            XCTAssertTrue(e.message.contains("duplicate index '0'"))
        }
        let ragged = "index\tquestion\tanswer\n0\tq\n"
        XCTAssertThrowsError(try DatasetFile.read(write(ragged, "x.tsv"))) { XCTAssertEqual(($0 as! DatasetError).line, 2) }
        XCTAssertThrowsError(try DatasetFile.read(write("index\n0\n", "x.csv")))
        XCTAssertThrowsError(try DatasetFile.read(write("{not json}\n", "x.jsonl"))) { XCTAssertEqual(($0 as! DatasetError).line, 1) }
    }

    func testPredictionsFileErrors() throws {
        let ok = try write("{\"index\": 1, \"prediction\": \"A\"}\n\n{\"index\": \"2\", \"prediction\": 5, \"extraction\": \"5\"}\n", "p.jsonl")
        let predictions = try PredictionsFile.read(ok)
        XCTAssertEqual(predictions.map(\.index), ["1", "2"])
        XCTAssertEqual(predictions[1].text, "5")
        XCTAssertEqual(predictions[1].extraction, "5")
        XCTAssertEqual(try PredictionsFile.read(ok, extracted: true)[0].extraction, "A")
        for (text, line) in [("{\"index\": 1, \"prediction\": \"A\"}\nnot json\n", 2),
                             ("{\"prediction\": \"A\"}\n", 1),
                             ("{\"index\": 1}\n", 1),
                             ("{\"index\": 1, \"prediction\": \"A\"}\n{\"index\": 1, \"prediction\": \"B\"}\n", 2)] {
            XCTAssertThrowsError(try PredictionsFile.read(write(text, "bad.jsonl"))) { error in
                XCTAssertEqual((error as! DatasetError).line, line, text)
            }
        }
    }
}
