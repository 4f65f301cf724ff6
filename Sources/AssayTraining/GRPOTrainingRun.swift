import AssayBackends
import AssayCore
import AssayEngine
import AssayStore
import AssaySuites
import Foundation
import VLMRuntime
import VLMTraining

/// Everything `assay train grpo` was asked to do. Its canonical JSON is what a resume must match.
public struct GRPOTrainingConfiguration: Sendable, Codable, Equatable {
    public var modelPath: String
    public var dataPath: String
    public var outDir: String
    public var runName: String
    public var steps = 100
    public var promptsPerStep = 4
    public var groupSize = 8
    public var temperature = 1.0
    public var topP = 0.99
    public var maxNewTokens = 256
    public var lr = 1e-6
    public var beta = 0.01
    public var advantage = AdvantageKind.easyr1
    public var policyLoss = PolicyLossKind.easyr1
    public var aggregation = LossAggregation.dapo
    public var epsilonLow = 0.2
    public var epsilonHigh = 0.28
    public var dualClip = 3.0
    public var weightDecay = 0.01
    public var maxGradNorm: Double? = 1.0
    public var seed: UInt64 = 0
    public var saveEvery = 50
    public var freezeVision = false
    public var microBatch: Int?
    public var reward = TrainingRewardKind.critic
    /// Keep every k-th prompt's rollouts in the store (0: none).
    public var keepRollouts = 1
    public var evalSuites: [String] = []
    /// Dataset files for evaluation suites that have no download (suite id → file), e.g.
    /// `critic-pairs` → the critic data's `test.jsonl`.
    public var evalData: [String: String] = [:]
    public var evalEvery: Int?
    public var evalLimit: Int?
    public var evalMaxTokens = 512
    /// Threads of the runtime and the training kernels (recorded: bit-exact resumes need the same).
    public var threads: Int

    public init(modelPath: String, dataPath: String, outDir: String, runName: String, threads: Int) {
        self.modelPath = modelPath
        self.dataPath = dataPath
        self.outDir = outDir
        self.runName = runName
        self.threads = threads
    }

    /// The settings that decide the numbers (paths are recorded separately).
    var canonicalJSON: String {
        var copy = self
        copy.evalSuites = evalSuites.sorted()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(copy)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    var trainerSettings: GRPOTrainerSettings {
        var s = GRPOTrainerSettings()
        s.objective = GRPOSettings(temperature: Float(temperature), advantage: advantage, policyLoss: policyLoss, aggregation: aggregation,
                                   beta: beta, epsilonLow: epsilonLow, epsilonHigh: epsilonHigh, dualClip: dualClip,
                                   maxCompletionLength: maxNewTokens)
        s.groupSize = groupSize
        s.maxNewTokens = maxNewTokens
        s.topP = Float(topP)
        s.lr = lr
        s.weightDecay = weightDecay
        s.maxGradNorm = maxGradNorm
        s.freezeVision = freezeVision
        s.microBatch = microBatch
        return s
    }
}

/// Why a training run cannot start or continue.
public enum GRPOTrainingError: Error, CustomStringConvertible {
    case invalid(String)
    case outputMismatch(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalid(let r): return r
        case let .outputMismatch(p, r): return "\(p): \(r)"
        }
    }
}

/// One step's line for the progress display.
public struct GRPOStepReport: Sendable {
    public var step: Int
    public var steps: Int
    public var metrics: [String: Double]
}

/// `assay train grpo`: rollouts from the embedded runtime, rewards, GRPO updates, checkpoints
/// (weights, optimizer state, data position) every `saveEvery` steps, every step's measurements
/// and the kept rollouts in the store, and — with `evalSuites` — each checkpoint swept as a run of
/// its own, linked to its training run and step. Running the same command again continues from
/// the last complete checkpoint and, with the same seed and threads, ends with the same weights.
public final class GRPOTrainingRun: @unchecked Sendable {
    public let configuration: GRPOTrainingConfiguration
    let store: Store
    let catalog: SuiteCatalog
    let log: @Sendable (String) -> Void
    /// Checked between steps: when it returns true the run saves a checkpoint and stops.
    public var shouldStop: @Sendable () -> Bool = { false }
    public var onStep: (@Sendable (GRPOStepReport) -> Void)?
    /// Test hook: called after each step's records are stored (a throw simulates a crash).
    nonisolated(unsafe) static var afterStep: ((Int) throws -> Void)?

