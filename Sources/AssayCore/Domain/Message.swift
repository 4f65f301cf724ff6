import Foundation

/// A chat message as a backend receives it.
public struct Message: Codable, Sendable, Hashable {
    public enum Role: String, Codable, Sendable {
        case system, user, assistant
    }

    public var role: Role
    public var content: [ContentPart]

    public init(role: Role, content: [ContentPart]) {
        self.role = role
        self.content = content
    }

    public static func user(_ parts: [ContentPart]) -> Message { Message(role: .user, content: parts) }
    public static func system(_ text: String) -> Message { Message(role: .system, content: [.text(text)]) }

    /// The concatenated text parts, with `<image>` where an image stands.
    public var renderedText: String {
        content.map { part in
            switch part {
            case .text(let text): return text
            case .image: return "<image>"
            }
        }.joined()
    }
}

/// A part of a message: text, or an image referenced by its content hash.
public enum ContentPart: Codable, Sendable, Hashable {
    case text(String)
    case image(ImageRef)

    private enum CodingKeys: String, CodingKey { case type, text, image }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(String.self, forKey: .type) {
        case "image": self = .image(try container.decode(ImageRef.self, forKey: .image))
        default: self = .text(try container.decode(String.self, forKey: .text))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .text(let text):
            try container.encode("text", forKey: .type)
            try container.encode(text, forKey: .text)
        case .image(let ref):
            try container.encode("image", forKey: .type)
            try container.encode(ref, forKey: .image)
        }
    }
}
