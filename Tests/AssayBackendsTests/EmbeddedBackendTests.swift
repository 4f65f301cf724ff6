import AssayBackends
import AssayCore
import AssayTestSupport
import VLMRuntime
import Foundation
import XCTest

/// The embedded backend answers AssayCore requests (messages with image parts whose bytes travel
/// by content hash) exactly as transformers does on the tiny golden checkpoints.
final class EmbeddedBackendTests: XCTestCase {
    func testGreedyAnswersMatchTheTransformersGoldens() async throws {
        let goldens = try Fixtures.require("goldens")
        for model in ["qwen2_5_vl_tiny", "qwen2_vl_tiny"] {
            let folder = goldens.appendingPathComponent(model)
            let index = try XCTUnwrap(try Fixtures.readJSON(folder.appendingPathComponent("index.json")) as? [String: Any])
            let prompt = try XCTUnwrap((index["prompts"] as? [String: Any])?["single"] as? [String: Any])
            let conversation = try XCTUnwrap((prompt["messages"] as? [[[String: Any]]])?.first)
            var messages: [Message] = []
            var images: [String: Data] = [:]
            for turn in conversation {
                var parts: [ContentPart] = []
                for part in turn["content"] as? [[String: String]] ?? [] {
                    if part["type"] == "image", let name = part["image"] {
                        let data = try Data(contentsOf: goldens.appendingPathComponent("processor").appendingPathComponent(name))
                        let ref = ImageRef(sha256: SHA256.hex(data), byteCount: data.count, origin: name)
                        images[ref.sha256] = data
                        parts.append(.image(ref))
                    } else if let text = part["text"] {
                        parts.append(.text(text))
                    }
                }
                messages.append(Message(role: Message.Role(rawValue: turn["role"] as? String ?? "user") ?? .user, content: parts))
            }
            let newTokens = try XCTUnwrap(prompt["greedy_new_tokens"] as? Int)
            let backend = try EmbeddedBackend(modelPath: folder.appendingPathComponent("checkpoint").path)
            XCTAssertEqual(backend.identity.kind, "local")
            XCTAssertNotNil(backend.identity.checkpoint)
            let request = GenerationRequest(messages: messages, images: images,
                                            params: GenerationParams(temperature: 0, maxTokens: newTokens))
            let response = try await backend.generate(request)
            XCTAssertEqual(response.status, .truncated, "\(model): stopped by the token limit")
            XCTAssertEqual(response.completionTokens, newTokens)
            XCTAssertEqual(response.promptTokens, prompt["seq_len"] as? Int)
            XCTAssertEqual(response.text, (prompt["greedy_text"] as? [String])?.first, model)

            // An image whose bytes are missing, or corrupt, is an error status, not text.
            var broken = request
            broken.images = [:]
            let missing = try await backend.generate(broken)
            XCTAssertEqual(missing.status, .error)
            XCTAssertEqual(missing.text, "")
            broken.images = Dictionary(uniqueKeysWithValues: images.keys.map { ($0, Data("not an image".utf8)) })
            let corrupt = try await backend.generate(broken)
            XCTAssertEqual(corrupt.status, .error)
            XCTAssertEqual(corrupt.errorKind, "bad_input")
        }
    }
}

/// Settings that change the numbers (bf16 prefill matmuls, quantised weights) give a different
/// checkpoint identity, so a resumed or cached sweep never mixes their answers with exact ones.
final class EmbeddedBackendIdentityTests: XCTestCase {
    func testNumberChangingSettingsAreInTheIdentity() throws {
        let folder = try Fixtures.require("goldens").appendingPathComponent("qwen2_5_vl_tiny_bf16_v5/checkpoint")
        let exact = try EmbeddedBackend(modelPath: folder.path)
        let again = try EmbeddedBackend(modelPath: folder.path, options: LoadOptions(precision: .float32))
        XCTAssertEqual(exact.identity, again.identity)
        XCTAssertEqual(exact.runNotes["prefill_matmuls"], "f32")
        let quantised = try EmbeddedBackend(modelPath: folder.path, options: LoadOptions(quantization: .q8_0))
        XCTAssertNotEqual(exact.identity.checkpoint, quantised.identity.checkpoint)
        let bf16 = try EmbeddedBackend(modelPath: folder.path, options: LoadOptions(precision: .bfloat16))
        if VLMModel.supportsBF16Matmul {
            XCTAssertNotEqual(exact.identity.checkpoint, bf16.identity.checkpoint)
            XCTAssertEqual(bf16.runNotes["prefill_matmuls"], "bf16")
        } else {
            XCTAssertEqual(exact.identity.checkpoint, bf16.identity.checkpoint, "bf16 falls back to exact f32 on this CPU")
        }
    }
}

/// The embedded default (SmolLM2-135M GGUF) behind the backend: golden greedy answer, images
/// dropped visibly (model name, run notes) and never turned into errors.
final class EmbeddedGGUFBackendTests: XCTestCase {
    func testSmolLM2AnswersTheGoldenChatPromptAndDropsImagesVisibly() async throws {
        let path = try Fixtures.smolLM2Path()
        let folder = try Fixtures.require("goldens/smollm2_135m_q4_1")
        let index = try XCTUnwrap(try Fixtures.readJSON(folder.appendingPathComponent("index.json")) as? [String: Any])
        let chat = try XCTUnwrap((index["prompts"] as? [String: [String: Any]])?["chat"])
        let greedy = try XCTUnwrap(chat["greedy"] as? [String: Any])
        let prompts = try XCTUnwrap(try Fixtures.readJSON(folder.appendingPathComponent("prompts.json")) as? [String: Any])
        let entry = try XCTUnwrap((prompts["prompts"] as? [[String: Any]])?.first { $0["name"] as? String == "chat" })
        let user = try XCTUnwrap((entry["messages"] as? [[String: String]])?.first?["content"])

        let backend = try EmbeddedBackend(modelPath: path)
        XCTAssertEqual(backend.identity.model, "SmolLM2-135M-Instruct.Q4_1" + EmbeddedBackend.textOnlyMarker)
        XCTAssertNotNil(backend.identity.checkpoint)
        XCTAssertEqual(backend.runNotes["images"], "dropped: the model is text-only")
        XCTAssertEqual(backend.runNotes["weights"], "Q4_1")

        let request = GenerationRequest(messages: [Message(role: .user, content: [.text(user)])], images: [:],
                                        params: GenerationParams(temperature: 0, maxTokens: 64))
        let response = try await backend.generate(request)
        XCTAssertEqual(response.status, .ok)
        XCTAssertEqual(response.text, greedy["gen_text_until_eos"] as? String)
        XCTAssertEqual(response.promptTokens, chat["n_tokens"] as? Int)
        XCTAssertEqual(response.completionTokens, (greedy["first_eos_index"] as? Int).map { $0 + 1 })

        // With a picture in front of the question the text-only model answers the question alone.
        let png = Data(base64Encoded: "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==")!  // invariant: constant 1×1 PNG
        let ref = ImageRef(sha256: SHA256.hex(png), byteCount: png.count, origin: "dot.png")
        let withImage = GenerationRequest(messages: [Message(role: .user, content: [.image(ref), .text(user)])], images: [ref.sha256: png],
                                          params: GenerationParams(temperature: 0, maxTokens: 64))
        let imageResponse = try await backend.generate(withImage)
        XCTAssertEqual(imageResponse.status, .ok)
        XCTAssertEqual(imageResponse.text, response.text)
        XCTAssertEqual(imageResponse.promptTokens, response.promptTokens)
    }
}
