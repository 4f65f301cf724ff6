import Foundation
import XCTest
@testable import VLMRuntime

/// Reproduces every vision, LM and greedy golden of the three tiny checkpoints.
final class ModelGoldenTests: XCTestCase {
    func testQwen25VLHubLayoutFP32() throws { try checkVariant("qwen2_5_vl_tiny") }
    func testQwen25VLTransformersV5BF16Tied() throws { try checkVariant("qwen2_5_vl_tiny_bf16_v5") }
    func testQwen2VLHubLayoutTied() throws { try checkVariant("qwen2_vl_tiny") }

    func checkVariant(_ name: String) throws {
        let ckpt = try Fixtures.require("goldens/\(name)/checkpoint").path
        let idx = try Fixtures.json("goldens/\(name)/index.json")
        let g = try Fixtures.goldens("goldens/\(name)/goldens.safetensors")
        let pg = try Fixtures.goldens("goldens/processor/goldens.safetensors")
        let imageDir = try Fixtures.require("goldens/processor")
        let model = try VLMModel.load(path: ckpt)
        let special = idx["special_token_ids"] as! [String: NSNumber]
        XCTAssertEqual(model.config.imageTokenId, special["image_pad"]?.intValue)
        XCTAssertEqual(model.stopTokenIds, [special["im_end"]!.intValue, special["endoftext"]!.intValue])

        // Vision tower, one image at a time, fed the golden pixel_values.
        let visionKeys = Set(g.entries.keys.filter { $0.hasPrefix("vision/") }.map { $0.split(separator: "/")[1] })
        XCTAssertFalse(visionKeys.isEmpty)
        for key in visionKeys.sorted() {
            let grid = try g.integers("vision/\(key)/image_grid_thw")
            let pv = try pg.floats("\(key)/pixel_values")
            try checkVision(model, g, prefix: "\(name) vision/\(key)", key: "vision/\(key)", pixels: pv,
                            grids: [ImageGrid(t: grid[0], h: grid[1], w: grid[2])])
        }

        let prompts = idx["prompts"] as! [String: [String: Any]]
        for (pname, meta) in prompts.sorted(by: { $0.key < $1.key }) {
            let label = "\(name) \(pname)"
            let convs = (meta["messages"] as! [[[String: Any]]]).map { conv in
                conv.map { m in
                    ChatMessage(role: m["role"] as! String, parts: (m["content"] as! [[String: Any]]).map { part -> ChatMessage.Part in
                        if part["type"] as? String == "image" {
                            // invariant: fixture images decode (checked in ImageTests)
                            return .image(try! ImageDecoder.loadRGB(path: imageDir.appendingPathComponent(part["image"] as! String).path))
                        }
                        return .text(part["text"] as! String)
                    })
                }
            }
            let batch = try model.prepare(convs)
            let b = batch.inputIds.count, s = batch.length, h = model.config.text.hiddenSize
            let v = model.config.text.vocabSize
            XCTAssertEqual(batch.inputIds.flatMap { $0 }, try g.integers("\(pname)/input_ids"), "\(label) input_ids")
            XCTAssertEqual(batch.attentionMask.flatMap { $0 }, try g.integers("\(pname)/attention_mask"), "\(label) attention_mask")
            XCTAssertEqual(batch.images.grids.flatMap { [$0.t, $0.h, $0.w] }, try g.integers("\(pname)/image_grid_thw"), "\(label) grids")
            if g.entries["\(pname)/vision/image_embeds"] != nil {
                let pv = batch.images.pixelValues
                try checkVision(model, g, prefix: "\(label) vision", key: "\(pname)/vision", pixels: pv, grids: batch.images.grids)
            }

            let trace = PromptTrace()
            let logits = try model.promptLogits(batch, trace: trace)
            XCTAssertEqual(trace.positions.flatMap { $0 }, try g.integers("\(pname)/position_ids"), "\(label) position_ids")
            XCTAssertEqual(trace.nextPositions, try g.integers("\(pname)/next_position"), "\(label) next_position")
            let mask = batch.attentionMask.flatMap { $0 }
            func masked(_ x: [Float], width: Int) -> [Float] {
                var y = x
                for r in 0..<(b * s) where mask[r] == 0 { for j in 0..<width { y[r * width + j] = 0 } }
                return y
            }
            assertClose(masked(trace.inputsEmbeds, width: h), try g.floats("\(pname)/inputs_embeds"), "\(label) inputs_embeds")
            for stage in (0..<model.config.text.numLayers).map({ "layer_\($0)" }) + ["final_norm"] {
                assertClose(masked(trace.decoder.stages[stage] ?? [], width: h), try g.floats("\(pname)/hidden/\(stage)"), "\(label) hidden/\(stage)")
            }
            if g.entries["\(pname)/logits"] != nil {
                assertClose(logits, try g.floats("\(pname)/logits"), "\(label) logits")
            } else {
                let cols = try g.integers("\(pname)/logits_cols")
                var sampled = [Float](repeating: 0, count: b * s * cols.count)
                for r in 0..<(b * s) where mask[r] != 0 { for (j, c) in cols.enumerated() { sampled[r * cols.count + j] = logits[r * v + c] } }
                assertClose(sampled, try g.floats("\(pname)/logits_sampled"), "\(label) logits_sampled")
            }
            var lastRows: [Float] = []
            for r in 0..<b { lastRows += logits[((r * s + s - 1) * v)..<((r * s + s) * v)] }
            assertClose(lastRows, try g.floats("\(pname)/logits_last"), "\(label) logits_last")

            // Greedy decoding with the KV cache; step logits compared as the goldens store them.
            let want = try g.integers("\(pname)/greedy_tokens")
            let steps = want.count / b
            var stepLogits: [[Float]] = []
            var stats = GenerationStats()
            let out = try model.generate(batch, parameters: GenerationParameters(maxNewTokens: steps), stats: &stats) { stepLogits.append($0) }
            var got: [Int] = []
            for r in 0..<b { got += out[r].tokenIds + Array(repeating: model.padTokenId, count: steps - out[r].tokenIds.count) }
            XCTAssertEqual(got, want, "\(label) greedy_tokens")
            if let texts = meta["greedy_text"] as? [String] {
                XCTAssertEqual(out.map(\.text), texts, "\(label) greedy_text")
            }
            if g.entries["\(pname)/greedy_step_logits"] != nil {
                var flat: [Float] = []
                for r in 0..<b { for st in stepLogits { flat += st[(r * v)..<((r + 1) * v)] } }
                assertClose(flat, try g.floats("\(pname)/greedy_step_logits"), "\(label) greedy_step_logits")
            } else {
                let cols = try g.integers("\(pname)/logits_cols")
                var flat: [Float] = []
                for r in 0..<b { for st in stepLogits { flat += cols.map { st[r * v + $0] } } }
                assertClose(flat, try g.floats("\(pname)/greedy_step_logits_sampled"), "\(label) greedy_step_logits_sampled")
            }
        }
    }

