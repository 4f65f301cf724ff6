import Foundation

/// One turn of a conversation: text and images in the order the user gave them.
public struct ChatMessage: Sendable {
    /// A piece of a message.
    public enum Part: Sendable {
        case text(String)
        /// A decoded image (any channel count; converted to RGB by the processor).
        case image(PixelImage)
    }

    public var role: String
    public var parts: [Part]

    public init(role: String, parts: [Part]) {
        self.role = role
        self.parts = parts
    }

    public static func system(_ text: String) -> ChatMessage { ChatMessage(role: "system", parts: [.text(text)]) }
    public static func user(_ parts: [Part]) -> ChatMessage { ChatMessage(role: "user", parts: parts) }

    public var images: [PixelImage] {
        parts.compactMap { if case .image(let i) = $0 { return i } else { return nil } }
    }
}

/// The Qwen2-VL / Qwen2.5-VL Instruct chat format, rendered natively rather than through a
/// Jinja engine: a default system turn when the first message is not a system message, one
/// `<|im_start|>role\n … <|im_end|>\n` block per message, each image as
/// `<|vision_start|><|image_pad|><|vision_end|>`, and `<|im_start|>assistant\n` to prompt the
/// answer. The vision marker strings are looked up from the token ids of the config.
public struct ChatTemplate: Sendable {
    public var defaultSystemPrompt: String?
    public var imagePlaceholder: String
    public var turnStart = "<|im_start|>"
    public var turnEnd = "<|im_end|>"

    public init(defaultSystemPrompt: String? = "You are a helpful assistant.", imagePlaceholder: String) {
        self.defaultSystemPrompt = defaultSystemPrompt
        self.imagePlaceholder = imagePlaceholder
    }

    /// The template for a checkpoint: markers from the tokenizer, the default system prompt
    /// read from the shipped Jinja template when it has one.
    public static func forCheckpoint(directory: String, config: QwenVLConfig, tokenizer: Tokenizer) -> ChatTemplate {
        let start = tokenizer.token(for: config.visionStartTokenId) ?? "<|vision_start|>"
        let pad = tokenizer.token(for: config.imageTokenId) ?? "<|image_pad|>"
        let end = config.visionEndTokenId.flatMap { tokenizer.token(for: $0) } ?? "<|vision_end|>"
        var template = ChatTemplate(imagePlaceholder: start + pad + end)
        if let jinja = readTemplateSource(directory: directory) {
            let marker = "<|im_start|>system\n"
            if let r = jinja.range(of: marker), let e = jinja.range(of: "<|im_end|>", range: r.upperBound..<jinja.endIndex) {
                let text = String(jinja[r.upperBound..<e.lowerBound])
                if !text.contains("{") { template.defaultSystemPrompt = text }
            } else if !jinja.contains("<|im_start|>") {
                template.defaultSystemPrompt = nil
            }
        }
        return template
    }

    static func readTemplateSource(directory: String) -> String? {
        let jinja = (directory as NSString).appendingPathComponent("chat_template.jinja")
        if let d = FileManager.default.contents(atPath: jinja) { return String(decoding: d, as: UTF8.self) }
        for name in ["chat_template.json", "tokenizer_config.json"] {
            let p = (directory as NSString).appendingPathComponent(name)
            if let d = FileManager.default.contents(atPath: p),
               let o = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any],
               let t = o["chat_template"] as? String { return t }
        }
        return nil
    }

    /// The prompt text with one placeholder per image.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) -> String {
        var out = ""
        if let sys = defaultSystemPrompt, messages.first?.role != "system" {
            out += "\(turnStart)system\n\(sys)\(turnEnd)\n"
        }
        for m in messages {
            out += "\(turnStart)\(m.role)\n"
            for part in m.parts {
                switch part {
                case .text(let t): out += t
                case .image: out += imagePlaceholder
                }
            }
            out += "\(turnEnd)\n"
        }
        if addGenerationPrompt { out += "\(turnStart)assistant\n" }
        return out
    }
}
