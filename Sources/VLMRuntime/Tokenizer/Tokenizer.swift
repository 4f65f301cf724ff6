import Foundation

/// Why a tokenizer file could not be used.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case unsupported(file: String, reason: String)
    case missingKey(file: String, key: String)

    public var description: String {
        switch self {
        case .unreadable(let f, let r): return "\(f): cannot read tokenizer: \(r)"
        case .unsupported(let f, let r): return "\(f): unsupported tokenizer: \(r)"
        case .missingKey(let f, let k): return "\(f): required key '\(k)' is missing"
        }
    }
}

/// A token that is matched whole in the raw text before normalisation and BPE
/// (`<|im_start|>`, `<|image_pad|>`, …).
public struct AddedToken: Sendable, Hashable {
    public let id: Int
    public let content: String
    /// Special tokens are dropped by `decode(skipSpecialTokens: true)`.
    public let special: Bool
}

/// Byte-level BPE tokenizer: a pre-tokenizer split (`PreTokenizer`), the GPT-2 byte mapping,
/// rank-ordered merges, and added/special tokens matched first (leftmost, longest).
///
/// Built from a Hugging Face `tokenizer.json` (Qwen2, Llama 3, SmolLM, GPT-2 splits; NFC when the
/// file asks for it) or from a GGUF file's `tokenizer.ggml.*` metadata (`init(gguf:)`: the `gpt2`
/// model with llama.cpp's pre-tokenizer names; CONTROL and USER_DEFINED tokens are matched whole).
public final class Tokenizer: @unchecked Sendable {
    public let addedTokens: [AddedToken]
    public let vocabularySize: Int
    /// How text is split before BPE.
    public let preTokenizer: PreTokenizer
    /// Whether encoded prompts should start with `bosTokenId`: GGUF `add_bos_token`, which
    /// llama.cpp honours for chat prompts too (one that already starts with BOS keeps one).
    public let addsBOS: Bool
    /// The beginning-of-sequence id, when the tokenizer has one.
    public let bosTokenId: Int?
    private let vocab: [String: Int]
    private let idToToken: [Int: String]
    private let addedById: [Int: AddedToken]
    /// (left id << 32 | right id) → (rank, merged id)
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    /// Byte → id of its single-byte token.
    private let byteIds: [Int]
    /// Byte-level character → byte.
    private let byteDecoder: [Character: UInt8]
    /// Added tokens grouped by their first UTF-8 byte, longest first.
    private let addedByFirstByte: [UInt8: [(bytes: [UInt8], token: AddedToken)]]
    private let normalizeNFC: Bool
    private var cache: [[UInt8]: [Int]] = [:]
    private let lock = NSLock()

    /// GPT-2's reversible byte → printable-character table.
    static let byteEncoder: [Character] = {
        var bs: [Int] = Array(33...126) + Array(161...172) + Array(174...255)
        var cs = bs
        var n = 0
        for b in 0..<256 where !bs.contains(b) {
            bs.append(b)
            cs.append(256 + n)
            n += 1
        }
        var table = [Character](repeating: " ", count: 256)
        for (b, c) in zip(bs, cs) { table[b] = Character(Unicode.Scalar(UInt32(c))!) } // invariant: c < 0x200 is a valid scalar
        return table
    }()

