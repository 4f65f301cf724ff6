import AssayCore
import AssayEngine
import AssayStore
import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

/// Values that used to trap the process (or silently do the wrong thing) are validation errors:
/// exit status 64 (ArgumentParser's usage error) with the flag named, never a signal.
final class CommandValidationTests: XCTestCase {
    func run(_ arguments: [String], name: String) async throws -> (status: Int32, reason: Process.TerminationReason, errors: String) {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let process = try AssayProcess(arguments, logs: dir, name: name)
        let status = try await process.wait(timeout: 120)
        return (status, process.process.terminationReason, process.errors)
    }

    func testAbsurdSweepFlagsAreValidationErrorsNotTraps() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let base = ["sweep", "--db", dir.appendingPathComponent("x.sqlite").path, "--run", "x", "--suites", "sanity",
                    "--base-url", "http://127.0.0.1:9", "--model-name", "m"]
        let cases: [([String], String)] = [
            (["--timeout", "nan"], "--timeout"),
            (["--timeout", "-1"], "--timeout"),
            (["--concurrency", "4611686018427387904"], "--concurrency"),
            (["--max-tokens", "9223372036854775807"], "--max-tokens"),
            (["--max-attempts", "0"], "--max-attempts"),
        ]
        for (index, (extra, flag)) in cases.enumerated() {
            let result = try await run(base + extra, name: "flag\(index)")
            XCTAssertEqual(result.reason, .exit, "\(extra): killed by a signal")
            XCTAssertNotEqual(result.status, 0, "\(extra)")
            XCTAssertTrue(result.errors.contains(flag), "\(extra): \(result.errors)")
        }
        // Nothing was created for a command that never started.
        XCTAssertEqual(try Self.runCount(dir.appendingPathComponent("x.sqlite")), 0)
    }

    func testAnEmptyPredictionsFileIsAnError() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let items = dir.appendingPathComponent("items.jsonl")
        try #"{"index": "1", "question": "Is it? Answer yes or no.", "answer": "yes"}"#.write(to: items, atomically: true, encoding: .utf8)
        let suites = dir.appendingPathComponent("suites/yn")
        try FileManager.default.createDirectory(at: suites, withIntermediateDirectories: true)
        try """
            id: yn
            group: perception
            columns: {required: [index, question, answer]}
            prompt: {version: 1, template: "{question}"}
            scorer: yes_no
            """.write(to: suites.appendingPathComponent("suite.yaml"), atomically: true, encoding: .utf8)
        let predictions = dir.appendingPathComponent("empty.jsonl")
        try Data().write(to: predictions)
        let db = dir.appendingPathComponent("i.sqlite")
        let result = try await run(["import", "--db", db.path, "--suites-dir", dir.appendingPathComponent("suites").path,
                                    "--suite", "yn", "--data", items.path, "--predictions", predictions.path, "--run", "empty"],
                                   name: "empty")
        XCTAssertEqual(result.reason, .exit)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.errors.contains("no predictions"), result.errors)
        XCTAssertEqual(try Self.runCount(db), 0, "no run was imported")
    }

    func testASuiteSourceNameCannotClimbOutOfTheDataFolder() throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let folder = dir.appendingPathComponent("evil")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try """
            id: evil
            group: perception
            source: {format: tsv, name: "../../outside", url: "https://example.invalid/x.tsv", md5: "00000000000000000000000000000000"}
            columns: {required: [index, question, answer]}
            prompt: {version: 1, template: "{question}"}
            scorer: yes_no
            """.write(to: folder.appendingPathComponent("suite.yaml"), atomically: true, encoding: .utf8)
        let manifest = try SuiteManifest.load(from: folder.appendingPathComponent("suite.yaml"))
        let suite = try Suite(manifest: manifest, scorer: try ScorerRegistry.scorer(for: manifest))
        let fetch = DataFetch(directory: dir.appendingPathComponent("data"))
        XCTAssertThrowsError(try fetch.file(for: suite)) { error in
            XCTAssertEqual(error as? DataFetchError, .badSourceName(suite: "evil", name: "../../outside"))
        }
    }

    static func runCount(_ db: URL) throws -> Int {
        guard FileManager.default.fileExists(atPath: db.path) else { return 0 }
        return try Store(path: db.path).integer("SELECT COUNT(*) FROM runs")
    }
}
