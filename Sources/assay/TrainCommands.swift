import ArgumentParser
import Foundation
import VLMRuntime
import VLMTraining
import AssayTraining
import AssayStore
import AssayEngine
import Glibc

/// `assay train grpo-step`: one GRPO step on a checkpoint, checked from outside.
struct TrainGRPOStepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grpo-step",
        abstract: "One GRPO step: log-probs, loss, gradients and (with --out) the checkpoint after one AdamW step.",
        discussion: """
            BATCH.json: messages (the prompt; content parts {"type": "text"} / {"type": "image", "image": PATH}), \
            completions ([{"ids": [...]}] or [{"text": "..."}]), rewards, temperature, advantage (trl|easyr1|none), \
            policy_loss (trl|easyr1), aggregation (dapo|grpo|dr_grpo), beta, epsilon_low, epsilon_high, dual_clip, \
            max_completion_length, optional old_logprobs and ref_logprobs (one list per completion) and optimizer \
            (lr, betas, eps, weight_decay, max_grad_norm). Training runs in f32 whatever the checkpoint's dtype; a GGUF \
            is dequantised. A bad batch is an error naming the field and completion, and nothing is written.
            """)

    @Option(help: "Checkpoint folder or .gguf file.") var modelPath: String
    @Option(help: "The step's batch (JSON).") var batch: String
    @Option(help: "Write the model after one AdamW step here (same layout as the source; a GGUF becomes a Hugging Face folder).") var out: String?
    @Flag(help: "Keep the vision tower fixed (its backward is skipped).") var freezeVision = false
    @Flag(help: "Print the result as JSON.") var json = false
    @Option(help: "Worker threads (default: every core).") var threads: Int?
    @Option(help: "Completions per forward/backward pass (gradient accumulation; default: the whole group).") var microBatch: Int?

    func validate() throws {
        if let m = microBatch, m < 1 { throw ValidationError("--micro-batch must be at least 1") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        if let threads { requestRuntimeThreads(threads) }
        let b = try GRPOBatch.load(path: batch)
        let result = try GRPOStep.run(modelPath: modelPath, batch: b, out: out, freezeVision: freezeVision, microBatch: microBatch)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        } else {
            print(String(format: "loss %.6f, gradient norm %.6f, clipped low %d / high %d / dual %d, %d prompt + %d completion tokens, %.2f s, peak %.2f GB",
                         result.loss, result.gradNorm, result.clipped.low, result.clipped.high, result.clipped.dual,
                         result.promptTokens, result.completionTokens, result.seconds, Double(result.peakResidentBytes) / 1e9))
            if let saved = result.saved { print("wrote \(saved)") }
        }
    }
}

