import Foundation
import XCTest
@testable import VLMRuntime

final class TokenizerTests: XCTestCase {
    func testQwen2TokenizerMatchesEveryGolden() throws {
        let tokPath = try Fixtures.require("tokenizers/qwen2/tokenizer.json").path
        let g = try Fixtures.json("tokenizers/qwen2/goldens.json")
        let tok = try Tokenizer(path: tokPath)
        let cases = g["cases"] as? [[String: Any]] ?? []
        XCTAssertFalse(cases.isEmpty)
        var failures = 0
        for c in cases {
            let text = c["text"] as! String
            let want = (c["ids"] as! [NSNumber]).map(\.intValue)
            let got = tok.encode(text)
            if got != want {
                failures += 1
                if failures < 8 { XCTFail("encode \(text.debugDescription): got \(got), want \(want)") }
                continue
            }
            XCTAssertEqual(tok.decode(want), c["decode"] as? String, "decode \(text.debugDescription)")
            XCTAssertEqual(tok.decode(want, skipSpecialTokens: true), c["decode_skip_special"] as? String, "decode_skip_special \(text.debugDescription)")
            if c["roundtrip_equals_nfc_text"] as? Bool == true {
                XCTAssertEqual(tok.decode(want), text.precomposedStringWithCanonicalMapping)
            }
            if let each = c["decode_each_id"] as? [String] {
                XCTAssertEqual(want.map { tok.decode([$0]) }, each, "decode_each_id \(text.debugDescription)")
            }
            if let pieces = c["regex_pieces"] as? [String] {
                let scalars = Array(text.precomposedStringWithCanonicalMapping.unicodeScalars)
                let got = Qwen2PreTokenizer.split(scalars).map { r in
                    var v = String.UnicodeScalarView()
                    v.append(contentsOf: scalars[r])
                    return String(v)
                }
                XCTAssertEqual(got, pieces, "regex pieces \(text.debugDescription)")
            }
        }
        XCTAssertEqual(failures, 0, "encode mismatches")
    }

    func testTinyTokenizerMatchesGoldens() throws {
        let g = try Fixtures.json("goldens/tokenizer_tiny/goldens.json")
        let tok = try Tokenizer(path: try Fixtures.require("goldens/qwen2_5_vl_tiny/checkpoint/tokenizer.json").path)
        for c in g["cases"] as? [[String: Any]] ?? [] {
            let text = c["text"] as! String
            let want = (c["ids"] as! [NSNumber]).map(\.intValue)
            XCTAssertEqual(tok.encode(text), want, "encode \(text.debugDescription)")
            if let d = c["decode"] as? String { XCTAssertEqual(tok.decode(want), d) }
            if let d = c["decode_skip_special"] as? String { XCTAssertEqual(tok.decode(want, skipSpecialTokens: true), d) }
        }
        let special = g["special_ids"] as! [String: NSNumber]
        XCTAssertEqual(tok.tokenId("<|image_pad|>"), special["image_pad"]?.intValue)
    }

    func testChatTemplateRendersGoldenPromptText() throws {
        let dir = try Fixtures.require("goldens/qwen2_5_vl_tiny_bf16_v5/checkpoint").path
        let idx = try Fixtures.json("goldens/qwen2_5_vl_tiny/index.json")
        let cfg = try ModelConfig.load(path: dir + "/config.json")
        let tok = try Tokenizer(path: dir + "/tokenizer.json")
        let template = try ChatTemplate.forCheckpoint(directory: dir, config: cfg, tokenizer: tok)
        let dummy = PixelImage(width: 1, height: 1, channels: 3, pixels: [0, 0, 0])
        let prompts = idx["prompts"] as! [String: [String: Any]]
        for (name, p) in prompts {
            let convs = p["messages"] as! [[[String: Any]]]
            let rendered = p["rendered_text"] as! [String]
            for (conv, want) in zip(convs, rendered) {
                let messages = conv.map { m in
                    ChatMessage(role: m["role"] as! String, parts: (m["content"] as! [[String: Any]]).map { part in
                        part["type"] as? String == "image" ? .image(dummy) : .text(part["text"] as! String)
                    })
                }
                XCTAssertEqual(try template.render(messages), want, name)
            }
        }
        var custom = [ChatMessage.system("Be terse."), .user([.text("hi")])]
        XCTAssertEqual(try template.render(custom), "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
        custom.removeFirst()
        XCTAssertTrue(try template.render(custom).hasPrefix("<|im_start|>system\nYou are a helpful assistant.<|im_end|>"))
    }
}
