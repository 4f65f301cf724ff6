import AssayCore
import AssayServer
import AssayStore
import AssaySuites
import AssayTestSupport
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// `assay select` and `assay report --scaling` as a user runs them: child processes against
/// scripted servers or the embedded runtime, the database inspected afterwards.
final class SelectCommandTests: XCTestCase {
    struct SummaryJSON: Decodable {
        struct Critic: Decodable { var needed, asked, cached, failed, unparsed, disagreements, matches: Int }
        struct Point: Decodable {
            var n: Int
            var run: String
            var suites: [String: Double]
            var failed: Int
        }
        var points: [Point]
        var critic: Critic
    }

    /// A policy run of 12 arithmetic items × 8 samples swept through the CLI.
    func sweptPolicy(_ dir: URL, db: URL) async throws {
        let catalog = try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory)
        let items = try XCTUnwrap(try catalog.suite("arithmetic").generatedItems()).items.prefix(12).map(\.item)
        var answers: [String: [String]] = [:]
        for (i, item) in items.enumerated() {
            let gold = try XCTUnwrap(Int(item.answer))
            answers[item.id] = (0..<8).map { k in (2 * i + k) % 4 == 0 ? "\(gold)" : "\(gold + 1 + k)" }
        }
        try await withServer(responder: SampleTableResponder(answers: answers)) { server in
            let sweep = try AssayProcess(
                ["sweep", "--db", db.path, "--run", "policy", "--suites", "arithmetic", "--limit", "12", "--samples", "8",
                 "--temperature", "1", "--seed", "0", "--base-url", server.baseURL, "--model-name", "test-model"],
                logs: dir, name: "sweep")
            let status = try await sweep.wait()
            XCTAssertEqual(status, 0, sweep.errors)
        }
    }

    func testKillNineDuringSelectionThenTheSameCommandAsksOnlyWhatIsMissing() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let db = dir.appendingPathComponent("select.sqlite")
        try await sweptPolicy(dir, db: db)
        let critic = ScriptedCritic()
        critic.delay.withLock { $0 = 0.02 }
        try await withServer(models: ["critic"], responder: critic) { server in
            let arguments = ["select", "--db", db.path, "--run", "policy", "--method", "self-critic", "--n", "1,2,4,8",
                             "--critic-base-url", server.baseURL, "--critic-model-name", "critic", "--concurrency", "2", "--json"]
            let first = try AssayProcess(arguments, logs: dir, name: "first")
            let deadline = Date().addingTimeInterval(120)
            var stored = 0
            while stored < 40, Date() < deadline, first.process.isRunning {
                try await Task.sleep(nanoseconds: 20_000_000)
                stored = (try? SweepCommandTests.count(db, "SELECT COUNT(*) FROM critic_judgements WHERE status = 'ok'")) ?? 0
            }
            XCTAssertTrue(first.process.isRunning, "the selection finished before it could be killed: \(first.errors)")
            kill(first.process.processIdentifier, SIGKILL)
            _ = try await first.wait()
            XCTAssertEqual(first.process.terminationReason, .uncaughtSignal)
            let afterKill = try SweepCommandTests.count(db, "SELECT COUNT(*) FROM critic_judgements WHERE status = 'ok'")
            XCTAssertGreaterThan(afterKill, 0)

            critic.delay.withLock { $0 = 0 }
            let second = try AssayProcess(arguments, logs: dir, name: "second")
            let status = try await second.wait()
            XCTAssertEqual(status, 0, second.errors)
            let summary = try JSONDecoder().decode(SummaryJSON.self, from: Data(second.output.utf8))
            let total = try SweepCommandTests.count(db, "SELECT COUNT(*) FROM critic_judgements")
            XCTAssertEqual(summary.critic.asked, total - afterKill, "the rerun asks exactly for what is missing")
            XCTAssertGreaterThanOrEqual(summary.critic.cached, afterKill)
            XCTAssertEqual(summary.points.map(\.n), [1, 2, 4, 8])
            XCTAssertEqual(summary.points.map(\.failed), [0, 0, 0, 0])
            XCTAssertEqual(summary.points.map(\.run), ["policy@self-critic-1", "policy@self-critic-2", "policy@self-critic-4", "policy@self-critic-8"])

            // The oracle through the CLI agrees with a critic that knows the answers.
            let oracle = try AssayProcess(["select", "--db", db.path, "--run", "policy", "--method", "oracle", "--n", "1,2,4,8", "--json"],
                                          logs: dir, name: "oracle")
            let oracleStatus = try await oracle.wait()
            XCTAssertEqual(oracleStatus, 0, oracle.errors)
            let oracleSummary = try JSONDecoder().decode(SummaryJSON.self, from: Data(oracle.output.utf8))
            XCTAssertEqual(oracleSummary.points.map { $0.suites["arithmetic"] }, summary.points.map { $0.suites["arithmetic"] })

            // metrics and the scaling report read the derived runs.
            let metrics = try AssayProcess(["metrics", "--db", db.path, "--run", "policy@self-critic-8"], logs: dir, name: "metrics")
            let metricsStatus = try await metrics.wait()
            XCTAssertEqual(metricsStatus, 0, metrics.errors)
            XCTAssertTrue(metrics.output.contains("arithmetic"), metrics.output)
            let out = dir.appendingPathComponent("reports/policy-scaling.md")
            let report = try AssayProcess(["report", "--db", db.path, "--scaling", "policy", "--out", out.path, "--resamples", "200"],
                                          logs: dir, name: "report")
            let reportStatus = try await report.wait()
            XCTAssertEqual(reportStatus, 0, report.errors)
            let markdown = try String(contentsOf: out, encoding: .utf8)
            XCTAssertTrue(markdown.contains("self-critic") && markdown.contains("oracle") && markdown.contains("Critic calls per item"), markdown)
            let svg = try String(contentsOf: dir.appendingPathComponent("reports/policy-scaling.svg"), encoding: .utf8)
            XCTAssertTrue(svg.hasPrefix("<svg") && svg.contains("<polyline"), svg)
        }
    }

    func testSelectionErrorsComeBeforeAnyCall() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let db = dir.appendingPathComponent("select.sqlite")
        try await sweptPolicy(dir, db: db)
        let cases: [([String], String)] = [
            (["--method", "oracle", "--n", "16"], "--samples 16"),
            (["--method", "best", "--n", "2"], "--method must be one of first, majority, oracle, self-critic"),
            (["--method", "oracle", "--n", "0,2"], "positive integers"),
            // An HTTP run records no checkpoint path: the critic must be named.
            (["--method", "self-critic", "--n", "2", "--critic-model-path", "/nonexistent/model.gguf"], "/nonexistent/model.gguf"),
        ]
        for (extra, expected) in cases {
            let process = try AssayProcess(["select", "--db", db.path, "--run", "policy"] + extra, logs: dir, name: "bad")
            let status = try await process.wait()
            XCTAssertNotEqual(status, 0, extra.joined(separator: " "))
            XCTAssertTrue(process.errors.contains(expected), "\(extra): \(process.errors)")
        }
        XCTAssertEqual(try SweepCommandTests.count(db, "SELECT COUNT(*) FROM runs"), 1)
        XCTAssertEqual(try SweepCommandTests.count(db, "SELECT COUNT(*) FROM critic_judgements"), 0)
    }

    /// The embedded runtime's default critic is the run's own checkpoint, images included: the
    /// tiny Qwen2.5-VL judges its own samples of the generated picture questions.
    func testTheDefaultCriticIsTheRunsOwnLocalModelWithTheImages() async throws {
        let checkpoint = try Fixtures.require("goldens/qwen2_5_vl_tiny/checkpoint")
        let dir = try Fixtures.temporaryDirectory(for: self)
        let db = dir.appendingPathComponent("local.sqlite")
        let sweep = try AssayProcess(
            ["sweep", "--db", db.path, "--run", "tiny", "--suites", "sanity", "--limit", "3", "--samples", "2", "--temperature", "1",
             "--seed", "3", "--max-tokens", "4", "--model-path", checkpoint.path, "--batch-size", "2"], logs: dir, name: "sweep")
        let sweepStatus = try await sweep.wait()
        XCTAssertEqual(sweepStatus, 0, sweep.errors)
        let arguments = ["select", "--db", db.path, "--run", "tiny", "--method", "self-critic", "--n", "1,2", "--critic-max-tokens", "4", "--json"]
        let select = try AssayProcess(arguments, logs: dir, name: "select")
        let status = try await select.wait()
        XCTAssertEqual(status, 0, select.errors)
        XCTAssertTrue(select.errors.contains("the run's own model: self-critic"), select.errors)
        let summary = try JSONDecoder().decode(SummaryJSON.self, from: Data(select.output.utf8))
        XCTAssertEqual(summary.critic.needed, 6)  // 3 items × 1 match × 2 orders at n = 2
        XCTAssertEqual(summary.critic.asked + summary.critic.cached, 6)
        XCTAssertEqual(summary.critic.failed, 0)
        // Every critic prompt carried the item's picture: the prompt is longer than the text alone.
        let store = try Store(path: db.path)
        XCTAssertGreaterThan(try store.integer("SELECT MIN(prompt_tokens) FROM critic_judgements"), 64)
        let notes = try store.requireRun("tiny@self-critic-2").notes
        XCTAssertTrue(notes.contains("\"critic_is_self\":\"yes\""), notes)

        let again = try AssayProcess(arguments, logs: dir, name: "again")
        let againStatus = try await again.wait()
        XCTAssertEqual(againStatus, 0, again.errors)
        XCTAssertEqual(try JSONDecoder().decode(SummaryJSON.self, from: Data(again.output.utf8)).critic.asked, 0)
    }
}
