import AssayCore
import AssayStore
import AssayTestSupport
import Foundation
import XCTest

/// The store on a real SQLite file.
final class StoreTests: XCTestCase {
    func makeStore() throws -> Store {
        try Store(path: Fixtures.temporaryDirectory(for: self).appendingPathComponent("nested/dir/assay.sqlite").path)
    }

    func newRun(_ name: String = "r", backend: String = "openai") -> NewRun {
        NewRun(name: name, model: "m", backend: backend, backendIdentity: "{}", generationParams: GenerationParams().canonicalJSON)
    }

    func registration(items: Int, sha: String = "sha") -> SuiteRegistration {
        SuiteRegistration(suiteID: "s", suiteVersion: "s@1", promptVersion: "1-x", datasetSHA256: sha, datasetPath: "/d", itemCount: items)
    }

    func testMigrationsAreNamedAndTheJournalIsWAL() throws {
        let store = try makeStore()
        XCTAssertEqual(try store.appliedMigrations(), ["v1-runs-items-responses-scores", "v2-judgements-and-judging", "v3-critic-judgements-and-selections", "v4-training"])
        XCTAssertEqual(try store.journalMode(), "wal")
        // Reopening applies nothing new and keeps the data.
        _ = try store.ensureRun(newRun())
        let again = try Store(path: store.path)
        XCTAssertEqual(try again.runs().map(\.name), ["r"])
    }

    func testResponsesUpsertPerItemAndSampleAndDropStaleScores() throws {
        let store = try makeStore()
        let run = try store.ensureRun(newRun())
        let items = [Item(id: "1", answers: ["A"]), Item(id: "2", answers: ["B"])]
        try store.registerSuite(runID: run.id, registration(items: 2), items: items)
        let first = try store.recordResponse(runID: run.id, NewResponse(suiteID: "s", itemID: "1", cacheKey: "k1", response: ModelResponse(text: "A")))
        try store.saveScores(runID: run.id, suiteID: "s",
                             updates: [ScoreUpdate(responseID: first, extraction: .answer("A", method: "letter"), score: .binary(true))],
                             metrics: SuiteMetrics(score: 100, n: 1, unparsed: 0), scorerVersion: "v1")
        XCTAssertEqual(try store.scores(runID: run.id, suiteID: "s").count, 1)
        // The same item again replaces the response (same id) and forgets the old score.
        let second = try store.recordResponse(runID: run.id, NewResponse(suiteID: "s", itemID: "1", cacheKey: "k2", response: ModelResponse(text: "B")))
        XCTAssertEqual(first, second)
        XCTAssertEqual(try store.responses(runID: run.id, suiteID: "s").map(\.response.text), ["B"])
        XCTAssertEqual(try store.scores(runID: run.id, suiteID: "s").count, 0)
        // Another sample of the same item is another row.
        try store.recordResponse(runID: run.id, NewResponse(suiteID: "s", itemID: "1", sampleIndex: 1, cacheKey: "k3", response: ModelResponse(text: "C")))
        XCTAssertEqual(try store.responseCount(runID: run.id), 2)
    }

    func testAnErrorIsAStatusWithNoTextToScore() throws {
        let store = try makeStore()
        let run = try store.ensureRun(newRun())
        try store.registerSuite(runID: run.id, registration(items: 1), items: [Item(id: "1", answers: ["A"])])
        var failure = ModelResponse.failure(kind: "http_500", message: "Internal Server Error", attempts: 4)
        failure.text = "Internal Server Error"  // even if a backend put text there, it is not stored
        try store.recordResponse(runID: run.id, NewResponse(suiteID: "s", itemID: "1", cacheKey: "k", response: failure))
        let stored = try XCTUnwrap(try store.responses(runID: run.id, suiteID: "s").first)
        XCTAssertEqual(stored.response.status, .error)
        XCTAssertEqual(stored.response.text, "")
        XCTAssertEqual(stored.response.errorKind, "http_500")
        XCTAssertEqual(stored.response.attempts, 4)
    }

    func testRunsKeepTheirBackendAndDataset() throws {
        let store = try makeStore()
        let run = try store.ensureRun(newRun(backend: "replay"))
        XCTAssertThrowsError(try store.ensureRun(newRun(backend: "openai"))) { XCTAssertTrue("\($0)".contains("backend 'replay'")) }
        try store.registerSuite(runID: run.id, registration(items: 0, sha: "one"), items: [])
        XCTAssertThrowsError(try store.registerSuite(runID: run.id, registration(items: 0, sha: "two"), items: [])) {
            XCTAssertTrue("\($0)".contains("new --run name"))
        }
        XCTAssertThrowsError(try store.requireRun("missing")) { XCTAssertTrue("\($0)".contains("runs: r")) }
    }

    func testImportIsAllOrNothing() throws {
        let store = try makeStore()
        let responses = [NewResponse(suiteID: "s", itemID: "1", cacheKey: "k", response: ModelResponse(text: "A"))]
        try store.importResponses(run: newRun("a", backend: "replay"), suite: registration(items: 1, sha: "one"),
                                  items: [Item(id: "1")], responses: responses)
        // A second import into the same run over another dataset fails and leaves nothing behind.
        XCTAssertThrowsError(try store.importResponses(
            run: newRun("a", backend: "replay"), suite: registration(items: 1, sha: "two"), items: [Item(id: "1")],
            responses: [NewResponse(suiteID: "s", itemID: "1", cacheKey: "k", response: ModelResponse(text: "CHANGED"))]))
        let run = try store.requireRun("a")
        XCTAssertEqual(try store.responses(runID: run.id, suiteID: "s").map(\.response.text), ["A"])
        XCTAssertEqual(try store.items(suiteID: "s", datasetSHA256: "two"), [])
    }

    func testMetricsRoundTrip() throws {
        let store = try makeStore()
        let run = try store.ensureRun(newRun())
        let metrics = SuiteMetrics(score: 61.5, n: 10, unparsed: 2, missing: 1, metrics: ["accuracy": 61.5, "category/x": 50])
        try store.saveScores(runID: run.id, suiteID: "s", updates: [], metrics: metrics, scorerVersion: "mc/1")
        let stored = try store.suiteResults(runID: run.id)
        XCTAssertEqual(stored.first?.metrics, metrics)
        XCTAssertEqual(stored.first?.scorerVersion, "mc/1")
    }

    func testUnwritableLocationIsATypedError() {
        XCTAssertThrowsError(try Store(path: "/proc/assay-cannot-write/x.sqlite")) { error in
            XCTAssertTrue(error is StoreError, "\(error)")
        }
    }
}
