import AssayBackends
import AssayCore
import Foundation
import VLMRuntime

/// Why a chat-completions request was refused before it reached the model. Each case names the
/// field or the part of the body that was wrong, and becomes a 400 (or 413) with OpenAI's error
/// JSON.
public enum ServeRequestError: Error, Sendable, Hashable, CustomStringConvertible {
    case notJSON(String)
    case nestedTooDeep(limit: Int)
    case notAnObject
    case missing(field: String)
    case wrongType(field: String, expected: String)
    case outOfRange(field: String, reason: String)
    case unsupported(field: String, reason: String)
    case badImage(field: String, reason: String)
    case unknownModel(String, served: [String])

    public var description: String {
        switch self {
        case .notJSON(let why): return "the request body is not valid JSON: \(why)"
        case .nestedTooDeep(let limit): return "the request body nests JSON deeper than \(limit) levels"
        case .notAnObject: return "the request body must be a JSON object"
        case .missing(let field): return "'\(field)' is required"
        case .wrongType(let field, let expected): return "'\(field)' must be \(expected)"
        case .outOfRange(let field, let reason): return "'\(field)' \(reason)"
        case .unsupported(let field, let reason): return "'\(field)' is not supported: \(reason)"
        case .badImage(let field, let reason): return "\(field): \(reason)"
        case .unknownModel(let name, let served): return "model '\(name)' is not served here (serving: \(served.joined(separator: ", ")))"
        }
    }

    /// The OpenAI error `param` this error is about.
    public var param: String? {
        switch self {
        case .missing(let f), .wrongType(let f, _), .outOfRange(let f, _), .unsupported(let f, _), .badImage(let f, _): return f
        case .unknownModel: return "model"
        default: return nil
        }
    }
}

/// A validated `POST /v1/chat/completions` body, as `assay serve` understands it.
public struct ServeChatRequest: Sendable {
    public var model: String
    public var conversation: [ChatMessage]
    public var temperature: Double
    public var topP: Double
    public var seed: UInt64?
    public var maxTokens: Int?
    public var samples: Int
    public var stop: [String]
    /// nil: no log-probabilities; otherwise `top_logprobs` (0 when only the chosen token's).
    public var topLogprobs: Int?
    public var stream: Bool
    public var includeUsage: Bool

    /// Limits a request is checked against.
    public struct Limits: Sendable, Hashable {
        public var maxTokens: Int
        public var maxChoices: Int
        public var maxNesting: Int
        /// Folder local image paths may be read from (`--allow-dir`); nil refuses paths.
        public var allowDirectory: String?

        public init(maxTokens: Int = 4096, maxChoices: Int = 16, maxNesting: Int = 64, allowDirectory: String? = nil) {
            self.maxTokens = maxTokens
            self.maxChoices = maxChoices
            self.maxNesting = maxNesting
            self.allowDirectory = allowDirectory
        }
    }

