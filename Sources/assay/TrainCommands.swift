import ArgumentParser
import Foundation
import VLMRuntime
import VLMTraining

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
