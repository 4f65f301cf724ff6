import Foundation
import XCTest
@testable import VLMRuntime

/// One load path after the reader: a GGUF and a safetensors Llama with the same weights give the
/// same logits and tokens; `--quantize q8_0` on safetensors gives exactly the GGUF's Q8_0 model;
/// broken GGUF files are typed errors from `VLMModel.load`.
final class LlamaCheckpointTests: XCTestCase {
    struct Pair {
        let folder: URL       // random f32 Hugging Face folder
        let gguf: URL         // its Q8_0 GGUF (F32/F16 where the test asked)
        let dequantised: URL  // the GGUF's values back as an f32 folder
    }

    func makePair(types: [String: GGMLType] = [:], architecture: String = "llama") throws -> Pair {
        let dir = try makeTemporaryDirectory()
        let folder = try TinyLlama.randomFolder(in: dir, modelType: architecture)
        let gguf = dir.appendingPathComponent("tiny.gguf")
        try TinyLlama.gguf(from: folder, to: gguf, types: types, architecture: architecture)
        let dequantised = dir.appendingPathComponent("dequantised")
        try TinyLlama.dequantisedFolder(of: gguf, configFrom: folder, to: dequantised, architecture: architecture)
        return Pair(folder: folder, gguf: gguf, dequantised: dequantised)
    }

