import XCTest
@testable import VLMRuntime

/// llama.cpp's Q/K row permutation and its inverse.
final class GGUFRotaryOrderTests: XCTestCase {
    func testTheMappingIsTheREADMEFormulaAndItsInverse() throws {
        let order = try XCTUnwrap(LlamaRotaryOrder(headDim: 64))
        for head in 0..<9 {
            for i in 0..<32 {
                for j in 0..<2 {
                    let hf = head * 64 + j * 32 + i, gguf = head * 64 + 2 * i + j
                    XCTAssertEqual(order.huggingFaceRow(forGGUFRow: gguf), hf)
                    XCTAssertEqual(order.ggufRow(forHuggingFaceRow: hf), gguf)
                }
            }
        }
        let perm = order.ggufRowsInHuggingFaceOrder(rows: 576)
        XCTAssertEqual(Set(perm), Set(0..<576))
        XCTAssertEqual(order.ggufRowsInHuggingFaceOrder(rows: 100), [])
        XCTAssertNil(LlamaRotaryOrder(headDim: 63))
        XCTAssertNil(LlamaRotaryOrder(headDim: 0))
    }

    func testUnpermutedGGUFRowsEqualTransformersQProjBitwise() throws {
        let g = try GGUFFixtures.goldens()
        let gguf = g.floats("dequant.blk.0.attn_q.weight.rows0_63")
        let hf = g.floats("hf.model.layers.0.self_attn.q_proj.weight.rows0_63")
        let order = try XCTUnwrap(LlamaRotaryOrder(headDim: 64))
        for (h, src) in order.ggufRowsInHuggingFaceOrder(rows: 64).enumerated() {
            let a = gguf[(src * 576)..<(src * 576 + 576)].map(\.bitPattern)
            let b = hf[(h * 576)..<(h * 576 + 576)].map(\.bitPattern)
            XCTAssertEqual(a, b, "HF row \(h)")
        }
    }
}
