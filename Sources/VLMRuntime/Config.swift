import Foundation

/// Why a checkpoint's configuration could not be used; names the file and the key.
public enum ConfigError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case missingKey(file: String, key: String)
    case invalidValue(file: String, key: String, reason: String)
    case unsupportedModelType(file: String, modelType: String)

    public var description: String {
        switch self {
        case .unreadable(let f, let r): return "\(f): cannot read config: \(r)"
        case .missingKey(let f, let k): return "\(f): required key '\(k)' is missing"
        case .invalidValue(let f, let k, let r): return "\(f): key '\(k)': \(r)"
        case .unsupportedModelType(let f, let t):
            return "\(f): model_type '\(t)' is not supported (\(ModelFamily.allCases.map(\.rawValue).joined(separator: ", ")))"
        }
    }
}

/// Which architecture a checkpoint is: the decoder is shared, the families differ in attention
/// biases, rotary layout and whether a vision tower feeds image embeddings into the prompt.
public enum ModelFamily: String, Sendable, CaseIterable {
    case qwen2VL = "qwen2_vl"
    case qwen25VL = "qwen2_5_vl"
    /// Llama and its relatives (SmolLM2, TinyLlama, Llama 3.x): text only, no attention biases.
    case llama
    /// Text-only Qwen2 / Qwen2.5: Llama plus q/k/v biases.
    case qwen2

    /// Whether the family has a vision tower (and so takes images).
    public var hasVision: Bool { self == .qwen2VL || self == .qwen25VL }
}

/// The language-model half of the configuration: everything the shared decoder needs.
public struct TextConfig: Sendable, Equatable {
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var numKVHeads: Int
    public var headDim: Int
    public var rmsNormEps: Float
    public var ropeTheta: Double
    /// Rotary pairs per position axis (t, h, w). Text-only models put every pair on the first
    /// axis, which is plain 1-D RoPE since their three position rows are equal.
    public var mropeSection: [Int]
    public var vocabSize: Int
    /// Biases on the q/k/v projections (Qwen2: yes; Llama: `attention_bias`, usually no).
    public var attentionBias: Bool = false
    /// Biases on the MLP projections (Llama's `mlp_bias`).
    public var mlpBias: Bool = false
    /// Per rotary pair, the number the inverse frequency is divided by: linear scaling (one
    /// factor everywhere), Llama 3's frequency-dependent factors, or GGUF's `rope_freqs` tensor.
    /// Nil means no scaling.
    public var ropeFrequencyDivisors: [Float]? = nil
    /// The longest sequence the model was trained for, when the checkpoint says.
    public var maxPositions: Int? = nil

    public init(hiddenSize: Int, intermediateSize: Int, numLayers: Int, numHeads: Int, numKVHeads: Int, headDim: Int,
                rmsNormEps: Float, ropeTheta: Double, mropeSection: [Int], vocabSize: Int, attentionBias: Bool = false,
                mlpBias: Bool = false, ropeFrequencyDivisors: [Float]? = nil, maxPositions: Int? = nil) {
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.numKVHeads = numKVHeads
        self.headDim = headDim
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.mropeSection = mropeSection
        self.vocabSize = vocabSize
        self.attentionBias = attentionBias
        self.mlpBias = mlpBias
        self.ropeFrequencyDivisors = ropeFrequencyDivisors
        self.maxPositions = maxPositions
    }

