import Foundation
import XCTest
@testable import VLMRuntime

/// SmolLM2-135M-Instruct Q4_1 (GGUF) against the goldens in ../shared/fixtures/goldens/smollm2_135m_q4_1:
/// token ids of every prompt and edge case exactly, logits and hidden states within the README's
/// fp32-path tolerances, greedy tokens exactly. Prompt names come from prompts.json and the index,
/// so a held-back set with other prompts runs the same checks.
final class SmolLM2GoldenTests: XCTestCase {
    /// The model on the fp32 activation path (the goldens' path), loaded once per test process.
    static func model() throws -> VLMModel { try GGUFFixtures.runtime() }

    struct Prompt {
        let name: String
        let text: String?
        let messages: [ChatMessage]?
    }

    static func prompts() throws -> [Prompt] {
        let data = try Data(contentsOf: GGUFFixtures.goldensDirectory().appendingPathComponent("prompts.json"))
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let list = try XCTUnwrap(obj["prompts"] as? [[String: Any]])
        return try list.map { p in
            let name = try XCTUnwrap(p["name"] as? String)
            if let messages = p["messages"] as? [[String: Any]] {
                return Prompt(name: name, text: nil, messages: try messages.map { m in
                    ChatMessage(role: try XCTUnwrap(m["role"] as? String), parts: [.text(try XCTUnwrap(m["content"] as? String))])
                })
            }
            return Prompt(name: name, text: try XCTUnwrap(p["text"] as? String), messages: nil)
        }
    }

    /// The prompt's ids as the runtime builds them: chat prompts through the GGUF's template.
    static func ids(_ p: Prompt, _ model: VLMModel) throws -> [Int] {
        if let messages = p.messages { return try model.prepare([messages]).inputIds[0] }
        return model.tokenizer.encode(try XCTUnwrap(p.text))
    }

