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
}
