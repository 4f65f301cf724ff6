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

    /// The message with its images removed, for a model that cannot see them.
    public var withoutImages: ChatMessage {
        ChatMessage(role: role, parts: parts.filter { if case .image = $0 { return false } else { return true } })
    }
}

/// A checkpoint's chat template, rendered by the runtime's Jinja engine (`JinjaTemplate`): the
/// `chat_template` a Hugging Face folder ships (chat_template.jinja, chat_template.json or
/// tokenizer_config.json) or a GGUF file's `tokenizer.chat_template`, so the prompt text is what
/// transformers' `apply_chat_template` would produce. A checkpoint without one gets ChatML
/// (`fallbackSource`), with Qwen2-VL's default system turn for the vision families.
///
/// Messages reach the template the way transformers passes them: `content` is a string when a
/// message is text only, else a list of `{"type": "text", "text": …}` / `{"type": "image"}` parts.
public struct ChatTemplate: Sendable {
    /// The Jinja source.
    public let source: String
    let compiled: JinjaTemplate
    /// `bos_token` / `eos_token` as templates see them (Llama-style templates print `bos_token`).
    public var bosToken: String?
    public var eosToken: String?
    /// Extra variables for the template: the fallback's image placeholder and default system prompt.
    var variables: [String: String] = [:]

    /// Compiles `source`; a syntax error is thrown here, not at the first request.
    public init(source: String, bosToken: String? = nil, eosToken: String? = nil) throws {
        self.source = source
        self.compiled = try JinjaTemplate(source: source)
        self.bosToken = bosToken
        self.eosToken = eosToken
    }

    /// ChatML as the Qwen2-VL template writes it, for checkpoints that ship no template: a default
    /// system turn when `default_system_prompt` is set and the first message is not a system one,
    /// `<|im_start|>role\n…<|im_end|>\n` per message, `image_placeholder` per image.
    public static let fallbackSource = #"{% for message in messages %}{% if loop.first and message['role'] != 'system' and default_system_prompt %}{{ '<|im_start|>system\n' + default_system_prompt + '<|im_end|>\n' }}{% endif %}{{ '<|im_start|>' + message['role'] + '\n' }}{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ image_placeholder }}{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"#

    /// The fallback template; `imagePlaceholder` is the text one image becomes.
    public static func fallback(defaultSystemPrompt: String?, imagePlaceholder: String = "") -> ChatTemplate {
        var t = try! ChatTemplate(source: fallbackSource)  // invariant: a constant that parses (ChatTemplateTests renders it)
        t.variables["image_placeholder"] = imagePlaceholder
        if let defaultSystemPrompt { t.variables["default_system_prompt"] = defaultSystemPrompt }
        return t
    }

    /// The template of a Hugging Face checkpoint folder, or the fallback when it has none.
    public static func forCheckpoint(directory: String, config: ModelConfig, tokenizer: Tokenizer) throws -> ChatTemplate {
        let special = specialTokens(directory: directory)
        if let source = try readTemplateSource(directory: directory) {
            return try ChatTemplate(source: source, bosToken: special.bos, eosToken: special.eos)
        }
        var placeholder = ""
        if let image = config.imageTokenId, let start = config.visionStartTokenId {
            placeholder = (tokenizer.token(for: start) ?? "<|vision_start|>") + (tokenizer.token(for: image) ?? "<|image_pad|>")
                + (config.visionEndTokenId.flatMap { tokenizer.token(for: $0) } ?? "<|vision_end|>")
        }
        var t = fallback(defaultSystemPrompt: config.family.hasVision ? "You are a helpful assistant." : nil, imagePlaceholder: placeholder)
        t.bosToken = special.bos
        t.eosToken = special.eos
        return t
    }

    /// The template in a GGUF file's metadata, or the fallback (without a default system turn).
    public static func forGGUF(_ data: GGUFTokenizerData) throws -> ChatTemplate {
        let bos = data.bosTokenID.map { data.tokens[$0] }
        let eos = data.eosTokenID.map { data.tokens[$0] }
        guard let source = data.chatTemplate else {
            var t = fallback(defaultSystemPrompt: nil)
            t.bosToken = bos
            t.eosToken = eos
            return t
        }
        return try ChatTemplate(source: source, bosToken: bos, eosToken: eos)
    }

    /// The template source a folder ships, if any: chat_template.jinja, then chat_template.json,
    /// then tokenizer_config.json (a string, or a list of named templates where "default" wins).
    static func readTemplateSource(directory: String) throws -> String? {
        let jinja = (directory as NSString).appendingPathComponent("chat_template.jinja")
        if let d = FileManager.default.contents(atPath: jinja) { return String(decoding: d, as: UTF8.self) }
        for name in ["chat_template.json", "tokenizer_config.json"] {
            let p = (directory as NSString).appendingPathComponent(name)
            guard let d = FileManager.default.contents(atPath: p) else { continue }
            guard let o = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any] else {
                throw ConfigError.unreadable(file: p, reason: "not a JSON object")
            }
            if let t = o["chat_template"] as? String { return t }
            if let list = o["chat_template"] as? [[String: Any]] {
                let named = list.first { $0["name"] as? String == "default" } ?? list.first
                if let t = named?["template"] as? String { return t }
            }
        }
        return nil
    }

    /// `bos_token` / `eos_token` of tokenizer_config.json (a string or an added-token object).
    static func specialTokens(directory: String) -> (bos: String?, eos: String?) {
        let p = (directory as NSString).appendingPathComponent("tokenizer_config.json")
        guard let d = FileManager.default.contents(atPath: p), let o = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any] else {
            return (nil, nil)
        }
        func token(_ key: String) -> String? {
            if let s = o[key] as? String { return s }
            return (o[key] as? [String: Any])?["content"] as? String
        }
        return (token("bos_token"), token("eos_token"))
    }

    /// The prompt text for `messages`, ending with the assistant's turn opener when
    /// `addGenerationPrompt`.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) throws -> String {
        let list: [JinjaValue] = messages.map { m in
            let content: JinjaValue
            if m.parts.allSatisfy({ if case .text = $0 { return true } else { return false } }) {
                content = .string(m.parts.map { if case .text(let t) = $0 { return t } else { return "" } }.joined())
            } else {
                content = .array(m.parts.map { part in
                    switch part {
                    case .text(let t): return .dict([("type", .string("text")), ("text", .string(t))])
                    case .image: return .dict([("type", .string("image"))])
                    }
                })
            }
            return .dict([("role", .string(m.role)), ("content", content)])
        }
        var context: [String: JinjaValue] = [
            "messages": .array(list),
            "add_generation_prompt": .bool(addGenerationPrompt),
        ]
        if let bosToken { context["bos_token"] = .string(bosToken) }
        if let eosToken { context["eos_token"] = .string(eosToken) }
        for (k, v) in variables { context[k] = .string(v) }
        return try compiled.render(context)
    }
}
