import Foundation
import VLMRuntime

/// The settings of a GRPO training loop that the trainer itself uses (data, rewards, the store and
/// evaluation are the caller's).
public struct GRPOTrainerSettings: Sendable, Equatable {
    /// Objective: temperature, advantage kind, loss form, aggregation, β, clip ranges.
    public var objective = GRPOSettings()
    /// Completions sampled per prompt (G).
    public var groupSize = 8
    public var maxNewTokens = 256
    public var topP: Float = 1
    public var lr = 1e-6, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.01
    public var maxGradNorm: Double? = 1.0
    public var freezeVision = false
    /// Completions per forward + backward pass (gradient accumulation); nil: the whole group.
    public var microBatch: Int?
    /// False: completions always run to `maxNewTokens` (benchmarks).
    public var stopAtEOS = true

    public init() {}
}

/// A prompt of a step: an id (for the rollout records) and the chat messages.
public struct TrainingPrompt: Sendable {
    public var id: String
    public var messages: [ChatMessage]

    public init(id: String, messages: [ChatMessage]) {
        self.id = id
        self.messages = messages
    }
}

/// What one update measured (the rewards are the caller's).
public struct GRPOUpdateOutcome: Sendable {
    /// The aggregated loss of the step (each group weighted as the aggregation weighs its tokens).
    public var loss: Double
    /// Global gradient norm before clipping.
    public var gradNorm: Double
    /// Mean k3 KL per token against the reference (0 when β = 0).
    public var meanKL: Double
    /// Fractions of completion tokens whose ratio was clipped (low, high, dual).
    public var clipLow: Double, clipHigh: Double, clipDual: Double
    /// |log-prob at sampling − log-prob on the training path| over every completion token.
    public var logprobGapMean: Double, logprobGapMax: Double
    public var completionTokens: Int
    public var promptTokens: Int
    public var seconds: Double
}

/// GRPO on the embedded runtime: rollouts from the current parameters, log-probs recomputed on the
/// training path, the objective, one AdamW update per step over every group of the step.
///
/// Deterministic: rollouts are seeded per (step, prompt, sample) by the caller, the data order
/// is the caller's, and the arithmetic does not depend on timing, so with the same thread count a
/// run resumed from a checkpoint (`restore`) continues exactly as if it had never stopped.
public final class GRPOTrainer: @unchecked Sendable {
    public let settings: GRPOTrainerSettings
    /// The checkpoint as loaded (its layout is what `saveModel` writes).
    public let loaded: LoadedWeights
    public let policy: PolicyModel
    public private(set) var optimizer: AdamW
    /// The frozen starting policy for the KL term (only when β > 0).
    let reference: PolicyModel?
    /// Tokenizer, chat template and image processor (the weights are never used for sampling).
    public let base: VLMModel
    /// The runtime holding the current parameters: rollouts come from here.
    public private(set) var sampler: VLMModel

    public init(modelPath: String, settings: GRPOTrainerSettings, log: (String) -> Void = TrainingCheckpoint.standardErrorLog) throws {
        self.settings = settings
        base = try VLMModel.load(path: modelPath)
        loaded = try TrainingCheckpoint.load(path: modelPath, log: log)
        if settings.freezeVision { for p in loaded.parameters.parameters where p.name.hasPrefix("visual.") { p.trainable = false } }
        policy = try PolicyModel(config: loaded.config, parameters: loaded.parameters)
        if settings.objective.beta > 0 {
            let frozen = ParameterSet(loaded.parameters.parameters.map { Parameter(name: $0.name, shape: $0.shape, value: $0.value, trainable: false) })
            reference = try PolicyModel(config: loaded.config, parameters: frozen)
        } else {
            reference = nil
        }
        optimizer = try AdamW(lr: settings.lr, beta1: settings.beta1, beta2: settings.beta2, eps: settings.eps, weightDecay: settings.weightDecay)
        sampler = try base.replacingWeights(Self.weights(of: loaded.parameters, origin: modelPath))
    }

    static func weights(of parameters: ParameterSet, origin: String) -> InMemoryWeights {
        var tensors: [String: InMemoryWeights.Tensor] = [:]
        for p in parameters.parameters { tensors[p.name] = .init(shape: p.shape, values: p.value) }
        return InMemoryWeights(tensors, origin: origin)
    }