    /// Checks the sizes the decoder relies on; `file` and the key names label the error.
    func validate(file: String) throws {
        for (key, value) in [("hidden_size", hiddenSize), ("intermediate_size", intermediateSize), ("num_hidden_layers", numLayers),
                             ("num_attention_heads", numHeads), ("num_key_value_heads", numKVHeads),
                             ("vocab_size", vocabSize), ("head_dim", headDim)] where value <= 0 {
            throw ConfigError.invalidValue(file: file, key: key, reason: "must be positive, got \(value)")
        }
        try ConfigLimits.check(hiddenSize, 1...ConfigLimits.hiddenSize, key: "hidden_size", file: file)
        try ConfigLimits.check(intermediateSize, 1...ConfigLimits.intermediateSize, key: "intermediate_size", file: file)
        try ConfigLimits.check(numLayers, 1...ConfigLimits.layers, key: "num_hidden_layers", file: file)
        try ConfigLimits.check(numHeads, 1...ConfigLimits.heads, key: "num_attention_heads", file: file)
        try ConfigLimits.check(numKVHeads, 1...numHeads, key: "num_key_value_heads", file: file)
        try ConfigLimits.check(headDim, 1...ConfigLimits.headDim, key: "head_dim", file: file)
        try ConfigLimits.check(vocabSize, 1...ConfigLimits.vocabulary, key: "vocab_size", file: file)
        if let maxPositions { try ConfigLimits.check(maxPositions, 1...ConfigLimits.positions, key: "max_position_embeddings", file: file) }
        try ConfigLimits.product([numHeads, headDim, hiddenSize], keys: "num_attention_heads × head_dim × hidden_size", file: file)
        try ConfigLimits.product([vocabSize, hiddenSize], keys: "vocab_size × hidden_size", file: file)
        try ConfigLimits.product([intermediateSize, hiddenSize, numLayers], keys: "intermediate_size × hidden_size × num_hidden_layers", file: file)
        guard numHeads % numKVHeads == 0 else {
            throw ConfigError.invalidValue(file: file, key: "num_key_value_heads", reason: "\(numHeads) heads are not a multiple of \(numKVHeads) KV heads")
        }
        guard headDim % 2 == 0 else {
            throw ConfigError.invalidValue(file: file, key: "head_dim", reason: "rotary embeddings need an even head size, got \(headDim)")
        }
        // Each part is bounded before the sum, so the sum cannot overflow.
        guard mropeSection.count == 3, mropeSection.allSatisfy({ (0...headDim).contains($0) }), mropeSection.reduce(0, +) * 2 == headDim else {
            throw ConfigError.invalidValue(file: file, key: "mrope_section", reason: "\(mropeSection) must have 3 parts summing to head_dim/2 = \(headDim / 2)")
        }
        guard rmsNormEps.isFinite, rmsNormEps >= 0 else {
            throw ConfigError.invalidValue(file: file, key: "rms_norm_eps", reason: "must be a finite non-negative number, got \(rmsNormEps)")
        }
        guard ropeTheta.isFinite, ropeTheta > 0 else {
            throw ConfigError.invalidValue(file: file, key: "rope_theta", reason: "must be positive, got \(ropeTheta)")
        }
        if let d = ropeFrequencyDivisors {
            guard d.count == headDim / 2, d.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw ConfigError.invalidValue(file: file, key: "rope_scaling", reason: "needs \(headDim / 2) positive frequency factors, got \(d.count)")
            }
        }
    }

    /// Llama 3's RoPE scaling (`rope_type: llama3`) as per-pair divisors of the inverse
    /// frequencies: long wavelengths are slowed by `factor`, short ones kept, the band between
    /// blended smoothly. The same numbers llama.cpp's converter stores as `rope_freqs`.
    static func llama3Divisors(headDim: Int, theta: Double, factor: Double, lowFreqFactor: Double, highFreqFactor: Double,
                               originalContext: Double) -> [Float] {
        let lowWavelength = originalContext / lowFreqFactor
        let highWavelength = originalContext / highFreqFactor
        return (0..<(headDim / 2)).map { j in
            let invFreq = 1 / pow(theta, Double(2 * j) / Double(headDim))
            let wavelength = 2 * Double.pi / invFreq
            if wavelength < highWavelength { return 1 }
            if wavelength > lowWavelength { return Float(factor) }
            let smooth = (originalContext / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor)
            return Float(1 / ((1 - smooth) / factor + smooth))
        }
    }
}

