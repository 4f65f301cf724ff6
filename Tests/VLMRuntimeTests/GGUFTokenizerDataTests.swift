import Foundation
import XCTest
@testable import VLMRuntime

/// Tokenizer inputs extracted from GGUF metadata.
final class GGUFTokenizerDataTests: XCTestCase {
    func testSmolLM2TokenizerDataMatchesTheGoldens() throws {
        let data = try GGUFTokenizerData(metadata: GGUFFixtures.model().metadata)
        XCTAssertEqual(data.model, "gpt2")
        XCTAssertTrue(data.isByteLevelBPE)
        XCTAssertEqual(data.preTokenizer, "smollm")
        XCTAssertEqual(data.tokens.count, 49_152)
        XCTAssertEqual(Array(data.tokens.prefix(3)), ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
        XCTAssertEqual(data.tokens.last, "ectable")
        XCTAssertEqual(data.controlTokenIDs, Array(0...16))
        XCTAssertEqual(data.tokenTypes.filter { $0 == .normal }.count, 49_135)
        XCTAssertNil(data.scores)
        XCTAssertEqual(data.merges.count, 48_900)
        XCTAssertEqual(Array(data.merges.prefix(3)), ["Ġ t", "Ġ a", "i n"])
        let pairs = try data.mergePairs()
        XCTAssertEqual(pairs.last?.left, "ect")
        XCTAssertEqual(pairs.last?.right, "able")
        XCTAssertEqual(data.bosTokenID, 1)
        XCTAssertEqual(data.eosTokenID, 2)
        XCTAssertEqual(data.unknownTokenID, 0)
        XCTAssertEqual(data.paddingTokenID, 2)
        XCTAssertNil(data.eotTokenID)
        XCTAssertEqual(data.addBOS, false)
        XCTAssertNil(data.addEOS)
        XCTAssertEqual(data.addSpacePrefix, false)
        XCTAssertTrue(data.warnings.isEmpty)
        let index = try GGUFFixtures.index()
        let meta = (index["gguf"] as? [String: Any])?["metadata"] as? [String: [String: Any]]
        XCTAssertEqual(data.chatTemplate, meta?["tokenizer.chat_template"]?["value"] as? String)
        XCTAssertTrue(data.chatTemplate?.hasPrefix("{% for message in messages %}") ?? false)
    }

    private func metadata(_ extra: [(String, GGUFValue)]) -> GGUFMetadata {
        GGUFMetadata(file: "tok.gguf", entries: [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.tokens", .array(.string(["<s>", "a", "b", "ab", " "]))),
            ("tokenizer.ggml.merges", .array(.string(["a b", "  a"]))),
        ] + extra)
    }

    func testDefaultsAndOptionalKeys() throws {
        let d = try GGUFTokenizerData(metadata: metadata([
            ("tokenizer.ggml.eos_token_id", .uint32(0)),
            ("tokenizer.ggml.padding_token_id", .int32(-1)),
            ("tokenizer.ggml.bos_token_id", .uint64(99)),
            ("tokenizer.ggml.scores", .array(.float32([0, -1, -2, -3, -4]))),
            ("tokenizer.chat_template.tool_use", .string("{{ tools }}")),
        ]))
        XCTAssertEqual(d.tokenTypes, [GGUFTokenType](repeating: .normal, count: 5))
        XCTAssertEqual(d.eosTokenID, 0)
        XCTAssertNil(d.paddingTokenID)
        XCTAssertNil(d.bosTokenID)
        XCTAssertEqual(d.warnings.count, 2, "\(d.warnings)")
        XCTAssertEqual(d.scores, [0, -1, -2, -3, -4])
        XCTAssertNil(d.chatTemplate)
        XCTAssertEqual(d.namedChatTemplates, ["tool_use": "{{ tools }}"])
        // A merge whose left side is a space splits after it, as llama.cpp's find(' ', 1) does.
        let pairs = try d.mergePairs()
        XCTAssertEqual(pairs.map { [$0.left, $0.right] }, [["a", "b"], [" ", "a"]])
    }

    func testInconsistentTokenizerMetadataIsATypedError() throws {
        XCTAssertThrowsError(try GGUFTokenizerData(metadata: metadata([
            ("tokenizer.ggml.token_type", .array(.int32([1, 1]))),
        ]))) { error in
            guard case GGUFError.invalidValue(file: "tok.gguf", key: "tokenizer.ggml.token_type", _)? = error as? GGUFError else {
                return XCTFail("\(error)")
            }
        }
        XCTAssertThrowsError(try GGUFTokenizerData(metadata: GGUFMetadata(file: "tok.gguf", entries: [
            ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.tokens", .array(.string(["a"]))),
        ]))) { error in
            XCTAssertEqual(error as? GGUFError, .missingKey(file: "tok.gguf", key: "tokenizer.ggml.merges"))
        }
        XCTAssertThrowsError(try GGUFTokenizerData(metadata: GGUFMetadata(file: "tok.gguf", entries: [
            ("tokenizer.ggml.model", .uint32(2)),
        ]))) { error in
            guard case GGUFError.typeMismatch(_, "tokenizer.ggml.model", "STRING", "UINT32")? = error as? GGUFError else {
                return XCTFail("\(error)")
            }
        }
        let noSpace = try GGUFTokenizerData(metadata: GGUFMetadata(file: "tok.gguf", entries: [
            ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.tokens", .array(.string(["a"]))),
            ("tokenizer.ggml.merges", .array(.string(["ab"]))),
        ]))
        XCTAssertThrowsError(try noSpace.mergePairs())
    }
}
