import Foundation

/// Why a generation ended.
public enum FinishReason: String, Sendable, Codable {
    /// A stop token (EOS) was produced.
    case stop
    /// The token limit was reached first.
    case length
}

/// What to generate: token budget, sampling and per-row seeds.
public struct GenerationParameters: Sendable {
    public var maxNewTokens: Int
    public var sampling: SamplingParameters
    /// One seed per row; rows without one use 0.
    public var seeds: [UInt64]
    /// Benchmarks turn this off to decode exactly `maxNewTokens` steps.
    public var stopAtEOS: Bool

    public init(maxNewTokens: Int = 256, sampling: SamplingParameters = .init(), seeds: [UInt64] = [], stopAtEOS: Bool = true) {
        self.maxNewTokens = maxNewTokens
        self.sampling = sampling
        self.seeds = seeds
        self.stopAtEOS = stopAtEOS
    }
}

/// The result for one row of a batch.
public struct GenerationOutput: Sendable {
    /// Generated ids only, including the stop token when there was one.
    public var tokenIds: [Int]
    /// Decoded text without special tokens.
    public var text: String
    public var finishReason: FinishReason
    /// Real (unpadded) prompt tokens, image tokens included.
    public var promptTokens: Int
    /// Images removed from this row's prompt because the model is text-only.
    public var imagesDropped: Int = 0
}

/// Wall-clock split of one `generate` call.
public struct GenerationStats: Sendable {
    public var images = 0
    public var visionSeconds = 0.0
    public var prefillSeconds = 0.0
    public var prefillTokens = 0
    public var decodeSeconds = 0.0
    public var decodeSteps = 0
    /// From the start of the call to the first sampled token.
    public var timeToFirstToken = 0.0
    public init() {}
}

/// Token ids of a batch of prompts, left-padded to one length, with their images.
public struct PromptBatch: Sendable {
    public var inputIds: [[Int]]
    public var attentionMask: [[Int]]
    /// All images of all rows, row by row.
    public var images: ProcessedImages
    /// Per row, the images a text-only model dropped from the conversation.
    public var imagesDropped: [Int] = []
    public var length: Int { inputIds.first?.count ?? 0 }
}

/// Everything one prompt pass computed, kept when asked for (tests and debugging).
public final class PromptTrace: @unchecked Sendable {
    public let vision = VisionTrace()
    public let decoder = DecoderTrace()
    public var inputsEmbeds: [Float] = []
    public var positions: [[Int]] = []
    public var nextPositions: [Int] = []
    public var logits: [Float] = []
    public init() {}
}

/// How a checkpoint is loaded: the vision processor's pixel budget, the maths of prefill, the
/// in-memory weight format and the activation path of decode.
public struct LoadOptions: Sendable {
    /// Override the processor config's min_pixels / max_pixels (CPU budgets).
    public var minPixels: Int?
    public var maxPixels: Int?
    /// How prefill and vision multiply bf16 weights (default: exact fp32 maths).
    public var precision: MatmulPrecision
    /// Quantise a safetensors checkpoint's decoder weights at load (`--quantize q8_0`); GGUF files
    /// are used as stored.
    public var quantization: WeightQuantization?
    /// How decode's dot products with quantised weights treat activations: `.float32` (exact, the
    /// goldens' path) or `.ggml` (llama.cpp's quantised activations, faster, not exact).
    public var activations: ActivationMode

    public init(minPixels: Int? = nil, maxPixels: Int? = nil, precision: MatmulPrecision = .float32,
                quantization: WeightQuantization? = nil, activations: ActivationMode = .float32) {
        self.minPixels = minPixels
        self.maxPixels = maxPixels
        self.precision = precision
        self.quantization = quantization
        self.activations = activations
    }
}

/// Why a checkpoint could not be loaded, beyond the readers' own errors.
public enum ModelLoadError: Error, CustomStringConvertible, Equatable {
    /// The path is neither a checkpoint folder nor a GGUF file.
    case notACheckpoint(path: String, reason: String)

    public var description: String {
        switch self {
        case .notACheckpoint(let path, let reason): return "\(path): not a model checkpoint: \(reason)"
        }
    }
}