    public init(configuration: GRPOTrainingConfiguration, store: Store, catalog: SuiteCatalog, log: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration
        self.store = store
        self.catalog = catalog
        self.log = log
    }

    public static let stateFileName = "trainer-state.json"

    var checkpointsDirectory: String { (configuration.outDir as NSString).appendingPathComponent("checkpoints") }

    func checkpointDirectory(_ step: Int) -> String {
        (checkpointsDirectory as NSString).appendingPathComponent(String(format: "step-%06d", step))
    }

    /// The result of `run`.
    public struct Outcome: Sendable {
        public var stepsDone: Int
        public var resumedFrom: Int?
        public var stopped: Bool
        public var finalCheckpoint: String?
        public var evaluations: [String]
    }

    public func run() async throws -> Outcome {
        let c = configuration
        try validate()
        let data = try TrainingData.load(path: c.dataPath)
        let rewarder = TrainingRewarder(kind: c.reward, catalog: catalog)
        try rewarder.check(data)
        let evalSuites = try c.evalSuites.map { try catalog.suite($0) }
        let record = try store.ensureTrainingRun(name: c.runName, baseModel: c.modelPath, dataPath: data.file, dataSHA256: data.sha256,
                                                 configJSON: c.canonicalJSON, outDir: c.outDir)
        try writeRunFile(data: data)

        log("loading \(c.modelPath) for training")
        let trainer = try GRPOTrainer(modelPath: c.modelPath, settings: c.trainerSettings, log: { [log] in log($0) })
        if !evalSuites.isEmpty {
            // The base is evaluated as the trainer holds it (f32, a GGUF dequantised, saved like every
            // checkpoint), so a checkpoint's delta is the training's and not a change of format.
            let base = modelDirectory(0)
            if !FileManager.default.fileExists(atPath: (base as NSString).appendingPathComponent(TrainingCheckpoint.markerFileName)) {
                try TrainingCheckpoint.save(trainer.loaded.parameters, loadedFrom: trainer.loaded, to: base, log: { [log] in log($0) })
            }
        }
        var start = 1
        var resumedFrom: Int?
        if let last = try lastCompleteCheckpoint() {
            let dir = checkpointDirectory(last)
            log("resuming from \(dir)")
            try trainer.restore(modelDirectory: (dir as NSString).appendingPathComponent("model"),
                                stateDirectory: (dir as NSString).appendingPathComponent("state"), log: { [log] in log($0) })
            start = last + 1
            resumedFrom = last
        }
        try store.truncateTraining(record.id, after: start - 1)

        var evaluations: [String] = []
        if !evalSuites.isEmpty {
            evaluations += try await evaluate(step: 0, modelPath: modelDirectory(0), suites: evalSuites, trainingRun: record.id)
        }
        var lastSaved = resumedFrom
        var stopped = false
        var step = start
        while step <= c.steps {
            if shouldStop() { stopped = true; break }
            let metrics = try runStep(step, trainer: trainer, data: data, rewarder: rewarder, trainingRun: record.id)
            onStep?(GRPOStepReport(step: step, steps: c.steps, metrics: metrics))
            try Self.afterStep?(step)
            if step % c.saveEvery == 0 || step == c.steps {
                try save(step, trainer: trainer, trainingRun: record.id)
                lastSaved = step
                let every = c.evalEvery ?? c.saveEvery
                if !evalSuites.isEmpty, step % every == 0 || step == c.steps {
                    evaluations += try await evaluate(step: step, modelPath: modelDirectory(step), suites: evalSuites, trainingRun: record.id)
                }
            }
            step += 1
        }
        if stopped, step > start, lastSaved != step - 1 {
            try save(step - 1, trainer: trainer, trainingRun: record.id)
            lastSaved = step - 1
        }
        try store.setTrainingStatus(record.id, stopped ? "stopped" : "finished")
        return Outcome(stepsDone: step - 1, resumedFrom: resumedFrom, stopped: stopped,
                       finalCheckpoint: lastSaved.map(modelDirectory), evaluations: evaluations)
    }

