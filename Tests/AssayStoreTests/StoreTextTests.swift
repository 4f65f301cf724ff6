import AssayCore
import AssayStore
import AssayTestSupport
import Foundation
import XCTest

/// Stored text comes back whole and without secrets: GRDB binds a Swift String as a C string,
/// which cut an answer at its first NUL; error messages lose any URL password.
final class StoreTextTests: XCTestCase {
    func makeStore() throws -> Store {
        try Store(path: Fixtures.temporaryDirectory(for: self).appendingPathComponent("assay.sqlite").path)
    }

    func registration() -> SuiteRegistration {
        SuiteRegistration(suiteID: "s", suiteVersion: "s@1", promptVersion: "1-x", datasetSHA256: "sha", datasetPath: "/d", itemCount: 2)
    }

    func testTextAfterANULByteIsKeptInImportsAndRecordedResponses() throws {
        let store = try makeStore()
        let imported = "A\u{0}B then more\u{0}"
        try store.importResponses(
            run: NewRun(name: "imp", model: "m", backend: "replay", backendIdentity: "{}", generationParams: GenerationParams().canonicalJSON),
            suite: registration(), items: [Item(id: "1"), Item(id: "2")],
            responses: [NewResponse(suiteID: "s", itemID: "1", cacheKey: "k", response: ModelResponse(text: imported))])
        let run = try store.requireRun("imp")
        XCTAssertEqual(try store.responses(runID: run.id, suiteID: "s").map(\.response.text), [imported])

        try store.recordResponse(runID: run.id, NewResponse(suiteID: "s", itemID: "2", cacheKey: "k2", response: ModelResponse(text: "\u{0}é after")))
        let texts = try store.responses(runID: run.id, suiteID: "s").map(\.response.text)
        XCTAssertEqual(texts, [imported, "\u{0}é after"])
        // And the reuse lookup reads it whole too.
        XCTAssertEqual(try store.reusableResponse(cacheKey: "k2", suiteID: "s", itemID: "2", sampleIndex: 0)?.text, "\u{0}é after")
    }

    func testURLPasswordsAreScrubbedFromStoredErrorMessages() throws {
        let store = try makeStore()
        let run = try store.ensureRun(NewRun(name: "r", model: "m", backend: "openai", backendIdentity: "{}",
                                             generationParams: GenerationParams().canonicalJSON))
        try store.registerSuite(runID: run.id, registration(), items: [Item(id: "1"), Item(id: "2")])
        try store.recordResponse(runID: run.id, NewResponse(
            suiteID: "s", itemID: "1", cacheKey: "k",
            response: .failure(kind: "connection", message: "refused (POST http://bob:s3cr3t@10.0.0.1:8000/v1/chat/completions)", attempts: 1)))
        let message = try XCTUnwrap(try store.responses(runID: run.id, suiteID: "s").first?.response.errorMessage)
        XCTAssertEqual(message, "refused (POST http://[redacted]@10.0.0.1:8000/v1/chat/completions)")
    }

    func testAnEmptyRunCanBeDeletedButOneWithResponsesIsKept() throws {
        let store = try makeStore()
        let empty = try store.ensureRun(NewRun(name: "e", model: "m", backend: "openai", backendIdentity: "{}",
                                               generationParams: GenerationParams().canonicalJSON))
        XCTAssertTrue(try store.deleteRunIfEmpty(runID: empty.id))
        XCTAssertNil(try store.run(named: "e"))
        let full = try store.ensureRun(NewRun(name: "f", model: "m", backend: "openai", backendIdentity: "{}",
                                              generationParams: GenerationParams().canonicalJSON))
        try store.registerSuite(runID: full.id, registration(), items: [Item(id: "1"), Item(id: "2")])
        try store.recordResponse(runID: full.id, NewResponse(suiteID: "s", itemID: "1", cacheKey: "k", response: ModelResponse(text: "A")))
        XCTAssertFalse(try store.deleteRunIfEmpty(runID: full.id))
        XCTAssertNotNil(try store.run(named: "f"))
    }
}
