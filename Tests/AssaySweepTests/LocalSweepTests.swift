import AssayBackends
import AssayCore
import AssayEngine
import AssayStore
import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

/// A sweep through the embedded runtime over the generated sanity suite: batches, images, resume.
final class LocalSweepTests: XCTestCase {
    func testSanitySweepOnTheTinyQwen25VLCheckpointBatchesAndResumes() async throws {
        let checkpoint = try Fixtures.require("goldens/qwen2_5_vl_tiny/checkpoint")
        let directory = try Fixtures.temporaryDirectory(for: self)
        let store = try Store(path: directory.appendingPathComponent("local.sqlite").path)
        let suite = try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory).suite("sanity")
        let backend = try EmbeddedBackend(modelPath: checkpoint.path, batchSize: 4)
        let configuration = SweepConfiguration(
            run: "tiny", suites: [SweepSuite(suite: suite, dataset: nil)],
            params: GenerationParams(temperature: 0, maxTokens: 6), limit: 10, concurrency: 1)
        let first = try await Sweep(configuration: configuration, backend: backend, store: store).run()
        XCTAssertEqual(first.suites.first?.asked, 10)
        XCTAssertEqual(first.missing, 0)
        let run = try store.requireRun("tiny")
        let responses = try store.responses(runID: run.id, suiteID: "sanity")
        XCTAssertEqual(responses.count, 10)
        // Random weights answer nonsense, but every answer is a real generation over the image.
        for response in responses {
            XCTAssertEqual(response.response.status, .truncated)
            XCTAssertEqual(response.response.completionTokens, 6)
            XCTAssertGreaterThan(response.response.promptTokens ?? 0, 64, "the 224×224 picture adds 64 image tokens")
        }
        let registration = try XCTUnwrap(try store.runSuites(runID: run.id).first)
        XCTAssertEqual(registration.datasetPath, "generated:sanity")
        XCTAssertEqual(registration.datasetSHA256, try XCTUnwrap(try suite.generatedItems(count: 200)).sha256)

        // The same sweep again finds everything stored and asks nothing.
        let second = try await Sweep(configuration: configuration, backend: backend, store: store).run()
        XCTAssertEqual(second.suites.first?.asked, 0)
        XCTAssertEqual(second.suites.first?.alreadyStored, 10)
        // Greedy decoding is deterministic: batched answers equal one-at-a-time answers.
        let single = try EmbeddedBackend(modelPath: checkpoint.path, batchSize: 1)
        let items = try XCTUnwrap(try suite.generatedItems()).items.prefix(3)
        for loaded in items {
            let request = GenerationRequest(
                messages: suite.render(loaded.item),
                images: Dictionary(uniqueKeysWithValues: zip(loaded.item.images.map(\.sha256), loaded.imageData)),
                params: GenerationParams(temperature: 0, maxTokens: 6))
            let alone = try await single.generate(request)
            XCTAssertEqual(alone.text, responses.first { $0.itemID == loaded.item.id }?.response.text, loaded.item.id)
        }
    }
}
