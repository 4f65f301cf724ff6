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

/// A Qwen2-VL or Qwen2.5-VL checkpoint loaded for inference on the CPU.
///
/// `load(path:)` reads a folder as Hugging Face publishes it (config.json, safetensors shards,
/// tokenizer.json, processor config); `generate` takes chat conversations with images and
/// returns the generated tokens and text per conversation.
public final class VLMModel: @unchecked Sendable {
    public let directory: String
    public let config: QwenVLConfig
    public let tokenizer: Tokenizer
    public let processor: ImageProcessor
    public let template: ChatTemplate
    /// Ids that end a row (generation_config.json, config.json and the tokenizer's EOS).
    public let stopTokenIds: Set<Int>
    /// Id written into left padding and into rows that already stopped.
    public let padTokenId: Int
    let vision: VisionTower
    let decoder: Qwen2Decoder

    /// - Parameters:
    ///   - minPixels / maxPixels: override the processor config (CPU budgets)
    ///   - precision: how prefill and vision multiply bf16 weights (default: exact fp32 maths)
    public static func load(path: String, minPixels: Int? = nil, maxPixels: Int? = nil, precision: MatmulPrecision = .float32) throws -> VLMModel {
        try VLMModel(path: path, minPixels: minPixels, maxPixels: maxPixels, precision: precision)
    }

