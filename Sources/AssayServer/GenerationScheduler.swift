import AssayCore
import Foundation
import VLMRuntime

/// One chat completion to run: a conversation (images already decoded), `samples` choices, the
/// sampling settings and what to report per token.
public struct CompletionJob: Sendable {
    public var conversation: [ChatMessage]
    /// `n`: choices drawn from one prefill.
    public var samples: Int
    /// Most tokens per choice; nil takes what the context leaves, up to the scheduler's cap.
    public var maxTokens: Int?
    public var sampling: SamplingParameters
    /// One seed per choice.
    public var seeds: [UInt64]
    /// Strings that end a choice; they are not part of its text.
    public var stop: [String]
    /// Alternatives to report per token (`top_logprobs`); nil reports no log-probabilities.
    public var topLogprobs: Int?

    public init(conversation: [ChatMessage], samples: Int = 1, maxTokens: Int? = nil, sampling: SamplingParameters = .init(),
                seeds: [UInt64] = [0], stop: [String] = [], topLogprobs: Int? = nil) {
        self.conversation = conversation
        self.samples = samples
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.seeds = seeds
        self.stop = stop
        self.topLogprobs = topLogprobs
    }
}

/// The log-probability of one generated token and, when asked, of its strongest alternatives.
public struct TokenLogprob: Sendable, Hashable {
    public var token: String
    public var logprob: Double
    public var top: [Alternative]

    /// One alternative of a token position.
    public struct Alternative: Sendable, Hashable {
        public var token: String
        public var logprob: Double
    }
}

/// What a running completion reports, in order: `started` (or `failed`), then `delta`s and one
/// `finished` per choice.
public enum CompletionEvent: Sendable {
    case started(promptTokens: Int)
    /// New text of one choice (possibly empty when only log-probabilities arrived).
    case delta(choice: Int, text: String, logprobs: [TokenLogprob])
    case finished(choice: Int, reason: FinishReason, completionTokens: Int)
    /// The job could not start: its prompt was refused by the model (a client error).
    case failed(CompletionError)
}

/// Why a job was refused or could not run.
public enum CompletionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// More jobs are waiting than `maxQueue` allows.
    case queueFull(waiting: Int)
    /// The server is shutting down and takes no new work.
    case shuttingDown
    /// Prompt plus requested tokens exceed the model's context.
    case contextExceeded(promptTokens: Int, maxTokens: Int, context: Int)
    /// The prompt alone is longer than the server allows.
    case promptTooLong(promptTokens: Int, limit: Int)
    /// The model could not take the prompt (an image it cannot process, an empty prompt…).
    case invalidPrompt(String)
    /// The runtime failed while generating.
    case runtime(String)

    public var description: String {
        switch self {
        case .queueFull(let n): return "the server is busy: \(n) requests are already waiting"
        case .shuttingDown: return "the server is shutting down"
        case .contextExceeded(let p, let m, let c):
            return "this model's maximum context length is \(c) tokens; the prompt has \(p) tokens and max_tokens asks for \(m) more"
        case .promptTooLong(let p, let l): return "the prompt has \(p) tokens, more than this server's limit of \(l)"
        case .invalidPrompt(let m): return "the prompt could not be prepared: \(m)"
        case .runtime(let m): return "generation failed: \(m)"
        }
    }
}

/// A submitted job: its events, and a way to stop it (the client went away).
public final class CompletionHandle: Sendable {
    public let events: AsyncStream<CompletionEvent>
    let job: RunningJob

    init(events: AsyncStream<CompletionEvent>, job: RunningJob) {
        self.events = events
        self.job = job
    }

    /// Frees the job's slots at the next decode step (or drops it from the queue).
    public func cancel() { job.cancel() }
}

/// Figures the scheduler keeps for `/metrics`.
public struct SchedulerCounters: Sendable, Hashable {
    public var queueDepth = 0
    /// Sequences in the running batch.
    public var activeSequences = 0
    public var promptTokens = 0
    public var completionTokens = 0
    public var decodeSteps = 0
    /// Decode steps by batch size (sequences stepped together).
    public var stepsByBatchSize: [Int: Int] = [:]
    public var prefills = 0
}