/// The vision-tower half of the configuration (both families; unused fields keep defaults).
public struct VisionConfig: Sendable, Equatable {
    public var depth: Int
    /// Width of the tower (`hidden_size` in Qwen2.5-VL, `embed_dim` in Qwen2-VL).
    public var hiddenSize: Int
    public var numHeads: Int
    /// MLP width: `intermediate_size` (Qwen2.5-VL) or `embed_dim · mlp_ratio` (Qwen2-VL).
    public var intermediateSize: Int
    /// Merger output width, equal to the LM hidden size.
    public var outHiddenSize: Int
    public var patchSize: Int
    public var temporalPatchSize: Int
    public var spatialMergeSize: Int
    public var inChannels: Int
    public var windowSize: Int
    public var fullAttentionBlocks: [Int]
    public var tokensPerSecond: Double
    public var hiddenAct: String
    public var ropeTheta: Double
}

/// A model's configuration, from a Hugging Face `config.json` (Qwen2-VL / Qwen2.5-VL in any of
/// the three layouts — flat, flat + `text_config` (transformers ≥ 4.52), `text_config` +
/// `rope_parameters` (v5) — or a text-only Llama / Qwen2) or from a GGUF file's metadata
/// (`ModelConfig(gguf:)`).
public struct ModelConfig: Sendable, Equatable {
    public var family: ModelFamily
    public var text: TextConfig
    /// The vision tower; nil for text-only families.
    public var vision: VisionConfig?
    /// The placeholder id each image token takes (vision families only).
    public var imageTokenId: Int?
    public var videoTokenId: Int?
    public var visionStartTokenId: Int?
    public var visionEndTokenId: Int?
    /// EOS ids declared in the config (generation_config.json and the tokenizer add more at load time).
    public var eosTokenIds: [Int]
    public var padTokenId: Int?
    public var bosTokenId: Int?
    public var tieWordEmbeddings: Bool

    public static func load(path: String) throws -> ModelConfig {
        var info = stat()
        if stat(path, &info) == 0, (info.st_mode & S_IFMT) != S_IFREG {
            throw ConfigError.unreadable(file: path, reason: "not a regular file")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError.unreadable(file: path, reason: "file not found or unreadable")
        }
        return try parse(data, file: path)
    }

    public static func parse(_ data: Data, file: String) throws -> ModelConfig {
        let raw: RawConfig
        do { raw = try JSONDecoder().decode(RawConfig.self, from: data) } catch let DecodingError.typeMismatch(_, ctx) {
            throw ConfigError.invalidValue(file: file, key: ctx.codingPath.map(\.stringValue).joined(separator: "."), reason: "wrong type")
        } catch let DecodingError.dataCorrupted(ctx) {
            throw ConfigError.invalidValue(file: file, key: ctx.codingPath.map(\.stringValue).joined(separator: "."), reason: ctx.debugDescription)
        } catch {
            throw ConfigError.unreadable(file: file, reason: "not a JSON object")
        }
        return try raw.resolve(file: file)
    }
}

// MARK: - Raw Codable layouts

/// An int or a list of ints (`eos_token_id` is either).
struct IntList: Codable, Equatable {
    var values: [Int]
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let one = try? c.decode(Int.self) { values = [one] } else { values = try c.decode([Int].self) }
    }
    func encode(to encoder: Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(values) }
}

struct RawRope: Codable {
    var type: String?
    var rope_type: String?
    var mrope_section: [Int]?
    var rope_theta: Double?
    var factor: Double?
    var low_freq_factor: Double?
    var high_freq_factor: Double?
    var original_max_position_embeddings: Double?
}

