import AssayBackends
import AssayCore
import AssayEngine
import AssayServer
import AssayStore
import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

/// Live sweeps against a real HTTP server on 127.0.0.1 and a real SQLite file.
final class SweepTests: XCTestCase {
    func testCorrectServerGivesHundredPercentOnMMStar() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let fixture = try MMStarFixture.make(in: dir)
        let store = try Store(path: dir.appendingPathComponent("sweep.sqlite").path)
        let progress = Locked<[SweepProgress]>([])
        let summary = try await withServer(responder: AnswerKeyResponder(answers: fixture.answers)) { server in
            try await Sweep(
                configuration: SweepConfiguration(run: "correct", suites: [SweepSuite(suite: fixture.suite, dataset: fixture.itemsFile)]),
                backend: try backend(server.baseURL), store: store, progress: { p in progress.withLock { $0.append(p) } }
            ).run()
        }
        let mmstar = try XCTUnwrap(summary.suites.first)
        XCTAssertEqual(fixture.count, 1500)
        XCTAssertEqual(mmstar.planned, 1500)
        XCTAssertEqual(mmstar.asked, 1500)
        XCTAssertEqual(mmstar.ok, 1500)
        XCTAssertEqual(mmstar.metrics?.score, 100)
        XCTAssertEqual(mmstar.metrics?.n, 1500)
        XCTAssertEqual(mmstar.metrics?.missing, 0)
        XCTAssertEqual(summary.missing, 0)
        let responses = try storedResponses(store, run: "correct", suite: "mmstar")
        XCTAssertEqual(responses.count, 1500)
        XCTAssertTrue(responses.allSatisfy { $0.response.status == .ok && $0.response.attempts == 1 && $0.response.promptTokens != nil })
        // Progress: reported along the way and finished at the end, with a rate and an ETA line.
        let reports = progress.snapshot
        XCTAssertGreaterThan(reports.count, 1)
        let last = try XCTUnwrap(reports.last)
        XCTAssertTrue(last.finished)
        XCTAssertEqual(last.asked, 1500)
        XCTAssertTrue(last.line().contains("1500/1500 100%"), last.line())
        XCTAssertTrue(last.line().contains("req/s") && last.line().contains("ETA done") && last.line().contains("errors 0"))
    }

    func testInjectedFaultsStillCompleteWithHundredPercentAndNoErrorText() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let fixture = try MMStarFixture.make(in: dir)
        let store = try Store(path: dir.appendingPathComponent("faults.sqlite").path)
        let plan = FaultPlan.acceptanceMix(seed: 7, retryAfterSeconds: 1)
        let (summary, stats, counters) = try await withServer(
            responder: AnswerKeyResponder(answers: fixture.answers), faults: plan
        ) { server in
            let model = try backend(server.baseURL, concurrency: 32, timeout: 1.5, maxAttempts: 10)
            let summary = try await Sweep(
                configuration: SweepConfiguration(run: "faults", suites: [SweepSuite(suite: fixture.suite, dataset: fixture.itemsFile)],
                                                  concurrency: 32),
                backend: model, store: store
            ).run()
            return (summary, server.statistics, model.counterSnapshot)
        }
        let mmstar = try XCTUnwrap(summary.suites.first)
        XCTAssertEqual(mmstar.metrics?.score, 100)
        XCTAssertEqual(mmstar.metrics?.n, 1500)
        XCTAssertEqual(mmstar.metrics?.missing, 0)
        XCTAssertEqual(mmstar.errorCount, 0)
        // Every kind of fault happened, and each was retried.
        for fault in plan.rates.keys {
            XCTAssertGreaterThan(stats.faults[fault] ?? 0, 0, "no \(fault.rawValue) injected")
        }
        let injected = stats.faults.values.reduce(0, +)
        let extraAttempts = stats.chatRequests - 1500
        // Each fault costs one more attempt (a spurious client timeout on a loaded machine could add one).
        XCTAssertGreaterThanOrEqual(extraAttempts, injected)
        XCTAssertEqual(Double(injected) / Double(stats.chatRequests), 0.21, accuracy: 0.04)
        for kind in ["http_500", "http_429", "timeout", "malformed_json"] {
            XCTAssertGreaterThan(counters.retriesByKind[kind] ?? 0, 0, "no retry recorded for \(kind): \(counters.retriesByKind)")
        }
        // Retry-After was honoured: no request came back sooner than the server asked.
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(stats.shortestRetryAfterGap), 0.95)
        // Retry counts are stored per response and add up to the faults the server injected.
        let responses = try storedResponses(store, run: "faults", suite: "mmstar")
        XCTAssertEqual(responses.count, 1500)
        XCTAssertEqual(responses.reduce(0) { $0 + $1.response.attempts - 1 }, extraAttempts)
        XCTAssertEqual(mmstar.retries, extraAttempts)
        XCTAssertGreaterThan(responses.filter { $0.response.attempts > 1 }.count, 100)
        // Only answers are stored as text: never an error message.
        let answers = Set(fixture.answers.values)
        for response in responses {
            XCTAssertEqual(response.response.status, .ok)
            XCTAssertTrue(answers.contains(response.response.text), "stored text is not an answer: \(response.response.text)")
        }
    }

    func testServerDownReportsEveryItemMissingThenRerunCompletes() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let fixture = try MMStarFixture.make(in: dir)
        let store = try Store(path: dir.appendingPathComponent("down.sqlite").path)
        let port = try await closedPort()
        let config = SweepConfiguration(run: "down", suites: [SweepSuite(suite: fixture.suite, dataset: fixture.itemsFile)], limit: 40)
        let down = try await Sweep(
            configuration: config, backend: try backend("http://127.0.0.1:\(port)", maxAttempts: 3), store: store
        ).run()
        let first = try XCTUnwrap(down.suites.first)
        XCTAssertEqual(down.missing, 40)
        XCTAssertEqual(first.errors["connection"], 40, "\(first.errors)")
        XCTAssertEqual(first.metrics?.n, 0)
        XCTAssertEqual(first.metrics?.missing, 40)
        for response in try storedResponses(store, run: "down", suite: "mmstar") {
            XCTAssertEqual(response.response.status, .error)
            XCTAssertEqual(response.response.text, "")
            XCTAssertEqual(response.response.errorKind, "connection")
            XCTAssertEqual(response.response.attempts, 3)
            XCTAssertTrue(response.response.errorMessage?.contains("127.0.0.1:\(port)") ?? false)
        }
        // The same sweep with the server up on that port asks again for every failed item.
        let up = try await withServer(responder: AnswerKeyResponder(answers: fixture.answers), port: port) { server in
            try await Sweep(configuration: config, backend: try backend(server.baseURL), store: store).run()
        }
        let second = try XCTUnwrap(up.suites.first)
        XCTAssertEqual(second.asked, 40)
        XCTAssertEqual(up.missing, 0)
        XCTAssertEqual(second.metrics?.score, 100)
        XCTAssertEqual(second.metrics?.missing, 0)
        XCTAssertEqual(try storedResponses(store, run: "down", suite: "mmstar").count, 40)
    }

    func testResumeAsksOnlyForWhatIsMissingAndReuseAcrossRuns() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let fixture = try MMStarFixture.make(in: dir)
        let store = try Store(path: dir.appendingPathComponent("resume.sqlite").path)
        try await withServer(responder: AnswerKeyResponder(answers: fixture.answers)) { server in
            let entry = [SweepSuite(suite: fixture.suite, dataset: fixture.itemsFile)]
            let part = try await Sweep(configuration: SweepConfiguration(run: "r", suites: entry, limit: 30),
                                       backend: try backend(server.baseURL), store: store).run()
            XCTAssertEqual(part.suites[0].asked, 30)
            let rest = try await Sweep(configuration: SweepConfiguration(run: "r", suites: entry, limit: 50),
                                       backend: try backend(server.baseURL), store: store).run()
            XCTAssertEqual(rest.suites[0].alreadyStored, 30)
            XCTAssertEqual(rest.suites[0].asked, 20)
            XCTAssertEqual(server.statistics.chatRequests, 50)
            // Another run with the same backend and parameters reuses the stored answers (same cache keys).
            let copy = try await Sweep(configuration: SweepConfiguration(run: "r2", suites: entry, limit: 50),
                                       backend: try backend(server.baseURL), store: store).run()
            XCTAssertEqual(copy.suites[0].reused, 50)
            XCTAssertEqual(copy.suites[0].asked, 0)
            XCTAssertEqual(server.statistics.chatRequests, 50)
            // A run cannot be resumed with other generation parameters.
            do {
                _ = try await Sweep(configuration: SweepConfiguration(run: "r", suites: entry, params: GenerationParams(temperature: 0.7)),
                                    backend: try backend(server.baseURL), store: store).run()
                XCTFail("resumed a run with different parameters")
            } catch let error as SweepError {
                XCTAssertTrue("\(error)".contains("generation parameters"), "\(error)")
            }
        }
    }

    func testTruncatedResponsesAreRecordedAsTruncatedAndScored() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let fixture = try MMStarFixture.make(in: dir)
        let store = try Store(path: dir.appendingPathComponent("trunc.sqlite").path)
        let cut = Set(fixture.answers.keys.sorted().prefix(500))
        let summary = try await withServer(responder: AnswerKeyResponder(answers: fixture.answers, truncate: cut)) { server in
            try await Sweep(configuration: SweepConfiguration(run: "t", suites: [SweepSuite(suite: fixture.suite, dataset: fixture.itemsFile)]),
                            backend: try backend(server.baseURL), store: store).run()
        }
        let responses = try storedResponses(store, run: "t", suite: "mmstar")
        let truncated = responses.filter { $0.response.status == .truncated }.count
        XCTAssertEqual(truncated, 500)
        XCTAssertEqual(Set(responses.filter { $0.response.status == .truncated }.map(\.itemID)), cut)
        XCTAssertEqual(summary.suites[0].truncated, truncated)
        XCTAssertEqual(summary.suites[0].metrics?.n, 1500, "truncated text is kept and scored")
    }

    func testLimitAndSamplesPlanItemsTimesDrawsWithDistinctSeeds() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let fixture = try MMStarFixture.make(in: dir)
        let store = try Store(path: dir.appendingPathComponent("samples.sqlite").path)
        let responder = AnswerKeyResponder(answers: fixture.answers)
        let summary = try await withServer(responder: responder) { server in
            try await Sweep(
                configuration: SweepConfiguration(
                    run: "s", suites: [SweepSuite(suite: fixture.suite, dataset: fixture.itemsFile)],
                    params: GenerationParams(temperature: 0.8, topP: 0.95, maxTokens: 64, seed: 100), samples: 3, limit: 10),
                backend: try backend(server.baseURL), store: store).run()
        }
        XCTAssertEqual(summary.suites[0].planned, 30)
        let responses = try storedResponses(store, run: "s", suite: "mmstar")
        XCTAssertEqual(responses.count, 30)
        XCTAssertEqual(Set(responses.map(\.itemID)).count, 10)
        XCTAssertEqual(Set(responses.map(\.sampleIndex)), [0, 1, 2])
        XCTAssertEqual(Set(responses.map(\.cacheKey)).count, 30, "each draw has its own cache key")
        for seeds in responder.seeds.snapshot.values { XCTAssertEqual(seeds.sorted(), [100, 101, 102]) }
        XCTAssertEqual(summary.suites[0].metrics?.n, 10, "metrics are over sample 0")
        XCTAssertEqual(try store.suiteResults(runID: try store.requireRun("s").id).first?.metrics.missing, 0)
    }

    func testShardsCoverTheSuiteAndMergeIntoOneRun() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let fixture = try MMStarFixture.make(in: dir)
        let entry = [SweepSuite(suite: fixture.suite, dataset: fixture.itemsFile)]
        var shardPaths: [String] = []
        try await withServer(responder: AnswerKeyResponder(answers: fixture.answers)) { server in
            for index in 1...3 {
                let path = dir.appendingPathComponent("shard\(index).sqlite").path
                shardPaths.append(path)
                let summary = try await Sweep(
                    configuration: SweepConfiguration(run: "sharded", suites: entry, limit: 300, shard: try Shard(index: index, count: 3)),
                    backend: try backend(server.baseURL), store: try Store(path: path)).run()
                XCTAssertEqual(summary.suites[0].asked, 100)
                XCTAssertEqual(summary.suites[0].metrics?.missing, 0, "the other shards' items are not missing")
                XCTAssertEqual(summary.suites[0].metrics?.metrics[ScoringPass.inOtherShards], 200)
                XCTAssertEqual(try Store(path: path).requireRun("sharded").noteValues["shard"], "\(index)/3")
            }
            XCTAssertEqual(server.statistics.chatRequests, 300)
        }
        let merged = try Store(path: dir.appendingPathComponent("merged.sqlite").path)
        for path in shardPaths {
            let result = try merged.merge(shardPath: path)
            XCTAssertEqual(result.map(\.added), [100])
        }
        // Merging a shard again changes nothing.
        XCTAssertEqual(try merged.merge(shardPath: shardPaths[0]).map(\.kept), [100])
        // The merged run is no longer a shard: its notes say which shards it holds.
        let notes = try merged.requireRun("sharded").noteValues
        XCTAssertNil(notes["shard"], "\(notes)")
        XCTAssertEqual(notes["merged_shards"], "1/3, 2/3, 3/3")
        XCTAssertEqual(notes["limit"], "300")
        let outcome = try ScoringPass.score(run: "sharded", store: merged, catalog: try SuiteCatalog(suites: [fixture.suite]))
        XCTAssertEqual(outcome.first?.metrics.score, 100)
        XCTAssertEqual(outcome.first?.metrics.n, 300)
        XCTAssertEqual(outcome.first?.metrics.missing, 0)
        XCTAssertNil(outcome.first?.metrics.metrics[ScoringPass.inOtherShards])
        let responses = try storedResponses(merged, run: "sharded", suite: "mmstar")
        XCTAssertEqual(Set(responses.map(\.itemID)).count, 300)
        XCTAssertEqual(responses.count, 300)
        XCTAssertEqual(try merged.integrityCheck(), "ok")
    }

    func testShardParsingRejectsBadValues() throws {
        XCTAssertEqual(try Shard(parsing: "2/4"), try Shard(index: 2, count: 4))
        for bad in ["0/4", "5/4", "1", "a/b", "1/0"] {
            XCTAssertThrowsError(try Shard(parsing: bad), bad)
        }
        let shards = try (1...4).map { try Shard(index: $0, count: 4) }
        for ordinal in 0..<40 { XCTAssertEqual(shards.filter { $0.contains(ordinal: ordinal) }.count, 1) }
    }
}