    /// Parses and checks a body. Images are decoded here, so a bad one is the client's 400.
    public static func parse(_ body: Data, served: [String], limits: Limits) throws -> ServeChatRequest {
        let depth = jsonDepth(body)
        guard depth <= limits.maxNesting else { throw ServeRequestError.nestedTooDeep(limit: limits.maxNesting) }
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: body)
        } catch let DecodingError.dataCorrupted(context) {
            throw ServeRequestError.notJSON(context.underlyingError.map { "\($0)" } ?? context.debugDescription)
        } catch {
            throw ServeRequestError.notJSON("\(error)")
        }
        guard case .object(let o) = value else { throw ServeRequestError.notAnObject }

        guard let modelValue = o["model"] else { throw ServeRequestError.missing(field: "model") }
        guard case .string(let model) = modelValue else { throw ServeRequestError.wrongType(field: "model", expected: "a string") }
        guard served.contains(model) else { throw ServeRequestError.unknownModel(model, served: served) }

        guard let messagesValue = o["messages"] else { throw ServeRequestError.missing(field: "messages") }
        guard case .array(let messages) = messagesValue else { throw ServeRequestError.wrongType(field: "messages", expected: "an array") }
        guard !messages.isEmpty else { throw ServeRequestError.outOfRange(field: "messages", reason: "must not be empty") }
        let conversation = try messages.enumerated().map { try message($0.element, at: $0.offset, limits: limits) }

        var request = ServeChatRequest(model: model, conversation: conversation, temperature: 1, topP: 1, seed: nil, maxTokens: nil,
                                       samples: 1, stop: [], topLogprobs: nil, stream: false, includeUsage: false)
        if let t = try number(o, "temperature") {
            guard t >= 0, t <= 2 else { throw ServeRequestError.outOfRange(field: "temperature", reason: "must be between 0 and 2") }
            request.temperature = t
        }
        if let p = try number(o, "top_p") {
            guard p > 0, p <= 1 else { throw ServeRequestError.outOfRange(field: "top_p", reason: "must be in (0, 1]") }
            request.topP = p
        }
        // Doubles hold integers up to 2^53 exactly; the bounds keep the conversions below in range.
        if let s = try integer(o, "seed", range: Double(Int64.min)...Double(UInt64.max).nextDown) {
            request.seed = s < 0 ? UInt64(bitPattern: Int64(s)) : UInt64(s)
        }
        let maxTokens = try integer(o, "max_completion_tokens", range: 1...Double(limits.maxTokens))
            ?? integer(o, "max_tokens", range: 1...Double(limits.maxTokens))
        request.maxTokens = maxTokens.map { Int($0) }
        if let n = try integer(o, "n", range: 1...Double(limits.maxChoices)) { request.samples = Int(n) }
        switch o["stop"] {
        case nil, .null?: break
        case .string(let s)?: request.stop = [s]
        case .array(let list)?:
            guard list.count <= 4 else { throw ServeRequestError.outOfRange(field: "stop", reason: "holds at most 4 strings") }
            request.stop = try list.map {
                guard case .string(let s) = $0 else { throw ServeRequestError.wrongType(field: "stop", expected: "a string or an array of strings") }
                return s
            }
        default: throw ServeRequestError.wrongType(field: "stop", expected: "a string or an array of strings")
        }
        if try bool(o, "logprobs") == true {
            request.topLogprobs = Int(try integer(o, "top_logprobs", range: 0...20) ?? 0)
        } else if o["top_logprobs"] != nil, o["top_logprobs"] != .null {
            throw ServeRequestError.outOfRange(field: "top_logprobs", reason: "needs 'logprobs': true")
        }
        request.stream = try bool(o, "stream") ?? false
        switch o["stream_options"] {
        case nil, .null?: break
        case .object(let options)?: request.includeUsage = try bool(options, "include_usage", field: "stream_options.include_usage") ?? false
        default: throw ServeRequestError.wrongType(field: "stream_options", expected: "an object")
        }
        return request
    }

    // MARK: - Fields

    private static func number(_ o: [String: JSONValue], _ key: String) throws -> Double? {
        switch o[key] {
        case nil, .null?: return nil
        case .number(let v)?:
            guard v.isFinite else { throw ServeRequestError.outOfRange(field: key, reason: "must be finite") }
            return v
        default: throw ServeRequestError.wrongType(field: key, expected: "a number")
        }
    }

    private static func integer(_ o: [String: JSONValue], _ key: String, range: ClosedRange<Double>) throws -> Double? {
        guard let v = try number(o, key) else { return nil }
        guard v == v.rounded() else { throw ServeRequestError.wrongType(field: key, expected: "an integer") }
        guard range.contains(v) else {
            throw ServeRequestError.outOfRange(field: key, reason: "must be an integer between \(String(format: "%.0f", range.lowerBound)) and \(String(format: "%.0f", range.upperBound))")
        }
        return v
    }

    private static func bool(_ o: [String: JSONValue], _ key: String, field: String? = nil) throws -> Bool? {
        switch o[key] {
        case nil, .null?: return nil
        case .bool(let b)?: return b
        default: throw ServeRequestError.wrongType(field: field ?? key, expected: "true or false")
        }
    }

    private static func message(_ value: JSONValue, at i: Int, limits: Limits) throws -> ChatMessage {
        let field = "messages[\(i)]"
        guard case .object(let m) = value else { throw ServeRequestError.wrongType(field: field, expected: "an object") }
        guard case .string(let role)? = m["role"] else { throw ServeRequestError.wrongType(field: "\(field).role", expected: "a string") }
        guard ["system", "user", "assistant", "developer"].contains(role) else {
            throw ServeRequestError.outOfRange(field: "\(field).role", reason: "must be system, user, assistant or developer, not '\(role)'")
        }
        let mapped = role == "developer" ? "system" : role
        switch m["content"] {
        case .string(let text)?: return ChatMessage(role: mapped, parts: [.text(text)])
        case .null? where role == "assistant", nil where role == "assistant": return ChatMessage(role: mapped, parts: [.text("")])
        case .array(let parts)?:
            return ChatMessage(role: mapped, parts: try parts.enumerated().map { try part($0.element, field: "\(field).content[\($0.offset)]", limits: limits) })
        default: throw ServeRequestError.wrongType(field: "\(field).content", expected: "a string or an array of content parts")
        }
    }

    private static func part(_ value: JSONValue, field: String, limits: Limits) throws -> ChatMessage.Part {
        guard case .object(let p) = value, case .string(let type)? = p["type"] else {
            throw ServeRequestError.wrongType(field: field, expected: "an object with a 'type'")
        }
        switch type {
        case "text":
            guard case .string(let text)? = p["text"] else { throw ServeRequestError.wrongType(field: "\(field).text", expected: "a string") }
            return .text(text)
        case "image_url":
            let url: String
            switch p["image_url"] {
            case .string(let s)?: url = s
            case .object(let o)?:
                guard case .string(let s)? = o["url"] else { throw ServeRequestError.wrongType(field: "\(field).image_url.url", expected: "a string") }
                url = s
            default: throw ServeRequestError.wrongType(field: "\(field).image_url", expected: "an object with a 'url'")
            }
            return .image(try image(url, field: "\(field).image_url.url", limits: limits))
        default:
            throw ServeRequestError.unsupported(field: "\(field).type", reason: "'\(type)' (text and image_url are)")
        }
    }

    /// A `data:` URL, or a path (`file://` or absolute) inside the allowed folder.
    static func image(_ url: String, field: String, limits: Limits) throws -> PixelImage {
        let bytes: Data
        if url.hasPrefix("data:") {
            guard let comma = url.firstIndex(of: ","), url[..<comma].hasSuffix(";base64") else {
                throw ServeRequestError.badImage(field: field, reason: "a data: URL must be base64 (data:image/png;base64,…)")
            }
            guard let data = Data(base64Encoded: String(url[url.index(after: comma)...]), options: .ignoreUnknownCharacters), !data.isEmpty else {
                throw ServeRequestError.badImage(field: field, reason: "the data: URL's base64 does not decode")
            }
            bytes = data
        } else if url.hasPrefix("http://") || url.hasPrefix("https://") {
            throw ServeRequestError.badImage(field: field, reason: "remote image URLs are not fetched; send the image as a base64 data: URL")
        } else {
            bytes = try localImage(url, field: field, limits: limits)
        }
        do {
            return try ImageDecoder.loadRGB(data: bytes, name: field)
        } catch {
            throw ServeRequestError.badImage(field: field, reason: "the image does not decode as PNG or JPEG: \(error)")
        }
    }

    private static func localImage(_ url: String, field: String, limits: Limits) throws -> Data {
        guard let allowed = limits.allowDirectory else {
            throw ServeRequestError.badImage(field: field, reason: "local image paths are refused (start the server with --allow-dir DIR)")
        }
        let path = url.hasPrefix("file://") ? String(url.dropFirst(7)) : url
        guard path.hasPrefix("/") else { throw ServeRequestError.badImage(field: field, reason: "a local image path must be absolute") }
        // Symlinks and `..` are resolved before the containment check.
        let resolved = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
        let root = URL(fileURLWithPath: allowed).standardizedFileURL.resolvingSymlinksInPath().path
        guard resolved == root || resolved.hasPrefix(root.hasSuffix("/") ? root : root + "/") else {
            throw ServeRequestError.badImage(field: field, reason: "\(path) is outside the allowed folder")
        }
        guard let data = FileManager.default.contents(atPath: resolved) else {
            throw ServeRequestError.badImage(field: field, reason: "\(path) cannot be read")
        }
        return data
    }

    /// The deepest nesting of arrays and objects in a JSON text, counted without parsing (so a
    /// hostile body cannot recurse the parser into the stack's end).
    static func jsonDepth(_ body: Data) -> Int {
        var depth = 0, deepest = 0, inString = false, escaped = false
        for byte in body {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                deepest = max(deepest, depth)
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return deepest
    }
}