    func makeTemporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("assay-llama-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    let conversation: [ChatMessage] = [.user([.text("the north in 2024: 17 there, then the other one")])]

    func logits(_ model: VLMModel, _ ids: [Int]) throws -> [Float] {
        try model.promptLogits(model.prepare(tokenIds: [ids]))
    }

    func testGGUFAndSafetensorsWithTheSameWeightsAgree() throws {
        try checkAgreement(try makePair(types: ["blk.1.ffn_down.weight": .f16, "blk.0.attn_v.weight": .f32]))
    }

    func testQwen2GGUFWithBiasesAndNEOXRowsAgreesWithItsSafetensors() throws {
        let pair = try makePair(architecture: "qwen2")
        let gguf = try VLMModel.load(path: pair.gguf.path)
        XCTAssertEqual(gguf.config.family, .qwen2)
        XCTAssertTrue(gguf.config.text.attentionBias)
        XCTAssertEqual(gguf.tokenizer.preTokenizer, .qwen2(maxDigits: 1))
        try checkAgreement(pair)
    }

    func checkAgreement(_ pair: Pair) throws {
        let gguf = try VLMModel.load(path: pair.gguf.path)
        let hf = try VLMModel.load(path: pair.dequantised.path)
        XCTAssertTrue(gguf.isGGUF)
        XCTAssertFalse(hf.isGGUF)
        XCTAssertEqual(gguf.config.text, hf.config.text)
        // Same tokenizer (GGUF metadata vs tokenizer.json) and same chat template text.
        let idsGGUF = try gguf.prepare([conversation]).inputIds[0]
        XCTAssertEqual(idsGGUF, try hf.prepare([conversation]).inputIds[0])
        XCTAssertEqual(try gguf.template.render(conversation), try hf.template.render(conversation))
        XCTAssertTrue(idsGGUF.contains(1) && idsGGUF.contains(2), "control tokens are matched whole")

        let a = try logits(gguf, idsGGUF), b = try logits(hf, idsGGUF)
        XCTAssertEqual(a.count, idsGGUF.count * TinyLlama.vocabSize)
        let diff = zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(diff, 1e-4, "GGUF vs dequantised safetensors logits")
        let params = GenerationParameters(maxNewTokens: 12, stopAtEOS: false)
        XCTAssertEqual(try gguf.generate([conversation], parameters: params)[0].tokenIds,
                       try hf.generate([conversation], parameters: params)[0].tokenIds)
    }

    func testQuantizeQ8_0AtLoadIsTheGGUFQ8_0Model() throws {
        let pair = try makePair()
        let gguf = try VLMModel.load(path: pair.gguf.path)
        let quantised = try VLMModel.load(path: pair.folder.path, options: LoadOptions(quantization: .q8_0))
        let plain = try VLMModel.load(path: pair.folder.path)
        XCTAssertEqual(quantised.weightFormat, "Q8_0")
        XCTAssertEqual(plain.weightFormat, "F32")
        XCTAssertLessThan(quantised.decodeWeightBytes * 3, plain.decodeWeightBytes, "Q8_0 holds ~1/4 of f32's bytes")
        let ids = try plain.prepare([conversation]).inputIds[0]
        // Quantising at load and converting to GGUF make the same blocks: identical logits.
        let q = try logits(quantised, ids), g = try logits(gguf, ids), f = try logits(plain, ids)
        XCTAssertEqual(q.map(\.bitPattern), g.map(\.bitPattern), "q8_0 at load vs Q8_0 GGUF")
        // And Q8_0 stays close to the f32 model it came from (relative to the logits' range).
        func rms(_ v: [Float]) -> Float { (v.reduce(0) { $0 + $1 * $1 } / Float(max(v.count, 1))).squareRoot() }
        let error = rms(zip(q, f).map { $0 - $1 }), scale = rms(f)
        XCTAssertGreaterThan(error, 0)
        XCTAssertLessThan(error, 0.05 * scale, "Q8_0 vs f32 logits: rms error \(error), rms logit \(scale)")
    }

    func testGGMLActivationsStayCloseToTheExactPath() throws {
        let pair = try makePair()
        let exact = try VLMModel.load(path: pair.gguf.path)
        let ggml = try VLMModel.load(path: pair.gguf.path, options: LoadOptions(activations: .ggml))
        XCTAssertEqual(ggml.activationMode, .ggml)
        let ids = try exact.prepare([conversation]).inputIds[0]
        // Decode-sized products differ (quantised activations); compare the first decode step's logits.
        var a: [Float] = [], b: [Float] = []
        var stats = GenerationStats()
        let params = GenerationParameters(maxNewTokens: 2, stopAtEOS: false)
        _ = try exact.generate(exact.prepare(tokenIds: [ids]), parameters: params, stats: &stats) { a = $0 }
        _ = try ggml.generate(ggml.prepare(tokenIds: [ids]), parameters: params, stats: &stats) { b = $0 }
        XCTAssertEqual(a.count, b.count)
        let diff = zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertGreaterThan(diff, 0, "the ggml path quantises activations")
        XCTAssertLessThan(diff, 0.1)
    }

    func testLoadingBrokenGGUFFilesGivesTypedErrors() throws {
        let pair = try makePair()
        let bytes = [UInt8](try Data(contentsOf: pair.gguf))
        let dir = try makeTemporaryDirectory()
        func load(_ data: [UInt8], _ name: String) -> Error? {
            let path = dir.appendingPathComponent(name)
            do {
                try Data(data).write(to: path)
                _ = try VLMModel.load(path: path.path)
                return nil
            } catch {
                return error
            }
        }
        // Truncated inside the last tensor: the reader names the tensor.
        let truncated = load(Array(bytes.prefix(bytes.count - 100)), "truncated.gguf")
        guard case .tensorOutOfBounds(_, let tensor, _, _, _)? = truncated as? GGUFError else {
            return XCTFail("expected tensorOutOfBounds, got \(String(describing: truncated))")
        }
        XCTAssertFalse(tensor.isEmpty)
        // Truncated in the header.
        XCTAssertTrue(load(Array(bytes.prefix(100)), "header.gguf") is GGUFError)
        // Not GGUF at all.
        XCTAssertEqual(load(Array("not a model".utf8), "text.gguf") as? GGUFError,
                       .badMagic(file: dir.appendingPathComponent("text.gguf").path, found: Array("not ".utf8)))
        // A path that does not exist.
        let missing = dir.appendingPathComponent("missing.gguf").path
        XCTAssertThrowsError(try VLMModel.load(path: missing)) { error in
            XCTAssertEqual(error as? ModelLoadError, .notACheckpoint(path: missing, reason: "no such file or folder"))
        }
        // A folder without config.json.
        XCTAssertThrowsError(try VLMModel.load(path: dir.path)) { error in
            guard case .unreadable? = error as? ConfigError else { return XCTFail("\(error)") }
        }
    }

    /// A copy of `path` with its metadata changed.
    func rewrite(_ path: URL, _ change: (inout GGUFMetadata) -> Void) throws -> URL {
        try rewriteGGUF(path, into: try makeTemporaryDirectory(), change)
    }

    func testGGUFAddBOSPrependsItOnceWhateverTheTemplatePrints() throws {
        let pair = try makePair()
        // BOS = <|endoftext|> (id 0), so it differs from the template's opening <|im_start|> (id 1).
        let plain = try rewrite(pair.gguf) {
            $0.set("tokenizer.ggml.add_bos_token", .bool(true))
            $0.set("tokenizer.ggml.bos_token_id", .uint32(0))
        }
        let ids = try VLMModel.load(path: plain.path).prepare([conversation]).inputIds[0]
        XCTAssertEqual(Array(ids.prefix(2)), [0, 1], "BOS, then the template's <|im_start|>")
        let withBOS = try rewrite(plain) { $0.set("tokenizer.chat_template", .string("{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}")) }
        let ids2 = try VLMModel.load(path: withBOS.path).prepare([conversation]).inputIds[0]
        XCTAssertEqual(ids2.first, 0)
        XCTAssertNotEqual(ids2.dropFirst().first, 0, "a template that prints BOS does not get a second one")
        let off = try VLMModel.load(path: pair.gguf.path).prepare([conversation]).inputIds[0]
        XCTAssertEqual(off.first, 1, "add_bos_token false: the template's <|im_start|> comes first")
    }

    func testUnsupportedArchitectureAndMissingKeysAreNamed() throws {
        let pair = try makePair()
        func rewrite(_ change: (inout GGUFMetadata) -> Void) throws -> URL { try self.rewrite(pair.gguf, change) }
        let phi = try rewrite { $0.set("general.architecture", .string("phi3")) }
        XCTAssertThrowsError(try VLMModel.load(path: phi.path)) { error in
            guard case .unsupportedModelType? = error as? ConfigError else { return XCTFail("\(error)") }
        }
        let partial = try rewrite { $0.set("llama.rope.dimension_count", .uint32(8)) }
        XCTAssertThrowsError(try VLMModel.load(path: partial.path)) { error in
            XCTAssertEqual(error as? ConfigError, .invalidValue(file: partial.path, key: "llama.rope.dimension_count",
                                                                reason: "partial rotary (8 of 16 dimensions) is not supported"))
        }
        let pre = try rewrite { $0.set("tokenizer.ggml.pre", .string("made-up")) }
        XCTAssertThrowsError(try VLMModel.load(path: pre.path)) { error in
            guard case .unsupported? = error as? TokenizerError else { return XCTFail("\(error)") }
        }
        let badTemplate = try rewrite { $0.set("tokenizer.chat_template", .string("{% for m in messages %}{{ m }")) }
        XCTAssertThrowsError(try VLMModel.load(path: badTemplate.path)) { error in
            guard case .syntax? = error as? ChatTemplateError else { return XCTFail("\(error)") }
        }
    }

    func testTextOnlyModelsDropImagesAndSayHowMany() throws {
        let pair = try makePair()
        let model = try VLMModel.load(path: pair.gguf.path)
        XCTAssertFalse(model.acceptsImages)
        let image = PixelImage(width: 2, height: 2, channels: 3, pixels: [UInt8](repeating: 128, count: 12))
        let withImages: [ChatMessage] = [.user([.image(image), .text("what is this?"), .image(image)])]
        let batch = try model.prepare([withImages, conversation])
        XCTAssertEqual(batch.imagesDropped, [2, 0])
        let out = try model.generate([withImages], parameters: GenerationParameters(maxNewTokens: 3))
        XCTAssertEqual(out[0].imagesDropped, 2)
        XCTAssertEqual(try model.prepare([withImages]).inputIds, try model.prepare([[.user([.text("what is this?")])]]).inputIds)
    }

    func testRandomLlamaCheckpointHasTheHubTensorNames() throws {
        let dir = try makeTemporaryDirectory()
        let folder = try TinyLlama.randomFolder(in: dir)
        let config = try ModelConfig.load(path: folder.appendingPathComponent("config.json").path)
        XCTAssertEqual(config.family, .llama)
        let names = RandomCheckpoint.tensorShapes(config).map(\.name)
        XCTAssertFalse(names.contains { $0.hasPrefix("visual.") || $0.hasSuffix(".bias") || $0 == "lm_head.weight" })
        XCTAssertEqual(names.count, 2 + 9 * TinyLlama.layers)
    }
}
