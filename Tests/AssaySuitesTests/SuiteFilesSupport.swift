import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

/// Helpers for the reasoning, video, agent and reward suite tests: the built-in suites, small
/// dataset files written in a test's temporary folder, and prompts rendered as text.
enum SuiteFiles {
    static func suite(_ id: String) throws -> Suite {
        try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory).suite(id)
    }

    /// Writes a pandas-style TSV (fields holding a tab, newline or quote are quoted).
    static func writeTSV(_ header: [String], _ rows: [[String]], to url: URL) throws {
        func field(_ value: String) -> String {
            guard value.contains("\t") || value.contains("\n") || value.contains("\"") else { return value }
            return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        let lines = [header] + rows
        try (lines.map { $0.map(field).joined(separator: "\t") }.joined(separator: "\n") + "\n")
            .write(to: url, atomically: true, encoding: .utf8)
    }

    static func load(_ suite: Suite, _ url: URL, images: ImageLoading = .keep, video: VideoSampling = VideoSampling()) throws -> [LoadedItem] {
        try suite.loadItems(from: DatasetFile.read(url), images: images, video: video)
    }

    /// Messages as text: role headers, `<image>` where an image stands.
    static func render(_ messages: [Message]) -> String {
        messages.map { "[\($0.role.rawValue)]\n\($0.renderedText)" }.joined(separator: "\n") + "\n"
    }

    /// The first bytes of a PNG of the given size (signature and IHDR), enough for size reading
    /// and hashing; no test decodes it.
    static func png(width: Int, height: Int) -> Data {
        var bytes: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13]
        bytes += Array("IHDR".utf8)
        for value in [width, height] {
            bytes += [UInt8((value >> 24) & 0xFF), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
        }
        bytes += [8, 2, 0, 0, 0, 0, 0, 0, 0]
        // An IEND chunk and padding keep the base64 text longer than the 64 characters below which
        // a TSV `image` field is read as a reference to another row.
        bytes += [0, 0, 0, 0] + Array("IEND".utf8) + [0xAE, 0x42, 0x60, 0x82] + [UInt8](repeating: 0, count: 16)
        return Data(bytes)
    }

    /// Runs ffmpeg to make a small test video, or skips the test when ffmpeg is missing.
    static func makeVideo(at url: URL, seconds: Int = 2, test: XCTestCase) throws {
        let ffmpeg: URL
        do {
            ffmpeg = try FrameSampler.locate("ffmpeg")
        } catch {
            throw XCTSkip("ffmpeg is not installed (Debian package 'ffmpeg'): \(error)")
        }
        let result = try FrameSampler.run(ffmpeg, [
            "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=\(seconds):size=64x48:rate=10",
            "-pix_fmt", "yuv420p", "-y", url.path,
        ])
        XCTAssertEqual(result.status, 0, String(decoding: result.stderr, as: UTF8.self))
    }

    /// Asserts that a throwing call fails with a `DatasetError` naming `file` and a line.
    static func assertDatasetError(
        _ body: () throws -> Void, file path: String, line expectedLine: Int?, mentioning words: [String],
        sourceFile: StaticString = #filePath, sourceLine: UInt = #line
    ) {
        do {
            try body()
            XCTFail("expected a DatasetError", file: sourceFile, line: sourceLine)
        } catch let error as DatasetError {
            XCTAssertEqual(error.file, path, file: sourceFile, line: sourceLine)
            if let expectedLine { XCTAssertEqual(error.line, expectedLine, "\(error)", file: sourceFile, line: sourceLine) }
            for word in words {
                XCTAssertTrue(error.description.contains(word), "'\(word)' not in: \(error)", file: sourceFile, line: sourceLine)
            }
        } catch {
            XCTFail("expected a DatasetError, got \(error)", file: sourceFile, line: sourceLine)
        }
    }
}

/// String literals as metadata values in tests (`metadata: ["question_type": "open"]`).
extension JSONValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}