/// `assay bench train`: the forward + backward of one GRPO step, optionally beside torch.
struct BenchTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Tokens/s, time per step and peak memory of one GRPO step's forward + backward (f32).",
        discussion: """
            G completions of C tokens after a P-token prompt (seeded random ids), TRL's 'dapo' loss with ratio 1 and β 0. \
            With --torch-python (a virtualenv's python with torch and transformers, see tools/bench/setup_torch_venv.sh) \
            each round also runs tools/bench/train_step_torch.py on the same model, G, P, C and threads, alternating \
            with Assay's step, and both medians are printed.
            """)

    @Option(help: "Checkpoint folder or .gguf file.") var modelPath: String
    @Option(help: "Completions per prompt (G).") var groupSize = 8
    @Option(help: "Prompt tokens (P).") var promptTokens = 128
    @Option(help: "Tokens per completion (C).") var completionTokens = 256
    @Option(help: "Timed rounds (one warm-up step first).") var rounds = 3
    @Option(help: "Worker threads (default: every core).") var threads: Int?
    @Option(help: "Python with torch + transformers: run the torch step beside ours.") var torchPython: String?
    @Option(help: "The torch step script.") var torchScript = "tools/bench/train_step_torch.py"

    func run() throws {
        if let threads { requestRuntimeThreads(threads) }
        let loaded = try TrainingCheckpoint.load(path: modelPath)
        let model = try PolicyModel(config: loaded.config, parameters: loaded.parameters)
        print("model: \(modelPath) (\(loaded.config.family.rawValue), \(loaded.parameters.elementCount) parameters in f32), threads \(RuntimeThreads.count), CPU \(cpuName())")
        print("kernels: \(KernelPath.summary)")
        print("step: G \(groupSize) × (P \(promptTokens) + C \(completionTokens)) = \(groupSize * (promptTokens + completionTokens)) tokens")
        var ours: [Double] = [], theirs: [Double] = [], torchPeak = 0
        var figures: TrainBenchmark.Figures? = nil
        for r in 0..<max(1, rounds) {
            let f = try TrainBenchmark.run(model: model, groupSize: groupSize, promptTokens: promptTokens, completionTokens: completionTokens,
                                           rounds: 1, seed: 0, warmUp: r == 0)
            ours.append(f.medianStepSeconds)
            figures = f
            print(String(format: "round %d  assay: %.2f s/step, %.1f tokens/s, %.1f GFLOP/s", r + 1, f.medianStepSeconds, f.tokensPerSecond, f.achievedGFLOPs))
            if let py = torchPython {
                let t = try runTorch(python: py)
                theirs.append(t.seconds)
                torchPeak = max(torchPeak, t.peak)
                print(String(format: "round %d  torch: %.2f s/step, %.1f tokens/s (peak %.2f GB)", r + 1, t.seconds,
                             Double(groupSize * (promptTokens + completionTokens)) / t.seconds, Double(t.peak) / 1e9))
            }
        }
        guard let f = figures else { return }
        let tokens = Double(groupSize * (promptTokens + completionTokens))
        let m = median(ours)
        print(String(format: "assay  median %.2f s/step, %.1f tokens/s, peak RSS %.2f GB (parameters + gradients %.2f GB, activations peak %.2f GB)",
                     m, tokens / m, Double(f.peakResidentBytes) / 1e9, Double(2 * f.parameterBytes) / 1e9, Double(f.scratchPeakBytes) / 1e9))
        print(String(format: "       %.2f TFLOP of matrix products per step (forward, per-layer recompute, backward): %.1f GFLOP/s",
                     f.matmulFLOPs / 1e12, f.matmulFLOPs / m / 1e9))
        let c = model.config.text
        let ceiling = TrainBenchmark.gemmGFLOPs(m: f.decoderRows, n: c.intermediateSize, k: c.hiddenSize)
        print(String(format: "       sgemm alone on the step's MLP shape (%d×%d×%d): %.1f GFLOP/s, so the products alone take ≥ %.2f s of the step",
                     f.decoderRows, c.intermediateSize, c.hiddenSize, ceiling, f.matmulFLOPs / ceiling / 1e9))
        if !theirs.isEmpty {
            let t = median(theirs)
            print(String(format: "torch  median %.2f s/step, %.1f tokens/s, peak RSS %.2f GB", t, tokens / t, Double(torchPeak) / 1e9))
            print(String(format: "assay/torch: %.2f× tokens/s, %.2f× peak memory", t / m, Double(f.peakResidentBytes) / Double(max(1, torchPeak))))
        }
    }

    private func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    private func runTorch(python: String) throws -> (seconds: Double, peak: Int) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [torchScript, "--model", modelPath, "--group-size", "\(groupSize)", "--prompt-tokens", "\(promptTokens)",
                       "--completion-tokens", "\(completionTokens)", "--threads", "\(RuntimeThreads.count)", "--rounds", "1", "--json"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0,
              let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let s = (obj["median_step_seconds"] as? NSNumber)?.doubleValue else {
            throw RuntimeCommandError(description: "\(torchScript) failed (exit \(p.terminationStatus)); run it by hand to see why")
        }
        return (s, (obj["peak_rss_bytes"] as? NSNumber)?.intValue ?? 0)
    }

    private func cpuName() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }) else { return "unknown" }
        let flags = text.contains(" avx512f") ? "AVX512" : text.contains(" avx2") ? "AVX2" : "no AVX2"
        return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) + " (\(flags))" } ?? "unknown"
    }
}

