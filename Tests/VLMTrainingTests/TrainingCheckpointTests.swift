import AssayTestSupport
import Foundation
@testable import VLMRuntime
@testable import VLMTraining
import XCTest

final class TrainingCheckpointTests: XCTestCase {
    static let folderFixtures = ["goldens/qwen2_5_vl_tiny/checkpoint", "goldens/qwen2_5_vl_tiny_bf16_v5/checkpoint",
                                 "goldens/qwen2_vl_tiny/checkpoint"]

    private func quiet(_: String) {}

    // MARK: - Loading folders

    /// Every tensor of the file is a parameter (canonical name, torch shape) with the file's values
    /// (bf16 upcast exactly), in RandomCheckpoint's order.
    func testLoadFoldersCompleteAndExact() throws {
        for fixture in Self.folderFixtures {
            let dir = try Fixtures.require(fixture).path
            let loaded = try TrainingCheckpoint.load(path: dir, log: quiet)
            let file = try SafeTensorsFile(path: dir + "/model.safetensors")
            var expected: [String: (TensorEntry, String)] = [:]
            for (stored, e) in file.entries {
                let canonical = try XCTUnwrap(WeightLayout.canonical(stored), stored)
                if canonical == "lm_head.weight" && loaded.config.tieWordEmbeddings { continue }
                expected[canonical] = (e, stored)
            }
            XCTAssertEqual(Set(loaded.parameters.names), Set(expected.keys), fixture)
            XCTAssertEqual(loaded.parameters.names.count, expected.count, fixture)
            // Order: RandomCheckpoint.tensorShapes (vision first, then embed, layers, norm, head).
            let order = RandomCheckpoint.tensorShapes(loaded.config).map(\.name)
            XCTAssertEqual(Array(loaded.parameters.names.prefix(order.count)), order, fixture)
            XCTAssertEqual(loaded.parameters.names.first, "visual.patch_embed.proj.weight")
            for p in loaded.parameters.parameters {
                let (e, stored) = try XCTUnwrap(expected[p.name])
                XCTAssertEqual(p.shape, e.shape, "\(fixture) \(p.name)")
                let raw = UnsafeRawPointer(file.pointer(e))
                let values: [Float] = (0..<e.elementCount).map { i in
                    switch e.dtype {
                    case .bf16: return Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
                    default: return raw.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
                    }
                }
                XCTAssertTrue(p.value.elementsEqual(values) { $0.bitPattern == $1.bitPattern }, "\(fixture) \(stored)")
            }
            guard case let .folder(_, shards, hasIndex, tensors) = loaded.source else { return XCTFail("not a folder source") }
            XCTAssertEqual(shards, ["model.safetensors"])
            XCTAssertFalse(hasIndex)
            XCTAssertEqual(tensors.count, file.entries.count)
        }
    }

    /// mlx's channels-last patch embedding and its `language_model.*` / `vision_tower.*` names load
    /// to the same parameters as the Hub layout; a sharded copy with an index too.
    func testLoadMLXLayoutAndShards() throws {
        let dir = try Fixtures.require("goldens/qwen2_5_vl_tiny/checkpoint").path
        let hub = try TrainingCheckpoint.load(path: dir, log: quiet)
        let tmp = try Fixtures.temporaryDirectory(for: self).path
        let mlx = tmp + "/mlx"
        try writeVariant(of: dir, to: mlx, shards: 2) { name in
            if name.hasPrefix("model.") { return "language_model." + name }
            if name.hasPrefix("visual.") { return "vision_tower." + name.dropFirst("visual.".count) }
            if name.hasPrefix("lm_head.") { return "language_model." + name }
            return name
        }
        let loaded = try TrainingCheckpoint.load(path: mlx, log: quiet)
        XCTAssertEqual(loaded.parameters.names, hub.parameters.names)
        for p in hub.parameters.parameters {
            let q = try XCTUnwrap(loaded.parameters[p.name])
            XCTAssertEqual(q.shape, p.shape, p.name)
            XCTAssertEqual(q.value, p.value, p.name)
        }
        guard case let .folder(_, shards, hasIndex, tensors) = loaded.source else { return XCTFail("not a folder source") }
        XCTAssertEqual(shards.count, 2)
        XCTAssertTrue(hasIndex)
        XCTAssertTrue(tensors.contains { $0.channelsLast && $0.storedName == "vision_tower.patch_embed.proj.weight" })
    }

