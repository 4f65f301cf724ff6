import Foundation
import XCTest
@testable import VLMRuntime

/// Each reproduction of issue 14 point 3: a checkpoint's config, preprocessor config, GGUF
/// metadata or safetensors header that used to trap (SIGILL/SIGABRT), allocate gigabytes or hang
/// now gives a typed error naming the file and the key.
final class HostileCheckpointTests: XCTestCase {
    func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("assay-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// A Qwen2-VL-style config with `changes` applied at the top level (or under `rope_scaling`).
    func config(_ changes: [String: Any], rope: [String: Any] = [:]) -> Data {
        var object: [String: Any] = [
            "model_type": "qwen2_vl", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300, "rms_norm_eps": 1e-6,
            "image_token_id": 290, "vision_start_token_id": 291, "eos_token_id": 2,
            "vision_config": ["depth": 1, "embed_dim": 32, "num_heads": 2, "hidden_size": 64],
        ]
        var scaling: [String: Any] = ["type": "mrope", "mrope_section": [2, 3, 3]]
        for (k, v) in rope { scaling[k] = v }
        object["rope_scaling"] = scaling
        for (k, v) in changes { object[k] = v }
        // invariant: plain JSON values built above.
        return try! JSONSerialization.data(withJSONObject: object)
    }

    func assertInvalid(_ data: Data, key expected: String, _ line: UInt = #line) {
        XCTAssertThrowsError(try ModelConfig.parse(data, file: "config.json"), line: line) { error in
            guard case .invalidValue(let file, let key, _)? = error as? ConfigError else {
                return XCTFail("expected invalidValue(\(expected)), got \(error)", line: line)
            }
            XCTAssertEqual(file, "config.json", line: line)
            XCTAssertEqual(key, expected, line: line)
        }
    }

    func testTheBaseConfigOfTheseTestsIsValid() throws {
        XCTAssertEqual(try ModelConfig.parse(config([:]), file: "config.json").text.headDim, 16)
    }

    func testOverflowingOrNegativeMRopeSectionIsAnError() {
        assertInvalid(config([:], rope: ["mrope_section": [Int.max / 2, Int.max / 2, 8]]), key: "mrope_section")
        assertInvalid(config([:], rope: ["mrope_section": [-2, 5, 5]]), key: "mrope_section")
    }

    func testHugeOrNegativeHeadDimIsAnErrorBeforeAnythingIsSized() {
        assertInvalid(config(["head_dim": 2_000_000_000]), key: "head_dim")
        assertInvalid(config(["head_dim": 1_000_000_000_000_000]), key: "head_dim")
        assertInvalid(config(["head_dim": -16]), key: "head_dim")
        // Negative head_dim with linear or llama3 rope scaling used to trap building head_dim/2 factors.
        var llama: [String: Any] = ["model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
                                    "num_attention_heads": 4, "vocab_size": 300, "head_dim": -2]
        llama["rope_scaling"] = ["rope_type": "linear", "factor": 2.0]
        assertInvalid(try! JSONSerialization.data(withJSONObject: llama), key: "head_dim")
        llama["rope_scaling"] = ["rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                 "original_max_position_embeddings": 8192]
        assertInvalid(try! JSONSerialization.data(withJSONObject: llama), key: "head_dim")
    }

    func testHeadsTimesHeadDimOverflowIsAnError() {
        assertInvalid(config(["num_attention_heads": 1 << 40, "num_key_value_heads": 1]), key: "num_attention_heads")
        assertInvalid(config(["hidden_size": 1 << 62]), key: "hidden_size")
        assertInvalid(config(["vocab_size": 1 << 40]), key: "vocab_size")
    }

    func testVisionSizesAreBounded() {
        assertInvalid(config(["vision_config": ["depth": 1, "embed_dim": 1 << 40, "num_heads": 2, "hidden_size": 64]]),
                      key: "vision_config.embed_dim")
        assertInvalid(config(["vision_config": ["depth": 1, "embed_dim": 32, "num_heads": 2, "hidden_size": 64, "mlp_ratio": 1e300]]),
                      key: "vision_config.mlp_ratio")
    }

    func testPixelBudgetsInAPreprocessorConfigAreCapped() throws {
        let dir = try temporaryDirectory()
        let path = dir.appendingPathComponent("preprocessor_config.json")
        try Data(#"{"min_pixels": 3136, "max_pixels": 1000000000000}"#.utf8).write(to: path)
        XCTAssertThrowsError(try ProcessorConfig.load(directory: dir.path)) { error in
            guard case .invalidValue(let file, let key, _)? = error as? ConfigError else { return XCTFail("\(error)") }
            XCTAssertEqual(file, path.path)
            XCTAssertEqual(key, "max_pixels")
        }
        try Data(#"{"min_pixels": 4000000000, "max_pixels": 9000000000}"#.utf8).write(to: path)
        XCTAssertThrowsError(try ProcessorConfig.load(directory: dir.path))
        // An upscale to the minimum is checked too, before any pixel is allocated.
        XCTAssertThrowsError(try ImageProcessor.smartResize(height: 1, width: 1, factor: 28, minPixels: 1 << 40, maxPixels: 1 << 41))
    }

    func testOverlappingSafetensorsRangesAreRejected() throws {
        let dir = try temporaryDirectory()
        let header = #"{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}"#
        var bytes = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) }
        bytes += Array(header.utf8) + [UInt8](repeating: 0, count: 24)
        let path = dir.appendingPathComponent("model.safetensors")
        try Data(bytes).write(to: path)
        XCTAssertThrowsError(try SafeTensorsFile(path: path.path)) { error in
            guard case .badHeader(let file, let reason)? = error as? SafeTensorsError else { return XCTFail("\(error)") }
            XCTAssertEqual(file, path.path)
            XCTAssertTrue(reason.contains("overlap"), reason)
        }
    }

    func testAFIFOAsModelPathIsAnErrorNotAHang() throws {
        let dir = try temporaryDirectory()
        let fifo = dir.appendingPathComponent("model.gguf").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        XCTAssertThrowsError(try VLMModel.load(path: fifo)) { error in
            XCTAssertEqual(error as? ModelLoadError, .notACheckpoint(path: fifo, reason: "not a regular file or a folder"))
        }
        XCTAssertThrowsError(try GGUFFile(path: fifo))
        XCTAssertThrowsError(try CheckpointFingerprint.compute(path: fifo))
        // A folder whose config.json is a FIFO.
        let folder = dir.appendingPathComponent("folder")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        XCTAssertEqual(mkfifo(folder.appendingPathComponent("config.json").path, 0o600), 0)
        XCTAssertThrowsError(try VLMModel.load(path: folder.path)) { error in
            guard case .unreadable(_, let reason)? = error as? ConfigError else { return XCTFail("\(error)") }
            XCTAssertEqual(reason, "not a regular file")
        }
    }

    // MARK: GGUF

    func tinyGGUF() throws -> URL {
        let dir = try temporaryDirectory()
        let folder = try TinyLlama.randomFolder(in: dir)
        let gguf = dir.appendingPathComponent("tiny.gguf")
        try TinyLlama.gguf(from: folder, to: gguf)
        return gguf
    }

    func rewrite(_ path: URL, _ change: (inout GGUFMetadata) -> Void) throws -> URL {
        try rewriteGGUF(path, into: try temporaryDirectory(), change)
    }

    func testGGUFKeyLengthsAndCountsOutOfRangeAreNamedErrors() throws {
        let gguf = try tinyGGUF()
        let cases: [(String, GGUFValue)] = [
            ("llama.attention.key_length", .int32(-2)),
            ("llama.attention.key_length", .uint64(2_000_000_000)),
            ("llama.embedding_length", .uint64(1 << 50)),
            ("llama.attention.head_count", .int32(-4)),
            ("llama.block_count", .uint64(1 << 40)),
            ("llama.feed_forward_length", .int64(-1)),
            ("llama.context_length", .uint64(1 << 60)),
        ]
        for (key, value) in cases {
            let changed = try rewrite(gguf) { $0.set(key, value) }
            XCTAssertThrowsError(try VLMModel.load(path: changed.path), "\(key) = \(value)") { error in
                guard case .invalidValue(_, let named, _)? = error as? ConfigError else {
                    return XCTFail("\(key): expected invalidValue, got \(error)")
                }
                XCTAssertEqual(named, key)
            }
        }
    }

    func testKVCacheIsCheckedAgainstTheContextBeforeItIsAllocated() throws {
        let model = try VLMModel.load(path: try tinyGGUF().path)
        let batch = try model.prepare([[.user([.text("the north")])]])
        var stats = GenerationStats()
        for maxNew in [10_000_000, Int.max] {
            XCTAssertThrowsError(try model.generate(batch, parameters: GenerationParameters(maxNewTokens: maxNew), stats: &stats)) { error in
                guard case .contextTooLong(_, let limit)? = error as? ModelInputError else { return XCTFail("\(error)") }
                XCTAssertEqual(limit, 2048)
            }
        }
    }
}