    init(path: String, minPixels: Int?, maxPixels: Int?, precision: MatmulPrecision) throws {
        directory = path
        func file(_ n: String) -> String { (path as NSString).appendingPathComponent(n) }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else {
            throw ConfigError.unreadable(file: path, reason: "checkpoint folder not found")
        }
        config = try QwenVLConfig.load(path: file("config.json"))
        tokenizer = try Tokenizer(path: file("tokenizer.json"))
        var pc = try ProcessorConfig.load(directory: path)
        if let minPixels { pc.minPixels = minPixels }
        if let maxPixels { pc.maxPixels = maxPixels }
        processor = ImageProcessor(config: pc)
        template = ChatTemplate.forCheckpoint(directory: path, config: config, tokenizer: tokenizer)
        guard config.vision.patchSize == pc.patchSize, config.vision.spatialMergeSize == pc.mergeSize,
              config.vision.temporalPatchSize == pc.temporalPatchSize else {
            throw ConfigError.invalidValue(file: file("preprocessor_config.json"), key: "patch_size/merge_size",
                                           reason: "processor and vision_config disagree")
        }

        var stops = Set(config.eosTokenIds)
        var pad = config.padTokenId
        if let d = FileManager.default.contents(atPath: file("generation_config.json")),
           let g = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any] {
            if let e = g["eos_token_id"] as? NSNumber { stops.insert(e.intValue) }
            if let e = g["eos_token_id"] as? [NSNumber] { stops.formUnion(e.map(\.intValue)) }
            if pad == nil, let p = g["pad_token_id"] as? NSNumber { pad = p.intValue }
        }
        if let d = FileManager.default.contents(atPath: file("tokenizer_config.json")),
           let t = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any] {
            if let e = t["eos_token"] as? String, let id = tokenizer.tokenId(e) { stops.insert(id) }
            if pad == nil, let p = t["pad_token"] as? String { pad = tokenizer.tokenId(p) }
        }
        guard !stops.isEmpty else { throw ConfigError.missingKey(file: file("config.json"), key: "eos_token_id") }
        stopTokenIds = stops
        padTokenId = pad ?? stops.min()! // invariant: stops is non-empty (checked above)

        let checkpoint = try SafeTensorsCheckpoint(directory: path)
        let weights = WeightLoader(checkpoint: checkpoint, precision: precision)
        vision = try VisionTower(family: config.family, config: config.vision, weights: weights)
        decoder = try Qwen2Decoder(config: config.text, weights: weights, tied: config.tieWordEmbeddings)
    }

    public var imageTokensPerGridMerge: Int { config.vision.spatialMergeSize }

    // MARK: - Prompt preparation

    /// Renders each conversation through the chat template, tokenizes it, expands each image
    /// placeholder to the image's token count, and left-pads the batch.
    public func prepare(_ conversations: [[ChatMessage]]) throws -> PromptBatch {
        var rows: [[Int]] = []
        var allImages: [PixelImage] = []
        var grids: [ImageGrid] = []
        var values: [Float] = []
        for conv in conversations {
            let text = template.render(conv)
            let images = conv.flatMap(\.images)
            let processed = try processor.process(images)
            var ids: [Int] = []
            var k = 0
            for id in tokenizer.encode(text) {
                if id == config.imageTokenId {
                    guard k < processed.grids.count else {
                        throw ModelInputError.missingImage("the prompt has more image placeholders than images")
                    }
                    ids += Array(repeating: id, count: processed.grids[k].tokens(merge: config.vision.spatialMergeSize))
                    k += 1
                } else {
                    ids.append(id)
                }
            }
            guard k == processed.grids.count else {
                throw ModelInputError.imageTokenMismatch(tokens: k, embeddings: processed.grids.count)
            }
            rows.append(ids)
            allImages += images
            grids += processed.grids
            values += processed.pixelValues
        }
        let s = rows.map(\.count).max() ?? 0
        guard s > 0 else { throw ModelInputError.emptyPrompt }
        let ids = rows.map { Array(repeating: padTokenId, count: s - $0.count) + $0 }
        let mask = rows.map { Array(repeating: 0, count: s - $0.count) + Array(repeating: 1, count: $0.count) }
        let rowLength = 3 * processor.config.temporalPatchSize * processor.config.patchSize * processor.config.patchSize
        return PromptBatch(inputIds: ids, attentionMask: mask, images: ProcessedImages(pixelValues: values, rowLength: rowLength, grids: grids))
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
        let b = batch.inputIds.count, s = batch.length, h = config.text.hiddenSize
        let t0 = Date()
        var imageEmbeds: [Float] = []
        if !batch.images.grids.isEmpty {
            imageEmbeds = vision.forward(batch.images.pixelValues, grids: batch.images.grids, trace: trace?.vision)
        }
        stats.images += batch.images.grids.count
        stats.visionSeconds += Date().timeIntervalSince(t0)
        let t1 = Date()
        let flat = batch.inputIds.flatMap { $0 }
        var x = try decoder.embed(flat)
        let imageRows = imageEmbeds.count / h
        var k = 0
        for (i, id) in flat.enumerated() where id == config.imageTokenId && batch.attentionMask[i / s][i % s] != 0 {
            guard k < imageRows else { throw ModelInputError.imageTokenMismatch(tokens: k + 1, embeddings: imageRows) }
            for j in 0..<h { x[i * h + j] = imageEmbeds[k * h + j] }
            k += 1
        }
        guard k == imageRows else { throw ModelInputError.imageTokenMismatch(tokens: k, embeddings: imageRows) }
        let (pos, next) = try Self.ropeIndex(inputIds: batch.inputIds, mask: batch.attentionMask, grids: batch.images.grids,
                                             imageTokenId: config.imageTokenId, merge: config.vision.spatialMergeSize)
        if let trace {
            trace.inputsEmbeds = x
            trace.positions = pos
            trace.nextPositions = next
        }
        let mask = batch.attentionMask.flatMap { $0.map { $0 != 0 } }
        let hidden = decoder.forward(x, positions: pos, mask: mask, steps: s, cache: cache, trace: trace?.decoder)
        stats.prefillSeconds += Date().timeIntervalSince(t1)
        stats.prefillTokens += mask.filter { $0 }.count
        _ = b
        return (hidden, next)
    }

    /// Logits of the whole prompt (tests): [batch · length, vocab].
    public func promptLogits(_ batch: PromptBatch, trace: PromptTrace? = nil) throws -> [Float] {
        let cache = decoder.makeCache(batch: batch.inputIds.count, capacity: batch.length)
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
        let cache = decoder.makeCache(batch: b, capacity: s + maxNew)
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
                                    promptTokens: batch.attentionMask[r].reduce(0, +))
        }
    }

    /// Renders, tokenizes and generates for each conversation (one batch).
    public func generate(_ conversations: [[ChatMessage]], parameters: GenerationParameters) throws -> [GenerationOutput] {
        var stats = GenerationStats()
        return try generate(prepare(conversations), parameters: parameters, stats: &stats)
    }
}