    static func maxAbs(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Float {
        zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    func testTokenIdsOfEveryPromptAndEdgeCaseAreExact() throws {
        let model = try Self.model()
        let g = try GGUFFixtures.goldens()
        let index = try GGUFFixtures.index()
        let meta = try XCTUnwrap(index["prompts"] as? [String: [String: Any]])
        for p in try Self.prompts() {
            let got = try Self.ids(p, model)
            XCTAssertEqual(got, g.ints("\(p.name).input_ids").map(Int.init), "\(p.name) input_ids")
            if let text = p.text {
                XCTAssertEqual(model.tokenizer.decode(got), text, "\(p.name) decodes back to its text")
            } else if let want = meta[p.name]?["text"] as? String {
                XCTAssertEqual(try model.template.render(try XCTUnwrap(p.messages)), want, "\(p.name) rendered chat text")
            }
        }
        let cases = try XCTUnwrap(index["tokenizer_edge_cases"] as? [[String: Any]])
        XCTAssertFalse(cases.isEmpty)
        for c in cases {
            let text = try XCTUnwrap(c["text"] as? String)
            let want = try XCTUnwrap(c["ids"] as? [NSNumber]).map(\.intValue)
            XCTAssertEqual(model.tokenizer.encode(text), want, "edge case \(text.debugDescription)")
            XCTAssertEqual(model.tokenizer.decode(want), text, "edge case \(text.debugDescription) decodes back")
        }
    }

    func testLogitsAndHiddenStatesWithinTheREADMETolerances() throws {
        let model = try Self.model()
        let g = try GGUFFixtures.goldens()
        let h = model.config.text.hiddenSize, v = model.config.text.vocabSize, layers = model.config.text.numLayers
        for p in try Self.prompts() {
            let ids = g.ints("\(p.name).input_ids").map(Int.init)
            let t = ids.count
            let trace = PromptTrace()
            let logits = try model.promptLogits(model.prepare(tokenIds: [ids]), trace: trace)
            // Residual stream per layer: [0] the embedding row, [i] the output of layer i - 1.
            func stream(_ i: Int) -> [Float] { i == 0 ? trace.inputsEmbeds : trace.decoder.stages["layer_\(i - 1)"] ?? [] }
            let hidden = g.floats("\(p.name).hidden_last")
            XCTAssertEqual(hidden.count, (layers + 1) * h)
            for i in 0...layers {
                let want = hidden[(i * h)..<((i + 1) * h)]
                let got = stream(i)[((t - 1) * h)..<(t * h)]
                let bound = 2e-5 * (want.map { abs($0) }.max() ?? 0) + 1e-4
                let diff = Self.maxAbs(got, want)
                XCTAssertLessThanOrEqual(diff, bound, "\(p.name) hidden[\(i)] max-abs \(diff) > \(bound)")
            }
            let finalNorm = try XCTUnwrap(trace.decoder.stages["final_norm"])
            XCTAssertLessThanOrEqual(Self.maxAbs(finalNorm[((t - 1) * h)..<(t * h)], g.floats("\(p.name).final_norm_last")[...]), 1e-4,
                                     "\(p.name) final norm")
            let lastDiff = Self.maxAbs(logits[((t - 1) * v)..<(t * v)], g.floats("\(p.name).logits_last")[...])
            XCTAssertLessThanOrEqual(lastDiff, 2e-3, "\(p.name) logits_last max-abs")

            // Every position, where the goldens have them.
            let all = g.floats("\(p.name).logits_all")
            if !all.isEmpty {
                XCTAssertLessThanOrEqual(Self.maxAbs(logits[...], all[...]), 2e-3, "\(p.name) logits_all max-abs")
                let hiddenAll = g.floats("\(p.name).hidden_all")
                for i in 0...layers {
                    let want = hiddenAll[(i * t * h)..<((i + 1) * t * h)]
                    let bound = 2e-5 * (want.map { abs($0) }.max() ?? 0) + 1e-4
                    let diff = Self.maxAbs(stream(i)[...], want)
                    XCTAssertLessThanOrEqual(diff, bound, "\(p.name) hidden_all[\(i)] max-abs \(diff) > \(bound)")
                }
            }
        }
    }

    func testGreedyTokensAreExactAlsoInOneLeftPaddedBatch() throws {
        let model = try Self.model()
        let g = try GGUFFixtures.goldens()
        let prompts = try Self.prompts()
        let rows = prompts.map { g.ints("\($0.name).input_ids").map(Int.init) }
        let wants = prompts.map { g.ints("\($0.name).gen_ids").map(Int.init) }
        let steps = wants.map(\.count).max() ?? 0
        let params = GenerationParameters(maxNewTokens: steps, stopAtEOS: false)
        var stats = GenerationStats()
        for (p, (ids, want)) in zip(prompts, zip(rows, wants)) {
            let out = try model.generate(model.prepare(tokenIds: [ids]), parameters: GenerationParameters(maxNewTokens: want.count, stopAtEOS: false),
                                         stats: &stats)
            XCTAssertEqual(out[0].tokenIds, want, "\(p.name) greedy ids")
        }
        // All prompts at once: rows of different lengths are left-padded and share every step.
        let batched = try model.generate(model.prepare(tokenIds: rows), parameters: params, stats: &stats)
        for (p, (out, want)) in zip(prompts, zip(batched, wants)) {
            XCTAssertEqual(Array(out.tokenIds.prefix(want.count)), want, "\(p.name) greedy ids in a batch")
        }
    }

    func testChatGenerationStopsAtTheFirstEOSOfTheGoldens() throws {
        let model = try Self.model()
        let g = try GGUFFixtures.goldens()
        let meta = try XCTUnwrap(GGUFFixtures.index()["prompts"] as? [String: [String: Any]])
        for p in try Self.prompts() {
            guard let messages = p.messages else { continue }
            let want = g.ints("\(p.name).gen_ids").map(Int.init)
            let eos = try XCTUnwrap((meta[p.name]?["greedy"] as? [String: Any])?["first_eos_index"] as? Int)
            let out = try model.generate([messages], parameters: GenerationParameters(maxNewTokens: want.count))[0]
            XCTAssertEqual(out.tokenIds, Array(want.prefix(eos + 1)), "\(p.name) stops at EOS")
            XCTAssertEqual(out.finishReason, .stop)
            XCTAssertEqual(out.text, (meta[p.name]?["greedy"] as? [String: Any])?["gen_text_until_eos"] as? String)
        }
    }

    func testQKRowsAreServedInHuggingFaceOrderBitwise() throws {
        let file = try GGUFFixtures.model()
        let g = try GGUFFixtures.goldens()
        let weights = GGUFWeights(file: file, permutedQK: ModelConfig.ggufPermutedQK(file), headDim: 64)
        let q = try weights.linearWeight("model.layers.0.self_attn.q_proj.weight", rows: 576, cols: 576)
        var row = [Float](repeating: 0, count: 576)
        let want = g.floats("hf.model.layers.0.self_attn.q_proj.weight.rows0_63")
        for r in 0..<64 {
            row.withUnsafeMutableBufferPointer { q.row(r, into: $0.baseAddress!) }  // invariant: 576 elements
            XCTAssertEqual(row.map(\.bitPattern), want[(r * 576)..<((r + 1) * 576)].map(\.bitPattern), "q_proj row \(r)")
        }
    }

    func testConfigFromTheGGUFMetadata() throws {
        let model = try Self.model()
        let c = model.config
        XCTAssertEqual(c.family, .llama)
        XCTAssertNil(c.vision)
        XCTAssertFalse(model.acceptsImages)
        XCTAssertEqual(c.text.numLayers, 30)
        XCTAssertEqual(c.text.hiddenSize, 576)
        XCTAssertEqual(c.text.numHeads, 9)
        XCTAssertEqual(c.text.numKVHeads, 3)
        XCTAssertEqual(c.text.headDim, 64)
        XCTAssertEqual(c.text.intermediateSize, 1536)
        XCTAssertEqual(c.text.ropeTheta, 100_000)
        XCTAssertEqual(c.text.rmsNormEps, 1e-5)
        XCTAssertEqual(c.text.vocabSize, 49_152)
        XCTAssertFalse(c.text.attentionBias)
        XCTAssertTrue(c.tieWordEmbeddings)
        XCTAssertEqual(c.text.maxPositions, 8192)
        XCTAssertTrue(model.stopTokenIds.contains(2))
        XCTAssertEqual(model.padTokenId, 2)
        XCTAssertEqual(model.weightFormat, "Q4_1")
    }
}