struct RawText: Codable {
    var hidden_size: Int?
    var intermediate_size: Int?
    var num_hidden_layers: Int?
    var num_attention_heads: Int?
    var num_key_value_heads: Int?
    var head_dim: Int?
    var rms_norm_eps: Double?
    var rope_theta: Double?
    var rope_scaling: RawRope?
    var rope_parameters: RawRope?
    var vocab_size: Int?
    var max_position_embeddings: Int?
    var attention_bias: Bool?
    var mlp_bias: Bool?
    var tie_word_embeddings: Bool?
    var eos_token_id: IntList?
    var pad_token_id: Int?
    var bos_token_id: Int?
    var image_token_id: Int?
    var video_token_id: Int?
    var vision_start_token_id: Int?
    var vision_end_token_id: Int?
}

struct RawVision: Codable {
    var depth: Int?
    var hidden_size: Int?
    var embed_dim: Int?
    var num_heads: Int?
    var intermediate_size: Int?
    var mlp_ratio: Double?
    var out_hidden_size: Int?
    var patch_size: Int?
    var spatial_patch_size: Int?
    var temporal_patch_size: Int?
    var spatial_merge_size: Int?
    var in_chans: Int?
    var in_channels: Int?
    var window_size: Int?
    var fullatt_block_indexes: [Int]?
    var tokens_per_second: Double?
    var hidden_act: String?
    var rope_parameters: RawRope?
}

struct RawConfig: Codable {
    var model_type: String?
    var text_config: RawText?
    var vision_config: RawVision?
    // Flat layout: the text keys live at the top level (decoded again as RawText).
    var tie_word_embeddings: Bool?
    var image_token_id: Int?
    var video_token_id: Int?
    var vision_start_token_id: Int?
    var vision_end_token_id: Int?
    var eos_token_id: IntList?
    var pad_token_id: Int?
    var bos_token_id: Int?
    var top: RawText?

    enum CodingKeys: String, CodingKey {
        case model_type, text_config, vision_config, tie_word_embeddings, image_token_id, video_token_id
        case vision_start_token_id, vision_end_token_id, eos_token_id, pad_token_id, bos_token_id
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model_type = try c.decodeIfPresent(String.self, forKey: .model_type)
        text_config = try c.decodeIfPresent(RawText.self, forKey: .text_config)
        vision_config = try c.decodeIfPresent(RawVision.self, forKey: .vision_config)
        tie_word_embeddings = try c.decodeIfPresent(Bool.self, forKey: .tie_word_embeddings)
        image_token_id = try c.decodeIfPresent(Int.self, forKey: .image_token_id)
        video_token_id = try c.decodeIfPresent(Int.self, forKey: .video_token_id)
        vision_start_token_id = try c.decodeIfPresent(Int.self, forKey: .vision_start_token_id)
        vision_end_token_id = try c.decodeIfPresent(Int.self, forKey: .vision_end_token_id)
        eos_token_id = try c.decodeIfPresent(IntList.self, forKey: .eos_token_id)
        pad_token_id = try c.decodeIfPresent(Int.self, forKey: .pad_token_id)
        bos_token_id = try c.decodeIfPresent(Int.self, forKey: .bos_token_id)
        top = try RawText(from: decoder)
    }

    func encode(to encoder: Encoder) throws {}

