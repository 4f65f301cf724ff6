import AssayCore
import Foundation

/// The JSON bodies of the OpenAI chat-completions protocol as vLLM, SGLang and OpenAI speak it,
/// shared by the client (`OpenAICompatibleBackend`) and the server (`AssayServer`), so both ends
/// of the tests agree on one definition.
public enum OpenAIWire {
    /// `POST /v1/chat/completions` request body.
    public struct ChatRequest: Codable, Sendable, Hashable {
        public var model: String
        public var messages: [ChatMessage]
        public var temperature: Double?
        public var topP: Double?
        public var maxTokens: Int?
        public var seed: UInt64?
        public var stream: Bool?

        enum CodingKeys: String, CodingKey {
            case model, messages, temperature, seed, stream
            case topP = "top_p"
            case maxTokens = "max_tokens"
        }

        public init(model: String, messages: [ChatMessage], temperature: Double? = nil, topP: Double? = nil,
                    maxTokens: Int? = nil, seed: UInt64? = nil) {
            self.model = model
            self.messages = messages
            self.temperature = temperature
            self.topP = topP
            self.maxTokens = maxTokens
            self.seed = seed
        }
    }

    /// A chat message; `content` is a plain string or a list of parts.
    public struct ChatMessage: Codable, Sendable, Hashable {
        public var role: String
        public var content: [ContentPart]

        public init(role: String, content: [ContentPart]) {
            self.role = role
            self.content = content
        }

        enum CodingKeys: String, CodingKey { case role, content }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            role = try c.decode(String.self, forKey: .role)
            if let text = try? c.decode(String.self, forKey: .content) {
                content = [.text(text)]
            } else if c.contains(.content), try c.decodeNil(forKey: .content) {
                content = []
            } else {
                content = try c.decodeIfPresent([ContentPart].self, forKey: .content) ?? []
            }
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(role, forKey: .role)
            // A text-only message goes out as a plain string: every server accepts that form.
            if content.count == 1, case .text(let text) = content[0] {
                try c.encode(text, forKey: .content)
            } else {
                try c.encode(content, forKey: .content)
            }
        }

        /// The text parts joined.
        public var text: String {
            content.compactMap { if case .text(let t) = $0 { return t } else { return nil } }.joined()
        }
    }

    /// `{"type": "text", "text": …}` or `{"type": "image_url", "image_url": {"url": …}}`.
    public enum ContentPart: Codable, Sendable, Hashable {
        case text(String)
        case imageURL(String)

        enum CodingKeys: String, CodingKey { case type, text, imageURL = "image_url" }
        struct ImageURL: Codable { var url: String }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            switch try c.decode(String.self, forKey: .type) {
            case "image_url": self = .imageURL(try c.decode(ImageURL.self, forKey: .imageURL).url)
            default: self = .text(try c.decodeIfPresent(String.self, forKey: .text) ?? "")
            }
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case .text(let text):
                try c.encode("text", forKey: .type)
                try c.encode(text, forKey: .text)
            case .imageURL(let url):
                try c.encode("image_url", forKey: .type)
                try c.encode(ImageURL(url: url), forKey: .imageURL)
            }
        }
    }

    /// The response body of a non-streaming chat completion.
    public struct ChatResponse: Codable, Sendable, Hashable {
        public var id: String?
        public var object: String?
        public var created: Int?
        public var model: String?
        public var choices: [Choice]
        public var usage: Usage?

        public init(id: String? = nil, model: String? = nil, choices: [Choice], usage: Usage? = nil, created: Int? = nil) {
            self.id = id
            self.object = "chat.completion"
            self.created = created
            self.model = model
            self.choices = choices
            self.usage = usage
        }
    }

    /// One choice of a completion.
    public struct Choice: Codable, Sendable, Hashable {
        public var index: Int?
        public var message: ResponseMessage?
        public var finishReason: String?

        enum CodingKeys: String, CodingKey {
            case index, message
            case finishReason = "finish_reason"
        }

        public init(index: Int = 0, message: ResponseMessage, finishReason: String?) {
            self.index = index
            self.message = message
            self.finishReason = finishReason
        }
    }

    /// The assistant message of a choice; `content` may be null (a refusal or tool call).
    public struct ResponseMessage: Codable, Sendable, Hashable {
        public var role: String?
        public var content: String?
        /// What reasoning servers (vLLM with a reasoning parser, DeepSeek) return beside the answer.
        public var reasoningContent: String?

        enum CodingKeys: String, CodingKey {
            case role, content
            case reasoningContent = "reasoning_content"
        }

        public init(role: String = "assistant", content: String?, reasoningContent: String? = nil) {
            self.role = role
            self.content = content
            self.reasoningContent = reasoningContent
        }
    }

    /// Token counts as the server reports them.
    public struct Usage: Codable, Sendable, Hashable {
        public var promptTokens: Int?
        public var completionTokens: Int?
        public var totalTokens: Int?

        enum CodingKeys: String, CodingKey {
            case promptTokens = "prompt_tokens"
            case completionTokens = "completion_tokens"
            case totalTokens = "total_tokens"
        }

        public init(promptTokens: Int?, completionTokens: Int?) {
            self.promptTokens = promptTokens
            self.completionTokens = completionTokens
            self.totalTokens = promptTokens.flatMap { p in completionTokens.map { p + $0 } }
        }
    }

    /// `GET /v1/models` body.
    public struct ModelList: Codable, Sendable, Hashable {
        /// One served model.
        public struct Entry: Codable, Sendable, Hashable {
            public var id: String
            public var object: String?
            public var ownedBy: String?
            enum CodingKeys: String, CodingKey { case id, object, ownedBy = "owned_by" }
            public init(id: String) {
                self.id = id
                self.object = "model"
                self.ownedBy = "assay"
            }
        }
        public var object: String?
        public var data: [Entry]
        public init(ids: [String]) {
            object = "list"
            data = ids.map(Entry.init(id:))
        }
    }

    /// `{"error": {"message": …, "type": …}}`, the body of a failed request.
    public struct ErrorBody: Codable, Sendable, Hashable {
        /// The message and type of the error.
        public struct Detail: Codable, Sendable, Hashable {
            public var message: String
            public var type: String?
        }
        public var error: Detail
        public init(message: String, type: String) { error = Detail(message: message, type: type) }
    }
}