/// The vision half of a vision-language model: tower, image processor and the prompt's image token.
struct VisionPart: @unchecked Sendable {
    let tower: VisionTower
    let processor: ImageProcessor
    let config: VisionConfig
    let imageTokenId: Int
}

/// A checkpoint loaded for inference on the CPU: a Qwen2-VL / Qwen2.5-VL folder (vision + text),
/// a text-only Llama / Qwen2 folder, or a GGUF file (Llama family, e.g. SmolLM2).
///
/// `load(path:)` reads a folder as Hugging Face publishes it (config.json, safetensors shards,
/// tokenizer.json, processor config, chat template) or a `.gguf` file (metadata, tokenizer, chat
/// template and weights in one); both feed the same decoder. `generate` takes chat conversations
/// and returns the generated tokens and text per conversation. A text-only model cannot see
/// images: their parts are dropped from the prompt and counted in `GenerationOutput.imagesDropped`.
public final class VLMModel: @unchecked Sendable {
    /// The folder or GGUF file the model was loaded from.
    public let path: String
    /// `path` under its older name (checkpoints used to be folders only).
    public var directory: String { path }
    public let config: ModelConfig
    public let tokenizer: Tokenizer
    /// The image processor; nil for text-only models.
    public var processor: ImageProcessor? { vision?.processor }
    public let template: ChatTemplate
    /// Ids that end a row (config, generation_config.json, the tokenizer's EOS and end-of-turn tokens).
    public let stopTokenIds: Set<Int>
    /// Id written into left padding and into rows that already stopped.
    public let padTokenId: Int
    /// Whether the checkpoint was a GGUF file.
    public let isGGUF: Bool
    let vision: VisionPart?
    let decoder: TransformerDecoder

    /// Whether the model takes images (text-only models drop them from prompts).
    public var acceptsImages: Bool { vision != nil }

    /// Loads a checkpoint folder or a `.gguf` file.
    public static func load(path: String, options: LoadOptions = LoadOptions()) throws -> VLMModel {
        try VLMModel(path: path, options: options)
    }

    /// - Parameters:
    ///   - minPixels / maxPixels: override the processor config (CPU budgets)
    ///   - precision: how prefill and vision multiply bf16 weights (default: exact fp32 maths)
    public static func load(path: String, minPixels: Int? = nil, maxPixels: Int? = nil, precision: MatmulPrecision = .float32) throws -> VLMModel {
        try VLMModel(path: path, options: LoadOptions(minPixels: minPixels, maxPixels: maxPixels, precision: precision))
    }

    init(path: String, options: LoadOptions) throws {
        self.path = path
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw ModelLoadError.notACheckpoint(path: path, reason: "no such file or folder")
        }
        // A FIFO, socket or device would block or stream forever when read.
        let kind = info.st_mode & S_IFMT
        guard kind == S_IFREG || kind == S_IFDIR else {
            throw ModelLoadError.notACheckpoint(path: path, reason: "not a regular file or a folder")
        }
        if kind == S_IFREG {
            // A single file: GGUF is the one single-file format the runtime reads.
            let file = try GGUFFile(path: path)
            let config = try ModelConfig(gguf: file)
            let data = try GGUFTokenizerData(metadata: file.metadata)
            let tokenizer = try Tokenizer(gguf: data)
            self.config = config
            self.tokenizer = tokenizer
            template = try ChatTemplate.forGGUF(data)
            var stops = Set(config.eosTokenIds)
            // llama.cpp also ends generation on the chat formats' end-of-turn tokens when the file
            // marks them as control tokens (its "EOG" set); the same list is used here.
            for id in data.controlTokenIDs where Self.endOfTurnTokens.contains(data.tokens[id]) { stops.insert(id) }
            guard let anyStop = stops.min() else { throw ConfigError.missingKey(file: path, key: "tokenizer.ggml.eos_token_id") }
            stopTokenIds = stops
            padTokenId = config.padTokenId ?? config.eosTokenIds.first ?? anyStop
            isGGUF = true
            vision = nil
            let weights = GGUFWeights(file: file, permutedQK: ModelConfig.ggufPermutedQK(file), headDim: config.text.headDim)
            decoder = try TransformerDecoder(config: config.text, weights: weights, tied: config.tieWordEmbeddings,
                                             activations: options.activations)
            return
        }
        func file(_ n: String) -> String { (path as NSString).appendingPathComponent(n) }
        let config = try ModelConfig.load(path: file("config.json"))
        let tokenizer = try Tokenizer(path: file("tokenizer.json"))
        self.config = config
        self.tokenizer = tokenizer
        template = try ChatTemplate.forCheckpoint(directory: path, config: config, tokenizer: tokenizer)