    func resolve(file: String) throws -> ModelConfig {
        guard let modelType = model_type else { throw ConfigError.missingKey(file: file, key: "model_type") }
        guard let family = ModelFamily(rawValue: modelType) else {
            throw ConfigError.unsupportedModelType(file: file, modelType: modelType)
        }
        let t = text_config
        let f = top
        func req<T>(_ key: String, _ a: T?, _ b: T?) throws -> T {
            if let a { return a }
            if let b { return b }
            throw ConfigError.missingKey(file: file, key: key)
        }
        let hidden = try ConfigLimits.check(try req("hidden_size", t?.hidden_size, f?.hidden_size), 1...ConfigLimits.hiddenSize,
                                            key: "hidden_size", file: file)
        let heads = try ConfigLimits.check(try req("num_attention_heads", t?.num_attention_heads, f?.num_attention_heads),
                                           1...ConfigLimits.heads, key: "num_attention_heads", file: file)
        let kvHeads = t?.num_key_value_heads ?? f?.num_key_value_heads ?? heads
        guard hidden > 0, heads > 0, kvHeads > 0, heads % kvHeads == 0 else {
            throw ConfigError.invalidValue(file: file, key: "num_key_value_heads", reason: "\(heads) heads are not a multiple of \(kvHeads) KV heads")
        }
        // Bounded here, before rope scaling builds head_dim/2 factors from it.
        let headDim = try ConfigLimits.check(t?.head_dim ?? f?.head_dim ?? hidden / heads, 1...ConfigLimits.headDim,
                                             key: "head_dim", file: file)
        // v5 keeps rope settings in rope_parameters; older files in rope_scaling + rope_theta.
        let rope = t?.rope_parameters ?? f?.rope_parameters ?? t?.rope_scaling ?? f?.rope_scaling
        let theta = rope?.rope_theta ?? t?.rope_theta ?? f?.rope_theta ?? (family.hasVision ? 1_000_000 : 10_000)
        let section: [Int]
        if family.hasVision {
            guard let s = rope?.mrope_section else { throw ConfigError.missingKey(file: file, key: "rope_scaling.mrope_section") }
            section = s
        } else {
            section = [max(0, headDim / 2), 0, 0]
        }
        var text = TextConfig(
            hiddenSize: hidden,
            intermediateSize: try req("intermediate_size", t?.intermediate_size, f?.intermediate_size),
            numLayers: try req("num_hidden_layers", t?.num_hidden_layers, f?.num_hidden_layers),
            numHeads: heads,
            numKVHeads: kvHeads,
            headDim: headDim,
            // transformers' class default is 1e-5 (Llama 1e-6); real checkpoints say which.
            rmsNormEps: Float(t?.rms_norm_eps ?? f?.rms_norm_eps ?? (family == .llama ? 1e-6 : 1e-5)),
            ropeTheta: theta,
            mropeSection: section,
            vocabSize: try req("vocab_size", t?.vocab_size, f?.vocab_size),
            // Qwen2's q/k/v biases are part of the architecture, not a config switch.
            attentionBias: family == .llama ? (t?.attention_bias ?? f?.attention_bias ?? false) : true,
            mlpBias: family == .llama ? (t?.mlp_bias ?? f?.mlp_bias ?? false) : false,
            maxPositions: t?.max_position_embeddings ?? f?.max_position_embeddings)
        text.ropeFrequencyDivisors = try Self.ropeDivisors(rope, family: family, headDim: headDim, theta: theta, file: file)
        try text.validate(file: file)
        // text_config's tie flag wins: some 4.5x saves disagree at the top level.
        let tied = t?.tie_word_embeddings ?? tie_word_embeddings ?? false
        let eos = (t?.eos_token_id ?? eos_token_id)?.values ?? []
        let pad = t?.pad_token_id ?? pad_token_id
        let bos = t?.bos_token_id ?? bos_token_id
        guard family.hasVision else {
            return ModelConfig(family: family, text: text, vision: nil, imageTokenId: nil, videoTokenId: nil,
                               visionStartTokenId: nil, visionEndTokenId: nil, eosTokenIds: eos, padTokenId: pad,
                               bosTokenId: bos, tieWordEmbeddings: tied)
        }
        guard let v = vision_config else { throw ConfigError.missingKey(file: file, key: "vision_config") }
        try Self.checkVision(v, file: file)
        let vision: VisionConfig
        switch family {
        case .qwen2VL:
            let embed = try req("vision_config.embed_dim", v.embed_dim, nil)
            vision = VisionConfig(
                depth: try req("vision_config.depth", v.depth, nil), hiddenSize: embed,
                numHeads: try req("vision_config.num_heads", v.num_heads, nil),
                intermediateSize: Int((Double(embed) * (v.mlp_ratio ?? 4)).rounded(.down)),
                outHiddenSize: v.hidden_size ?? hidden,
                patchSize: v.patch_size ?? v.spatial_patch_size ?? 14, temporalPatchSize: v.temporal_patch_size ?? 2,
                spatialMergeSize: v.spatial_merge_size ?? 2, inChannels: v.in_channels ?? v.in_chans ?? 3,
                windowSize: 0, fullAttentionBlocks: [], tokensPerSecond: v.tokens_per_second ?? 2,
                hiddenAct: v.hidden_act ?? "quick_gelu", ropeTheta: v.rope_parameters?.rope_theta ?? 10000)
        default:
            let vh = try req("vision_config.hidden_size", v.hidden_size, nil)
            vision = VisionConfig(
                depth: try req("vision_config.depth", v.depth, nil), hiddenSize: vh,
                numHeads: try req("vision_config.num_heads", v.num_heads, nil),
                intermediateSize: try req("vision_config.intermediate_size", v.intermediate_size, nil),
                outHiddenSize: v.out_hidden_size ?? hidden,
                patchSize: v.patch_size ?? v.spatial_patch_size ?? 14, temporalPatchSize: v.temporal_patch_size ?? 2,
                spatialMergeSize: v.spatial_merge_size ?? 2, inChannels: v.in_channels ?? v.in_chans ?? 3,
                windowSize: v.window_size ?? 112, fullAttentionBlocks: v.fullatt_block_indexes ?? [7, 15, 23, 31],
                tokensPerSecond: v.tokens_per_second ?? 4, hiddenAct: v.hidden_act ?? "silu",
                ropeTheta: v.rope_parameters?.rope_theta ?? 10000)
        }
        try ConfigLimits.product([vision.hiddenSize, vision.intermediateSize, max(1, vision.depth)],
                                 keys: "vision_config hidden × intermediate × depth", file: file)
        try ConfigLimits.product([vision.patchSize, vision.patchSize, vision.temporalPatchSize, vision.inChannels, vision.hiddenSize],
                                 keys: "vision_config patch embedding", file: file)
        guard vision.tokensPerSecond.isFinite, vision.ropeTheta.isFinite, vision.ropeTheta > 0 else {
            throw ConfigError.invalidValue(file: file, key: "vision_config.tokens_per_second", reason: "must be finite (and rope_theta positive)")
        }
        guard vision.numHeads > 0, vision.hiddenSize % vision.numHeads == 0, (vision.hiddenSize / vision.numHeads) % 4 == 0 else {
            throw ConfigError.invalidValue(file: file, key: "vision_config.num_heads", reason: "vision head_dim must be a multiple of 4")
        }
        guard vision.outHiddenSize == hidden else {
            throw ConfigError.invalidValue(file: file, key: "vision_config.out_hidden_size", reason: "\(vision.outHiddenSize) differs from the LM hidden size \(hidden)")
        }
        guard vision.depth >= 0, vision.patchSize > 0, vision.spatialMergeSize > 0, vision.temporalPatchSize > 0,
              vision.intermediateSize > 0, vision.inChannels > 0, vision.windowSize >= 0 else {
            throw ConfigError.invalidValue(file: file, key: "vision_config", reason: "sizes must be positive")
        }
        return ModelConfig(
            family: family, text: text, vision: vision,
            imageTokenId: try req("image_token_id", image_token_id, t?.image_token_id),
            videoTokenId: video_token_id ?? t?.video_token_id,
            visionStartTokenId: try req("vision_start_token_id", vision_start_token_id, t?.vision_start_token_id),
            visionEndTokenId: vision_end_token_id ?? t?.vision_end_token_id,
            eosTokenIds: eos, padTokenId: pad, bosTokenId: bos, tieWordEmbeddings: tied)
    }