// MARK: - Messages ⇄ wire

/// How images travel to an HTTP server. The dataset's encoded bytes are sent unchanged as a
/// base64 `data:` URL whose MIME type is read from the bytes' signature; the server's own image
/// processor does any resizing. Changing this changes what the model sees, so the policy's name
/// is part of every cache key of an HTTP backend.
public enum ImageEncodingPolicy {
    public static let name = "data-url-original-bytes-v1"

    /// The MIME type of encoded image bytes, from their signature.
    public static func mimeType(of data: Data) -> String {
        let b = [UInt8](data.prefix(12))
        if b.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return "image/png" }
        if b.starts(with: [0xFF, 0xD8, 0xFF]) { return "image/jpeg" }
        if b.starts(with: Array("GIF8".utf8)) { return "image/gif" }
        if b.count >= 12, b.starts(with: Array("RIFF".utf8)), Array(b[8..<12]) == Array("WEBP".utf8) { return "image/webp" }
        if b.starts(with: [0x42, 0x4D]) { return "image/bmp" }
        return "application/octet-stream"
    }

    public static func dataURL(_ data: Data) -> String {
        "data:\(mimeType(of: data));base64,\(data.base64EncodedString())"
    }

    /// The bytes of a `data:…;base64,…` URL, or `nil` for any other URL.
    public static func decodeDataURL(_ url: String) -> Data? {
        guard url.hasPrefix("data:"), let comma = url.firstIndex(of: ",") else { return nil }
        let header = url[url.startIndex..<comma]
        guard header.hasSuffix(";base64") else { return nil }
        return Data(base64Encoded: String(url[url.index(after: comma)...]))
    }
}

/// A request that cannot be put on the wire (an image whose bytes were not supplied).
public struct RequestEncodingError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

extension OpenAIWire {
    /// Converts rendered messages into wire messages, embedding each image's bytes.
    public static func messages(_ messages: [Message], images: [String: Data]) throws -> [ChatMessage] {
        try messages.map { message in
            ChatMessage(role: message.role.rawValue, content: try message.content.map { part in
                switch part {
                case .text(let text): return .text(text)
                case .image(let ref):
                    guard let data = images[ref.sha256] else {
                        throw RequestEncodingError(message: "image \(ref.sha256.prefix(12))… (\(ref.origin)) has no bytes in the request")
                    }
                    return .imageURL(ImageEncodingPolicy.dataURL(data))
                }
            })
        }
    }

    /// Converts wire messages back into messages with hashed images (the server side).
    public static func domainMessages(_ messages: [ChatMessage]) throws -> (messages: [Message], images: [String: Data]) {
        var images: [String: Data] = [:]
        let converted = try messages.map { message -> Message in
            guard let role = Message.Role(rawValue: message.role) else {
                throw RequestEncodingError(message: "unknown role '\(message.role)'")
            }
            return Message(role: role, content: try message.content.map { part in
                switch part {
                case .text(let text): return .text(text)
                case .imageURL(let url):
                    guard let data = ImageEncodingPolicy.decodeDataURL(url) else {
                        throw RequestEncodingError(message: "only base64 data: image URLs are accepted")
                    }
                    let sha = SHA256.hex(data)
                    images[sha] = data
                    return .image(ImageRef(sha256: sha, byteCount: data.count, origin: "request"))
                }
            })
        }
        return (converted, images)
    }
}