    /// Samples G completions for each prompt from the current parameters; `seeds[i][g]` seeds
    /// sample g of prompt i.
    public func rollouts(_ prompts: [TrainingPrompt], seeds: [[UInt64]]) throws -> [[Rollout]] {
        try RolloutSampler.sample(sampler, prompts: prompts.map(\.messages), count: settings.groupSize, maxNewTokens: settings.maxNewTokens,
                                  temperature: settings.objective.temperature, topP: settings.topP, seeds: seeds,
                                  stopAtEOS: settings.stopAtEOS)
    }

    /// One update: for each group, log-probs on the training path, advantages from `rewards`, the
    /// objective and its gradient (accumulated over the groups, each weighted as the step's
    /// aggregation weighs its tokens), then the global norm, clipping and one AdamW step. The
    /// sampler is rebuilt from the new parameters.
    public func update(_ prompts: [TrainingPrompt], rollouts: [[Rollout]], rewards: [[Float]]) throws -> GRPOUpdateOutcome {
        let started = Date()
        guard prompts.count == rollouts.count, prompts.count == rewards.count, !prompts.isEmpty else {
            throw TrainingModelError.badInput("\(prompts.count) prompts, \(rollouts.count) rollout groups, \(rewards.count) reward groups")
        }
        var objective = settings.objective
        objective.maxCompletionLength = settings.maxNewTokens
        let totalTokens = rollouts.reduce(0) { $0 + $1.reduce(0) { $0 + $1.ids.count } }
        guard totalTokens > 0 else { throw TrainingModelError.badInput("the step's rollouts hold no tokens") }
        policy.parameters.zeroGradients()
        var loss = 0.0, kl = 0.0, low = 0, high = 0, dual = 0, gapSum = 0.0, gapMax = 0.0, promptTokens = 0
        for (g, prompt) in prompts.enumerated() {
            let group = rollouts[g]
            let completions = group.map(\.ids)
            let policyPrompt = try PolicyPrompt.prepare(base, messages: prompt.messages)
            promptTokens += policyPrompt.ids.count
            let ref = try reference?.logprobs(prompt: policyPrompt, completions: completions, temperature: objective.temperature)
            let advantages = GRPOObjective.advantages(rewards: rewards[g], kind: objective.advantage)
            let groupTokens = completions.reduce(0) { $0 + $1.count }
            // dapo is a token mean over the whole step; grpo and dr_grpo average over sequences,
            // whose count per group is the same: each group's share is its tokens, or 1/P.
            let weight: Float = objective.aggregation == .dapo ? Float(groupTokens) / Float(totalTokens) : 1 / Float(prompts.count)
            var stats = PolicyPassStats()
            let gradient = try GRPOObjective.tokenGradient(lengths: completions.map(\.count), old: nil, ref: ref, advantages: advantages,
                                                           settings: objective, scale: weight)
            let lp = try policy.backward(prompt: policyPrompt, completions: completions, temperature: objective.temperature,
                                         microBatch: settings.microBatch, stats: &stats, gradient: gradient)
            let r = try GRPOObjective.evaluate(logprobs: lp, old: nil, ref: ref, advantages: advantages, settings: objective)
            loss += Double(weight) * Double(r.loss)
            kl += Double(r.meanKL) * Double(groupTokens)
            low += r.lowClipped
            high += r.highClipped
            dual += r.dualClipped
            for (row, rollout) in zip(lp, group) {
                for (a, b) in zip(row, rollout.samplingLogprobs) {
                    let gap = abs(Double(a) - Double(b))
                    gapSum += gap
                    gapMax = max(gapMax, gap)
                }
            }
        }
        let norm = policy.parameters.globalGradientNorm()
        guard norm.isFinite else { throw TrainingModelError.badInput("the gradient norm is \(norm); the step is not applied") }
        if let m = settings.maxGradNorm { AdamW.clipGradients(policy.parameters, maxNorm: m) }
        try optimizer.step(policy.parameters)
        sampler = try base.replacingWeights(Self.weights(of: policy.parameters, origin: base.path))
        let n = Double(totalTokens)
        return GRPOUpdateOutcome(loss: loss, gradNorm: norm, meanKL: kl / n, clipLow: Double(low) / n, clipHigh: Double(high) / n,
                                 clipDual: Double(dual) / n, logprobGapMean: gapSum / n, logprobGapMax: gapMax,
                                 completionTokens: totalTokens, promptTokens: promptTokens, seconds: Date().timeIntervalSince(started))
    }