/// Several base URLs: requests are spread over them, and one that is down does not stop the sweep.
final class MultipleEndpointTests: XCTestCase {
    func testRequestsAreSpreadOverServersAndADeadOneIsRoutedAround() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let fixture = try MMStarFixture.make(in: dir)
        let store = try Store(path: dir.appendingPathComponent("multi.sqlite").path)
        let dead = try await closedPort()
        let responder = AnswerKeyResponder(answers: fixture.answers)
        try await withServer(responder: responder) { one in
            try await withServer(responder: responder) { two in
                let model = try OpenAICompatibleBackend(.init(
                    baseURLs: [one.baseURL, "http://127.0.0.1:\(dead)", two.baseURL], model: "test-model", timeout: 10,
                    maxAttempts: 8, initialBackoff: 0.01, maxBackoff: 0.05, maxConcurrency: 8))
                let summary = try await Sweep(
                    configuration: SweepConfiguration(run: "multi", suites: [SweepSuite(suite: fixture.suite, dataset: fixture.itemsFile)],
                                                      limit: 600, concurrency: 24),
                    backend: model, store: store).run()
                XCTAssertEqual(summary.suites[0].metrics?.score, 100)
                XCTAssertEqual(summary.missing, 0)
                XCTAssertGreaterThan(one.statistics.completions, 150)
                XCTAssertGreaterThan(two.statistics.completions, 150)
                XCTAssertEqual(one.statistics.completions + two.statistics.completions, 600)
                let loads = await model.pool.loads
                XCTAssertEqual(loads[1].limit, 1, "the dead server's limit fell to the minimum")
            }
        }
    }
}