    /// Writes `source`'s tensors renamed (the patch embedding channels-last when renamed to mlx),
    /// split over `shards` files with an index, plus the source's other files.
    func writeVariant(of source: String, to out: String, shards: Int, rename: (String) -> String) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: out, withIntermediateDirectories: true)
        for name in try fm.contentsOfDirectory(atPath: source) where !name.hasSuffix(".safetensors") {
            try Data(contentsOf: URL(fileURLWithPath: source + "/" + name)).write(to: URL(fileURLWithPath: out + "/" + name))
        }
        let file = try SafeTensorsFile(path: source + "/model.safetensors")
        let names = file.entries.keys.sorted()
        var map: [String: String] = [:]
        for s in 0..<shards {
            let shardName = String(format: "model-%05d-of-%05d.safetensors", s + 1, shards)
            let part = names.enumerated().filter { $0.offset % shards == s }.map(\.element)
            var specs: [SafeTensorsWriter.Spec] = []
            var values: [String: [Float]] = [:]
            for n in part {
                let e = try XCTUnwrap(file.entries[n])
                var v = try file.floats(e)
                var shape = e.shape
                let newName = rename(n)
                if n == "visual.patch_embed.proj.weight" && newName.hasPrefix("vision_tower.") {
                    v = TrainingCheckpoint.torchToChannelsLast(v, out: shape[0], channels: shape[1], temporal: shape[2], patch: shape[3])
                    shape = [shape[0], shape[2], shape[3], shape[4], shape[1]]
                }
                specs.append(.init(name: newName, shape: shape, dtype: e.dtype))
                values[newName] = v
                map[newName] = shardName
            }
            try SafeTensorsWriter.write(path: out + "/" + shardName, tensors: specs) { spec, buf in
                for (i, x) in (values[spec.name] ?? []).enumerated() { buf[i] = x }
            }
        }
        let index: [String: Any] = ["metadata": ["total_size": 0], "weight_map": map]
        try JSONSerialization.data(withJSONObject: index, options: [.sortedKeys])
            .write(to: URL(fileURLWithPath: out + "/model.safetensors.index.json"))
    }

    // MARK: - Loading GGUF

    /// SmolLM2 Q4_1: every tensor dequantised under its Hub name; the values are exactly what the
    /// inference path multiplies with (q/k rows un-permuted the same way).
    func testLoadGGUFMatchesRuntimeWeights() throws {
        let path = try Fixtures.smolLM2Path()
        var lines: [String] = []
        let start = Date()
        let loaded = try TrainingCheckpoint.load(path: path) { lines.append($0) }
        print("SmolLM2 GGUF load: \(String(format: "%.2f", Date().timeIntervalSince(start))) s, \(loaded.parameters.elementCount) values")
        XCTAssertTrue(lines.contains { $0.hasPrefix("dequantising GGUF \(path) (") && $0.contains("Q4_1") && $0.hasSuffix("to f32 for training") }, "\(lines)")
        let config = loaded.config
        XCTAssertTrue(config.tieWordEmbeddings)
        XCTAssertNil(loaded.parameters["lm_head.weight"])
        XCTAssertEqual(loaded.parameters.names, RandomCheckpoint.tensorShapes(config).map(\.name))
        let file = try GGUFFile(path: path)
        XCTAssertEqual(loaded.parameters.names.count, file.tensors.count - (file.tensorInfo(named: "rope_freqs.weight") == nil ? 0 : 1))
        guard case let .gguf(_, arch, permuted, _) = loaded.source else { return XCTFail("not a GGUF source") }
        XCTAssertEqual(arch, "llama")
        XCTAssertTrue(permuted)

        let weights = GGUFWeights(file: file, permutedQK: true, headDim: config.text.headDim)
        for p in loaded.parameters.parameters {
            if p.shape.count == 2 {
                let w = try weights.linearWeight(p.name, rows: p.shape[0], cols: p.shape[1])
                let runtime: [Float]
                switch w {
                case .dense(let m): runtime = m.floats()
                case .quantized(let q): runtime = try q.dequantizeAll()
                }
                XCTAssertTrue(runtime.elementsEqual(p.value) { $0.bitPattern == $1.bitPattern }, p.name)
            } else {
                XCTAssertEqual(try weights.vector(p.name, count: p.count), p.value, p.name)
            }
        }
        // The un-permutation really moves rows (q of layer 0 differs from the stored order).
        let q0 = try file.tensor(named: "blk.0.attn_q.weight").dequantized()
        XCTAssertNotEqual(q0, loaded.parameters["model.layers.0.self_attn.q_proj.weight"]?.value)
    }

    // MARK: - Bad input

    func testTruncatedSafetensorsIsATypedError() throws {
        let dir = try Fixtures.require("goldens/qwen2_vl_tiny/checkpoint").path
        let tmp = try Fixtures.temporaryDirectory(for: self).path + "/ckpt"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
            var data = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name))
            if name == "model.safetensors" { data = data.prefix(data.count - 1000) }
            try data.write(to: URL(fileURLWithPath: tmp + "/" + name))
        }
        XCTAssertThrowsError(try TrainingCheckpoint.load(path: tmp, log: quiet)) { error in
            guard let e = error as? SafeTensorsError, case let .tensorOutOfBounds(file, tensor, _, _) = e else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertTrue(file.hasSuffix("model.safetensors"))
            XCTAssertFalse(tensor.isEmpty)
            XCTAssertTrue("\(e)".contains(tensor))
        }
    }

    /// A tiny llama GGUF with `valid` tensors of supported types, or with one Q5_0 tensor.
    func tinyGGUF(unsupported: Bool, wrongShape: Bool = false) throws -> [UInt8] {
        var meta = GGUFMetadata()
        let h = 32, heads = 2, ff = 64, vocab = 8
        meta.set("general.architecture", .string("llama"))
        meta.set("llama.embedding_length", .uint32(UInt32(h)))
        meta.set("llama.block_count", .uint32(1))
        meta.set("llama.attention.head_count", .uint32(UInt32(heads)))
        meta.set("llama.attention.head_count_kv", .uint32(UInt32(heads)))
        meta.set("llama.feed_forward_length", .uint32(UInt32(ff)))
        meta.set("llama.attention.layer_norm_rms_epsilon", .float32(1e-5))
        meta.set("llama.context_length", .uint32(128))
        var w = GGUFWriter(metadata: meta)
        func floats(_ n: Int) -> [Float] { (0..<n).map { Float($0 % 7) * 0.1 } }
        try w.addTensor(name: "token_embd.weight", dimensions: [h, vocab], floats: floats(h * vocab))
        try w.addTensor(name: "blk.0.attn_norm.weight", dimensions: [h], floats: floats(h))
        try w.addTensor(name: "blk.0.ffn_norm.weight", dimensions: [h], floats: floats(h))
        try w.addTensor(name: "blk.0.attn_q.weight", dimensions: [h, h], floats: floats(h * h))
        try w.addTensor(name: "blk.0.attn_k.weight", dimensions: [h, wrongShape ? h / 2 : h], floats: floats(h * (wrongShape ? h / 2 : h)))
        if unsupported {
            // Q5_0: 32 values per 22-byte block; the runtime has no kernels for it.
            try w.addTensor(name: "blk.0.attn_v.weight", dimensions: [h, h], type: .q5_0, data: [UInt8](repeating: 0, count: h * 22))
        } else {
            try w.addTensor(name: "blk.0.attn_v.weight", dimensions: [h, h], floats: floats(h * h))
        }
        try w.addTensor(name: "blk.0.attn_output.weight", dimensions: [h, h], floats: floats(h * h))
        try w.addTensor(name: "blk.0.ffn_gate.weight", dimensions: [h, ff], floats: floats(h * ff))
        try w.addTensor(name: "blk.0.ffn_up.weight", dimensions: [h, ff], floats: floats(h * ff))
        try w.addTensor(name: "blk.0.ffn_down.weight", dimensions: [ff, h], floats: floats(h * ff))
        try w.addTensor(name: "output_norm.weight", dimensions: [h], floats: floats(h))
        return w.serialize()
    }

    func testGGUFBadInputIsATypedError() throws {
        let tmp = try Fixtures.temporaryDirectory(for: self).path
        let good = tmp + "/good.gguf"
        try Data(tinyGGUF(unsupported: false)).write(to: URL(fileURLWithPath: good))
        let loaded = try TrainingCheckpoint.load(path: good, log: quiet)
        XCTAssertEqual(loaded.parameters.names.count, 11)

        let bad = tmp + "/q5.gguf"
        try Data(tinyGGUF(unsupported: true)).write(to: URL(fileURLWithPath: bad))
        XCTAssertThrowsError(try TrainingCheckpoint.load(path: bad, log: quiet)) { error in
            XCTAssertEqual(error as? TrainingCheckpointError, .unsupportedTensorType(file: bad, tensor: "blk.0.attn_v.weight", type: "Q5_0"))
        }
        let shape = tmp + "/shape.gguf"
        try Data(tinyGGUF(unsupported: false, wrongShape: true)).write(to: URL(fileURLWithPath: shape))
        XCTAssertThrowsError(try TrainingCheckpoint.load(path: shape, log: quiet)) { error in
            guard case let .shapeMismatch(file, tensor, _, _)? = error as? TrainingCheckpointError else { return XCTFail("\(error)") }
            XCTAssertEqual(file, shape)
            XCTAssertEqual(tensor, "blk.0.attn_k.weight")
        }
        let truncated = tmp + "/truncated.gguf"
        try Data(tinyGGUF(unsupported: false).dropLast(100)).write(to: URL(fileURLWithPath: truncated))
        XCTAssertThrowsError(try TrainingCheckpoint.load(path: truncated, log: quiet)) { error in
            guard case let .tensorOutOfBounds(file, tensor, _, _, _)? = error as? GGUFError else { return XCTFail("\(error)") }
            XCTAssertEqual(file, truncated)
            XCTAssertEqual(tensor, "output_norm.weight")
        }
        var meta = try GGUFFile(bytes: tinyGGUF(unsupported: false)).metadata
        meta.set("general.architecture", .string("mamba"))
        var w = GGUFWriter(metadata: meta)
        try w.addTensor(name: "token_embd.weight", dimensions: [32, 8], floats: [Float](repeating: 0, count: 256))
        let arch = tmp + "/arch.gguf"
        try w.write(to: arch)
        XCTAssertThrowsError(try TrainingCheckpoint.load(path: arch, log: quiet)) { error in
            guard case let .unsupportedModelType(file, type)? = error as? ConfigError else { return XCTFail("\(error)") }
            XCTAssertEqual(file, arch)
            XCTAssertTrue(type.contains("mamba"))
        }
    }

    // MARK: - Saving folders

    private func files(_ dir: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
            out[name] = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name))
        }
        return out
    }

    private func greedy(_ path: String, prompt: String = "Describe a cat in one sentence.", tokens: Int = 8) throws -> [Int] {
        let model = try VLMModel.load(path: path)
        let conv = [ChatMessage.user([.text(prompt)])]
        return try model.generate([conv], parameters: GenerationParameters(maxNewTokens: tokens, stopAtEOS: false))[0].tokenIds
    }

    /// Unchanged parameters: the safetensors are byte-identical, every other file identical, a
    /// marker added, and the runtime generates the same tokens from the copy.
    func testSaveUnchangedFoldersIsByteIdentical() throws {
        for fixture in Self.folderFixtures {
            let dir = try Fixtures.require(fixture).path
            let loaded = try TrainingCheckpoint.load(path: dir, log: quiet)
            let out = try Fixtures.temporaryDirectory(for: self).path + "/saved"
            try TrainingCheckpoint.save(loaded.parameters, loadedFrom: loaded, to: out, log: quiet)
            var saved = try files(out)
            let marker = try XCTUnwrap(saved.removeValue(forKey: TrainingCheckpoint.markerFileName))
            let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: marker) as? [String: Any])
            XCTAssertEqual(obj["parameter_count"] as? Int, loaded.parameters.parameters.count)
            let source = try files(dir)
            XCTAssertEqual(Set(saved.keys), Set(source.keys), fixture)
            for (name, data) in source { XCTAssertTrue(saved[name] == data, "\(fixture): \(name) differs") }
            XCTAssertEqual(try greedy(out), try greedy(dir), fixture)
            // Nothing left beside the output.
            let siblings = try FileManager.default.contentsOfDirectory(atPath: (out as NSString).deletingLastPathComponent)
            XCTAssertEqual(siblings, ["saved"])
        }
    }

    /// A changed parameter is in the saved file (f32 exactly; bf16 rounded to nearest even), and
    /// saving again over our own output replaces it.
    func testModifiedParameterSurvivesSaveAndReload() throws {
        for fixture in ["goldens/qwen2_5_vl_tiny/checkpoint", "goldens/qwen2_5_vl_tiny_bf16_v5/checkpoint"] {
            let dir = try Fixtures.require(fixture).path
            let loaded = try TrainingCheckpoint.load(path: dir, log: quiet)
            let out = try Fixtures.temporaryDirectory(for: self).path + "/saved"
            try TrainingCheckpoint.save(loaded.parameters, loadedFrom: loaded, to: out, log: quiet)
            let q = try XCTUnwrap(loaded.parameters["model.layers.1.self_attn.q_proj.weight"])
            let patch = try XCTUnwrap(loaded.parameters["visual.patch_embed.proj.weight"])
            q.value[5] = 0.123456789
            patch.value[7] = -1.5
            // Over the previous save: replaced atomically.
            try TrainingCheckpoint.save(loaded.parameters, loadedFrom: loaded, to: out, log: quiet)
            let again = try TrainingCheckpoint.load(path: out, log: quiet)
            let bf16 = fixture.contains("bf16")
            XCTAssertEqual(again.parameters["model.layers.1.self_attn.q_proj.weight"]?.value[5],
                           bf16 ? Float(bitPattern: UInt32(floatToBF16(0.123456789)) << 16) : 0.123456789)
            XCTAssertEqual(again.parameters["visual.patch_embed.proj.weight"]?.value[7], -1.5)
            XCTAssertEqual(again.parameters["visual.patch_embed.proj.weight"]?.value[6], patch.value[6])
            XCTAssertEqual(again.parameters.names, loaded.parameters.names)
            XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/model.safetensors")),
                              try Data(contentsOf: URL(fileURLWithPath: dir + "/model.safetensors")))
            let siblings = try FileManager.default.contentsOfDirectory(atPath: (out as NSString).deletingLastPathComponent)
            XCTAssertEqual(siblings, ["saved"])
        }
    }

    /// An mlx-layout sharded folder saves back to the same shard names, stored names and layout
    /// (byte-identical when unchanged), with its index regenerated.
    func testSaveShardedMLXFolderMirrorsIt() throws {
        let dir = try Fixtures.require("goldens/qwen2_5_vl_tiny/checkpoint").path
        let tmp = try Fixtures.temporaryDirectory(for: self).path
        let mlx = tmp + "/mlx"
        try writeVariant(of: dir, to: mlx, shards: 2) { name in
            if name.hasPrefix("model.") { return "language_model." + name }
            if name.hasPrefix("visual.") { return "vision_tower." + name.dropFirst("visual.".count) }
            return "language_model." + name
        }
        let loaded = try TrainingCheckpoint.load(path: mlx, log: quiet)
        let out = tmp + "/out"
        try TrainingCheckpoint.save(loaded.parameters, loadedFrom: loaded, to: out, log: quiet)
        let source = try files(mlx), saved = try files(out)
        for (name, data) in source where name.hasSuffix(".safetensors") || !name.hasSuffix(".json") || name == "config.json" {
            XCTAssertTrue(saved[name] == data, name)
        }
        let index = try XCTUnwrap(try JSONSerialization.jsonObject(with: XCTUnwrap(saved["model.safetensors.index.json"])) as? [String: Any])
        let sourceIndex = try XCTUnwrap(try JSONSerialization.jsonObject(with: XCTUnwrap(source["model.safetensors.index.json"])) as? [String: Any])
        XCTAssertEqual(index["weight_map"] as? [String: String], sourceIndex["weight_map"] as? [String: String])
        let total = try (1...2).map { try SafeTensorsFile(path: out + String(format: "/model-%05d-of-00002.safetensors", $0)) }
            .flatMap { $0.entries.values }.reduce(0) { $0 + $1.byteCount }
        XCTAssertEqual((index["metadata"] as? [String: Any])?["total_size"] as? Int, total)
        // A change to the channels-last patch embedding goes back channels-last.
        loaded.parameters["visual.patch_embed.proj.weight"]?.value[1] = 42
        try TrainingCheckpoint.save(loaded.parameters, loadedFrom: loaded, to: out, log: quiet)
        XCTAssertEqual(try TrainingCheckpoint.load(path: out, log: quiet).parameters["visual.patch_embed.proj.weight"]?.value[1], 42)
    }

    func testSaveRefusesSourceAndForeignFolders() throws {
        let dir = try Fixtures.require("goldens/qwen2_vl_tiny/checkpoint").path
        let loaded = try TrainingCheckpoint.load(path: dir, log: quiet)
        XCTAssertThrowsError(try TrainingCheckpoint.save(loaded.parameters, loadedFrom: loaded, to: dir, log: quiet)) {
            XCTAssertEqual($0 as? TrainingCheckpointError, .outputIsSource(path: dir))
        }
        XCTAssertThrowsError(try TrainingCheckpoint.save(loaded.parameters, loadedFrom: loaded, to: dir + "/sub", log: quiet))
        let tmp = try Fixtures.temporaryDirectory(for: self).path
        let foreign = tmp + "/foreign"
        try FileManager.default.createDirectory(atPath: foreign, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: URL(fileURLWithPath: foreign + "/notes.txt"))
        XCTAssertThrowsError(try TrainingCheckpoint.save(loaded.parameters, loadedFrom: loaded, to: foreign, log: quiet)) {
            guard case .outputExists? = $0 as? TrainingCheckpointError else { return XCTFail("\($0)") }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: foreign), ["notes.txt"])
        // An empty folder is fine.
        let empty = tmp + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        try TrainingCheckpoint.save(loaded.parameters, loadedFrom: loaded, to: empty, log: quiet)
        XCTAssertTrue(FileManager.default.fileExists(atPath: empty + "/" + TrainingCheckpoint.markerFileName))
    }

    /// A save that fails mid-write leaves no output (or the previous save untouched) and no
    /// partial folder beside it.
    func testInterruptedSaveLeavesNoCompleteLookingFolder() throws {
        let dir = try Fixtures.require("goldens/qwen2_vl_tiny/checkpoint").path
        let loaded = try TrainingCheckpoint.load(path: dir, log: quiet)
        let tmp = try Fixtures.temporaryDirectory(for: self).path
        let out = tmp + "/out"
        struct Interrupted: Error {}
        defer { TrainingCheckpoint.faultInjection = nil }
        for stage in ["tensors-written", "before-rename"] {
            TrainingCheckpoint.faultInjection = { if $0 == stage { throw Interrupted() } }
            XCTAssertThrowsError(try TrainingCheckpoint.save(loaded.parameters, loadedFrom: loaded, to: out, log: quiet)) {
                XCTAssertTrue($0 is Interrupted)
            }
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp), [], stage)
        }
        TrainingCheckpoint.faultInjection = nil
        try TrainingCheckpoint.save(loaded.parameters, loadedFrom: loaded, to: out, log: quiet)
        let before = try files(out)
        loaded.parameters["model.norm.weight"]?.value[0] = 9
        for stage in ["tensors-written", "before-rename"] {
            TrainingCheckpoint.faultInjection = { if $0 == stage { throw Interrupted() } }
            XCTAssertThrowsError(try TrainingCheckpoint.save(loaded.parameters, loadedFrom: loaded, to: out, log: quiet))
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp), ["out"], stage)
            XCTAssertEqual(try files(out), before, stage)
        }
        // The rename of the new folder fails after the previous save was moved aside: it is put back.
        TrainingCheckpoint.faultInjection = { if $0 == "rename" { throw Interrupted() } }
        XCTAssertThrowsError(try TrainingCheckpoint.save(loaded.parameters, loadedFrom: loaded, to: out, log: quiet))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp), ["out"])
        XCTAssertEqual(try files(out), before)
        TrainingCheckpoint.faultInjection = nil
        try TrainingCheckpoint.save(loaded.parameters, loadedFrom: loaded, to: out, log: quiet)
        XCTAssertEqual(try TrainingCheckpoint.load(path: out, log: quiet).parameters["model.norm.weight"]?.value[0], 9)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp), ["out"])
    }

    // MARK: - GGUF → Hugging Face folder

    static let tokenizerProbes = ["Hello, world!", "The year 2024 had 366 days.", "naïve café — 東京 🚀 ẞ",
                                  "  leading spaces\n\ttabs\r\n", "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
                                  "<|endoftext|>x<|im_end|>"]

    func testGGUFSavedAsHuggingFaceFolderRunsTheSame() throws {
        let path = try Fixtures.smolLM2Path()
        let t0 = Date()
        let loaded = try TrainingCheckpoint.load(path: path, log: quiet)
        let t1 = Date()
        let out = try Fixtures.temporaryDirectory(for: self).path + "/smollm2-hf"
        try TrainingCheckpoint.save(loaded.parameters, loadedFrom: loaded, to: out, log: quiet)
        let t2 = Date()
        let names = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
        XCTAssertEqual(names, ["assay-checkpoint.json", "config.json", "generation_config.json", "model.safetensors",
                               "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"])
        let size = try FileManager.default.attributesOfItem(atPath: out + "/model.safetensors")[.size] as? Int ?? 0
        print("SmolLM2: load \(String(format: "%.2f", t1.timeIntervalSince(t0))) s, save \(String(format: "%.2f", t2.timeIntervalSince(t1))) s, model.safetensors \(size) bytes")
        let st = try SafeTensorsFile(path: out + "/model.safetensors")
        XCTAssertNil(st.entries["lm_head.weight"])
        XCTAssertEqual(Set(st.entries.keys), Set(loaded.parameters.names))
        XCTAssertTrue(st.entries.values.allSatisfy { $0.dtype == .f32 })

        if ProcessInfo.processInfo.environment["ASSAY_PRINT_EXPORT"] != nil {
            for n in ["config.json", "generation_config.json", "special_tokens_map.json", "tokenizer_config.json"] {
                print(String(decoding: try Data(contentsOf: URL(fileURLWithPath: out + "/" + n)).prefix(1500), as: UTF8.self))
            }
        }
        let config = try ModelConfig.load(path: out + "/config.json")
        XCTAssertEqual(config.text, loaded.config.text)
        XCTAssertEqual(config.tieWordEmbeddings, true)
        XCTAssertEqual(config.bosTokenId, loaded.config.bosTokenId)
        XCTAssertEqual(config.eosTokenIds, loaded.config.eosTokenIds)

        let ggufModel = try VLMModel.load(path: path)
        let folderModel = try VLMModel.load(path: out)
        XCTAssertEqual(folderModel.stopTokenIds, ggufModel.stopTokenIds)
        // Same tokenizer ids (including the chat specials) and the same prompt.
        for probe in Self.tokenizerProbes {
            XCTAssertEqual(folderModel.tokenizer.encode(probe), ggufModel.tokenizer.encode(probe), probe)
        }
        let conv = [ChatMessage.user([.text("What is 12 + 30?")])]
        let a = try ggufModel.prepare([conv]), b = try folderModel.prepare([conv])
        XCTAssertEqual(a.inputIds, b.inputIds)
        let params = GenerationParameters(maxNewTokens: 12, stopAtEOS: false)
        var s1 = GenerationStats(), s2 = GenerationStats()
        var la: [[Float]] = [], lb: [[Float]] = []
        let ga = try ggufModel.generate(a, parameters: params, stats: &s1) { la.append($0) }
        let gb = try folderModel.generate(b, parameters: params, stats: &s2) { lb.append($0) }
        XCTAssertEqual(ga[0].tokenIds, gb[0].tokenIds)
        var maxDiff: Float = 0, maxAbs: Float = 0
        for (x, y) in zip(la, lb) { for (u, v) in zip(x, y) { maxDiff = max(maxDiff, abs(u - v)); maxAbs = max(maxAbs, abs(u)) } }
        print("SmolLM2 GGUF vs f32 folder: tokens \(ga[0].tokenIds), max |logit diff| \(maxDiff) over \(la.count) steps (max |logit| \(maxAbs))")
        XCTAssertLessThan(maxDiff, 1e-3)
    }

    static let python = "/tmp/assay-torch-venv/bin/python"

    /// Runs transformers on `folder`: last-position logits for `ids`, the probes' ids, and the
    /// chat template's rendering of one user turn.
    func transformers(_ folder: String, ids: [Int], probes: [String]) throws -> (logits: [Float], encodings: [[Int]], chat: String) {
        let script = """
            import json, sys, torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
            d, probes, ids = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
            tok = AutoTokenizer.from_pretrained(d)
            m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
            m.eval()
            with torch.no_grad():
                out = m(torch.tensor([ids])).logits[0, -1].tolist()
            enc = [tok(p, add_special_tokens=False)["input_ids"] for p in probes]
            chat = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
            print(json.dumps({"encodings": enc, "logits": out, "chat": chat}))
            """
        let probeJSON = String(decoding: try JSONSerialization.data(withJSONObject: probes), as: UTF8.self)
        let idJSON = String(decoding: try JSONSerialization.data(withJSONObject: ids), as: UTF8.self)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.python)
        process.arguments = ["-c", script, folder, probeJSON, idJSON]
        let pipe = Pipe(), errPipe = Pipe()
        process.standardOutput = pipe
        process.standardError = errPipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        let err = errPipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let enc = obj["encodings"] as? [[Int]], let logits = obj["logits"] as? [NSNumber], let chat = obj["chat"] as? String else {
            XCTFail("transformers failed on \(folder): \(String(decoding: err, as: UTF8.self).suffix(3000))")
            throw XCTSkip("transformers failed")
        }
        return (logits.map(\.floatValue), enc, chat)
    }

    /// transformers loads the GGUF-derived folders (AutoModelForCausalLM, AutoTokenizer): SmolLM2
    /// (Llama) and a tiny Qwen2 give the same ids for the probes, the same chat prompt and close
    /// logits. Needs /tmp/assay-torch-venv.
    func testTransformersLoadsGGUFDerivedFolder() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.python) else {
            throw XCTSkip("\(Self.python) not found: the transformers cross-check is skipped")
        }
        let tmp = try Fixtures.temporaryDirectory(for: self).path
        let qwen = tmp + "/qwen2.gguf"
        try Data(tinyTokenizerGGUF(arch: "qwen2", pre: "qwen2")).write(to: URL(fileURLWithPath: qwen))
        var cases = [(qwen, ["abc ab cab", "a<|im_end|>b c"], "tiny qwen2")]
        if let smol = try? Fixtures.smolLM2Path() { cases.insert((smol, Self.tokenizerProbes, "SmolLM2"), at: 0) }
        for (path, probes, label) in cases {
            let loaded = try TrainingCheckpoint.load(path: path, log: quiet)
            let out = tmp + "/" + label.replacingOccurrences(of: " ", with: "-")
            try TrainingCheckpoint.save(loaded.parameters, loadedFrom: loaded, to: out, log: quiet)
            let model = try VLMModel.load(path: out)
            let text = try model.template.render([ChatMessage.user([.text("What is the capital of France?")])])
            let prompt = model.tokenizer.encode(text)
            let logits = try model.promptLogits(model.prepare(tokenIds: [prompt]))
            let v = model.config.text.vocabSize
            let last = Array(logits[(prompt.count - 1) * v..<prompt.count * v])
            let theirs = try transformers(out, ids: prompt, probes: probes)
            for (probe, ids) in zip(probes, theirs.encodings) { XCTAssertEqual(ids, model.tokenizer.encode(probe), "\(label): \(probe)") }
            XCTAssertEqual(theirs.logits.count, v)
            let diff = zip(theirs.logits, last).map { abs($0 - $1) }.max() ?? .infinity
            let argmaxOurs = last.indices.max { last[$0] < last[$1] }
            let argmaxTheirs = theirs.logits.indices.max { theirs.logits[$0] < theirs.logits[$1] }
            print("transformers vs runtime, \(label) GGUF-derived folder: \(prompt.count) prompt tokens, max |logit diff| \(diff), argmax \(argmaxTheirs ?? -1) / \(argmaxOurs ?? -1)")
            XCTAssertEqual(argmaxOurs, argmaxTheirs, label)
            XCTAssertLessThan(diff, 1e-3, label)
            XCTAssertEqual(theirs.chat, try model.template.render([ChatMessage.user([.text("Hi")])]), label)
        }
    }

    // MARK: - f16 folders, tiny GGUF exports

    /// Writes a safetensors file by hand: (name, dtype, shape, little-endian bytes).
    func writeSafetensors(_ path: String, _ tensors: [(String, DType, [Int], Data)]) throws {
        var header: [String: Any] = ["__metadata__": ["format": "pt"]]
        var offset = 0
        for (name, dtype, shape, data) in tensors {
            header[name] = ["dtype": dtype.rawValue, "shape": shape, "data_offsets": [offset, offset + data.count]]
            offset += data.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for t in tensors { out.append(t.3) }
        try out.write(to: URL(fileURLWithPath: path))
    }

    /// An f16 copy of a fixture loads as the exact upcast, saves back byte-identical, and a
    /// changed value is stored rounded to nearest even.
    func testF16FolderRoundTrip() throws {
        let dir = try Fixtures.require("goldens/qwen2_vl_tiny/checkpoint").path
        let tmp = try Fixtures.temporaryDirectory(for: self).path
        let f16 = tmp + "/f16"
        try FileManager.default.createDirectory(atPath: f16, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) where name != "model.safetensors" {
            try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name)).write(to: URL(fileURLWithPath: f16 + "/" + name))
        }
        let src = try SafeTensorsFile(path: dir + "/model.safetensors")
        var tensors: [(String, DType, [Int], Data)] = []
        for name in src.entries.keys.sorted() {
            let e = try XCTUnwrap(src.entries[name])
            let halves = try src.floats(e).map { Float16($0).bitPattern.littleEndian }
            tensors.append((name, .f16, e.shape, halves.withUnsafeBytes { Data($0) }))
        }
        try writeSafetensors(f16 + "/model.safetensors", tensors)
        let loaded = try TrainingCheckpoint.load(path: f16, log: quiet)
        let hub = try TrainingCheckpoint.load(path: dir, log: quiet)
        for p in hub.parameters.parameters {
            XCTAssertEqual(loaded.parameters[p.name]?.value, p.value.map { Float(Float16($0)) }, p.name)
        }
        let out = tmp + "/out"
        try TrainingCheckpoint.save(loaded.parameters, loadedFrom: loaded, to: out, log: quiet)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/model.safetensors")),
                       try Data(contentsOf: URL(fileURLWithPath: f16 + "/model.safetensors")))
        loaded.parameters["model.norm.weight"]?.value[3] = 1.0001
        try TrainingCheckpoint.save(loaded.parameters, loadedFrom: loaded, to: out, log: quiet)
        XCTAssertEqual(try TrainingCheckpoint.load(path: out, log: quiet).parameters["model.norm.weight"]?.value[3], Float(Float16(Float(1.0001))))
    }

    /// A tiny f32 GGUF (llama with permuted q/k, or qwen2 with q/k/v biases) with a small gpt2
    /// vocabulary, exported as a folder: the runtime gives the same logits for both.
    func tinyTokenizerGGUF(arch: String, pre: String) throws -> [UInt8] {
        let h = 32, heads = 2, kv = 1, hd = 16, ff = 48, layers = 2
        let tokens = ["a", "b", "c", "ab", "Ġ", "abc", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        var meta = GGUFMetadata()
        meta.set("general.architecture", .string(arch))
        meta.set("\(arch).embedding_length", .uint32(UInt32(h)))
        meta.set("\(arch).block_count", .uint32(UInt32(layers)))
        meta.set("\(arch).attention.head_count", .uint32(UInt32(heads)))
        meta.set("\(arch).attention.head_count_kv", .uint32(UInt32(kv)))
        meta.set("\(arch).feed_forward_length", .uint32(UInt32(ff)))
        meta.set("\(arch).attention.layer_norm_rms_epsilon", .float32(1e-6))
        meta.set("\(arch).rope.freq_base", .float32(10000))
        meta.set("\(arch).context_length", .uint32(256))
        meta.set("tokenizer.ggml.model", .string("gpt2"))
        meta.set("tokenizer.ggml.pre", .string(pre))
        meta.set("tokenizer.ggml.tokens", .array(.string(tokens)))
        meta.set("tokenizer.ggml.token_type", .array(.int32([1, 1, 1, 1, 1, 1, 3, 3, 3])))
        meta.set("tokenizer.ggml.merges", .array(.string(["a b", "ab c"])))
        meta.set("tokenizer.ggml.bos_token_id", .uint32(7))
        meta.set("tokenizer.ggml.eos_token_id", .uint32(8))
        meta.set("tokenizer.ggml.padding_token_id", .uint32(6))
        meta.set("tokenizer.chat_template", .string("""
            {% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}\
            {% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}
            """))
        var w = GGUFWriter(metadata: meta)
        var seed: UInt32 = 1
        func values(_ n: Int, scale: Float = 0.3) -> [Float] {
            (0..<n).map { _ in seed = seed &* 1_664_525 &+ 1_013_904_223; return (Float(seed >> 8) / Float(1 << 24) - 0.5) * scale }
        }
        func norm(_ n: Int) -> [Float] { values(n, scale: 0.2).map { 1 + $0 } }
        try w.addTensor(name: "token_embd.weight", dimensions: [h, tokens.count], floats: values(h * tokens.count, scale: 2))
        for l in 0..<layers {
            let b = "blk.\(l)."
            try w.addTensor(name: b + "attn_norm.weight", dimensions: [h], floats: norm(h))
            try w.addTensor(name: b + "ffn_norm.weight", dimensions: [h], floats: norm(h))
            for (n, rows) in [("attn_q", heads * hd), ("attn_k", kv * hd), ("attn_v", kv * hd)] {
                try w.addTensor(name: b + n + ".weight", dimensions: [h, rows], floats: values(h * rows))
                if arch == "qwen2" { try w.addTensor(name: b + n + ".bias", dimensions: [rows], floats: values(rows)) }
            }
            try w.addTensor(name: b + "attn_output.weight", dimensions: [heads * hd, h], floats: values(h * heads * hd))
            try w.addTensor(name: b + "ffn_gate.weight", dimensions: [h, ff], floats: values(h * ff))
            try w.addTensor(name: b + "ffn_up.weight", dimensions: [h, ff], floats: values(h * ff))
            try w.addTensor(name: b + "ffn_down.weight", dimensions: [ff, h], floats: values(h * ff))
        }
        try w.addTensor(name: "output_norm.weight", dimensions: [h], floats: norm(h))
        if arch == "qwen2" { try w.addTensor(name: "output.weight", dimensions: [h, tokens.count], floats: values(h * tokens.count)) }
        return w.serialize()
    }

    func testTinyGGUFExportsRunTheSame() throws {
        let tmp = try Fixtures.temporaryDirectory(for: self).path
        for (arch, pre) in [("llama", "smollm"), ("qwen2", "qwen2"), ("llama", "llama-bpe"), ("llama", "gpt2")] {
            let gguf = tmp + "/\(arch)-\(pre).gguf"
            try Data(tinyTokenizerGGUF(arch: arch, pre: pre)).write(to: URL(fileURLWithPath: gguf))
            let loaded = try TrainingCheckpoint.load(path: gguf, log: quiet)
            XCTAssertEqual(loaded.parameters["lm_head.weight"] == nil, arch == "llama")
            let out = tmp + "/\(arch)-\(pre)"
            try TrainingCheckpoint.save(loaded.parameters, loadedFrom: loaded, to: out, log: quiet)
            let cfg = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/config.json"))) as? [String: Any])
            XCTAssertEqual(cfg["architectures"] as? [String], [arch == "llama" ? "LlamaForCausalLM" : "Qwen2ForCausalLM"])
            let a = try VLMModel.load(path: gguf), b = try VLMModel.load(path: out)
            XCTAssertEqual(b.config.text, a.config.text)
            for probe in ["abc ab cab", "a<|im_end|>b", "ab 12 c"] {
                XCTAssertEqual(b.tokenizer.encode(probe), a.tokenizer.encode(probe), "\(pre): \(probe)")
            }
            let ids = [[7, 0, 1, 3, 4, 5, 2, 8, 7, 3]]
            let la = try a.promptLogits(a.prepare(tokenIds: ids)), lb = try b.promptLogits(b.prepare(tokenIds: ids))
            let diff = zip(la, lb).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThan(diff, 1e-5, "\(arch)/\(pre)")
        }
        // A pre-tokenizer the runtime does not know cannot be exported.
        let odd = tmp + "/odd.gguf"
        try Data(tinyTokenizerGGUF(arch: "llama", pre: "no-such-pre")).write(to: URL(fileURLWithPath: odd))
        let loaded = try TrainingCheckpoint.load(path: odd, log: quiet)
        XCTAssertThrowsError(try TrainingCheckpoint.save(loaded.parameters, loadedFrom: loaded, to: tmp + "/odd", log: quiet)) {
            guard case .unsupportedForExport(odd, let what, _)? = $0 as? TrainingCheckpointError else { return XCTFail("\($0)") }
            XCTAssertTrue(what.contains("no-such-pre"))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp + "/odd"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp).filter { $0.hasPrefix(".") }, [])
    }
}
