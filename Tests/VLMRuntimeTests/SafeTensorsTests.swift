import Foundation
import XCTest
@testable import VLMRuntime

final class SafeTensorsTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("vlmrt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func file(_ header: String, data: [UInt8], name: String = "t.safetensors") throws -> String {
        var bytes = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian, Array.init)
        bytes += Array(header.utf8) + data
        let url = tmp.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    func testReadsF32AndBF16Exactly() throws {
        let one = Float(1.5).bitPattern
        var data = withUnsafeBytes(of: one.littleEndian, Array.init)
        data += [0xC0, 0x3F]  // bf16 1.5
        let path = try file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]}}"#, data: data)
        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(try f.floats("a"), [1.5])
        XCTAssertEqual(try f.floats("b"), [1.5])
    }

    func testCorruptFilesGiveNamedErrorsBeforeAllocating() throws {
        let cases: [(String, [UInt8], String)] = [
            (#"{"a":{"dtype":"F32","shape":[1000000000,1000000],"data_offsets":[0,4]}}"#, [0, 0, 0, 0], "shape"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, [0, 0, 0, 0], "ends at byte"),
            (#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, [UInt8](repeating: 0, count: 8), "span"),
            (#"{"a":{"dtype":"Q9","shape":[1],"data_offsets":[0,4]}}"#, [0, 0, 0, 0], "dtype"),
            (#"{"a": not json"#, [], "JSON"),
        ]
        for (i, (header, data, needle)) in cases.enumerated() {
            let path = try file(header, data: data, name: "bad\(i).safetensors")
            XCTAssertThrowsError(try SafeTensorsFile(path: path)) { e in
                XCTAssertTrue("\(e)".contains(path), "\(e)")
                XCTAssertTrue("\(e)".contains(needle), "\(e)")
            }
        }
        // Header length larger than the file.
        let url = tmp.appendingPathComponent("short.safetensors")
        try Data(withUnsafeBytes(of: UInt64(1 << 40).littleEndian, Array.init) + [0x7B]).write(to: url)
        XCTAssertThrowsError(try SafeTensorsFile(path: url.path)) { XCTAssertTrue("\($0)".contains("short.safetensors")) }
        let tiny = tmp.appendingPathComponent("tiny.safetensors")
        try Data([1, 2, 3]).write(to: tiny)
        XCTAssertThrowsError(try SafeTensorsFile(path: tiny.path)) { XCTAssertTrue("\($0)".contains("truncated")) }
    }

    func testTruncatedCheckpointFailsWithFileName() throws {
        let src = try Fixtures.require("goldens/qwen2_vl_tiny/checkpoint")
        let dst = tmp.appendingPathComponent("ckpt")
        try FileManager.default.copyItem(at: src, to: dst)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dst.path)
        let model = dst.appendingPathComponent("model.safetensors")
        let data = try Data(contentsOf: model)
        try FileManager.default.removeItem(at: model)
        try data.prefix(data.count - 1000).write(to: model)
        XCTAssertThrowsError(try VLMModel.load(path: dst.path)) { e in
            XCTAssertTrue("\(e)".contains("model.safetensors"), "\(e)")
        }
    }

    func testWrongShapeAndMissingConfigKeyAreNamed() throws {
        let src = try Fixtures.require("goldens/qwen2_5_vl_tiny/checkpoint")
        let dst = tmp.appendingPathComponent("ckpt")
        try FileManager.default.copyItem(at: src, to: dst)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dst.path)
        let cfgURL = dst.appendingPathComponent("config.json")
        var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: cfgURL)) as! [String: Any]
        let inter = (cfg["intermediate_size"] as! NSNumber).intValue, hidden = (cfg["hidden_size"] as! NSNumber).intValue
        cfg["intermediate_size"] = inter + 32
        try FileManager.default.removeItem(at: cfgURL)
        try JSONSerialization.data(withJSONObject: cfg).write(to: cfgURL)
        XCTAssertThrowsError(try VLMModel.load(path: dst.path)) { e in
            XCTAssertTrue("\(e)".contains("mlp.gate_proj.weight"), "\(e)")
            XCTAssertTrue("\(e)".contains("[\(inter), \(hidden)]"), "\(e)")
        }
        cfg.removeValue(forKey: "num_hidden_layers")
        try FileManager.default.removeItem(at: cfgURL)
        try JSONSerialization.data(withJSONObject: cfg).write(to: cfgURL)
        XCTAssertThrowsError(try VLMModel.load(path: dst.path)) { e in
            XCTAssertEqual(e as? ConfigError, .missingKey(file: cfgURL.path, key: "num_hidden_layers"))
        }
    }

    func testThreeConfigLayoutsResolveToTheSameModel() throws {
        let a = try ModelConfig.load(path: try Fixtures.require("goldens/qwen2_5_vl_tiny/checkpoint/config.json").path)
        var b = try ModelConfig.load(path: try Fixtures.require("goldens/qwen2_5_vl_tiny_bf16_v5/checkpoint/config.json").path)
        XCTAssertFalse(a.tieWordEmbeddings)
        XCTAssertTrue(b.tieWordEmbeddings)
        b.tieWordEmbeddings = false
        b.eosTokenIds = a.eosTokenIds
        b.padTokenId = a.padTokenId
        XCTAssertEqual(a.text, b.text)
        XCTAssertEqual(a.vision?.fullAttentionBlocks, b.vision?.fullAttentionBlocks)
        let rawA = try Fixtures.json("goldens/qwen2_5_vl_tiny/checkpoint/config.json")
        XCTAssertEqual(a.text.mropeSection, ((rawA["rope_scaling"] as? [String: Any])?["mrope_section"] as? [NSNumber])?.map(\.intValue))
        let q2Path = try Fixtures.require("goldens/qwen2_vl_tiny/checkpoint/config.json").path
        let q2 = try ModelConfig.load(path: q2Path)
        XCTAssertEqual(q2.family, .qwen2VL)
        let rawV = try Fixtures.json("goldens/qwen2_vl_tiny/checkpoint/config.json")["vision_config"] as! [String: Any]
        XCTAssertEqual(q2.vision?.intermediateSize, (rawV["embed_dim"] as! NSNumber).intValue * (rawV["mlp_ratio"] as! NSNumber).intValue)
        // flat + text_config (transformers 4.52+): text_config wins for tie_word_embeddings.
        let mixed = #"{"model_type":"qwen2_5_vl","hidden_size":64,"tie_word_embeddings":false,"image_token_id":5,"vision_start_token_id":4,"text_config":{"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":10,"tie_word_embeddings":true,"rope_scaling":{"type":"default","mrope_section":[2,3,3]}},"vision_config":{"depth":1,"hidden_size":32,"num_heads":2,"intermediate_size":64,"out_hidden_size":64}}"#
        let m = try ModelConfig.parse(Data(mixed.utf8), file: "mixed.json")
        XCTAssertTrue(m.tieWordEmbeddings)
        XCTAssertEqual(m.text.numLayers, 2)
        XCTAssertEqual(WeightLayout.canonical("language_model.model.layers.0.mlp.up_proj.weight"), "model.layers.0.mlp.up_proj.weight")
        XCTAssertEqual(WeightLayout.canonical("model.visual.blocks.0.attn.qkv.bias"), "visual.blocks.0.attn.qkv.bias")
    }
}