    /// Every vision size in range before any is multiplied or used to size a tensor.
    static func checkVision(_ v: RawVision, file: String) throws {
        let sizes: [(String, Int?, Int)] = [
            ("depth", v.depth, ConfigLimits.visionDepth), ("hidden_size", v.hidden_size, ConfigLimits.hiddenSize),
            ("embed_dim", v.embed_dim, ConfigLimits.hiddenSize), ("num_heads", v.num_heads, ConfigLimits.heads),
            ("intermediate_size", v.intermediate_size, ConfigLimits.intermediateSize),
            ("out_hidden_size", v.out_hidden_size, ConfigLimits.hiddenSize), ("patch_size", v.patch_size, ConfigLimits.patchSize),
            ("spatial_patch_size", v.spatial_patch_size, ConfigLimits.patchSize),
            ("temporal_patch_size", v.temporal_patch_size, ConfigLimits.smallFactor),
            ("spatial_merge_size", v.spatial_merge_size, ConfigLimits.smallFactor), ("in_chans", v.in_chans, ConfigLimits.smallFactor),
            ("in_channels", v.in_channels, ConfigLimits.smallFactor), ("window_size", v.window_size, ConfigLimits.patchSize * 64),
        ]
        for (key, value, limit) in sizes {
            guard let value else { continue }
            // depth 0 is a tower of no blocks (tests use it); window 0 turns windowing off.
            let lower = key == "depth" || key == "window_size" ? 0 : 1
            try ConfigLimits.check(value, lower...limit, key: "vision_config.\(key)", file: file)
        }
        if let ratio = v.mlp_ratio, !(ratio.isFinite && ratio > 0 && ratio <= Double(ConfigLimits.smallFactor)) {
            throw ConfigError.invalidValue(file: file, key: "vision_config.mlp_ratio", reason: "\(ratio) is not in (0, \(ConfigLimits.smallFactor)]")
        }
        for block in v.fullatt_block_indexes ?? [] {
            try ConfigLimits.check(block, 0...ConfigLimits.visionDepth, key: "vision_config.fullatt_block_indexes", file: file)
        }
    }