/// Continuous batching over one `VLMModel`: jobs wait in a bounded queue, join the running batch
/// between two decode steps when there is room (`maxBatch` sequences), and leave it as soon as
/// they finish or are cancelled. One thread runs the model, since the runtime already spreads
/// each step over every core; everything else talks to it through the queue and the events.
public final class GenerationScheduler: @unchecked Sendable {
    public let model: VLMModel
    public let maxBatch: Int
    public let maxQueue: Int
    /// The cap on `max_tokens` (and the default when a request names none).
    public let maxTokensLimit: Int
    /// Longest prompt accepted, in tokens (image tokens included).
    public let maxPromptTokens: Int

    // Shared between the model thread and submitters; guarded by `condition`.
    private let condition = NSCondition()
    private var pending: [RunningJob] = []
    private var stopping = false
    private var finishedThread = false
    private var counters = SchedulerCounters()

    // Owned by the model thread.
    private var running: [RunningSequence] = []

    public init(model: VLMModel, maxBatch: Int = 8, maxQueue: Int = 64, maxTokensLimit: Int = 4096, maxPromptTokens: Int? = nil) {
        self.model = model
        self.maxBatch = max(1, maxBatch)
        self.maxQueue = max(0, maxQueue)
        self.maxTokensLimit = max(1, maxTokensLimit)
        self.maxPromptTokens = maxPromptTokens ?? model.contextLength ?? 32_768
        // The thread holds the scheduler until `drain` lets it end.
        let thread = Thread { self.loop() }
        thread.name = "assay.serve.scheduler"
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Queues a job. Throws `queueFull` or `shuttingDown` instead of waiting.
    public func submit(_ job: CompletionJob) throws -> CompletionHandle {
        let (stream, continuation) = AsyncStream<CompletionEvent>.makeStream()
        let running = RunningJob(job: job, continuation: continuation, signal: { [weak self] in self?.wake() })
        condition.lock()
        defer { condition.unlock() }
        if stopping { throw CompletionError.shuttingDown }
        if pending.count >= maxQueue { throw CompletionError.queueFull(waiting: pending.count) }
        pending.append(running)
        counters.queueDepth = pending.count
        condition.signal()
        return CompletionHandle(events: stream, job: running)
    }

    public var snapshot: SchedulerCounters {
        condition.lock()
        defer { condition.unlock() }
        return counters
    }

    /// Stops taking jobs, lets every queued and running job finish, then stops the model thread.
    public func drain() async {
        beginStopping()
        while !threadFinished { try? await Task.sleep(nanoseconds: 20_000_000) }
    }

    private func beginStopping() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private var threadFinished: Bool {
        condition.lock()
        defer { condition.unlock() }
        return finishedThread
    }

    private func wake() {
        condition.lock()
        condition.signal()
        condition.unlock()
    }

    // MARK: - The model thread

    private func loop() {
        while true {
            condition.lock()
            while pending.isEmpty && running.isEmpty && !stopping { condition.wait() }
            if pending.isEmpty && running.isEmpty && stopping {
                finishedThread = true
                condition.unlock()
                return
            }
            let admitted = admit()
            condition.unlock()
            for job in admitted { begin(job) }
            dropFinished()
            if !running.isEmpty { decodeStep() }
        }
    }

    /// Jobs that fit beside the running sequences (called with the lock held). A job with more
    /// choices than `maxBatch` still runs, alone, rather than never.
    private func admit() -> [RunningJob] {
        var free = maxBatch - running.count
        var admitted: [RunningJob] = []
        while let next = pending.first {
            if next.isCancelled {
                pending.removeFirst()
                next.finishAll()
                continue
            }
            let need = max(1, next.job.samples)
            guard need <= free || (running.isEmpty && admitted.isEmpty) else { break }
            admitted.append(pending.removeFirst())
            free -= need
        }
        counters.queueDepth = pending.count
        return admitted
    }

    /// Prepares and prefills a job, then samples each choice's first token.
    private func begin(_ job: RunningJob) {
        if job.isCancelled { return job.finishAll() }
        let spec = job.job
        let prompt: PromptBatch
        do {
            prompt = try model.prepare([spec.conversation])
        } catch {
            return job.fail(.invalidPrompt("\(error)"))
        }
        let promptTokens = prompt.attentionMask.first?.reduce(0, +) ?? 0
        if promptTokens > maxPromptTokens { return job.fail(.promptTooLong(promptTokens: promptTokens, limit: maxPromptTokens)) }
        let context = model.contextLength
        let room = context.map { $0 - promptTokens } ?? maxTokensLimit
        let maxTokens = spec.maxTokens ?? min(maxTokensLimit, room)
        if let context, maxTokens > room || room < 1 {
            return job.fail(.contextExceeded(promptTokens: promptTokens, maxTokens: maxTokens, context: context))
        }
        var stats = GenerationStats()
        let sequences: [DecodingSequence]
        do {
            sequences = try model.start(prompt, count: max(1, spec.samples), maxNewTokens: maxTokens, stats: &stats)
        } catch let error as ModelInputError {
            return job.fail(.invalidPrompt("\(error)"))
        } catch {
            return job.fail(.runtime("\(error)"))
        }
        condition.lock()
        counters.prefills += 1
        counters.promptTokens += promptTokens
        condition.unlock()
        job.emit(.started(promptTokens: promptTokens))
        job.remaining = sequences.count
        for (i, seq) in sequences.enumerated() {
            let seed = i < spec.seeds.count ? spec.seeds[i] : (spec.seeds.last ?? 0) &+ UInt64(i)
            let r = RunningSequence(job: job, choice: i, sequence: seq, sampler: Sampler(parameters: spec.sampling, seed: seed),
                                    maxTokens: maxTokens)
            running.append(r)
            sample(r)
        }
    }

    /// Removes finished and cancelled sequences from the batch.
    private func dropFinished() {
        running.removeAll { seq in
            if seq.done { return true }
            if seq.job.isCancelled {
                seq.job.choiceEnded()
                return true
            }
            return false
        }
        condition.lock()
        counters.activeSequences = running.count
        condition.unlock()
    }

    private func decodeStep() {
        let batch = running
        var stats = GenerationStats()
        do {
            try model.step(batch.map(\.sequence), tokens: batch.map { $0.generated.last ?? 0 }, stats: &stats)
        } catch {
            for seq in batch {
                seq.done = true
                seq.job.fail(.runtime("\(error)"))
            }
            running.removeAll()
            return
        }
        condition.lock()
        counters.decodeSteps += 1
        counters.stepsByBatchSize[batch.count, default: 0] += 1
        condition.unlock()
        for seq in batch where !seq.job.isCancelled { sample(seq) }
        dropFinished()
    }

    /// Draws the next token of one choice, as `VLMModel.generate` does, and reports it.
    private func sample(_ seq: RunningSequence) {
        let logits = seq.sequence.logits
        let token = logits.withUnsafeBufferPointer { seq.sampler.next(logits: $0, history: seq.history) }
        seq.generated.append(token)
        seq.history.append(token)
        if let k = seq.job.job.topLogprobs { seq.pendingLogprobs.append(logprob(of: token, in: logits, top: k)) }
        condition.lock()
        counters.completionTokens += 1
        condition.unlock()
        var reason: FinishReason?
        if model.stopTokenIds.contains(token) {
            reason = .stop
        } else if seq.generated.count >= seq.maxTokens || seq.sequence.remainingCapacity < 1 {
            reason = .length
        }
        var text = model.tokenizer.decode(seq.generated, skipSpecialTokens: true)
        if let cut = Self.firstStop(in: text, stops: seq.job.job.stop) {
            text = String(text[..<cut])
            reason = .stop
        }
        let visible = reason == nil ? Self.safePrefix(text, stops: seq.job.job.stop) : text
        var delta = ""
        if visible.count > seq.emitted.count, visible.hasPrefix(seq.emitted) {
            delta = String(visible.dropFirst(seq.emitted.count))
            seq.emitted = visible
        }
        if !delta.isEmpty || (reason != nil && !seq.pendingLogprobs.isEmpty) {
            seq.job.emit(.delta(choice: seq.choice, text: delta, logprobs: seq.pendingLogprobs))
            seq.pendingLogprobs = []
        }
        if let reason {
            seq.done = true
            seq.job.emit(.finished(choice: seq.choice, reason: reason, completionTokens: seq.generated.count))
            seq.job.choiceEnded()
        }
    }

    /// Where the first stop string starts in `text`.
    static func firstStop(in text: String, stops: [String]) -> String.Index? {
        var best: String.Index?
        for stop in stops where !stop.isEmpty {
            if let r = text.range(of: stop), best.map({ r.lowerBound < $0 }) ?? true { best = r.lowerBound }
        }
        return best
    }

    /// `text` without a tail that may still become a stop string or is an incomplete character
    /// (decoding a token that splits a UTF-8 sequence gives U+FFFD until the rest arrives).
    static func safePrefix(_ text: String, stops: [String]) -> String {
        var end = text.endIndex
        while end > text.startIndex, text[text.index(before: end)] == "\u{FFFD}" { end = text.index(before: end) }
        var kept = String(text[..<end])
        for stop in stops where !stop.isEmpty {
            var n = min(stop.count - 1, kept.count)
            while n > 0 {
                if kept.hasSuffix(String(stop.prefix(n))) {
                    kept = String(kept.dropLast(n))
                    break
                }
                n -= 1
            }
        }
        return kept
    }

    /// Log-softmax of `token` over the raw logits, and the `top` strongest alternatives.
    private func logprob(of token: Int, in logits: [Float], top: Int) -> TokenLogprob {
        var mx = -Float.infinity
        for v in logits where v > mx { mx = v }
        var sum = 0.0
        for v in logits { sum += exp(Double(v - mx)) }
        let lse = Double(mx) + log(sum)
        func text(_ id: Int) -> String { model.tokenizer.decode([id], skipSpecialTokens: false) }
        var alternatives: [TokenLogprob.Alternative] = []
        if top > 0 {
            // Partial selection: keep the best `top` ids in a small sorted list.
            var best: [(Int, Float)] = []
            for (i, v) in logits.enumerated() where best.count < top || v > best[best.count - 1].1 {
                let at = best.firstIndex { v > $0.1 } ?? best.count
                best.insert((i, v), at: at)
                if best.count > top { best.removeLast() }
            }
            alternatives = best.map { .init(token: text($0.0), logprob: Double($0.1) - lse) }
        }
        let value = token < logits.count ? Double(logits[token]) - lse : -Double.infinity
        return TokenLogprob(token: text(token), logprob: value, top: alternatives)
    }
}

/// A job inside the scheduler: its events and its cancellation flag.
final class RunningJob: @unchecked Sendable {
    let job: CompletionJob
    private let continuation: AsyncStream<CompletionEvent>.Continuation
    private let state = Locked(false)
    private let signal: @Sendable () -> Void
    /// Choices still running (model thread only).
    var remaining = 0

