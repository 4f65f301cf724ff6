import AssayBackends
import AssayCore
import AssayEngine
import AssayServer
import AssayStore
import AssayTestSupport
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Answers after a short delay, so a sweep takes long enough to be interrupted.
struct SlowResponder: ChatResponder {
    var inner: AnswerKeyResponder
    var delay: Double
    func reply(to request: OpenAIWire.ChatRequest, context: ChatRequestContext) async -> ChatReply {
        try? await Task.sleep(nanoseconds: UInt64(delay * 1e9))
        return await inner.reply(to: request, context: context)
    }
}

/// `assay sweep` as a user runs it: a child process against the test server, then the database
/// file inspected directly.
final class SweepCommandTests: XCTestCase {
    func sweepArguments(db: URL, run: String, data: URL, url: String, model: String = "test-model", extra: [String] = []) -> [String] {
        ["sweep", "--db", db.path, "--run", run, "--suites", "mmstar", "--data", data.path, "--backend", "openai",
         "--base-url", url, "--model-name", model] + extra
    }

    func testKillNineHalfwayThenTheSameCommandAsksOnlyForWhatIsMissing() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let fixture = try MMStarFixture.make(in: dir)
        let db = dir.appendingPathComponent("killed.sqlite")
        try await withServer(responder: SlowResponder(inner: AnswerKeyResponder(answers: fixture.answers), delay: 0.004)) { server in
            let arguments = sweepArguments(db: db, run: "k", data: fixture.itemsFile, url: server.baseURL, extra: ["--concurrency", "4"])
            let first = try AssayProcess(arguments, logs: dir, name: "first")
            // Wait until about half the responses are stored, then kill -9.
            let deadline = Date().addingTimeInterval(120)
            var stored = 0
            while stored < 700, Date() < deadline, first.process.isRunning {
                try await Task.sleep(nanoseconds: 20_000_000)
                stored = (try? Self.count(db, "SELECT COUNT(*) FROM responses")) ?? 0
            }
            XCTAssertTrue(first.process.isRunning, "the sweep finished before it could be killed: \(first.errors)")
            kill(first.process.processIdentifier, SIGKILL)
            _ = try await first.wait()
            XCTAssertEqual(first.process.terminationReason, .uncaughtSignal)
            let afterKill = try Self.count(db, "SELECT COUNT(*) FROM responses")
            XCTAssertGreaterThan(afterKill, 600)
            XCTAssertLessThan(afterKill, 1500)
            let asked = server.statistics.chatRequests

            let second = try AssayProcess(arguments, logs: dir, name: "second")
            let status = try await second.wait()
            XCTAssertEqual(status, 0, second.errors)
            XCTAssertEqual(server.statistics.chatRequests - asked, 1500 - afterKill, "the rerun asks exactly for what is missing")
            XCTAssertTrue(second.output.contains("mmstar"), second.output)
            // The progress line on stderr (plain lines when stderr is not a terminal) and the summary.
            XCTAssertTrue(second.errors.contains("1500/1500 100%") && second.errors.contains("req/s") && second.errors.contains("ETA done")
                          && second.errors.contains("errors 0"), second.errors)
            XCTAssertTrue(second.errors.contains("stored before"), second.errors)
            XCTAssertTrue(second.output.contains("100.00"), second.output)
        }
        XCTAssertEqual(try Self.count(db, "SELECT COUNT(*) FROM responses"), 1500)
        XCTAssertEqual(try Self.count(db, "SELECT COUNT(*) FROM (SELECT DISTINCT suite_id, item_id, sample_index FROM responses)"), 1500)
        XCTAssertEqual(try Self.count(db, "SELECT COUNT(*) FROM responses WHERE status != 'ok'"), 0)
        let store = try Store(path: db.path)
        XCTAssertEqual(try store.integrityCheck(), "ok")
        XCTAssertEqual(try store.suiteResults(runID: try store.requireRun("k").id).first?.metrics.score, 100)
    }

    func testTwoSweepsIntoOneDatabaseAtOnceBothComplete() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let fixture = try MMStarFixture.make(in: dir)
        let db = dir.appendingPathComponent("shared.sqlite")
        try await withServer(models: ["model-a", "model-b"], responder: AnswerKeyResponder(answers: fixture.answers)) { server in
            let a = try AssayProcess(sweepArguments(db: db, run: "a", data: fixture.itemsFile, url: server.baseURL, model: "model-a",
                                                    extra: ["--limit", "600"]), logs: dir, name: "a")
            let b = try AssayProcess(sweepArguments(db: db, run: "b", data: fixture.itemsFile, url: server.baseURL, model: "model-b",
                                                    extra: ["--limit", "600"]), logs: dir, name: "b")
            let statusA = try await a.wait()
            let statusB = try await b.wait()
            XCTAssertEqual(statusA, 0, a.errors)
            XCTAssertEqual(statusB, 0, b.errors)
        }
        let store = try Store(path: db.path)
        for run in ["a", "b"] {
            let record = try store.requireRun(run)
            XCTAssertEqual(try store.responseCount(runID: record.id), 600)
            XCTAssertEqual(try store.suiteResults(runID: record.id).first?.metrics.score, 100)
        }
        XCTAssertEqual(try store.integrityCheck(), "ok")
    }

    func testServerDownExitsNonZeroWithEveryItemMissingThenRerunCompletes() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let fixture = try MMStarFixture.make(in: dir)
        let db = dir.appendingPathComponent("down.sqlite")
        let port = try await closedPort()
        let arguments = sweepArguments(db: db, run: "d", data: fixture.itemsFile, url: "http://127.0.0.1:\(port)",
                                       extra: ["--limit", "25", "--max-attempts", "2"])
        let down = try AssayProcess(arguments, logs: dir, name: "down")
        let downStatus = try await down.wait()
        XCTAssertNotEqual(downStatus, 0)
        XCTAssertTrue(down.output.contains("errors: connection 25"), down.output)
        XCTAssertTrue(down.errors.contains("25 requests failed after retries and are reported missing"), down.errors)
        XCTAssertEqual(try Self.count(db, "SELECT COUNT(*) FROM responses WHERE status = 'error' AND text = ''"), 25)

        try await withServer(responder: AnswerKeyResponder(answers: fixture.answers), port: port) { _ in
            let up = try AssayProcess(arguments, logs: dir, name: "up")
            let upStatus = try await up.wait()
            XCTAssertEqual(upStatus, 0, up.errors)
            XCTAssertTrue(up.output.contains("100.00"), up.output)
        }
        XCTAssertEqual(try Self.count(db, "SELECT COUNT(*) FROM responses WHERE status = 'ok'"), 25)
    }

    func testAPIKeyAppearsNowhereInDatabaseLogsOrReport() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let fixture = try MMStarFixture.make(in: dir)
        let db = dir.appendingPathComponent("keys.sqlite")
        let key = "sk-assay-test-\(UUID().uuidString)"
        let environment = ["ASSAY_TEST_API_KEY": key]
        try await withServer(models: ["base-model", "cand-model"], apiKey: key,
                             responder: AnswerKeyResponder(answers: fixture.answers), faults: .acceptanceMix(seed: 3)) { server in
            for (run, model) in [("base", "base-model"), ("cand", "cand-model")] {
                let sweep = try AssayProcess(
                    sweepArguments(db: db, run: run, data: fixture.itemsFile, url: server.baseURL, model: model,
                                   extra: ["--limit", "60", "--api-key-env", "ASSAY_TEST_API_KEY", "--timeout", "2"]),
                    environment: environment, logs: dir, name: "sweep-\(run)")
                let status = try await sweep.wait()
                XCTAssertEqual(status, 0, sweep.errors)
            }
            XCTAssertEqual(server.statistics.unauthorized, 0, "the key was sent")
            XCTAssertGreaterThan(server.statistics.completions, 100)
            // Without the key the server refuses, and the refusal is an error status, not text.
            let refused = try AssayProcess(
                sweepArguments(db: db, run: "nokey", data: fixture.itemsFile, url: server.baseURL, model: "base-model",
                               extra: ["--limit", "3", "--no-reuse"]), environment: environment, logs: dir, name: "nokey")
            let refusedStatus = try await refused.wait()
            XCTAssertNotEqual(refusedStatus, 0)
            XCTAssertTrue(refused.output.contains("http_401 3"), refused.output)
        }
        let report = try AssayProcess(
            ["report", "--db", db.path, "--base", "base", "--runs", "cand", "--out", dir.appendingPathComponent("report.md").path],
            environment: environment, logs: dir, name: "report")
        let reportStatus = try await report.wait()
        XCTAssertEqual(reportStatus, 0, report.errors)
        let metrics = try AssayProcess(["metrics", "--db", db.path, "--run", "cand", "--json"], environment: environment, logs: dir, name: "metrics")
        _ = try await metrics.wait()

        var searched: [String] = []
        let needle = Data(key.utf8)
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) {
            let url = dir.appendingPathComponent(name)
            let data = try Data(contentsOf: url)
            XCTAssertNil(data.range(of: needle), "the API key is in \(name)")
            searched.append(name)
        }
        for expected in ["keys.sqlite", "report.md", "report.svg", "sweep-base.out", "sweep-base.err", "nokey.out", "report.out"] {
            XCTAssertTrue(searched.contains(expected), "\(expected) was not searched: \(searched)")
        }
        // The variable's name is recorded, so a rerun knows where the key came from.
        XCTAssertTrue(try Store(path: db.path).requireRun("cand").notes.contains("ASSAY_TEST_API_KEY"))
    }

    func testShardSweepsMergeWithTheMergeCommand() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let fixture = try MMStarFixture.make(in: dir)
        try await withServer(responder: AnswerKeyResponder(answers: fixture.answers)) { server in
            for index in 1...2 {
                let shard = try AssayProcess(
                    sweepArguments(db: dir.appendingPathComponent("shard\(index).sqlite"), run: "m", data: fixture.itemsFile,
                                   url: server.baseURL, extra: ["--limit", "200", "--shard", "\(index)/2"]),
                    logs: dir, name: "shard\(index)")
                let status = try await shard.wait()
                XCTAssertEqual(status, 0, shard.errors)
                XCTAssertTrue(shard.output.contains("100.00"), shard.output)
            }
        }
        let merged = dir.appendingPathComponent("merged.sqlite")
        let merge = try AssayProcess(["merge", "--db", merged.path, dir.appendingPathComponent("shard1.sqlite").path,
                                      dir.appendingPathComponent("shard2.sqlite").path], logs: dir, name: "merge")
        let status = try await merge.wait()
        XCTAssertEqual(status, 0, merge.errors)
        XCTAssertTrue(merge.output.contains("run m: 100 added"), merge.output)
        XCTAssertTrue(merge.output.contains("m mmstar: 100.00  (n 200, unparsed 0, missing 0)"), merge.output)
        XCTAssertEqual(try Self.count(merged, "SELECT COUNT(*) FROM responses"), 200)
    }

    func testDataFileNeedsExactlyOneSuite() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let process = try AssayProcess(
            ["sweep", "--db", dir.appendingPathComponent("x.sqlite").path, "--run", "x", "--suites", "mmstar,blink",
             "--data", "/nonexistent.jsonl", "--base-url", "http://127.0.0.1:9", "--model-name", "m"], logs: dir, name: "two")
        let status = try await process.wait()
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(process.errors.contains("exactly one suite"), process.errors)
    }

    static func count(_ db: URL, _ sql: String) throws -> Int {
        // The sqlite3 command line would do; reading through a Store checks the file opens cleanly too.
        let store = try Store(path: db.path)
        return try store.integer(sql)
    }
}

/// Several processes opening one new database file at the same moment all get a migrated store.
final class ConcurrentOpenTests: XCTestCase {
    func testProcessesCreatingOneDatabaseTogetherAllSucceed() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        for round in 0..<6 {
            let db = dir.appendingPathComponent("fresh\(round).sqlite")
            // `merge` creates its target database (read commands like `metrics` never create one).
            let processes = try (0..<6).map { i in
                try AssayProcess(["merge", "--db", db.path, "/nonexistent/shard.sqlite"], logs: dir, name: "open\(round)-\(i)")
            }
            for process in processes {
                _ = try await process.wait()
                // The missing shard fails the merge, but only after the store opened and migrated.
                XCTAssertTrue(process.errors.contains("shard database /nonexistent/shard.sqlite does not exist"), process.errors)
            }
            XCTAssertEqual(try Store(existingPath: db.path, readOnly: true).integrityCheck(), "ok")
        }
    }
}
