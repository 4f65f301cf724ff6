/// llama.cpp's token attribute (`tokenizer.ggml.token_type`): CONTROL tokens are matched whole in
/// chat prompts, BYTE tokens stand for raw bytes in SentencePiece vocabularies. Unknown values are
/// kept rather than rejected, since newer writers may add types.
public struct GGUFTokenType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let undefined = GGUFTokenType(rawValue: 0)
    public static let normal = GGUFTokenType(rawValue: 1)
    public static let unknown = GGUFTokenType(rawValue: 2)
    public static let control = GGUFTokenType(rawValue: 3)
    public static let userDefined = GGUFTokenType(rawValue: 4)
    public static let unused = GGUFTokenType(rawValue: 5)
    public static let byte = GGUFTokenType(rawValue: 6)

    public var description: String {
        switch rawValue {
        case 0: return "UNDEFINED"
        case 1: return "NORMAL"
        case 2: return "UNKNOWN"
        case 3: return "CONTROL"
        case 4: return "USER_DEFINED"
        case 5: return "UNUSED"
        case 6: return "BYTE"
        default: return "TYPE(\(rawValue))"
        }
    }
}

/// Everything a tokenizer needs from a GGUF file's `tokenizer.*` metadata, as plain values.
///
/// This is only the extraction: the byte-level BPE (`model == "gpt2"`) or SentencePiece tokenizer
/// is built from it elsewhere. Vocabulary-sized arrays are checked against each other; special
/// token ids outside the vocabulary are dropped with a note in `warnings`, as llama.cpp does.
public struct GGUFTokenizerData: Sendable, Equatable {
    /// `tokenizer.ggml.model`: `gpt2` (byte-level BPE), `llama` (SentencePiece), `bert`, …
    public var model: String
    /// `tokenizer.ggml.pre`: llama.cpp's pre-tokenizer name (`smollm`, `llama-bpe`, `qwen2`, …), if given.
    public var preTokenizer: String?
    /// `tokenizer.ggml.tokens`: the vocabulary; a token's id is its index.
    public var tokens: [String]
    /// `tokenizer.ggml.token_type`, one per token; all NORMAL when the key is absent.
    public var tokenTypes: [GGUFTokenType]
    /// `tokenizer.ggml.scores`, one per token (SentencePiece), if present.
    public var scores: [Float]?
    /// `tokenizer.ggml.merges`: BPE merges as `"left right"`, ranked by position (first = applied first).
    public var merges: [String]
    /// Special token ids that exist in the vocabulary (`tokenizer.ggml.*_token_id`).
    public var bosTokenID: Int?
    public var eosTokenID: Int?
    public var unknownTokenID: Int?
    public var paddingTokenID: Int?
    public var separatorTokenID: Int?
    public var maskTokenID: Int?
    /// End-of-turn and end-of-message ids (chat models that stop on them rather than on EOS).
    public var eotTokenID: Int?
    public var eomTokenID: Int?
    /// `tokenizer.ggml.add_bos_token` / `add_eos_token` / `add_space_prefix`, when present.
    public var addBOS: Bool?
    public var addEOS: Bool?
    public var addSpacePrefix: Bool?
    /// `tokenizer.chat_template`: the default Jinja chat template.
    public var chatTemplate: String?
    /// `tokenizer.chat_template.<name>` templates (e.g. `tool_use`), keyed by name.
    public var namedChatTemplates: [String: String]
    /// Things that were tolerated but look wrong (an out-of-range special id, say).
    public var warnings: [String]
    /// The file the data came from, for error messages.
    public var sourceFile: String

    /// Whether the vocabulary is GPT-2-style byte-level BPE.
    public var isByteLevelBPE: Bool { model == "gpt2" }

    /// Ids of CONTROL tokens: the strings a chat prompt's special-token parsing matches whole.
    public var controlTokenIDs: [Int] {
        tokenTypes.indices.filter { tokenTypes[$0] == .control }
    }

    /// Reads the `tokenizer.*` keys of `metadata`.
    public init(metadata: GGUFMetadata) throws {
        let file = metadata.file
        sourceFile = file
        model = try metadata.requireString("tokenizer.ggml.model")
        preTokenizer = try metadata.string("tokenizer.ggml.pre")
        tokens = try metadata.requireStrings("tokenizer.ggml.tokens")
        guard !tokens.isEmpty else {
            throw GGUFError.invalidValue(file: file, key: "tokenizer.ggml.tokens", reason: "empty vocabulary")
        }
        if let types = try metadata.ints("tokenizer.ggml.token_type") {
            guard types.count == tokens.count else {
                throw GGUFError.invalidValue(file: file, key: "tokenizer.ggml.token_type",
                                             reason: "\(types.count) entries for \(tokens.count) tokens")
            }
            tokenTypes = types.map { GGUFTokenType(rawValue: Int32(clamping: $0)) }
        } else {
            tokenTypes = Array(repeating: .normal, count: tokens.count)
        }
        scores = try metadata.floats("tokenizer.ggml.scores")
        if let s = scores, s.count != tokens.count {
            throw GGUFError.invalidValue(file: file, key: "tokenizer.ggml.scores",
                                         reason: "\(s.count) entries for \(tokens.count) tokens")
        }
        merges = try metadata.strings("tokenizer.ggml.merges") ?? []
        if model == "gpt2" && merges.isEmpty {
            throw GGUFError.missingKey(file: file, key: "tokenizer.ggml.merges")
        }
        warnings = []
        let vocab = tokens.count
        var notes: [String] = []
        func special(_ name: String) throws -> Int? {
            let key = "tokenizer.ggml.\(name)_token_id"
            guard let id = try metadata.int(key) else { return nil }
            guard id >= 0, id < vocab else {
                notes.append("\(key) = \(id) is outside the vocabulary of \(vocab) tokens; ignored")
                return nil
            }
            return id
        }
        bosTokenID = try special("bos")
        eosTokenID = try special("eos")
        unknownTokenID = try special("unknown")
        paddingTokenID = try special("padding")
        separatorTokenID = try special("seperator") ?? special("separator")  // llama.cpp's key is misspelt
        maskTokenID = try special("mask")
        eotTokenID = try special("eot")
        eomTokenID = try special("eom")
        warnings = notes
        addBOS = try metadata.bool("tokenizer.ggml.add_bos_token")
        addEOS = try metadata.bool("tokenizer.ggml.add_eos_token")
        addSpacePrefix = try metadata.bool("tokenizer.ggml.add_space_prefix")
        chatTemplate = try metadata.string("tokenizer.chat_template")
        var named: [String: String] = [:]
        let prefix = "tokenizer.chat_template."
        for key in metadata.keys where key.hasPrefix(prefix) {
            named[String(key.dropFirst(prefix.count))] = try metadata.requireString(key)
        }
        namedChatTemplates = named
    }

    /// The merges as (left, right) pairs. The split is at the first space after the first
    /// character, as llama.cpp does (`find(' ', 1)`), so a merge whose left side is a space survives.
    public func mergePairs() throws -> [(left: String, right: String)] {
        var pairs: [(left: String, right: String)] = []
        pairs.reserveCapacity(merges.count)
        for (rank, m) in merges.enumerated() {
            guard !m.isEmpty, let space = m[m.index(after: m.startIndex)...].firstIndex(of: " ") else {
                throw GGUFError.invalidValue(file: sourceFile, key: "tokenizer.ggml.merges",
                                             reason: "merge #\(rank) '\(m)' has no separating space")
            }
            pairs.append((String(m[..<space]), String(m[m.index(after: space)...])))
        }
        return pairs
    }
}