/// `assay train grpo`: the training loop.
struct TrainGRPOCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grpo",
        abstract: "GRPO on the embedded runtime: rollouts, rewards, updates, checkpoints and evaluations, all in the store.",
        discussion: """
            --data is a JSONL file or a folder with train.jsonl (`assay critic build`, `assay train data`): rows with problem \
            (<image> placeholders where images go), answer, images (paths relative to the file), and for --reward suite \
            the suite whose scorer rewards the row. Every --save-every steps OUT/checkpoints/step-N/ gets the model (the \
            source's layout; a GGUF becomes a Hugging Face folder), the optimizer state and the data position; the same \
            command after an interruption (Ctrl-C, kill -9) continues from the last complete checkpoint and, with the same \
            seed and --threads, ends with the same weights bit for bit. With --eval-suites the base model and each saved \
            checkpoint are swept (greedy) as runs NAME@base and NAME@step-N; `assay report --training NAME` shows the curves.
            """)

    @Option(help: "Checkpoint folder or .gguf file (default: the pulled default model).") var modelPath: String?
    @Option(help: "Training data: a JSONL file or a folder holding train.jsonl.") var data: String
    @Option(help: "Output folder (checkpoints, run.json).") var out: String
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var suiteOptions: SuiteOptions
    @Option(help: "Training run name (evaluation runs are NAME@base, NAME@step-N).") var run: String
    @Option(help: "Optimisation steps.") var steps = 100
    @Option(help: "Prompts per step.") var promptsPerStep = 4
    @Option(help: "Completions per prompt (G).") var groupSize = 8
    @Option(help: "Sampling and log-prob temperature.") var temperature = 1.0
    @Option(help: "Nucleus sampling mass of the rollouts.") var topP = 0.99
    @Option(help: "Longest completion, in tokens.") var maxNewTokens = 256
    @Option(help: "AdamW learning rate.") var lr = 1e-6
    @Option(help: "KL weight against the starting model (0: no reference model).") var beta = 0.01
    @Option(help: "Advantages: trl, easyr1 or none.") var advantage = "easyr1"
    @Option(help: "Policy loss: trl or easyr1 (dual clip).") var policyLoss = "easyr1"
    @Option(help: "Loss aggregation: dapo, grpo or dr_grpo.") var aggregation = "dapo"
    @Option(help: "Clip range below 1.") var epsilonLow = 0.2
    @Option(help: "Clip range above 1.") var epsilonHigh = 0.28
    @Option(help: "EasyR1's dual-clip constant.") var dualClip = 3.0
    @Option(help: "AdamW weight decay.") var weightDecay = 0.01
    @Option(help: "Clip the global gradient norm to this (0: no clipping).") var maxGradNorm = 1.0
    @Option(help: "Seed of the data order and of every rollout.") var seed: UInt64 = 0
    @Option(help: "Save a checkpoint every K steps (and at the end).") var saveEvery = 50
    @Option(help: "Reward: critic (boxed 1/2 against the label, 0.9 accuracy + 0.1 format) or suite (the row's suite scorer).")
    var reward = "critic"
    @Option(help: "Keep the rollouts of every k-th prompt in the store (0: none).") var keepRollouts = 1
    @Option(help: "Suites to evaluate the base model and the checkpoints on (comma-separated).") var evalSuites: String?
    @Option(help: "SUITE=FILE: the dataset of an evaluation suite without a download (critic-pairs=DIR/test.jsonl); repeatable.")
    var evalData: [String] = []
    @Option(help: "Evaluate every K steps (a multiple of --save-every; default: every checkpoint).") var evalEvery: Int?
    @Option(help: "Items per evaluation suite.") var evalLimit: Int?
    @Option(help: "Longest evaluation answer, in tokens.") var evalMaxTokens = 512
    @Flag(help: "Keep the vision tower fixed (its backward is skipped).") var freezeVision = false
    @Option(help: "Completions per forward/backward pass (gradient accumulation).") var microBatch: Int?
    @Option(help: "Worker threads (default: every core; a bit-exact resume needs the same count).") var threads: Int?

    func run() async throws {
        if let threads { requestRuntimeThreads(threads) }
        func choice<T: RawRepresentable & CaseIterable>(_ text: String, _ flag: String, _: T.Type) throws -> T where T.RawValue == String {
            guard let v = T(rawValue: text) else {
                throw ValidationError("\(flag) must be one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return v
        }
        let modelPath = try self.modelPath ?? ModelCache.require(ModelCache.defaultModel).path
        var c = GRPOTrainingConfiguration(modelPath: URL(fileURLWithPath: modelPath).standardizedFileURL.path,
                                          dataPath: URL(fileURLWithPath: data).standardizedFileURL.path,
                                          outDir: URL(fileURLWithPath: out).standardizedFileURL.path, runName: run,
                                          threads: RuntimeThreads.count)
        c.steps = steps
        c.promptsPerStep = promptsPerStep
        c.groupSize = groupSize
        c.temperature = temperature
        c.topP = topP
        c.maxNewTokens = maxNewTokens
        c.lr = lr
        c.beta = beta
        c.advantage = try choice(advantage, "--advantage", AdvantageKind.self)
        c.policyLoss = try choice(policyLoss, "--policy-loss", PolicyLossKind.self)
        c.aggregation = try choice(aggregation, "--aggregation", LossAggregation.self)
        c.epsilonLow = epsilonLow
        c.epsilonHigh = epsilonHigh
        c.dualClip = dualClip
        c.weightDecay = weightDecay
        c.maxGradNorm = maxGradNorm > 0 ? maxGradNorm : nil
        c.seed = seed
        c.saveEvery = saveEvery
        c.reward = try choice(reward, "--reward", TrainingRewardKind.self)
        c.keepRollouts = keepRollouts
        c.evalSuites = evalSuites.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } } ?? []
        for entry in evalData {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw ValidationError("--eval-data takes SUITE=FILE, got \(entry)") }
            guard FileManager.default.fileExists(atPath: parts[1]) else { throw ValidationError("--eval-data \(entry): no such file") }
            c.evalData[parts[0]] = URL(fileURLWithPath: parts[1]).standardizedFileURL.path
        }
        c.evalEvery = evalEvery
        c.evalLimit = evalLimit
        c.evalMaxTokens = evalMaxTokens
        c.freezeVision = freezeVision
        c.microBatch = microBatch

        let trainer = GRPOTrainingRun(configuration: c, store: try database.open(), catalog: try suiteOptions.catalog(),
                                      log: { note($0) })
        // Ctrl-C: finish the step, save, stop; a second Ctrl-C stops at once.
        let stop = StopFlag()
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler {
            if stop.isSet { Glibc.exit(130) }
            stop.set()
            note("stopping after this step (a checkpoint is saved); Ctrl-C again to stop at once")
        }
        source.resume()
        trainer.shouldStop = { stop.isSet }
        let started = Date()
        let interactive = isatty(STDERR_FILENO) != 0
        trainer.onStep = { (report: GRPOStepReport) in
            let m = report.metrics
            let elapsed = Date().timeIntervalSince(started)
            let perStep = m["seconds"] ?? 0
            let eta = Double(report.steps - report.step) * perStep
            let width = 20
            let filled = min(width, width * report.step / max(report.steps, 1))
            let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
            let line = String(format: "step %d/%d [%@] reward %.3f acc %.3f kl %.4f len %.0f gap %.1e | %.1f s/step, ETA %@ (%.0f s so far)",
                              report.step, report.steps, bar, m["reward_mean"] ?? 0, m["accuracy"] ?? .nan, m["kl"] ?? 0,
                              m["response_length"] ?? 0, m["logprob_gap_max"] ?? 0, perStep, Self.clock(eta), elapsed)
            FileHandle.standardError.write(Data(((interactive ? "\r\u{1B}[K" : "") + line + (interactive ? "" : "\n")).utf8))
        }
        let outcome = try await trainer.run()
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
        source.cancel()
        if let r = outcome.resumedFrom { print("resumed from step \(r)") }
        print("\(outcome.stopped ? "stopped" : "finished") at step \(outcome.stepsDone) of \(c.steps)"
              + (outcome.finalCheckpoint.map { "; last checkpoint \($0)" } ?? ""))
        if !outcome.evaluations.isEmpty { print("evaluation runs: \(outcome.evaluations.joined(separator: ", "))") }
        if outcome.stopped { throw ExitCode(130) }
    }

    static func clock(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}

