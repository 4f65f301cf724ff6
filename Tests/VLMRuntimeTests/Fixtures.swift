import Foundation
import XCTest
@testable import VLMRuntime

/// Locates ../shared/fixtures next to the repository and compares tensors against goldens.
enum Fixtures {
    static var root: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("../shared/fixtures").standardized
    }

    static func require(_ relative: String) throws -> URL {
        let url = root.appendingPathComponent(relative)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw XCTSkip("…/shared/fixtures not found: \(url.path)")
        }
        return url
    }

    static func json(_ relative: String) throws -> [String: Any] {
        let url = try require(relative)
        // Foundation drops a raw U+FEFF at the start of a JSON string value (it decodes string
        // slices with BOM stripping); spell it as an escape so fixture texts survive intact.
        var bytes = [UInt8](try Data(contentsOf: url))
        var i = 1
        while i + 2 < bytes.count {
            if bytes[i] == 0xEF && bytes[i + 1] == 0xBB && bytes[i + 2] == 0xBF {
                bytes.replaceSubrange(i..<(i + 3), with: Array("\\ufeff".utf8))
            }
            i += 1
        }
        let data = Data(bytes)
        guard let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw XCTSkip("fixture \(relative) is not a JSON object")
        }
        return obj
    }

    /// Path of a processor fixture image: the first one listed whose mode is `mode`
    /// (the held-back set has other file names).
    static func image(mode: String = "RGB") throws -> String {
        let idx = try json("goldens/processor/index.json")
        let images = (idx["images"] as? [String: [String: Any]]) ?? [:]
        guard let name = images.keys.sorted().first(where: { (images[$0]?["mode"] as? String) == mode }) ?? images.keys.sorted().first else {
            throw XCTSkip("no images in goldens/processor/index.json")
        }
        return try require("goldens/processor/\(name)").path
    }

    static func goldens(_ relative: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(path: require(relative).path)
    }
}

/// |got − want| ≤ atol + rtol·|want| everywhere, with the worst element in the message.
func assertClose(_ got: [Float], _ want: [Float], atol: Float = 1e-4, rtol: Float = 1e-4, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
    guard got.count == want.count else {
        XCTFail("\(label): \(got.count) values, expected \(want.count)", file: file, line: line)
        return
    }
    var worst = 0, worstDiff: Float = 0, bad = 0
    for i in 0..<got.count {
        let d = abs(got[i] - want[i])
        if !(d <= atol + rtol * abs(want[i])) {
            bad += 1
            if d > worstDiff || d.isNaN { worstDiff = d; worst = i }
        }
    }
    if bad > 0 {
        XCTFail("\(label): \(bad) of \(got.count) values off; worst at \(worst): got \(got[worst]), want \(want[worst])", file: file, line: line)
    }
}
