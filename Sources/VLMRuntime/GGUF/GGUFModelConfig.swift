import Foundation

extension ModelConfig {
    /// GGUF architectures the shared decoder runs, and whether llama.cpp's converter stored their
    /// Q/K rows in adjacent-pair rotary order ("normal" RoPE) rather than Hugging Face's
    /// rotate-half order ("NEOX" RoPE, Qwen2).
    static let ggufArchitectures: [String: (family: ModelFamily, permutedQK: Bool)] = [
        "llama": (.llama, true),
        "qwen2": (.qwen2, false),
    ]

    /// The configuration a GGUF file's metadata describes: `general.architecture` and the
    /// `<arch>.*` keys for the shape, `tokenizer.ggml.*` for the special ids. Keys that would
    /// change the maths in ways the decoder does not implement (partial rotary, unknown RoPE
    /// scaling) are refused with the key named, never ignored.
    public init(gguf file: GGUFFile) throws {
        let m = file.metadata
        let name = file.name
        let arch = try m.requireString("general.architecture")
        guard let known = Self.ggufArchitectures[arch] else {
            throw ConfigError.unsupportedModelType(file: name, modelType: "\(arch) (GGUF general.architecture; supported: \(Self.ggufArchitectures.keys.sorted().joined(separator: ", ")))")
        }
        func required(_ key: String) throws -> Int {
            guard let v = try m.int("\(arch).\(key)") else { throw ConfigError.missingKey(file: name, key: "\(arch).\(key)") }
            return v
        }
        func optional(_ key: String) throws -> Int? { try m.int("\(arch).\(key)") }
        // Every size is bounded as it is read: a 416-byte GGUF with key_length −2 or 2×10⁹ used to
        // trap or ask for gigabytes before TextConfig.validate ran.
        func bounded(_ value: Int, _ key: String, _ limit: Int) throws -> Int {
            try ConfigLimits.check(value, 1...limit, key: "\(arch).\(key)", file: name)
        }
        let hidden = try bounded(try required("embedding_length"), "embedding_length", ConfigLimits.hiddenSize)
        let heads = try bounded(try required("attention.head_count"), "attention.head_count", ConfigLimits.heads)
        let kvHeads = try bounded(try optional("attention.head_count_kv") ?? heads, "attention.head_count_kv", heads)
        let headDim = try bounded(try optional("attention.key_length") ?? hidden / heads, "attention.key_length", ConfigLimits.headDim)
        if let valueLength = try optional("attention.value_length"), valueLength != headDim {
            throw ConfigError.invalidValue(file: name, key: "\(arch).attention.value_length",
                                           reason: "\(valueLength) differs from the key length \(headDim)")
        }
        if let rotary = try optional("rope.dimension_count"), rotary != headDim {
            throw ConfigError.invalidValue(file: name, key: "\(arch).rope.dimension_count",
                                           reason: "partial rotary (\(rotary) of \(headDim) dimensions) is not supported")
        }
        guard let eps = try m.float("\(arch).attention.layer_norm_rms_epsilon") else {
            throw ConfigError.missingKey(file: name, key: "\(arch).attention.layer_norm_rms_epsilon")
        }
        let theta = try m.double("\(arch).rope.freq_base") ?? 10_000
        let embedding = file.tensorInfo(named: "token_embd.weight")
        guard let vocab = try optional("vocab_size") ?? embedding?.rowCount else {
            throw ConfigError.missingKey(file: name, key: "\(arch).vocab_size")
        }
        try ConfigLimits.check(vocab, 1...ConfigLimits.vocabulary, key: "\(arch).vocab_size", file: name)
        var text = TextConfig(
            hiddenSize: hidden, intermediateSize: try bounded(try required("feed_forward_length"), "feed_forward_length", ConfigLimits.intermediateSize),
            numLayers: try bounded(try required("block_count"), "block_count", ConfigLimits.layers),
            numHeads: heads, numKVHeads: kvHeads, headDim: headDim, rmsNormEps: eps, ropeTheta: theta,
            mropeSection: [max(0, headDim / 2), 0, 0], vocabSize: vocab,
            attentionBias: file.tensorInfo(named: "blk.0.attn_q.bias") != nil,
            maxPositions: try optional("context_length").map { try bounded($0, "context_length", ConfigLimits.positions) })
        text.ropeFrequencyDivisors = try Self.ggufRopeDivisors(file, arch: arch, headDim: headDim)
        try text.validate(file: name)

        let tokenizer = try? GGUFTokenizerData(metadata: m)
        var eos: [Int] = []
        for id in [tokenizer?.eosTokenID, tokenizer?.eotTokenID, tokenizer?.eomTokenID].compactMap({ $0 }) where !eos.contains(id) {
            eos.append(id)
        }
        self.init(family: known.family, text: text, vision: nil, imageTokenId: nil, videoTokenId: nil,
                  visionStartTokenId: nil, visionEndTokenId: nil, eosTokenIds: eos, padTokenId: tokenizer?.paddingTokenID,
                  bosTokenId: tokenizer?.bosTokenID, tieWordEmbeddings: file.tensorInfo(named: "output.weight") == nil)
    }

    /// Whether the GGUF stores Q/K in llama.cpp's rotary order (see `ggufArchitectures`).
    package static func ggufPermutedQK(_ file: GGUFFile) -> Bool {
        (try? file.metadata.string("general.architecture")).flatMap { $0 }.flatMap { ggufArchitectures[$0]?.permutedQK } ?? false
    }

    /// RoPE scaling from `<arch>.rope.scaling.*` and the optional `rope_freqs.weight` tensor
    /// (Llama 3's per-frequency factors), as per-pair divisors.
    static func ggufRopeDivisors(_ file: GGUFFile, arch: String, headDim: Int) throws -> [Float]? {
        let m = file.metadata
        var divisors: [Float]? = nil
        let kind = try m.string("\(arch).rope.scaling.type") ?? "none"
        switch kind {
        case "none":
            if let legacy = try m.float("\(arch).rope.scale_linear"), legacy != 1 {
                divisors = [Float](repeating: legacy, count: headDim / 2)
            }
        case "linear":
            guard let factor = try m.float("\(arch).rope.scaling.factor"), factor > 0 else {
                throw ConfigError.invalidValue(file: file.name, key: "\(arch).rope.scaling.factor", reason: "linear scaling needs a positive factor")
            }
            divisors = [Float](repeating: factor, count: headDim / 2)
        default:
            throw ConfigError.invalidValue(file: file.name, key: "\(arch).rope.scaling.type", reason: "'\(kind)' is not supported (none, linear)")
        }
        if file.tensorInfo(named: "rope_freqs.weight") != nil {
            let factors = try file.tensor(named: "rope_freqs.weight").dequantized()
            guard factors.count == headDim / 2 else {
                throw GGUFError.invalidTensorShape(file: file.name, tensor: "rope_freqs.weight",
                                                   reason: "\(factors.count) factors for \(headDim / 2) rotary pairs")
            }
            divisors = zip(divisors ?? [Float](repeating: 1, count: factors.count), factors).map { $0 * $1 }
        }
        return divisors
    }
}
