import Foundation
import VLMRuntime

/// Why a GRPO batch file cannot be used; each case names the field (and completion) at fault.
public enum GRPOBatchError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case field(String, String)
    case completion(Int, field: String, String)

    public var description: String {
        switch self {
        case .unreadable(let f, let r): return "\(f): \(r)"
        case .field(let name, let r): return "batch field \"\(name)\": \(r)"
        case .completion(let i, let name, let r): return "batch field \"\(name)\", completion \(i): \(r)"
        }
    }
}

/// A JSON number (JSONSerialization's booleans are NSNumbers too: their objCType is "c").
func jsonNumber(_ v: Any) -> NSNumber? {
    guard let n = v as? NSNumber, n.objCType.pointee != CChar(UInt8(ascii: "c")) else { return nil }
    return n
}

/// One GRPO step's input, as `assay train grpo-step --batch BATCH.json` reads it.
public struct GRPOBatch: Sendable {
    public enum Completion: Sendable { case ids([Int]), text(String) }
    public struct Optimizer: Sendable {
        public var lr = 1e-6, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.01
        public var maxGradNorm: Double?
    }

    /// The prompt, OpenAI-style: `{"role", "content": "text" | [{"type": "text", "text"}, {"type": "image", "image": PATH}]}`.
    public var messages: [ChatMessage]
    public var completions: [Completion]
    public var rewards: [Float]
    public var settings: GRPOSettings
    public var oldLogprobs: [[Float]]?
    public var refLogprobs: [[Float]]?
    public var optimizer: Optimizer

    static let keys: Set<String> = ["messages", "completions", "rewards", "temperature", "advantage", "policy_loss", "aggregation", "beta",
                                    "epsilon_low", "epsilon_high", "dual_clip", "max_completion_length", "old_logprobs", "ref_logprobs",
                                    "optimizer"]

