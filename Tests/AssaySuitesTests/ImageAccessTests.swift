import AssayCore
import AssayTestSupport
import Foundation
@testable import AssaySuites
import XCTest

/// A dataset row's `image_path` may only name pictures inside the dataset's folder (or a folder
/// the user allowed): absolute paths elsewhere, `..` climbing out, symlinks out and non-images are
/// errors naming the row, so a downloaded TSV cannot ship `~/.ssh/id_rsa` to a model server.
final class ImageAccessTests: XCTestCase {
    static let png = Data(base64Encoded: "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==")!

    struct Layout {
        let root: URL      // holds `secret.png` and `outside/`
        let dataset: URL   // the dataset's folder
    }

    func layout() throws -> Layout {
        let root = try Fixtures.temporaryDirectory(for: self)
        let dataset = root.appendingPathComponent("dataset")
        try FileManager.default.createDirectory(at: dataset.appendingPathComponent("img"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("outside"), withIntermediateDirectories: true)
        try Self.png.write(to: dataset.appendingPathComponent("img/ok.png"))
        try Self.png.write(to: root.appendingPathComponent("secret.png"))
        try Self.png.write(to: root.appendingPathComponent("outside/pic.png"))
        return Layout(root: root, dataset: dataset)
    }

    /// Loads a two-row mmmu dataset whose second row names `path`.
    func load(_ path: String, in layout: Layout, access: ImageAccess = ImageAccess(), images: ImageLoading = .keep) throws -> [LoadedItem] {
        let file = layout.dataset.appendingPathComponent("items.jsonl")
        try Fixtures.writeJSONL([
            ["index": 1, "question": "Which?", "answer": "A", "A": "x", "B": "y", "question_type": "multiple-choice", "category": "c", "image_path": "img/ok.png"],
            ["index": 2, "question": "Which?", "answer": "A", "A": "x", "B": "y", "question_type": "multiple-choice", "category": "c", "image_path": path],
        ], to: file)
        let suite = try builtInCatalog().suite("mmmu")
        return try suite.loadItems(from: DatasetFile.read(file), images: images, access: access)
    }

    /// The refused row's item is marked unusable (naming its file, line and item, never read or
    /// sent), and the other row loads as usual.
    func assertRefused(_ path: String, in layout: Layout, access: ImageAccess = ImageAccess(), containing words: [String], _ line: UInt = #line) {
        do {
            let items = try load(path, in: layout, access: access)
            XCTAssertEqual(items.count, 2, line: line)
            XCTAssertNil(items[0].unusable, "the good row is untouched", line: line)
            XCTAssertEqual(items[0].imageData, [Self.png], line: line)
            guard let reason = items[1].unusable else { return XCTFail("\(path) was not refused", line: line) }
            XCTAssertTrue(items[1].imageData.isEmpty, "refused bytes are kept for nothing", line: line)
            XCTAssertTrue(reason.contains("items.jsonl:2:"), "the reason names the file and row: \(reason)", line: line)
            XCTAssertTrue(reason.contains("item '2'"), reason, line: line)
            for word in words { XCTAssertTrue(reason.contains(word), "\(word) not in: \(reason)", line: line) }
        } catch {
            XCTFail("one bad row failed the whole load: \(error)", line: line)
        }
    }

    func testPicturesInsideTheDatasetFolderLoad() throws {
        let l = try layout()
        let items = try load("img/ok.png", in: l)
        XCTAssertEqual(items.count, 2)
        XCTAssertEqual(items[1].imageData, [Self.png])
    }

    func testAbsolutePathsOutsideAndClimbingOutAreRowErrors() throws {
        let l = try layout()
        assertRefused(l.root.appendingPathComponent("secret.png").path, in: l, containing: ["outside", "--allow-dir"])
        assertRefused("../secret.png", in: l, containing: ["outside"])
        assertRefused("img/../../secret.png", in: l, containing: ["outside"])
        assertRefused("/etc/passwd", in: l, containing: ["outside"])
        assertRefused("img/missing.png", in: l, containing: ["not found"])
    }

    func testASymlinkOutOfTheFolderIsRefusedUnlessItsTargetFolderIsAllowed() throws {
        let l = try layout()
        try FileManager.default.createSymbolicLink(atPath: l.dataset.appendingPathComponent("img/link.png").path,
                                                   withDestinationPath: l.root.appendingPathComponent("outside/pic.png").path)
        assertRefused("img/link.png", in: l, containing: ["outside"])
        let allowed = ImageAccess(allowedDirectories: [l.root.appendingPathComponent("outside")])
        XCTAssertEqual(try load("img/link.png", in: l, access: allowed)[1].imageData, [Self.png])
        XCTAssertEqual(try load(l.root.appendingPathComponent("outside/pic.png").path, in: l, access: allowed).count, 2)
        // The allowed folder is not a licence for its parent.
        assertRefused("../secret.png", in: l, access: allowed, containing: ["outside"])
    }

    func testBytesThatAreNotAnImageAreRefusedBeforeTheyAreSent() throws {
        let l = try layout()
        try Data("-----BEGIN OPENSSH PRIVATE KEY-----\n".utf8).write(to: l.dataset.appendingPathComponent("img/key.png"))
        assertRefused("img/key.png", in: l, containing: ["not an image"])
        // A PNG signature with an absurd declared size.
        var huge = [UInt8](Self.png)
        huge[16...19] = [0x7F, 0xFF, 0xFF, 0xFF]
        try Data(huge).write(to: l.dataset.appendingPathComponent("img/huge.png"))
        assertRefused("img/huge.png", in: l, containing: ["not an image"])
        // A decoder given by the caller (the sweep passes the runtime's) is asked too.
        struct Refused: Error {}
        let strict = ImageAccess(decode: { _, _ in throw Refused() })
        XCTAssertNotNil(try load("img/ok.png", in: l, access: strict)[1].unusable)
    }

    func testAFIFONamedAsAnImageIsAnErrorNotAHang() throws {
        let l = try layout()
        XCTAssertEqual(mkfifo(l.dataset.appendingPathComponent("img/pipe.png").path, 0o600), 0)
        assertRefused("img/pipe.png", in: l, containing: ["not a regular file"])
    }

    func testImportsNeitherReadNorRefuseOutsidePictures() throws {
        let l = try layout()
        let items = try load("/etc/passwd", in: l, images: .hashOnly)
        XCTAssertEqual(items.count, 2)
        XCTAssertTrue(items[1].item.images.isEmpty, "nothing outside the folder was read")
    }

    func testSignaturesOfTheFormatsServersTake() throws {
        XCTAssertEqual(try ImageSignature.check(Self.png), .png)
        XCTAssertThrowsError(try ImageSignature.check(Data()))
        XCTAssertThrowsError(try ImageSignature.check(Data([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10])), "JPEG without a frame header")
        let gif = Data("GIF89a".utf8) + Data([1, 0, 1, 0, 0, 0, 0])
        XCTAssertEqual(try ImageSignature.check(gif), .gif)
        XCTAssertThrowsError(try ImageSignature.check(Data("GIF89a".utf8) + Data([0, 0, 0, 0, 0, 0, 0])), "zero-width GIF")
    }
}
