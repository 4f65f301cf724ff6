import Foundation
import XCTest
@testable import VLMRuntime

final class GenerationTests: XCTestCase {
    func loadTiny() throws -> (VLMModel, PixelImage) {
        let model = try VLMModel.load(path: try Fixtures.require("goldens/qwen2_5_vl_tiny/checkpoint").path)
        let image = try ImageDecoder.loadRGB(path: try Fixtures.image())
        return (model, image)
    }

    func testSameSeedSameTokensAndSeedsDiffer() throws {
        let (model, image) = try loadTiny()
        let conv: [ChatMessage] = [.user([.image(image), .text("Describe it.")])]
        func run(_ seed: UInt64) throws -> [Int] {
            let p = GenerationParameters(maxNewTokens: 12, sampling: SamplingParameters(temperature: 1.0, topP: 0.95, topK: 50), seeds: [seed])
            return try model.generate([conv], parameters: p)[0].tokenIds
        }
        let a = try run(7), b = try run(7), c = try run(8)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        // Rows of a batch draw from their own seeds: a row matches the same prompt run alone.
        let p = GenerationParameters(maxNewTokens: 12, sampling: SamplingParameters(temperature: 1.0, topP: 0.95, topK: 50), seeds: [8, 7])
        let both = try model.generate([conv, conv], parameters: p)
        XCTAssertEqual(both[1].tokenIds, a)
        XCTAssertEqual(both[0].tokenIds, c)
    }

    func testSamplerFiltersAndPenalty() {
        let logits: [Float] = [1, 5, 3, 5, -2]
        logits.withUnsafeBufferPointer { lp in
            XCTAssertEqual(Sampler.argmax(lp), 1, "ties go to the lowest id")
            var topK1 = Sampler(parameters: SamplingParameters(temperature: 1, topK: 1), seed: 3)
            for _ in 0..<20 { XCTAssertEqual(topK1.next(logits: lp, history: []), 1) }
            var tinyP = Sampler(parameters: SamplingParameters(temperature: 0.7, topP: 0.01), seed: 3)
            for _ in 0..<20 { XCTAssertEqual(tinyP.next(logits: lp, history: []), 1) }
            // Penalty 10 on id 1 and 3 leaves id 2 on top under greedy.
            var pen = Sampler(parameters: SamplingParameters(temperature: 0, repetitionPenalty: 10), seed: 0)
            XCTAssertEqual(pen.next(logits: lp, history: [1, 3]), 2)
        }
    }

    func testFinishReasonsAndStopTokens() throws {
        let (model, image) = try loadTiny()
        let out = try model.generate([[.user([.image(image), .text("Hi")])]], parameters: GenerationParameters(maxNewTokens: 3))[0]
        XCTAssertLessThanOrEqual(out.tokenIds.count, 3)
        if out.tokenIds.count == 3 && !model.stopTokenIds.contains(out.tokenIds[2]) { XCTAssertEqual(out.finishReason, .length) }
        XCTAssertGreaterThan(out.promptTokens, 6)
    }

    func testImagePlaceholderWithoutImageIsAnError() throws {
        let (model, _) = try loadTiny()
        XCTAssertThrowsError(try model.prepare([[.user([.text("<|image_pad|> sneaky")])]]))
        XCTAssertThrowsError(try VLMModel.ropeIndex(inputIds: [[1, 2044, 2044]], mask: [[1, 1, 1]], grids: [], imageTokenId: 2044, merge: 2))
    }

    func testRandomCheckpointLoadsAndIsReproducible() throws {
        let cfg = try Fixtures.require("goldens/qwen2_vl_tiny/checkpoint/config.json").path
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("vlmrt-rand-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        try RandomCheckpoint.write(configPath: cfg, to: tmp.appendingPathComponent("a").path, dtype: .bf16, seed: 5)
        try RandomCheckpoint.write(configPath: cfg, to: tmp.appendingPathComponent("b").path, dtype: .bf16, seed: 5)
        let a = try Data(contentsOf: tmp.appendingPathComponent("a/model.safetensors"))
        let b = try Data(contentsOf: tmp.appendingPathComponent("b/model.safetensors"))
        XCTAssertEqual(a, b)
        let model = try VLMModel.load(path: tmp.appendingPathComponent("a").path)
        XCTAssertEqual(model.weightFormat, "BF16")
        let out = try model.generate([[.user([.text("Hello")])]], parameters: GenerationParameters(maxNewTokens: 4))
        XCTAssertFalse(out[0].tokenIds.isEmpty)
        XCTAssertEqual(try CheckpointFingerprint.compute(directory: tmp.appendingPathComponent("a").path),
                       try CheckpointFingerprint.compute(directory: tmp.appendingPathComponent("b").path))
    }
}