/// Set from a signal handler's queue, read by the training loop.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}

/// `assay train data`: verifiable training rows from a generated task, disjoint from its suite.
struct TrainDataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Write training rows of a generated task (arithmetic) that share no question with its evaluation suite.",
        discussion: """
            Rows: problem, answer, suite, item_id — for `assay train grpo --reward suite`, which prompts and scores them \
            exactly as the suite's evaluation does. Questions that occur in the suite's own items are left out, so the \
            suite stays a held-out test.
            """)

    @Option(help: "Generated task (arithmetic).") var task = "arithmetic"
    @Option(help: "Rows to write.") var count = 2000
    @Option(help: "Seed of the generator.") var seed: UInt64 = 1
    @Option(help: "Output JSONL file.") var out: String
    @OptionGroup var suiteOptions: SuiteOptions

    func run() throws {
        let suite = try suiteOptions.catalog().suite(task)
        guard let (heldOut, _) = try suite.generatedItems() else { throw ValidationError("\(task) is not a generated suite") }
        let summary = try GeneratedTrainingData.write(task: task, count: count, seed: seed, excluding: heldOut.map(\.item), to: out)
        print("wrote \(summary.written) rows to \(out) (\(summary.excluded) draws left out because the suite asks the same question; \(summary.distinct) distinct questions)")
    }
}