    // MARK: - Checkpoints

    /// The exact f32 parameters, for a resume, when the model folder does not hold them exactly
    /// (a bf16/f16 source is saved in its own dtype).
    public static let exactParametersFile = "parameters.safetensors"

    /// Writes the model (in the layout it was loaded from) to `modelDirectory`, and the optimizer
    /// state (plus the exact parameters when the model's dtype rounds them) to `stateDirectory`.
    public func save(modelDirectory: String, stateDirectory: String, log: (String) -> Void = TrainingCheckpoint.standardErrorLog) throws {
        try TrainingCheckpoint.save(policy.parameters, loadedFrom: loaded, to: modelDirectory, log: log)
        try optimizer.save(to: stateDirectory)
        if roundsOnSave { try writeExactParameters(to: (stateDirectory as NSString).appendingPathComponent(Self.exactParametersFile)) }
    }

    /// Whether saving the model rounds parameters (a folder source stored in bf16 or f16).
    var roundsOnSave: Bool {
        guard case let .folder(_, _, _, tensors) = loaded.source else { return false }
        return tensors.contains { $0.isParameter && $0.dtype != .f32 }
    }

    func writeExactParameters(to path: String) throws {
        let temp = path + ".tmp-\(getpid())"
        defer { unlink(temp) }
        let specs = policy.parameters.parameters.map { SafeTensorsWriter.Spec(name: $0.name, shape: $0.shape, dtype: .f32) }
        let params = policy.parameters
        try SafeTensorsWriter.write(path: temp, tensors: specs, metadata: ["format": "pt", "content": "assay-exact-parameters"]) { spec, buf in
            guard let p = params[spec.name] else { return }
            for i in 0..<min(buf.count, p.value.count) { buf[i] = p.value[i] }
        }
        guard rename(temp, path) == 0 else { throw TrainingCheckpointError.writeFailed(path: path, reason: String(cString: strerror(errno))) }
    }

    /// Continues from a checkpoint `save` wrote: parameters (exact), optimizer state, sampler.
    public func restore(modelDirectory: String, stateDirectory: String, log: (String) -> Void = TrainingCheckpoint.standardErrorLog) throws {
        let exact = (stateDirectory as NSString).appendingPathComponent(Self.exactParametersFile)
        if FileManager.default.fileExists(atPath: exact) {
            let file = try SafeTensorsFile(path: exact)
            for p in policy.parameters.parameters {
                guard let entry = file.entries[p.name] else { throw TrainingCheckpointError.missingTensor(file: exact, tensor: p.name) }
                guard entry.shape == p.shape, entry.dtype == .f32 else {
                    throw TrainingCheckpointError.shapeMismatch(file: exact, tensor: p.name, expected: p.shape, actual: entry.shape)
                }
                p.value = try file.floats(entry)
            }
        } else {
            let saved = try TrainingCheckpoint.load(path: modelDirectory, log: { _ in })
            for p in policy.parameters.parameters {
                guard let q = saved.parameters[p.name] else { throw TrainingCheckpointError.missingTensor(file: modelDirectory, tensor: p.name) }
                guard q.shape == p.shape else {
                    throw TrainingCheckpointError.shapeMismatch(file: modelDirectory, tensor: p.name, expected: p.shape, actual: q.shape)
                }
                p.value = q.value
            }
        }
        optimizer = try AdamW.load(from: stateDirectory, parameters: policy.parameters)
        optimizer.lr = settings.lr
        sampler = try base.replacingWeights(Self.weights(of: policy.parameters, origin: modelDirectory))
    }

    /// FNV-1a 64 of every parameter (the fingerprint the checkpoint marker records).
    public var parametersFingerprint: String { String(format: "%016llx", TrainingCheckpoint.fingerprint(policy.parameters)) }
}
