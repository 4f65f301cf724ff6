import Foundation

/// One sequence being generated on its own cache, for continuous batching (`assay serve`):
/// sequences start and stop independently, and each decode step advances whichever are alive.
///
/// `VLMModel.start` prefills a prompt once (its images are encoded once) and returns one
/// sequence per requested sample, each on its own copy of the prompt's cache. The caller samples
/// from `logits`, then hands the sampled tokens to `VLMModel.step`, which appends them and
/// computes the next logits of every sequence in one batched pass. A sequence's numbers do not
/// depend on which others share its steps: greedy output equals `generate` on the same prompt.
public final class DecodingSequence: @unchecked Sendable {
    let cache: KVCache
    /// Position of the next token to feed (the prompt's next position plus tokens fed since).
    var nextPosition: Int
    /// Real prompt tokens, image tokens included.
    public let promptTokens: Int
    /// The prompt's token ids (the sampler's history for a repetition penalty).
    public let promptIds: [Int]
    /// Logits [vocab] of the next token.
    public internal(set) var logits: [Float]
    /// Tokens this sequence can still take before its cache is full.
    public var remainingCapacity: Int { cache.capacity - cache.length }

    init(cache: KVCache, nextPosition: Int, promptIds: [Int], logits: [Float]) {
        self.cache = cache
        self.nextPosition = nextPosition
        self.promptTokens = promptIds.count
        self.promptIds = promptIds
        self.logits = logits
    }
}

/// Why `VLMModel.start` or `step` could not run.
public enum SequenceDecodingError: Error, CustomStringConvertible, Equatable {
    /// `start` takes one prompt row at a time.
    case notOnePrompt(rows: Int)
    /// A sequence was stepped past the tokens its cache was sized for.
    case cacheFull(capacity: Int)
    /// `step` got a different number of tokens than sequences.
    case tokenCountMismatch(sequences: Int, tokens: Int)

    public var description: String {
        switch self {
        case .notOnePrompt(let rows): return "a sequence starts from one prompt, not \(rows)"
        case .cacheFull(let capacity): return "the sequence's cache is full (\(capacity) positions)"
        case .tokenCountMismatch(let s, let t): return "\(s) sequences but \(t) tokens to feed"
        }
    }
}

extension VLMModel {
    /// The model's context length, when its config states one.
    public var contextLength: Int? { config.text.maxPositions }

    /// Prefills one prepared prompt (`prepare([conversation])`) and returns `count` sequences
    /// that continue from it, each with room for `maxNewTokens` generated tokens. Vision and
    /// prefill run once whatever `count` is; the caches are copied afterwards.
    public func start(_ prompt: PromptBatch, count: Int, maxNewTokens: Int, stats: inout GenerationStats) throws -> [DecodingSequence] {
        guard prompt.inputIds.count == 1 else { throw SequenceDecodingError.notOnePrompt(rows: prompt.inputIds.count) }
        let s = prompt.length, h = config.text.hiddenSize
        // The last sampled token is never fed, so `maxNewTokens - 1` slots would do; `generate`
        // sizes its cache for `maxNewTokens`, and the same size keeps the same limit check.
        let cache = decoder.makeCache(batch: 1, capacity: s + max(0, maxNewTokens))
        let (hidden, next) = try prefill(prompt, cache: cache, stats: &stats)
        let last = Array(hidden[((s - 1) * h)..<(s * h)])
        let logits = decoder.logits(last, rows: 1)
        let ids = zip(prompt.inputIds[0], prompt.attentionMask[0]).filter { $0.1 != 0 }.map(\.0)
        let caches = [cache] + (1..<max(1, count)).map { _ in cache.copy() }
        return caches.map { DecodingSequence(cache: $0, nextPosition: next[0], promptIds: ids, logits: logits) }
    }

    /// Feeds `tokens[i]` to `sequences[i]` and computes every sequence's next logits in one pass.
    ///
    /// `independentRows` (the default) keeps every row on the decode kernels, so a sequence's
    /// numbers do not depend on which others share the step; without it, eight or more rows take
    /// the GEMM (three times the arithmetic rate here), whose blocking may round a row differently
    /// with another batch — still deterministic for the same batch, which is what a seeded
    /// training run needs.
    public func step(_ sequences: [DecodingSequence], tokens: [Int], stats: inout GenerationStats, independentRows: Bool = true) throws {
        guard sequences.count == tokens.count else {
            throw SequenceDecodingError.tokenCountMismatch(sequences: sequences.count, tokens: tokens.count)
        }
        guard !sequences.isEmpty else { return }
        for seq in sequences where seq.remainingCapacity < 1 { throw SequenceDecodingError.cacheFull(capacity: seq.cache.capacity) }
        let t0 = Date()
        let v = config.text.vocabSize
        let x = try decoder.embed(tokens)
        let p = sequences.map(\.nextPosition)
        let hidden = decoder.decodeStep(x, positions: [p, p, p], caches: sequences.map(\.cache), rowPath: independentRows)
        let logits = decoder.logits(hidden, rows: sequences.count, rowPath: independentRows)
        for (r, seq) in sequences.enumerated() {
            seq.logits = Array(logits[(r * v)..<((r + 1) * v)])
            seq.nextPosition += 1
        }
        stats.decodeSteps += 1
        stats.decodeSeconds += Date().timeIntervalSince(t0)
    }
}