    func validate() throws {
        let c = configuration
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw GRPOTrainingError.invalid(message) } }
        try check(c.steps >= 1 && c.steps <= 10_000_000, "--steps must be between 1 and 10,000,000")
        try check(c.promptsPerStep >= 1 && c.promptsPerStep <= 4096, "--prompts-per-step must be between 1 and 4096")
        try check(c.groupSize >= 2 && c.groupSize <= 1024, "--group-size must be between 2 and 1024 (advantages compare a group)")
        try check(c.temperature.isFinite && c.temperature > 0 && c.temperature <= 100, "--temperature must be in (0, 100]")
        try check(c.topP.isFinite && c.topP > 0 && c.topP <= 1, "--top-p must be in (0, 1]")
        try check(c.maxNewTokens >= 1 && c.maxNewTokens <= 1 << 20, "--max-new-tokens must be between 1 and 1,048,576")
        try check(c.lr.isFinite && c.lr >= 0 && c.lr < 1, "--lr must be in [0, 1)")
        try check(c.beta.isFinite && c.beta >= 0, "--beta must be ≥ 0")
        try check(c.maxGradNorm.map { $0.isFinite && $0 > 0 } ?? true, "--max-grad-norm must be > 0")
        try check(c.saveEvery >= 1, "--save-every must be ≥ 1")
        try check(c.evalEvery.map { $0 >= 1 } ?? true, "--eval-every must be ≥ 1")
        try check(c.evalLimit.map { $0 >= 1 } ?? true, "--eval-limit must be ≥ 1")
        try check(c.microBatch.map { $0 >= 1 } ?? true, "--micro-batch must be ≥ 1")
        try check(c.keepRollouts >= 0, "--keep-rollouts must be ≥ 0")
        try check(!c.runName.isEmpty, "--run must not be empty")
    }

    /// `OUT/run.json` records the configuration; an output folder of another run is refused.
    func writeRunFile(data: TrainingData) throws {
        let fm = FileManager.default
        let path = (configuration.outDir as NSString).appendingPathComponent("run.json")
        let body = "{\"run\": \(Self.quoted(configuration.runName)), \"data_sha256\": \"\(data.sha256)\", \"configuration\": \(configuration.canonicalJSON)}\n"
        if let existing = fm.contents(atPath: path) {
            guard String(decoding: existing, as: UTF8.self) == body else {
                throw GRPOTrainingError.outputMismatch(path: configuration.outDir, reason: "holds a training run with other settings or data (run.json); choose another --out")
            }
            return
        }
        if let entries = try? fm.contentsOfDirectory(atPath: configuration.outDir), !entries.isEmpty {
            throw GRPOTrainingError.outputMismatch(path: configuration.outDir, reason: "exists and is not a training run's folder; choose another --out")
        }
        try fm.createDirectory(atPath: checkpointsDirectory, withIntermediateDirectories: true)
        let temp = path + ".tmp-\(getpid())"
        try Data(body.utf8).write(to: URL(fileURLWithPath: temp))
        guard rename(temp, path) == 0 else { throw GRPOTrainingError.outputMismatch(path: path, reason: String(cString: strerror(errno))) }
    }

    static func quoted(_ s: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [s])) ?? Data("[\"\"]".utf8)
        return String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
    }

    func modelDirectory(_ step: Int) -> String { (checkpointDirectory(step) as NSString).appendingPathComponent("model") }

    /// The latest checkpoint whose state file exists (written last, by rename: a checkpoint
    /// without it was interrupted and is ignored).
    func lastCompleteCheckpoint() throws -> Int? {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: checkpointsDirectory)) ?? []
        let steps = entries.compactMap { name -> Int? in
            guard name.hasPrefix("step-"), let n = Int(name.dropFirst(5)) else { return nil }
            let state = (checkpointDirectory(n) as NSString).appendingPathComponent(Self.stateFileName)
            let optimizer = ((checkpointDirectory(n) as NSString).appendingPathComponent("state") as NSString).appendingPathComponent(AdamW.stateJSONFile)
            return FileManager.default.fileExists(atPath: state) && FileManager.default.fileExists(atPath: optimizer) ? n : nil
        }
        return steps.max()
    }

    // MARK: - One step

    /// The seed of sample `g` of prompt `i` at `step` (SplitMix64 of the run seed and the three).
    static func sampleSeed(_ seed: UInt64, step: Int, prompt: Int, sample: Int) -> UInt64 {
        var x = seed ^ (UInt64(step) &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(prompt) &* 0xBF58_476D_1CE4_E5B9) ^ (UInt64(sample) &* 0x94D0_49BB_1331_11EB)
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        return x ^ (x >> 31)
    }

    func runStep(_ step: Int, trainer: GRPOTrainer, data: TrainingData, rewarder: TrainingRewarder, trainingRun: Int64) throws -> [String: Double] {
        let c = configuration
        let started = Date()
        let examples = (0..<c.promptsPerStep).map { data.example(at: (step - 1) * c.promptsPerStep + $0, seed: c.seed) }
        let prompts = try examples.map { TrainingPrompt(id: $0.id, messages: try rewarder.messages($0)) }
        let seeds = (0..<c.promptsPerStep).map { i in (0..<c.groupSize).map { Self.sampleSeed(c.seed, step: step, prompt: i, sample: $0) } }
        let rollouts = try trainer.rollouts(prompts, seeds: seeds)
        let rolloutSeconds = Date().timeIntervalSince(started)

        var rewards: [[Float]] = []
        var all: [Double] = []
        var components: [String: [Double]] = [:]
        var kept: [TrainingRolloutRecord] = []
        for (i, group) in rollouts.enumerated() {
            var row: [Float] = []
            for (g, r) in group.enumerated() {
                let score = try rewarder.score(r.text, example: examples[i])
                row.append(Float(score.overall))
                all.append(score.overall)
                for (k, v) in score.components { components[k, default: []].append(v) }
                if c.keepRollouts > 0, i % c.keepRollouts == 0 {
                    kept.append(TrainingRolloutRecord(step: step, promptIndex: i, sample: g, exampleID: examples[i].id, text: r.text,
                                                      tokens: r.ids.count, reward: score.overall, components: score.components))
                }
            }
            rewards.append(row)
        }
        let update = try trainer.update(prompts, rollouts: rollouts, rewards: rewards)
        let seconds = Date().timeIntervalSince(started)
        let flat = rollouts.flatMap { $0 }
        let mean = all.reduce(0, +) / Double(max(all.count, 1))
        let variance = all.count > 1 ? all.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(all.count - 1) : 0
        var metrics: [String: Double] = [
            "reward_mean": mean, "reward_std": variance.squareRoot(),
            "kl": update.meanKL, "clip_low": update.clipLow, "clip_high": update.clipHigh, "clip_dual": update.clipDual,
            "entropy": flat.reduce(0) { $0 + $1.meanEntropy } / Double(max(flat.count, 1)),
            "response_length": Double(update.completionTokens) / Double(max(flat.count, 1)),
            "truncated_rate": Double(flat.filter { !$0.stopped }.count) / Double(max(flat.count, 1)),
            "logprob_gap_mean": update.logprobGapMean, "logprob_gap_max": update.logprobGapMax,
            "loss": update.loss, "grad_norm": update.gradNorm,
            "seconds": seconds, "rollout_seconds": rolloutSeconds, "update_seconds": update.seconds,
            "tokens_per_second": Double(update.completionTokens) / max(seconds, 1e-9),
            "groups_without_signal": Double(rewards.filter { Set($0).count < 2 }.count),
        ]
        for (k, v) in components { metrics["reward_\(k)"] = v.reduce(0, +) / Double(max(v.count, 1)) }
        if let a = components["accuracy"] { metrics["accuracy"] = a.reduce(0, +) / Double(max(a.count, 1)) }
        if let f = components["format"] ?? components["parsed"] { metrics["format_rate"] = f.reduce(0, +) / Double(max(f.count, 1)) }
        try store.recordTrainingStep(trainingRun, TrainingStepRecord(step: step, metrics: metrics), rollouts: kept)
        return metrics
    }

    // MARK: - Checkpoints

    /// Model, optimizer state and trainer state into `checkpoints/step-N/`; the state file is
    /// written last by rename, so a checkpoint without it is known to be incomplete. Older
    /// checkpoints keep their models (for evaluation) and lose their optimizer state.
    func save(_ step: Int, trainer: GRPOTrainer, trainingRun: Int64) throws {
        let fm = FileManager.default
        let dir = checkpointDirectory(step)
        let statePath = (dir as NSString).appendingPathComponent(Self.stateFileName)
        if fm.fileExists(atPath: statePath) { try fm.removeItem(atPath: statePath) }
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let stateDir = (dir as NSString).appendingPathComponent("state")
        try trainer.save(modelDirectory: modelDirectory(step), stateDirectory: stateDir, log: { [log] in log($0) })
        let c = configuration
        let body = """
            {"step": \(step), "data_position": \(step * c.promptsPerStep), "seed": \(c.seed), "threads": \(c.threads), \
            "sample_seeds": "splitmix64(seed, step, prompt, sample)", "parameters_fnv1a64": "\(trainer.parametersFingerprint)"}

            """
        let temp = statePath + ".tmp-\(getpid())"
        try Data(body.utf8).write(to: URL(fileURLWithPath: temp))
        guard rename(temp, statePath) == 0 else { throw GRPOTrainingError.outputMismatch(path: statePath, reason: String(cString: strerror(errno))) }
        try store.recordTrainingCheckpoint(trainingRun, step: step, path: modelDirectory(step), fingerprint: trainer.parametersFingerprint)
        // Only the newest checkpoint needs what a resume reads.
        for name in (try? fm.contentsOfDirectory(atPath: checkpointsDirectory)) ?? [] {
            guard name.hasPrefix("step-"), let n = Int(name.dropFirst(5)), n < step else { continue }
            try? fm.removeItem(atPath: ((checkpointDirectory(n) as NSString).appendingPathComponent("state")))
        }
        log("saved \(dir)")
    }

    // MARK: - Evaluation

    /// Sweeps `modelPath` over the evaluation suites as run `NAME@base` (step 0) or
    /// `NAME@step-N`, greedy, and links the run to the training run and step.
    func evaluate(step: Int, modelPath: String, suites: [Suite], trainingRun: Int64) async throws -> [String] {
        let c = configuration
        let name = step == 0 ? "\(c.runName)@base" : "\(c.runName)@step-\(step)"
        log("evaluating \(modelPath) as run \(name) on \(suites.map(\.id).joined(separator: ", "))")
        let backend = try EmbeddedBackend(modelPath: modelPath, batchSize: 8)
        let entries = try suites.map { suite -> SweepSuite in
            if suite.manifest.source?.format == "generated" { return SweepSuite(suite: suite, dataset: nil) }
            if let path = c.evalData[suite.id] { return SweepSuite(suite: suite, dataset: URL(fileURLWithPath: path)) }
            return SweepSuite(suite: suite, dataset: try DataFetch(directory: DataFetch.defaultDirectory()).localDataset(for: suite))
        }
        var notes = backend.runNotes
        notes["command"] = "train grpo"
        notes["training_run"] = c.runName
        notes["training_step"] = String(step)
        notes["model_path"] = URL(fileURLWithPath: modelPath).standardizedFileURL.path
        if let limit = c.evalLimit { notes["limit"] = String(limit) }
        let configuration = SweepConfiguration(run: name, suites: entries, params: GenerationParams(temperature: 0, maxTokens: c.evalMaxTokens),
                                               limit: c.evalLimit, concurrency: 1, notes: notes)
        let summary = try await Sweep(configuration: configuration, backend: backend, store: store, progress: nil).run()
        guard let run = try store.run(named: name) else { return [] }
        try store.linkTrainingEvaluation(trainingRun, step: step, runID: run.id)
        for s in summary.suites {
            if let m = s.metrics { log("  \(name) \(s.suite): \(String(format: "%.2f", m.score)) (\(s.errorCount) missing)") }
        }
        return [name]
    }
}
