import AssayCore
import AssayEngine
import AssayStore
import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

/// Run settings kept true through resumed sweeps, shards and `assay merge`, and the sweep's
/// own output (one final progress line, other shards' items not called missing), driven as a
/// user drives them: the `assay` binary against the in-repo server, on the generated `sanity`
/// suite (no fixtures needed).
final class ResearcherSweepTests: XCTestCase {
    /// Answers naming each sanity item's gold letter.
    func sanityAnswers() throws -> [String: String] {
        let suite = try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory).suite("sanity")
        let items = try XCTUnwrap(try suite.generatedItems()).items
        return Dictionary(items.map { ($0.item.id, "The answer is (\($0.item.answer)).") }, uniquingKeysWith: { a, _ in a })
    }

    func sweep(_ db: URL, run: String, url: String, _ extra: [String]) -> [String] {
        ["sweep", "--db", db.path, "--run", run, "--suites", "sanity", "--backend", "openai", "--base-url", url, "--model-name", "test-model"] + extra
    }

    func run(_ arguments: [String], in dir: URL, name: String, expect status: Int32 = 0) async throws -> AssayProcess {
        let process = try AssayProcess(arguments, logs: dir, name: name)
        let code = try await process.wait()
        XCTAssertEqual(code, status, "\(arguments.joined(separator: " ")):\n\(process.output)\n\(process.errors)")
        return process
    }

    func testResumedRunWithALargerLimitRecordsTheNewLimitAndPrintsTheFinalProgressLineOnce() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let db = dir.appendingPathComponent("limit.sqlite")
        try await withServer(responder: AnswerKeyResponder(answers: try sanityAnswers())) { server in
            let first = try await run(sweep(db, run: "s", url: server.baseURL, ["--limit", "20"]), in: dir, name: "first")
            XCTAssertEqual(first.errors.components(separatedBy: "ETA done").count - 1, 1, "the final progress line is printed once:\n\(first.errors)")
            XCTAssertEqual(try Store(path: db.path).requireRun("s").noteValues["limit"], "20")
            let second = try await run(sweep(db, run: "s", url: server.baseURL, ["--limit", "30"]), in: dir, name: "second")
            XCTAssertEqual(second.errors.components(separatedBy: "ETA done").count - 1, 1, second.errors)
            XCTAssertTrue(second.errors.contains("30/30 100%"), second.errors)
        }
        let store = try Store(path: db.path)
        XCTAssertEqual(store.path, db.path)
        XCTAssertEqual(try store.requireRun("s").noteValues["limit"], "30", "the resumed run keeps saying limit 20")
        XCTAssertEqual(try store.responseCount(runID: try store.requireRun("s").id), 30)

        // The report says 30 of the suite's 200 items, because of the limit, and lists the settings.
        let report = dir.appendingPathComponent("limit.md")
        _ = try await run(["report", "--db", db.path, "--runs", "s", "--out", report.path, "--resamples", "100"], in: dir, name: "report")
        let markdown = try String(contentsOf: report, encoding: .utf8)
        XCTAssertTrue(markdown.contains("| 30 of 200 (limit 30) |"), markdown)
        XCTAssertTrue(markdown.contains("## Run settings") && markdown.contains("limit: 30") && markdown.contains("concurrency: 16"), markdown)
        XCTAssertTrue(markdown.contains("`{\"maxTokens\":1024,\"temperature\":0,\"topP\":1}`"), markdown)
        // A single run's chart shows scores, not deltas: no "+" labels.
        let svg = try String(contentsOf: dir.appendingPathComponent("limit.svg"), encoding: .utf8)
        XCTAssertTrue(svg.contains(">100.00</text>"), svg)
        XCTAssertFalse(svg.contains(">+"), svg)

        // `runs list` shows the run as complete with its 30 items.
        let list = try await run(["runs", "list", "--db", db.path, "--json"], in: dir, name: "list")
        let runs = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(list.output.utf8)) as? [[String: Any]])
        XCTAssertEqual(runs.first?["n"] as? Int, 30)
        XCTAssertEqual(runs.first?["status"] as? String, "complete")
        XCTAssertEqual(runs.first?["backend"] as? String, "openai")
    }

    func testResumingWithOtherSettingsFailsBeforeTheModelLoads() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let db = dir.appendingPathComponent("resume.sqlite")
        try await withServer(responder: AnswerKeyResponder(answers: try sanityAnswers())) { server in
            _ = try await run(sweep(db, run: "s", url: server.baseURL, ["--limit", "5"]), in: dir, name: "first")
            let other = try await run(sweep(db, run: "s", url: server.baseURL, ["--limit", "5", "--temperature", "0.7"]),
                                      in: dir, name: "temperature", expect: 1)
            XCTAssertTrue(other.errors.contains("run 's' already exists with generation parameters"), other.errors)
        }
        // A local backend would load the model first (minutes for a 7B): the existing run's backend
        // kind and parameters are checked before that, so a bad checkpoint path is never reached.
        let local = try await run(["sweep", "--db", db.path, "--run", "s", "--suites", "sanity", "--backend", "local",
                                   "--model-path", "/nonexistent/model.gguf", "--limit", "5"], in: dir, name: "local", expect: 1)
        XCTAssertTrue(local.errors.contains("run 's' already exists with backend openai"), local.errors)
        XCTAssertFalse(local.errors.contains("loading"), local.errors)
    }

    func testShardSummariesSayOtherShardsAndTheMergedRunIsNoLongerAShard() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        try await withServer(responder: AnswerKeyResponder(answers: try sanityAnswers())) { server in
            for index in 1...2 {
                let shard = try await run(sweep(dir.appendingPathComponent("shard\(index).sqlite"), run: "m", url: server.baseURL,
                                                ["--limit", "20", "--shard", "\(index)/2"]), in: dir, name: "shard\(index)")
                XCTAssertTrue(shard.output.contains("10 items in other shards (not missing"), shard.output)
                // The summary's missing column is 0: header "… n  unparsed  missing", the row "… 10  0  0".
                let row = try XCTUnwrap(shard.output.split(separator: "\n").first { $0.hasPrefix("sanity") }, shard.output)
                XCTAssertTrue(row.hasSuffix(" 10         0        0  —"), "\(row)")
                let stored = try Store(path: dir.appendingPathComponent("shard\(index).sqlite").path)
                let metrics = try XCTUnwrap(try stored.suiteResults(runID: try stored.requireRun("m").id).first).metrics
                XCTAssertEqual(metrics.missing, 0)
                XCTAssertEqual(metrics.metrics[ScoringPass.inOtherShards], 10)
            }
        }
        let merged = dir.appendingPathComponent("merged.sqlite")
        _ = try await run(["merge", "--db", merged.path, dir.appendingPathComponent("shard1.sqlite").path,
                           dir.appendingPathComponent("shard2.sqlite").path], in: dir, name: "merge")
        let store = try Store(path: merged.path)
        let notes = try store.requireRun("m").noteValues
        XCTAssertNil(notes["shard"], "the merged run still records a shard: \(notes)")
        XCTAssertEqual(notes["merged_shards"], "1/2, 2/2")
        let report = dir.appendingPathComponent("merged.md")
        _ = try await run(["report", "--db", merged.path, "--runs", "m", "--out", report.path, "--resamples", "100"], in: dir, name: "report")
        let markdown = try String(contentsOf: report, encoding: .utf8)
        XCTAssertTrue(markdown.contains("| 20 of 200 (limit 20) |"), markdown)
        XCTAssertFalse(markdown.contains("shard: 1/2") || markdown.contains("in other shards"), markdown)
        XCTAssertTrue(markdown.contains("merged_shards: 1/2, 2/2"), markdown)
    }

    func testLocalSweepTakesPixelBudgetThreadsAndRecordsThem() async throws {
        let checkpoint = try Fixtures.require("goldens/qwen2_5_vl_tiny/checkpoint")
        let dir = try Fixtures.temporaryDirectory(for: self)
        let db = dir.appendingPathComponent("local.sqlite")
        func local(_ run: String, _ extra: [String]) -> [String] {
            ["sweep", "--db", db.path, "--run", run, "--suites", "sanity", "--backend", "local", "--model-path", checkpoint.path,
             "--limit", "2", "--max-tokens", "2"] + extra
        }
        _ = try await run(local("default", []), in: dir, name: "default")
        _ = try await run(local("small", ["--min-pixels", "3136", "--max-pixels", "12544", "--threads", "1", "--batch-size", "2"]),
                          in: dir, name: "small")
        let store = try Store(path: db.path)
        func promptTokens(_ name: String) throws -> [Int] {
            try store.responses(runID: try store.requireRun(name).id, suiteID: "sanity").map { $0.response.promptTokens ?? 0 }
        }
        // The 224×224 picture is 64 image tokens by default; a 112×112 budget leaves 16.
        let full = try promptTokens("default"), small = try promptTokens("small")
        XCTAssertEqual(full.count, 2)
        XCTAssertEqual(zip(full, small).map { $0 - $1 }, [48, 48], "\(full) vs \(small)")
        let record = try store.requireRun("small")
        let notes = record.noteValues
        XCTAssertEqual(notes["min_pixels"], "3136")
        XCTAssertEqual(notes["max_pixels"], "12544")
        XCTAssertEqual(notes["threads"], "1")
        XCTAssertEqual(notes["batch_size"], "2")
        // The pixel budget changes the answers, so it is part of the backend identity (no reuse across budgets).
        XCTAssertTrue(record.backendIdentity.contains("max_pixels=12544"), record.backendIdentity)
        XCTAssertNotEqual(record.backendIdentity, try store.requireRun("default").backendIdentity)
        // Resuming with another pixel budget is refused before the model loads.
        let other = try await run(local("small", ["--min-pixels", "3136", "--max-pixels", "50176", "--batch-size", "2"]),
                                  in: dir, name: "other", expect: 1)
        XCTAssertTrue(other.errors.contains("run 'small' already exists with checkpoint"), other.errors)
        XCTAssertFalse(other.errors.contains("loading"), other.errors)
        let report = dir.appendingPathComponent("local.md")
        _ = try await run(["report", "--db", db.path, "--runs", "small", "--out", report.path, "--resamples", "50"], in: dir, name: "report")
        let markdown = try String(contentsOf: report, encoding: .utf8)
        for needle in ["batch_size: 2", "max_pixels: 12544", "threads: 1", "prefill_matmuls: f32", "limit: 2", "| 2 of 200 (limit 2) |"] {
            XCTAssertTrue(markdown.contains(needle), "report lacks '\(needle)':\n\(markdown)")
        }
    }
}