    /// Parses and checks a batch; relative image paths are read from `baseDirectory`.
    public static func parse(_ data: Data, file: String, baseDirectory: String) throws -> GRPOBatch {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw GRPOBatchError.unreadable(file: file, reason: "not JSON: \(error.localizedDescription)")
        }
        guard let root = object as? [String: Any] else { throw GRPOBatchError.unreadable(file: file, reason: "the top level is not an object") }
        if let unknown = root.keys.filter({ !keys.contains($0) }).sorted().first {
            throw GRPOBatchError.field(unknown, "unknown key (expected one of \(keys.sorted().joined(separator: ", ")))")
        }
        func number(_ key: String, _ value: Any?) throws -> Double? {
            guard let value else { return nil }
            guard let n = jsonNumber(value), n.doubleValue.isFinite else {
                throw GRPOBatchError.field(key, "expected a finite number, got \(value)")
            }
            return n.doubleValue
        }
        func choice<T: RawRepresentable & CaseIterable>(_ key: String, _ type: T.Type) throws -> T? where T.RawValue == String {
            guard let v = root[key] else { return nil }
            guard let s = v as? String, let c = T(rawValue: s) else {
                throw GRPOBatchError.field(key, "\(v) is not one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return c
        }

        // Messages.
        guard let rawMessages = root["messages"] as? [[String: Any]], !rawMessages.isEmpty else {
            throw GRPOBatchError.field("messages", "expected a non-empty list of {role, content} objects")
        }
        var messages: [ChatMessage] = []
        for (mi, m) in rawMessages.enumerated() {
            guard let role = m["role"] as? String else { throw GRPOBatchError.field("messages[\(mi)].role", "missing or not a string") }
            var parts: [ChatMessage.Part] = []
            if let text = m["content"] as? String {
                parts = [.text(text)]
            } else if let list = m["content"] as? [[String: Any]] {
                for (pi, part) in list.enumerated() {
                    let where_ = "messages[\(mi)].content[\(pi)]"
                    switch part["type"] as? String {
                    case "text":
                        guard let t = part["text"] as? String else { throw GRPOBatchError.field(where_, "a text part needs \"text\"") }
                        parts.append(.text(t))
                    case "image":
                        guard let p = part["image"] as? String, !p.isEmpty else { throw GRPOBatchError.field(where_, "an image part needs \"image\": PATH") }
                        let path = p.hasPrefix("/") ? p : (baseDirectory as NSString).appendingPathComponent(p)
                        do { parts.append(.image(try ImageDecoder.loadRGB(path: path))) } catch {
                            throw GRPOBatchError.field(where_, "image \(path) does not decode: \(error)")
                        }
                    default:
                        throw GRPOBatchError.field(where_, "type must be \"text\" or \"image\"")
                    }
                }
            } else {
                throw GRPOBatchError.field("messages[\(mi)].content", "expected a string or a list of parts")
            }
            messages.append(ChatMessage(role: role, parts: parts))
        }

        // Completions and rewards.
        guard let rawCompletions = root["completions"] as? [Any], !rawCompletions.isEmpty else {
            throw GRPOBatchError.field("completions", "expected a non-empty list of {\"ids\": [...]} or {\"text\": \"...\"}")
        }
        var completions: [Completion] = []
        for (i, c) in rawCompletions.enumerated() {
            guard let obj = c as? [String: Any] else { throw GRPOBatchError.completion(i, field: "completions", "not an object") }
            if let ids = obj["ids"] {
                guard let list = ids as? [Any], !list.isEmpty else { throw GRPOBatchError.completion(i, field: "completions", "\"ids\" must be a non-empty list") }
                var out: [Int] = []
                for v in list {
                    guard let n = jsonNumber(v), n.doubleValue == n.doubleValue.rounded(),
                          abs(n.doubleValue) < 1e15 else {
                        throw GRPOBatchError.completion(i, field: "completions", "\"ids\" holds \(v), not an integer token id")
                    }
                    out.append(n.intValue)
                }
                completions.append(.ids(out))
            } else if let text = obj["text"] as? String, !text.isEmpty {
                completions.append(.text(text))
            } else {
                throw GRPOBatchError.completion(i, field: "completions", "needs \"ids\" or a non-empty \"text\"")
            }
        }
        guard let rawRewards = root["rewards"] as? [Any] else { throw GRPOBatchError.field("rewards", "expected a list of numbers") }
        guard rawRewards.count == completions.count else {
            throw GRPOBatchError.field("rewards", "\(rawRewards.count) rewards for \(completions.count) completions")
        }
        let rewards = try rawRewards.enumerated().map { i, v -> Float in
            guard let r = try? number("rewards", v) else { throw GRPOBatchError.completion(i, field: "rewards", "\(v) is not a finite number") }
            return Float(r ?? 0)
        }

        var settings = GRPOSettings()
        if let t = try number("temperature", root["temperature"]) {
            guard t > 0 else { throw GRPOBatchError.field("temperature", "must be positive") }
            settings.temperature = Float(t)
        }
        if let a = try choice("advantage", AdvantageKind.self) { settings.advantage = a }
        if let p = try choice("policy_loss", PolicyLossKind.self) { settings.policyLoss = p }
        if let a = try choice("aggregation", LossAggregation.self) { settings.aggregation = a }
        if let b = try number("beta", root["beta"]) {
            guard b >= 0 else { throw GRPOBatchError.field("beta", "must be ≥ 0") }
            settings.beta = b
        }
        if let e = try number("epsilon_low", root["epsilon_low"]) {
            guard e >= 0, e < 1 else { throw GRPOBatchError.field("epsilon_low", "must be in [0, 1)") }
            settings.epsilonLow = e
        }
        if let e = try number("epsilon_high", root["epsilon_high"]) {
            guard e >= 0 else { throw GRPOBatchError.field("epsilon_high", "must be ≥ 0") }
            settings.epsilonHigh = e
        }
        if let c = try number("dual_clip", root["dual_clip"]) {
            guard c > 1 else { throw GRPOBatchError.field("dual_clip", "must be > 1") }
            settings.dualClip = c
        }
        if let m = try number("max_completion_length", root["max_completion_length"]) {
            guard m >= 1, m == m.rounded(), m < 1e9 else { throw GRPOBatchError.field("max_completion_length", "must be a positive integer") }
            settings.maxCompletionLength = Int(m)
        } else {
            settings.maxCompletionLength = 0  // filled from the longest completion once tokenized
        }

        func perToken(_ key: String) throws -> [[Float]]? {
            guard let v = root[key] else { return nil }
            guard let rows = v as? [Any], rows.count == completions.count else {
                throw GRPOBatchError.field(key, "expected one list per completion (\(completions.count))")
            }
            return try rows.enumerated().map { i, row in
                guard let list = row as? [Any] else { throw GRPOBatchError.completion(i, field: key, "not a list") }
                return try list.map { x in
                    guard let n = jsonNumber(x), n.doubleValue.isFinite else {
                        throw GRPOBatchError.completion(i, field: key, "\(x) is not a finite number")
                    }
                    return n.floatValue
                }
            }
        }
        let old = try perToken("old_logprobs"), ref = try perToken("ref_logprobs")
        if settings.beta != 0, ref == nil { throw GRPOBatchError.field("ref_logprobs", "required when beta is \(settings.beta)") }

        var optimizer = Optimizer()
        if let o = root["optimizer"] {
            guard let obj = o as? [String: Any] else { throw GRPOBatchError.field("optimizer", "expected an object") }
            let known: Set<String> = ["lr", "betas", "eps", "weight_decay", "max_grad_norm"]
            if let unknown = obj.keys.filter({ !known.contains($0) }).sorted().first {
                throw GRPOBatchError.field("optimizer.\(unknown)", "unknown key")
            }
            if let lr = try number("optimizer.lr", obj["lr"]) {
                guard lr >= 0 else { throw GRPOBatchError.field("optimizer.lr", "must be ≥ 0") }
                optimizer.lr = lr
            }
            if let b = obj["betas"] {
                guard let list = b as? [NSNumber], list.count == 2, list.allSatisfy({ $0.doubleValue >= 0 && $0.doubleValue < 1 }) else {
                    throw GRPOBatchError.field("optimizer.betas", "expected two numbers in [0, 1)")
                }
                optimizer.beta1 = list[0].doubleValue
                optimizer.beta2 = list[1].doubleValue
            }
            if let e = try number("optimizer.eps", obj["eps"]) {
                guard e > 0 else { throw GRPOBatchError.field("optimizer.eps", "must be > 0") }
                optimizer.eps = e
            }
            if let w = try number("optimizer.weight_decay", obj["weight_decay"]) {
                guard w >= 0 else { throw GRPOBatchError.field("optimizer.weight_decay", "must be ≥ 0") }
                optimizer.weightDecay = w
            }
            if let m = try number("optimizer.max_grad_norm", obj["max_grad_norm"]) {
                guard m > 0 else { throw GRPOBatchError.field("optimizer.max_grad_norm", "must be > 0") }
                optimizer.maxGradNorm = m
            }
        }
        return GRPOBatch(messages: messages, completions: completions, rewards: rewards, settings: settings,
                         oldLogprobs: old, refLogprobs: ref, optimizer: optimizer)
    }

    public static func load(path: String) throws -> GRPOBatch {
        guard let data = FileManager.default.contents(atPath: path) else { throw GRPOBatchError.unreadable(file: path, reason: "cannot be read") }
        return try parse(data, file: path, baseDirectory: (path as NSString).deletingLastPathComponent)
    }
}

/// What `assay train grpo-step --json` prints.
public struct GRPOStepResult: Sendable, Encodable {
    public struct Clipped: Sendable, Encodable { public var low: Int, high: Int, dual: Int }
    public var logprobs: [[Float]]
    public var advantages: [Float]
    public var loss: Float
    public var gradNorm: Double
    public var clipped: Clipped
    public var promptTokens: Int
    public var completionTokens: Int
    public var meanKL: Double
    public var seconds: Double
    public var peakResidentBytes: Int
    public var saved: String?