    public convenience init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TokenizerError.unreadable(file: path, reason: "file not found or unreadable")
        }
        try self.init(data: data, file: path)
    }

    /// Reads a Hugging Face `tokenizer.json` (BPE model).
    public convenience init(data: Data, file: String) throws {
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw TokenizerError.unreadable(file: file, reason: "not a JSON object")
        }
        guard let model = root["model"] as? [String: Any] else { throw TokenizerError.missingKey(file: file, key: "model") }
        if let type = model["type"] as? String, type != "BPE" {
            throw TokenizerError.unsupported(file: file, reason: "model type \(type), only BPE is supported")
        }
        guard let vocabAny = model["vocab"] as? [String: Any] else { throw TokenizerError.missingKey(file: file, key: "model.vocab") }
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(vocabAny.count)
        for (k, v) in vocabAny {
            guard let id = (v as? NSNumber)?.intValue, id >= 0 else {
                throw TokenizerError.unsupported(file: file, reason: "vocab entry '\(k)' has no integer id")
            }
            vocab[k] = id
        }
        var added: [AddedToken] = []
        for item in root["added_tokens"] as? [[String: Any]] ?? [] {
            guard let id = (item["id"] as? NSNumber)?.intValue, id >= 0, let content = item["content"] as? String, !content.isEmpty else {
                throw TokenizerError.unsupported(file: file, reason: "added token without id/content")
            }
            added.append(AddedToken(id: id, content: content, special: (item["special"] as? Bool) ?? false))
        }
        var pairs: [(String, String)] = []
        let mergeList = model["merges"] as? [Any] ?? []
        pairs.reserveCapacity(mergeList.count)
        for m in mergeList {
            if let s = m as? String {
                let parts = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { continue }
                pairs.append((String(parts[0]), String(parts[1])))
            } else if let a = m as? [String], a.count == 2 {
                pairs.append((a[0], a[1]))
            }
        }
        let normalizer = root["normalizer"] as? [String: Any]
        // No BOS is added to chat prompts of a tokenizer.json checkpoint: transformers'
        // apply_chat_template tokenizes without special tokens (a template that wants BOS prints it).
        try self.init(vocab: vocab, added: added, merges: pairs, preTokenizer: try Self.preTokenizer(root["pre_tokenizer"], file: file),
                      normalizeNFC: (normalizer?["type"] as? String) == "NFC", addsBOS: false, bosTokenId: nil)
    }

    /// Builds the tokenizer a GGUF file describes (`tokenizer.ggml.model == "gpt2"`).
    public convenience init(gguf data: GGUFTokenizerData) throws {
        let file = data.sourceFile
        guard data.isByteLevelBPE else {
            throw TokenizerError.unsupported(file: file, reason: "tokenizer.ggml.model '\(data.model)' (only gpt2 byte-level BPE is supported)")
        }
        guard let pre = PreTokenizer.forGGUF(data.preTokenizer) else {
            throw TokenizerError.unsupported(file: file, reason: "tokenizer.ggml.pre '\(data.preTokenizer ?? "")' is not implemented")
        }
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(data.tokens.count)
        for (id, t) in data.tokens.enumerated() where vocab[t] == nil { vocab[t] = id }
        var added: [AddedToken] = []
        for (id, type) in data.tokenTypes.enumerated() where (type == .control || type == .userDefined) && !data.tokens[id].isEmpty {
            added.append(AddedToken(id: id, content: data.tokens[id], special: type == .control))
        }
        let pairs = try data.mergePairs().map { ($0.left, $0.right) }
        try self.init(vocab: vocab, tokens: data.tokens, added: added, merges: pairs, preTokenizer: pre, normalizeNFC: false,
                      addsBOS: (data.addBOS ?? false) && data.bosTokenID != nil, bosTokenId: data.bosTokenID)
    }

    /// The shared core: vocabulary, added tokens, merges (ranked by position) and the split.
    /// `tokens`: id → token string when the source lists it (GGUF, where a string may repeat);
    /// otherwise the inverse of `vocab`.
    init(vocab baseVocab: [String: Int], tokens: [String]? = nil, added: [AddedToken], merges mergePairs: [(String, String)],
         preTokenizer: PreTokenizer, normalizeNFC: Bool, addsBOS: Bool, bosTokenId: Int?) throws {
        var vocab = baseVocab
        var idToToken: [Int: String] = [:]
        if let tokens {
            idToToken.reserveCapacity(tokens.count)
            for (id, t) in tokens.enumerated() { idToToken[id] = t }
        } else {
            idToToken.reserveCapacity(vocab.count)
            for (k, v) in vocab { idToToken[v] = k }
        }
        for a in added { idToToken[a.id] = a.content; vocab[a.content] = a.id }
        self.vocab = vocab
        self.idToToken = idToToken
        self.addedTokens = added
        self.addedById = Dictionary(added.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        self.vocabularySize = (idToToken.keys.max() ?? -1) + 1
        self.preTokenizer = preTokenizer
        self.addsBOS = addsBOS
        self.bosTokenId = bosTokenId

        var byteIds = [Int](repeating: -1, count: 256)
        var byteDecoder: [Character: UInt8] = [:]
        for b in 0..<256 {
            let ch = Self.byteEncoder[b]
            byteDecoder[ch] = UInt8(b)
            if let id = vocab[String(ch)] { byteIds[b] = id }
        }
        self.byteIds = byteIds
        self.byteDecoder = byteDecoder

        var merges: [UInt64: (rank: Int32, id: Int32)] = [:]
        merges.reserveCapacity(mergePairs.count)
        for (rank, pair) in mergePairs.enumerated() {
            guard let l = vocab[pair.0], let r = vocab[pair.1], let id = vocab[pair.0 + pair.1] else { continue }
            let key = UInt64(l) << 32 | UInt64(r)
            if merges[key] == nil { merges[key] = (Int32(clamping: rank), Int32(clamping: id)) }
        }
        self.merges = merges

        var byFirst: [UInt8: [(bytes: [UInt8], token: AddedToken)]] = [:]
        for a in added {
            let b = Array(a.content.utf8)
            guard let first = b.first else { continue }
            byFirst[first, default: []].append((b, a))
        }
        for k in byFirst.keys { byFirst[k]?.sort { $0.bytes.count > $1.bytes.count } }
        self.addedByFirstByte = byFirst
        self.normalizeNFC = normalizeNFC
    }

    /// The split a `tokenizer.json` pre_tokenizer section describes. Unknown splits are refused:
    /// a wrong split gives valid-looking but different ids.
    static func preTokenizer(_ section: Any?, file: String) throws -> PreTokenizer {
        let qwen2 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        let llama3 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        let gpt2 = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
        guard let obj = section as? [String: Any], let type = obj["type"] as? String else {
            throw TokenizerError.unsupported(file: file, reason: "no pre_tokenizer (byte-level BPE needs one)")
        }
        func describe(_ o: [String: Any]) -> String { (o["type"] as? String) ?? "?" }
        switch type {
        case "ByteLevel":
            if (obj["add_prefix_space"] as? Bool) == true {
                throw TokenizerError.unsupported(file: file, reason: "ByteLevel pre_tokenizer with add_prefix_space")
            }
            return .gpt2
        case "Sequence":
            let steps = obj["pretokenizers"] as? [[String: Any]] ?? []
            let kinds = steps.map(describe)
            if kinds == ["Digits", "ByteLevel"], steps[0]["individual_digits"] as? Bool == true,
               (steps[1]["add_prefix_space"] as? Bool) != true {
                return .digitsThenGPT2
            }
            if kinds == ["Split", "ByteLevel"], let pattern = (steps[0]["pattern"] as? [String: Any])?["Regex"] as? String {
                if pattern == qwen2 { return .qwen2(maxDigits: 1) }
                if pattern == llama3 { return .qwen2(maxDigits: 3) }
                if pattern == gpt2 { return .gpt2 }
                throw TokenizerError.unsupported(file: file, reason: "pre_tokenizer Split regex \(pattern)")
            }
            throw TokenizerError.unsupported(file: file, reason: "pre_tokenizer sequence \(kinds)")
        default:
            throw TokenizerError.unsupported(file: file, reason: "pre_tokenizer \(type)")
        }
    }

    /// Id of a token string (vocabulary or added token).
    public func tokenId(_ token: String) -> Int? { vocab[token] }

    /// The token string of an id (byte-level form for vocabulary tokens).
    public func token(for id: Int) -> String? { idToToken[id] }

    public func isSpecial(_ id: Int) -> Bool { addedById[id]?.special ?? false }

    // MARK: - Encoding

    public func encode(_ text: String) -> [Int] {
        var ids: [Int] = []
        let bytes = Array(text.utf8)
        var segmentStart = 0
        var i = 0
        while i < bytes.count {
            if let cands = addedByFirstByte[bytes[i]], let hit = cands.first(where: { c in
                c.bytes.count <= bytes.count - i && bytes[i..<(i + c.bytes.count)].elementsEqual(c.bytes)
            }) {
                if segmentStart < i { encodeOrdinary(bytes[segmentStart..<i], into: &ids) }
                ids.append(hit.token.id)
                i += hit.bytes.count
                segmentStart = i
            } else {
                i += 1
            }
        }
        if segmentStart < bytes.count { encodeOrdinary(bytes[segmentStart..<bytes.count], into: &ids) }
        return ids
    }

    /// Normalise, split and BPE a stretch of text without added tokens.
    private func encodeOrdinary(_ slice: ArraySlice<UInt8>, into ids: inout [Int]) {
        var text = String(decoding: slice, as: UTF8.self)
        if normalizeNFC { text = text.precomposedStringWithCanonicalMapping }
        let scalars = Array(text.unicodeScalars)
        for piece in preTokenizer.split(scalars) {
            var pieceBytes: [UInt8] = []
            for s in scalars[piece] { pieceBytes.append(contentsOf: String(s).utf8) }
            ids.append(contentsOf: bpe(pieceBytes))
        }
    }

    private func bpe(_ word: [UInt8]) -> [Int] {
        lock.lock()
        if let hit = cache[word] { lock.unlock(); return hit }
        lock.unlock()
        var symbols = word.map { byteIds[Int($0)] }
        if symbols.contains(-1) {
            // A byte without a token cannot be encoded; drop it as the Rust library does with no unk.
            symbols.removeAll { $0 == -1 }
        }
        while symbols.count > 1 {
            var best: (rank: Int32, pos: Int, id: Int32)? = nil
            for p in 0..<(symbols.count - 1) {
                let key = UInt64(symbols[p]) << 32 | UInt64(symbols[p + 1])
                if let m = merges[key], best == nil || m.rank < best!.rank { // invariant: best checked for nil first
                    best = (m.rank, p, m.id)
                }
            }
            guard let b = best else { break }
            symbols[b.pos] = Int(b.id)
            symbols.remove(at: b.pos + 1)
        }
        lock.lock()
        if cache.count > 50_000 { cache.removeAll(keepingCapacity: true) }
        cache[word] = symbols
        lock.unlock()
        return symbols
    }

    // MARK: - Decoding

    /// Bytes of ids, byte-level tokens mapped back through the GPT-2 table.
    public func decodeBytes(_ ids: [Int], skipSpecialTokens: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        for id in ids {
            if let a = addedById[id] {
                if skipSpecialTokens && a.special { continue }
                out.append(contentsOf: a.content.utf8)
                continue
            }
            guard let tok = idToToken[id] else { continue }
            var bytes: [UInt8] = []
            var ok = true
            for ch in tok {
                guard let b = byteDecoder[ch] else { ok = false; break }
                bytes.append(b)
            }
            out.append(contentsOf: ok ? bytes : Array(tok.utf8))
        }
        return out
    }

    /// Text of ids; invalid UTF-8 becomes U+FFFD as in Python's `errors="replace"`.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        String(decoding: decodeBytes(ids, skipSpecialTokens: skipSpecialTokens), as: UTF8.self)
    }
}