    /// The rotary scaling a config asks for, as per-pair divisors (nil: none). Unknown kinds are
    /// refused rather than ignored: a silently unscaled RoPE gives plausible but wrong text.
    static func ropeDivisors(_ rope: RawRope?, family: ModelFamily, headDim: Int, theta: Double, file: String) throws -> [Float]? {
        let kind = rope?.rope_type ?? rope?.type ?? "default"
        switch kind {
        case "default", "mrope":
            return nil
        case "linear":
            guard let factor = rope?.factor, factor > 0 else {
                throw ConfigError.invalidValue(file: file, key: "rope_scaling.factor", reason: "linear scaling needs a positive factor")
            }
            return [Float](repeating: Float(factor), count: headDim / 2)
        case "llama3":
            guard let r = rope, let factor = r.factor, let low = r.low_freq_factor, let high = r.high_freq_factor,
                  let original = r.original_max_position_embeddings, factor > 0, low > 0, high > low, original > 0 else {
                throw ConfigError.invalidValue(file: file, key: "rope_scaling",
                                               reason: "llama3 scaling needs factor, low_freq_factor < high_freq_factor and original_max_position_embeddings")
            }
            return TextConfig.llama3Divisors(headDim: headDim, theta: theta, factor: factor, lowFreqFactor: low,
                                             highFreqFactor: high, originalContext: original)
        default:
            throw ConfigError.invalidValue(file: file, key: "rope_scaling.rope_type", reason: "'\(kind)' is not supported (default, linear, llama3)")
        }
    }
}

/// Settings of the image processor, from `preprocessor_config.json` (v4) or
/// `processor_config.json` → `image_processor` (v5), where min/max pixels may sit in
/// `size.shortest_edge` / `size.longest_edge` (pixel counts despite the names).
public struct ProcessorConfig: Sendable, Equatable {
    public var minPixels: Int = 3136
    public var maxPixels: Int = 1_003_520
    public var patchSize: Int = 14
    public var temporalPatchSize: Int = 2
    public var mergeSize: Int = 2
    public var imageMean: [Float] = [0.48145466, 0.4578275, 0.40821073]
    public var imageStd: [Float] = [0.26862954, 0.26130258, 0.27577711]