/// `assay bench grpo`: whole GRPO steps (rollouts + update), beside TRL's GRPOTrainer.
struct BenchGRPOCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grpo",
        abstract: "Time whole GRPO steps (sampling G completions of C tokens, rewards, the update), optionally beside TRL's GRPOTrainer.",
        discussion: """
            One prompt of about P tokens (chat-templated), G completions forced to C tokens (EOS does not end them), reward \
            len(text) mod 3, TRL's loss 'dapo' with β 0, AdamW lr 1e-6, gradient clipping at 1 (TRL's defaults) — the work \
            tools/bench/trl_grpo_step.py gives a real trl.GRPOTrainer. With --trl-python (see tools/bench/setup_torch_venv.sh) \
            that script runs after our steps on the same model, G, P, C and threads, and both medians are printed.
            """)

    @Option(help: "Checkpoint folder or .gguf file.") var modelPath: String
    @Option(help: "Completions per prompt (G).") var groupSize = 8
    @Option(help: "Prompt tokens (P, approximately: the chat template adds a few).") var promptTokens = 128
    @Option(help: "Tokens per completion (C).") var completionTokens = 256
    @Option(help: "Timed steps.") var steps = 3
    @Option(help: "Worker threads (default: every core).") var threads: Int?
    @Option(help: "Python with torch + transformers + trl: run TRL's GRPOTrainer on the same work.") var trlPython: String?
    @Option(help: "The TRL step script.") var trlScript = "tools/bench/trl_grpo_step.py"

    func run() throws {
        if let threads { requestRuntimeThreads(threads) }
        var s = GRPOTrainerSettings()
        s.objective = GRPOSettings(temperature: 1, advantage: .trl, policyLoss: .trl, aggregation: .dapo, beta: 0,
                                   maxCompletionLength: completionTokens)
        s.groupSize = groupSize
        s.maxNewTokens = completionTokens
        s.topP = 1
        s.lr = 1e-6
        s.maxGradNorm = 1
        s.stopAtEOS = false
        let trainer = try GRPOTrainer(modelPath: modelPath, settings: s)
        let filler = String(repeating: "The quick brown fox jumps over the lazy dog while the chart shows a rising trend in the data. ",
                            count: promptTokens / 8 + 4)
        // The chat template's own tokens count towards P.
        let overhead = try PolicyPrompt.prepare(trainer.base, messages: [ChatMessage(role: "user", parts: [.text("")])]).ids.count
        let ids = Array(trainer.base.tokenizer.encode(filler).prefix(max(1, promptTokens - overhead)))
        let prompt = TrainingPrompt(id: "bench", messages: [ChatMessage(role: "user", parts: [.text(trainer.base.tokenizer.decode(ids))])])
        let promptLength = try PolicyPrompt.prepare(trainer.base, messages: prompt.messages).ids.count
        print("model: \(modelPath), threads \(RuntimeThreads.count); G \(groupSize), P \(promptLength), C \(completionTokens)")
        var totals: [Double] = [], rollouts: [Double] = [], updates: [Double] = []
        for step in 1...max(1, steps) {
            let t0 = Date()
            let seeds = [(0..<groupSize).map { UInt64(step * 1000 + $0) }]
            let groups = try trainer.rollouts([prompt], seeds: seeds)
            let t1 = Date()
            let rewards = groups.map { $0.map { Float($0.text.count % 3) } }
            let u = try trainer.update([prompt], rollouts: groups, rewards: rewards)
            let total = Date().timeIntervalSince(t0)
            totals.append(total)
            rollouts.append(t1.timeIntervalSince(t0))
            updates.append(u.seconds)
            print(String(format: "step %d  assay: %.2f s (rollouts %.2f s, %.1f tokens/s; update %.2f s)", step, total, rollouts.last!,
                         Double(groupSize * completionTokens) / rollouts.last!, u.seconds))
        }
        let tokens = Double(groupSize * (promptLength + completionTokens))
        let m = median(totals)
        print(String(format: "assay  median %.2f s/step (rollouts %.2f, update %.2f), %.1f tokens/s, peak RSS %.2f GB",
                     m, median(rollouts), median(updates), tokens / m, Double(RuntimeBenchmark.peakResidentBytes()) / 1e9))
        guard let py = trlPython else { return }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: py)
        p.arguments = [trlScript, "--model", modelPath, "--group-size", "\(groupSize)", "--prompt-tokens", "\(promptTokens)",
                       "--completion-tokens", "\(completionTokens)", "--threads", "\(RuntimeThreads.count)", "--steps", "\(max(1, steps))", "--json"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0,
              let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let t = (obj["median_step_seconds"] as? NSNumber)?.doubleValue else {
            throw RuntimeCommandError(description: "\(trlScript) failed (exit \(p.terminationStatus)); run it by hand to see why")
        }
        let steps = (obj["step_seconds"] as? [NSNumber])?.map { String(format: "%.2f", $0.doubleValue) }.joined(separator: " / ") ?? "?"
        let generate = (obj["generate_seconds"] as? [NSNumber])?.map(\.doubleValue) ?? []
        let peak = (obj["peak_rss_bytes"] as? NSNumber)?.doubleValue ?? 0
        print(String(format: "trl    steps %@ s; median %.2f s/step (generate %.2f), peak RSS %.2f GB (trl %@, torch %@)", steps, t,
                     generate.isEmpty ? .nan : median(generate), peak / 1e9, obj["trl"] as? String ?? "?", obj["torch"] as? String ?? "?"))
        print(String(format: "assay/trl: %.2f× faster per step, %.2f× the peak memory", t / m, Double(RuntimeBenchmark.peakResidentBytes()) / max(peak, 1)))
    }

    private func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}