        var stops = Set(config.eosTokenIds)
        var pad = config.padTokenId
        if let d = FileManager.default.contents(atPath: file("generation_config.json")),
           let g = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any] {
            if let e = g["eos_token_id"] as? NSNumber { stops.insert(e.intValue) }
            if let e = g["eos_token_id"] as? [NSNumber] { stops.formUnion(e.map(\.intValue)) }
            if pad == nil, let p = g["pad_token_id"] as? NSNumber { pad = p.intValue }
        }
        if let eos = ChatTemplate.specialTokens(directory: path).eos, let id = tokenizer.tokenId(eos) { stops.insert(id) }
        if pad == nil, let d = FileManager.default.contents(atPath: file("tokenizer_config.json")),
           let t = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any], let p = t["pad_token"] as? String {
            pad = tokenizer.tokenId(p)
        }
        guard let anyStop = stops.min() else { throw ConfigError.missingKey(file: file("config.json"), key: "eos_token_id") }
        stopTokenIds = stops
        padTokenId = pad ?? anyStop
        isGGUF = false

        let checkpoint = try SafeTensorsCheckpoint(directory: path)
        let weights = WeightLoader(checkpoint: checkpoint, precision: options.precision, quantization: options.quantization)
        if let visionConfig = config.vision, let imageToken = config.imageTokenId {
            var pc = try ProcessorConfig.load(directory: path)
            if let minPixels = options.minPixels { pc.minPixels = minPixels }
            if let maxPixels = options.maxPixels { pc.maxPixels = maxPixels }
            guard visionConfig.patchSize == pc.patchSize, visionConfig.spatialMergeSize == pc.mergeSize,
                  visionConfig.temporalPatchSize == pc.temporalPatchSize else {
                throw ConfigError.invalidValue(file: file("preprocessor_config.json"), key: "patch_size/merge_size",
                                               reason: "processor and vision_config disagree")
            }
            vision = VisionPart(tower: try VisionTower(family: config.family, config: visionConfig, weights: weights),
                                processor: ImageProcessor(config: pc), config: visionConfig, imageTokenId: imageToken)
        } else {
            vision = nil
        }
        decoder = try TransformerDecoder(config: config.text, weights: weights, tied: config.tieWordEmbeddings,
                                         activations: options.activations)
    }

    /// The same model (config, tokenizer, chat template, image processor, stop tokens) with other
    /// weights: `weights` holds every tensor the decoder (and the vision tower) reads, f32, under
    /// canonical names and in Hugging Face order (a GGUF's q/k rows already un-permuted). The
    /// trainer samples its rollouts from its current parameters this way.
    package func replacingWeights(_ weights: InMemoryWeights) throws -> VLMModel {
        try VLMModel(copying: self, weights: weights)
    }

    private init(copying base: VLMModel, weights: InMemoryWeights) throws {
        path = base.path
        config = base.config
        tokenizer = base.tokenizer
        template = base.template
        stopTokenIds = base.stopTokenIds
        padTokenId = base.padTokenId
        isGGUF = base.isGGUF
        if let v = base.vision {
            vision = VisionPart(tower: try VisionTower(family: config.family, config: v.config, weights: weights),
                                processor: v.processor, config: v.config, imageTokenId: v.imageTokenId)
        } else {
            vision = nil
        }
        decoder = try TransformerDecoder(config: config.text, weights: weights, tied: config.tieWordEmbeddings || !weights.has("lm_head.weight"),
                                         activations: base.decoder.activations)
    }

    /// Control-token texts that end a turn in common chat formats (llama.cpp's end-of-generation list).
    package static let endOfTurnTokens: Set<String> = [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>", "<|eom_id|>", "<|return|>", "<|end_of_text|>",
    ]

    public var imageTokensPerGridMerge: Int { vision?.config.spatialMergeSize ?? 1 }

    // MARK: - Prompt preparation

    /// Renders each conversation through the chat template, tokenizes it, expands each image
    /// placeholder to the image's token count, and left-pads the batch. A text-only model drops
    /// image parts first and records how many in `PromptBatch.imagesDropped`.
    public func prepare(_ conversations: [[ChatMessage]]) throws -> PromptBatch {
        var rows: [[Int]] = []
        var grids: [ImageGrid] = []
        var values: [Float] = []
        var dropped: [Int] = []
        for original in conversations {
            let conv = vision == nil ? original.map(\.withoutImages) : original
            dropped.append(original.reduce(0) { $0 + $1.images.count } - conv.reduce(0) { $0 + $1.images.count })
            let text = try template.render(conv)
            var encoded = tokenizer.encode(text)
            if tokenizer.addsBOS, let bos = tokenizer.bosTokenId, encoded.first != bos { encoded.insert(bos, at: 0) }
            guard let vision else {
                rows.append(encoded)
                continue
            }
            let processed = try vision.processor.process(conv.flatMap(\.images))
            var ids: [Int] = []
            var k = 0
            for id in encoded {
                if id == vision.imageTokenId {
                    guard k < processed.grids.count else {
                        throw ModelInputError.missingImage("the prompt has more image placeholders than images")
                    }
                    ids += Array(repeating: id, count: processed.grids[k].tokens(merge: vision.config.spatialMergeSize))
                    k += 1
                } else {
                    ids.append(id)
                }
            }
            guard k == processed.grids.count else {
                throw ModelInputError.imageTokenMismatch(tokens: k, embeddings: processed.grids.count)
            }
            rows.append(ids)
            grids += processed.grids
            values += processed.pixelValues
        }
        let s = rows.map(\.count).max() ?? 0
        guard s > 0 else { throw ModelInputError.emptyPrompt }
        let ids = rows.map { Array(repeating: padTokenId, count: s - $0.count) + $0 }
        let mask = rows.map { Array(repeating: 0, count: s - $0.count) + Array(repeating: 1, count: $0.count) }
        let rowLength = vision.map { 3 * $0.processor.config.temporalPatchSize * $0.processor.config.patchSize * $0.processor.config.patchSize } ?? 0
        return PromptBatch(inputIds: ids, attentionMask: mask, images: ProcessedImages(pixelValues: values, rowLength: rowLength, grids: grids),
                           imagesDropped: dropped)
    }

    /// A batch of raw token-id prompts (no chat template), left-padded: benchmarks and tests that
    /// need an exact prompt length or ids.
    public func prepare(tokenIds rows: [[Int]]) throws -> PromptBatch {
        let s = rows.map(\.count).max() ?? 0
        guard s > 0 else { throw ModelInputError.emptyPrompt }
        let v = config.text.vocabSize
        for row in rows { for id in row where id < 0 || id >= v { throw ModelInputError.tokenOutOfRange(id: id, vocabulary: v) } }
        if let vision { for row in rows where row.contains(vision.imageTokenId) {
            throw ModelInputError.missingImage("raw token prompts cannot hold image placeholders")
        } }
        return PromptBatch(inputIds: rows.map { Array(repeating: padTokenId, count: s - $0.count) + $0 },
                           attentionMask: rows.map { Array(repeating: 0, count: s - $0.count) + Array(repeating: 1, count: $0.count) },
                           images: ProcessedImages(pixelValues: [], rowLength: 0, grids: []),
                           imagesDropped: Array(repeating: 0, count: rows.count))
    }

    /// `get_rope_index` for images: [3][batch · length] positions (padding 0) and the next
    /// position per row. Text advances all three axes by one; an image run starting at s holds
    /// t = s and (h, w) = s + (row, col) of its merged grid; text after it resumes at
    /// s + max(h, w) of the merged grid.
    public static func ropeIndex(inputIds: [[Int]], mask: [[Int]], grids: [ImageGrid], imageTokenId: Int, merge: Int) throws -> (positions: [[Int]], next: [Int]) {
        let b = inputIds.count, s = inputIds.first?.count ?? 0
        var pos = Array(repeating: [Int](repeating: 0, count: b * s), count: 3)
        var next = [Int](repeating: 0, count: b)
        var gridIter = grids.makeIterator()
        for r in 0..<b {
            let valid = (0..<s).filter { mask[r][$0] != 0 }
            var cur = 0, i = 0
            var maxPos = -1
            while i < valid.count {
                let slot = r * s + valid[i]
                if inputIds[r][valid[i]] == imageTokenId {
                    guard let g = gridIter.next() else {
                        throw ModelInputError.imageTokenMismatch(tokens: i, embeddings: grids.count)
                    }
                    let hh = g.h / merge, ww = g.w / merge
                    let count = g.t * hh * ww
                    guard i + count <= valid.count else {
                        throw ModelInputError.imageTokenMismatch(tokens: valid.count - i, embeddings: count)
                    }
                    var k = 0
                    for t in 0..<g.t {
                        for y in 0..<hh {
                            for x in 0..<ww {
                                let sl = r * s + valid[i + k]
                                pos[0][sl] = cur + t * 0   // images: t index scaled by 0 seconds
                                pos[1][sl] = cur + y
                                pos[2][sl] = cur + x
                                k += 1
                            }
                        }
                    }
                    maxPos = max(maxPos, cur + max(hh, ww) - 1)
                    i += count
                    cur += max(hh, ww)
                } else {
                    pos[0][slot] = cur; pos[1][slot] = cur; pos[2][slot] = cur
                    maxPos = max(maxPos, cur)
                    cur += 1
                    i += 1
                }
            }
            next[r] = maxPos + 1
        }
        return (pos, next)
    }

    // MARK: - Forward passes

    /// Runs vision and the decoder over a prepared batch, filling `cache`; returns the final-norm
    /// hidden states [batch · length, hidden] and the next position per row.
    func prefill(_ batch: PromptBatch, cache: KVCache, trace: PromptTrace? = nil, stats: inout GenerationStats) throws -> (hidden: [Float], next: [Int]) {
        let s = batch.length, h = config.text.hiddenSize
        if let limit = config.text.maxPositions, cache.capacity > limit {
            throw ModelInputError.contextTooLong(tokens: cache.capacity, limit: limit)
        }
        let t0 = Date()
        var imageEmbeds: [Float] = []
        if !batch.images.grids.isEmpty {
            guard let vision else { throw ModelInputError.missingImage("this model is text-only and cannot take images") }
            imageEmbeds = vision.tower.forward(batch.images.pixelValues, grids: batch.images.grids, trace: trace?.vision)
        }
        stats.images += batch.images.grids.count
        stats.visionSeconds += Date().timeIntervalSince(t0)
        let t1 = Date()
        let flat = batch.inputIds.flatMap { $0 }
        var x = try decoder.embed(flat)
        let imageRows = imageEmbeds.count / h
        var k = 0
        let imageToken = vision?.imageTokenId ?? -1
        for (i, id) in flat.enumerated() where id == imageToken && batch.attentionMask[i / s][i % s] != 0 {
            guard k < imageRows else { throw ModelInputError.imageTokenMismatch(tokens: k + 1, embeddings: imageRows) }
            for j in 0..<h { x[i * h + j] = imageEmbeds[k * h + j] }
            k += 1
        }
        guard k == imageRows else { throw ModelInputError.imageTokenMismatch(tokens: k, embeddings: imageRows) }
        let (pos, next) = try Self.ropeIndex(inputIds: batch.inputIds, mask: batch.attentionMask, grids: batch.images.grids,
                                             imageTokenId: imageToken, merge: vision?.config.spatialMergeSize ?? 1)
        if let trace {
            trace.inputsEmbeds = x
            trace.positions = pos
            trace.nextPositions = next
        }
        let mask = batch.attentionMask.flatMap { $0.map { $0 != 0 } }
        let hidden = decoder.forward(x, positions: pos, mask: mask, steps: s, cache: cache, trace: trace?.decoder)
        stats.prefillSeconds += Date().timeIntervalSince(t1)
        stats.prefillTokens += mask.filter { $0 }.count
        return (hidden, next)
    }

    /// Logits of the whole prompt (tests): [batch · length, vocab].
    public func promptLogits(_ batch: PromptBatch, trace: PromptTrace? = nil) throws -> [Float] {
        let capacity = try decoder.checkCache(batch: batch.inputIds.count, prompt: batch.length, generate: 0,
                                              maxPositions: config.text.maxPositions)
        let cache = decoder.makeCache(batch: batch.inputIds.count, capacity: capacity)
        var stats = GenerationStats()
        let (hidden, _) = try prefill(batch, cache: cache, trace: trace, stats: &stats)
        return decoder.logits(hidden, rows: batch.inputIds.count * batch.length)
    }

    // MARK: - Generation

    /// Generates for a prepared batch; `onStep` sees each step's logits (tests).
    public func generate(_ batch: PromptBatch, parameters: GenerationParameters, stats: inout GenerationStats,
                         onStep: (([Float]) -> Void)? = nil) throws -> [GenerationOutput] {
        let start = Date()
        let b = batch.inputIds.count, s = batch.length, v = config.text.vocabSize, h = config.text.hiddenSize
        let maxNew = max(0, parameters.maxNewTokens)
        let capacity = try decoder.checkCache(batch: b, prompt: s, generate: maxNew, maxPositions: config.text.maxPositions)
        let cache = decoder.makeCache(batch: b, capacity: capacity)
        let (hidden, next) = try prefill(batch, cache: cache, stats: &stats)
        var last = [Float](repeating: 0, count: b * h)
        for r in 0..<b { for j in 0..<h { last[r * h + j] = hidden[(r * s + s - 1) * h + j] } }
        var logits = decoder.logits(last, rows: b)
        var samplers = (0..<b).map { r in Sampler(parameters: parameters.sampling, seed: r < parameters.seeds.count ? parameters.seeds[r] : 0) }
        var histories = (0..<b).map { r in zip(batch.inputIds[r], batch.attentionMask[r]).filter { $0.1 != 0 }.map(\.0) }
        var generated = Array(repeating: [Int](), count: b)
        var finished = Array(repeating: false, count: b)
        let t2 = Date()
        for step in 0..<maxNew {
            onStep?(logits)
            var tokens = [Int](repeating: padTokenId, count: b)
            for r in 0..<b where !finished[r] {
                let t = logits.withUnsafeBufferPointer { lp in
                    samplers[r].next(logits: UnsafeBufferPointer(rebasing: lp[(r * v)..<((r + 1) * v)]), history: histories[r])
                }
                tokens[r] = t
                generated[r].append(t)
                histories[r].append(t)
                if parameters.stopAtEOS && stopTokenIds.contains(t) { finished[r] = true }
            }
            if step == 0 { stats.timeToFirstToken = Date().timeIntervalSince(start) }
            if finished.allSatisfy({ $0 }) || step == maxNew - 1 { break }
            let x = try decoder.embed(tokens)
            let p = (0..<b).map { next[$0] + step }
            let positions = [p, p, p]
            let hid = decoder.forward(x, positions: positions, mask: Array(repeating: true, count: b), steps: 1, cache: cache)
            logits = decoder.logits(hid, rows: b)
            stats.decodeSteps += 1
        }
        stats.decodeSeconds += Date().timeIntervalSince(t2)
        return (0..<b).map { r in
            let ids = generated[r]
            let reason: FinishReason = ids.last.map { stopTokenIds.contains($0) } == true ? .stop : .length
            return GenerationOutput(tokenIds: ids, text: tokenizer.decode(ids, skipSpecialTokens: true), finishReason: reason,
                                    promptTokens: batch.attentionMask[r].reduce(0, +),
                                    imagesDropped: r < batch.imagesDropped.count ? batch.imagesDropped[r] : 0)
        }
    }

    /// Renders, tokenizes and generates for each conversation (one batch).
    public func generate(_ conversations: [[ChatMessage]], parameters: GenerationParameters) throws -> [GenerationOutput] {
        var stats = GenerationStats()
        return try generate(prepare(conversations), parameters: parameters, stats: &stats)
    }
}