    public init() {}

    /// Reads whichever processor file the checkpoint folder has; defaults if none.
    public static func load(directory: String) throws -> ProcessorConfig {
        var cfg = ProcessorConfig()
        for name in ["preprocessor_config.json", "processor_config.json"] {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            guard var obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw ConfigError.unreadable(file: path, reason: "not a JSON object")
            }
            if let inner = obj["image_processor"] as? [String: Any] { obj = inner }
            func int(_ k: String) -> Int? { (obj[k] as? NSNumber)?.intValue }
            if let size = obj["size"] as? [String: Any] {
                if let v = (size["shortest_edge"] as? NSNumber)?.intValue { cfg.minPixels = v }
                if let v = (size["longest_edge"] as? NSNumber)?.intValue { cfg.maxPixels = v }
            }
            if let v = int("min_pixels") { cfg.minPixels = v }
            if let v = int("max_pixels") { cfg.maxPixels = v }
            if let v = int("patch_size") { cfg.patchSize = v }
            if let v = int("temporal_patch_size") { cfg.temporalPatchSize = v }
            if let v = int("merge_size") { cfg.mergeSize = v }
            if let m = obj["image_mean"] as? [NSNumber], m.count == 3 { cfg.imageMean = m.map { $0.floatValue } }
            if let s = obj["image_std"] as? [NSNumber], s.count == 3 { cfg.imageStd = s.map { $0.floatValue } }
            guard cfg.patchSize > 0, cfg.mergeSize > 0, cfg.temporalPatchSize > 0, cfg.minPixels > 0, cfg.maxPixels >= cfg.minPixels else {
                throw ConfigError.invalidValue(file: path, key: "min_pixels/max_pixels/patch_size", reason: "must be positive with min ≤ max")
            }
            // The pixel budget sizes every image's patch tensor: capped before any image is resized.
            try ConfigLimits.check(cfg.maxPixels, 1...ConfigLimits.pixels, key: "max_pixels", file: path)
            try ConfigLimits.check(cfg.patchSize, 1...ConfigLimits.patchSize, key: "patch_size", file: path)
            try ConfigLimits.check(cfg.temporalPatchSize, 1...ConfigLimits.smallFactor, key: "temporal_patch_size", file: path)
            try ConfigLimits.check(cfg.mergeSize, 1...ConfigLimits.smallFactor, key: "merge_size", file: path)
            guard (cfg.imageMean + cfg.imageStd).allSatisfy(\.isFinite), cfg.imageStd.allSatisfy({ $0 != 0 }) else {
                throw ConfigError.invalidValue(file: path, key: "image_mean/image_std", reason: "must be finite with a non-zero std")
            }
            break
        }
        return cfg
    }
}

/// Where a checkpoint's tensor names come from. Every layout is mapped onto the Hub names
/// (`model.*`, `visual.*`, `lm_head.*`) in this one table.
package enum WeightLayout {
    /// (prefix in the file, canonical prefix), first match wins.
    static let prefixes: [(String, String)] = [
        ("model.language_model.", "model."),   // transformers ≥ 4.52 / v5
        ("model.visual.", "visual."),          // transformers ≥ 4.52 / v5
        ("language_model.model.", "model."),   // mlx
        ("language_model.lm_head.", "lm_head."), // mlx
        ("vision_tower.", "visual."),          // mlx
        ("model.", "model."),                  // Hub release
        ("visual.", "visual."),                // Hub release
        ("lm_head.", "lm_head."),
    ]

    package static func canonical(_ name: String) -> String? {
        for (from, to) in prefixes where name.hasPrefix(from) {
            return to + name.dropFirst(from.count)
        }
        return nil
    }
}