    func checkVision(_ model: VLMModel, _ g: SafeTensorsFile, prefix: String, key: String, pixels: [Float], grids: [ImageGrid]) throws {
        let trace = VisionTrace()
        let embeds = try XCTUnwrap(model.vision).tower.forward(pixels, grids: grids, trace: trace)
        assertClose(trace.stages["patch_embed"] ?? [], try g.floats("\(key)/patch_embed"), "\(prefix) patch_embed")
        assertClose(trace.rotaryAngles, try g.floats("\(key)/rotary_angles"), atol: 1e-6, rtol: 1e-6, "\(prefix) rotary_angles")
        XCTAssertEqual(trace.cuSeqlens, try g.integers("\(key)/cu_seqlens"), "\(prefix) cu_seqlens")
        if g.entries["\(key)/window_index"] != nil {
            XCTAssertEqual(trace.windowIndex, try g.integers("\(key)/window_index"), "\(prefix) window_index")
            XCTAssertEqual(trace.cuWindowSeqlens, try g.integers("\(key)/cu_window_seqlens"), "\(prefix) cu_window_seqlens")
        }
        if g.entries["\(key)/rotary_pos_ids"] != nil {
            let (hs, ws) = VisionTower.patchPositions(grids, merge: try XCTUnwrap(model.config.vision).spatialMergeSize)
            XCTAssertEqual(zip(hs, ws).flatMap { [$0, $1] }, try g.integers("\(key)/rotary_pos_ids"), "\(prefix) rotary_pos_ids")
        }
        for i in 0..<(try XCTUnwrap(model.config.vision).depth) {
            assertClose(trace.stages["block_\(i)"] ?? [], try g.floats("\(key)/block_\(i)"), "\(prefix) block_\(i)")
        }
        assertClose(trace.stages["merger"] ?? [], try g.floats("\(key)/merger"), "\(prefix) merger")
        assertClose(embeds, try g.floats("\(key)/image_embeds"), "\(prefix) image_embeds")
    }
}