    init(job: CompletionJob, continuation: AsyncStream<CompletionEvent>.Continuation, signal: @escaping @Sendable () -> Void) {
        self.job = job
        self.continuation = continuation
        self.signal = signal
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason { self?.cancel() }
        }
    }

    var isCancelled: Bool { state.withLock { $0 } }

    func cancel() {
        let first = state.withLock { cancelled -> Bool in
            defer { cancelled = true }
            return !cancelled
        }
        if first { signal() }
    }

    func emit(_ event: CompletionEvent) { continuation.yield(event) }

    func fail(_ error: CompletionError) {
        continuation.yield(.failed(error))
        continuation.finish()
    }

    func finishAll() { continuation.finish() }

    func choiceEnded() {
        remaining -= 1
        if remaining <= 0 { continuation.finish() }
    }
}

/// One choice in the running batch (model thread only).
final class RunningSequence {
    let job: RunningJob
    let choice: Int
    let sequence: DecodingSequence
    var sampler: Sampler
    let maxTokens: Int
    var history: [Int]
    var generated: [Int] = []
    /// Text already sent.
    var emitted = ""
    var pendingLogprobs: [TokenLogprob] = []
    var done = false

    init(job: RunningJob, choice: Int, sequence: DecodingSequence, sampler: Sampler, maxTokens: Int) {
        self.job = job
        self.choice = choice
        self.sequence = sequence
        self.sampler = sampler
        self.maxTokens = maxTokens
        history = sequence.promptIds
    }
}
