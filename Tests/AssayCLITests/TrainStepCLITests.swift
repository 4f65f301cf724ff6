import AssayTestSupport
import Foundation
import XCTest

/// `assay train grpo-step` from outside, on the GRPO goldens' prompt, completions and rewards.
extension CLITests {
    func goldenBatch(_ overrides: [String: Any] = [:], drop: [String] = []) throws -> (batch: URL, golden: [String: Any], model: URL) {
        let dir = try Fixtures.require("goldens/qwen2_5_vl_tiny")
        let index = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("index.json"))) as? [String: Any])
        let grpo = try XCTUnwrap(index["grpo"] as? [String: Any])
        let prompt = try XCTUnwrap(grpo["prompt"] as? [String: Any])
        var messages = try XCTUnwrap(prompt["messages"] as? [[String: Any]])
        var content = try XCTUnwrap(messages[0]["content"] as? [[String: Any]])
        content[0]["image"] = try Fixtures.require("goldens/processor/img_a_168x280.png").path
        messages[0]["content"] = content
        var batch: [String: Any] = [
            "messages": messages,
            "completions": (grpo["completions"] as! [[String: Any]]).map { ["ids": $0["ids"]!] },
            "rewards": grpo["rewards"]!, "temperature": 1.0, "advantage": "trl", "policy_loss": "trl", "aggregation": "dapo",
            "beta": 0.0, "epsilon_low": 0.2, "epsilon_high": 0.28, "max_completion_length": 32,
            "optimizer": ["lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01],
        ]
        for (k, v) in overrides { batch[k] = v }
        for k in drop { batch.removeValue(forKey: k) }
        let url = directory.appendingPathComponent("batch-\(UUID().uuidString).json")
        try JSONSerialization.data(withJSONObject: batch).write(to: url)
        return (url, grpo, dir.appendingPathComponent("checkpoint"))
    }

    func testGRPOStepReproducesTheStage0GoldensAndWritesTheta1() throws {
        let (batch, grpo, model) = try goldenBatch()
        let out = directory.appendingPathComponent("theta1")
        let (stdout, stderr) = try assay(["train", "grpo-step", "--model-path", model.path, "--batch", batch.path, "--out", out.path, "--json"])
        let result = try json(stdout)
        let scalars = grpo["scalars"] as! [String: Any]
        XCTAssertEqual((result["loss"] as! NSNumber).doubleValue, (scalars["stage0_loss_dapo_beta0_trl"] as! NSNumber).doubleValue, accuracy: 1e-4, stderr)
        XCTAssertEqual((result["grad_norm"] as! NSNumber).doubleValue, (scalars["stage0_global_grad_norm"] as! NSNumber).doubleValue, accuracy: 5e-4)
        XCTAssertEqual(result["prompt_tokens"] as? Int, 126)
        let adv = (result["advantages"] as! [NSNumber]).map(\.doubleValue)
        for (a, b) in zip(adv, ((grpo["advantages"] as! [String: Any])["trl"] as! [NSNumber]).map(\.doubleValue)) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        let clipped = try XCTUnwrap(result["clipped"] as? [String: Any])
        XCTAssertEqual(clipped["low"] as? Int, 0)
        let logprobs = (result["logprobs"] as! [[NSNumber]])
        XCTAssertEqual(logprobs.map(\.count), [23, 12, 6, 23])
        // θ1 as torch wrote it (the in-process golden test compares every element by |g0|; here, from outside, by count).
        let golden = try SafeTensorsReader(url: try Fixtures.require("goldens/qwen2_5_vl_tiny/grpo_theta1.safetensors"))
        let ours = try SafeTensorsReader(url: out.appendingPathComponent("model.safetensors"))
        for name in ["model.layers.0.self_attn.q_proj.weight", "visual.blocks.0.attn.qkv.weight", "model.norm.weight"] {
            let a = try ours.floats(name), b = try golden.floats(name)
            XCTAssertEqual(a.count, b.count)
            let diffs = zip(a, b).map { abs($0 - $1) }
            // Elements with |g0| ≲ 1e-5 move by ≈ lr·sign(g): noise there is amplified up to lr.
            XCTAssertLessThanOrEqual(diffs.max() ?? 1, 2e-3, name)
            XCTAssertGreaterThanOrEqual(Double(diffs.filter { $0 <= 1e-6 }.count), 0.99 * Double(diffs.count), name)
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("tokenizer.json").path))
        // The saved model generates.
        let (gen, _) = try assay(["generate", "--model-path", out.path, "--prompt", "Hi", "--max-tokens", "3"])
        XCTAssertFalse(gen.isEmpty)
    }

    func testGRPOStepRefusesBadBatchesAndWritesNothing() throws {
        let (_, _, model) = try goldenBatch()
        let cases: [([String: Any], [String], String)] = [
            (["advantage": "median"], [], "advantage"),
            (["rewards": [1.0, 0.0]], [], "rewards"),
            (["completions": [["ids": [1, 2]], ["ids": [99999]], ["ids": [3]], ["ids": [4]]]], [], "completion 1"),
            (["beta": 0.04], [], "ref_logprobs"),
            (["old_logprobs": [[0.1], [0.2], [0.3], [0.4]]], [], "old_logprobs"),
            (["colour": "blue"], [], "colour"),
            ([:], ["messages"], "messages"),
        ]
        for (overrides, drop, needle) in cases {
            let (batch, _, _) = try goldenBatch(overrides, drop: drop)
            let out = directory.appendingPathComponent("out-\(UUID().uuidString)")
            let (_, stderr) = try assay(["train", "grpo-step", "--model-path", model.path, "--batch", batch.path, "--out", out.path, "--json"],
                                        expectFailure: true)
            XCTAssertTrue(stderr.contains(needle), "\(overrides): \(stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "nothing is written for \(overrides)")
        }
        // An image that does not decode.
        let junk = directory.appendingPathComponent("junk.png")
        try Data("not a png".utf8).write(to: junk)
        let (batch, _, _) = try goldenBatch(["messages": [["role": "user", "content": [["type": "image", "image": junk.path], ["type": "text", "text": "?"]]]]])
        let (_, stderr) = try assay(["train", "grpo-step", "--model-path", model.path, "--batch", batch.path], expectFailure: true)
        XCTAssertTrue(stderr.contains("junk.png"), stderr)
    }
}

/// Reads f32 tensors from a safetensors file (header + raw little-endian data) for checks from outside.
struct SafeTensorsReader {
    let data: Data
    let header: [String: Any]
    let base: Int

    init(url: URL) throws {
        data = try Data(contentsOf: url)
        let n = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        header = try XCTUnwrap(JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + Int(n)))) as? [String: Any])
        base = 8 + Int(n)
    }

    func floats(_ name: String) throws -> [Float] {
        let e = try XCTUnwrap(header[name] as? [String: Any], name)
        XCTAssertEqual(e["dtype"] as? String, "F32")
        let off = (e["data_offsets"] as! [NSNumber]).map(\.intValue)
        return data.subdata(in: (base + off[0])..<(base + off[1])).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
}