    enum CodingKeys: String, CodingKey {
        case logprobs, advantages, loss, clipped, saved, seconds
        case gradNorm = "grad_norm", promptTokens = "prompt_tokens", completionTokens = "completion_tokens", meanKL = "mean_kl"
        case peakResidentBytes = "peak_rss_bytes"
    }
}

/// One GRPO step on a checkpoint: log-probs on the training path, the objective, gradients, the
/// global norm, optional clipping, one AdamW step and the updated checkpoint (`out`).
public enum GRPOStep {
    public static func run(modelPath: String, batch: GRPOBatch, out: String?, freezeVision: Bool, microBatch: Int? = nil,
                           log: (String) -> Void = TrainingCheckpoint.standardErrorLog) throws -> GRPOStepResult {
        let started = Date()
        let runtime = try VLMModel.load(path: modelPath)
        let prompt = try PolicyPrompt.prepare(runtime, messages: batch.messages)
        let vocab = runtime.config.text.vocabSize
        var completions: [[Int]] = []
        for (i, c) in batch.completions.enumerated() {
            switch c {
            case .ids(let ids):
                if let bad = ids.first(where: { $0 < 0 || $0 >= vocab }) {
                    throw GRPOBatchError.completion(i, field: "completions", "token id \(bad) is outside the vocabulary (\(vocab))")
                }
                completions.append(ids)
            case .text(let t):
                let ids = runtime.tokenizer.encode(t)
                guard !ids.isEmpty else { throw GRPOBatchError.completion(i, field: "completions", "the text encodes to no tokens") }
                completions.append(ids)
            }
        }
        var settings = batch.settings
        let longest = completions.map(\.count).max() ?? 0
        if settings.maxCompletionLength == 0 { settings.maxCompletionLength = longest }
        if let i = completions.firstIndex(where: { $0.count > settings.maxCompletionLength }) {
            throw GRPOBatchError.completion(i, field: "completions", "\(completions[i].count) tokens, more than max_completion_length \(settings.maxCompletionLength)")
        }
        for (key, rows) in [("old_logprobs", batch.oldLogprobs), ("ref_logprobs", batch.refLogprobs)] {
            guard let rows else { continue }
            for (i, row) in rows.enumerated() where row.count != completions[i].count {
                throw GRPOBatchError.completion(i, field: key, "\(row.count) values for \(completions[i].count) tokens")
            }
        }

        let loaded = try TrainingCheckpoint.load(path: modelPath, log: log)
        if freezeVision { for p in loaded.parameters.parameters where p.name.hasPrefix("visual.") { p.trainable = false } }
        let model = try PolicyModel(config: loaded.config, parameters: loaded.parameters)
        let advantages = GRPOObjective.advantages(rewards: batch.rewards, kind: settings.advantage)
        var stats = PolicyPassStats()
        let gradient = try GRPOObjective.tokenGradient(lengths: completions.map(\.count), old: batch.oldLogprobs, ref: batch.refLogprobs,
                                                       advantages: advantages, settings: settings)
        model.parameters.zeroGradients()
        let logprobs = try model.backward(prompt: prompt, completions: completions, temperature: settings.temperature,
                                          microBatch: microBatch, stats: &stats, gradient: gradient)
        let r = try GRPOObjective.evaluate(logprobs: logprobs, old: batch.oldLogprobs, ref: batch.refLogprobs, advantages: advantages, settings: settings)
        let norm = model.parameters.globalGradientNorm()
        var saved: String? = nil
        if let out {
            guard norm.isFinite else { throw TrainingModelError.badInput("the gradient norm is \(norm); nothing written") }
            if let m = batch.optimizer.maxGradNorm { AdamW.clipGradients(model.parameters, maxNorm: m) }
            let opt = try AdamW(lr: batch.optimizer.lr, beta1: batch.optimizer.beta1, beta2: batch.optimizer.beta2, eps: batch.optimizer.eps,
                                weightDecay: batch.optimizer.weightDecay)
            try opt.step(model.parameters)
            try TrainingCheckpoint.save(model.parameters, loadedFrom: loaded, to: out)
            saved = out
        }
        return GRPOStepResult(logprobs: logprobs, advantages: advantages, loss: r.loss, gradNorm: norm,
                              clipped: .init(low: r.lowClipped, high: r.highClipped, dual: r.dualClipped),
                              promptTokens: prompt.ids.count, completionTokens: completions.reduce(0) { $0 + $1.count },
                              meanKL: Double(r.meanKL), seconds: Date().timeIntervalSince(started),
                              peakResidentBytes: RuntimeBenchmark.peakResidentBytes(), saved: saved)
    }
}
