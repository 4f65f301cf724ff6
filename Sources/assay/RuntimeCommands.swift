import ArgumentParser
import Foundation
import VLMRuntime

/// The embedded-runtime commands; the root command lists them among its subcommands.
let runtimeCommands: [any ParsableCommand.Type] = [GenerateCommand.self, ModelCommand.self, BenchCommand.self, ServeCommand.self]

/// Limits the embedded runtime's worker threads (`sweep --threads`); call before a model loads.
func requestRuntimeThreads(_ count: Int) { RuntimeThreads.request(count) }

/// Thrown for flag combinations the runtime cannot honour.
struct RuntimeCommandError: Error, CustomStringConvertible {
    var description: String
}

/// The load-time flags every runtime command shares.
struct RuntimeLoadOptions: ParsableArguments {
    @Option(help: "Quantise a safetensors checkpoint's decoder weights at load: q8_0. (GGUF files are used as stored.)")
    var quantize: String?
    @Option(help: "Decode activations for quantised weights: f32 (exact, matches the reference) or ggml (llama.cpp's quantised activations: faster, not exact).")
    var activations = "f32"
    @Option(help: "Prefill and vision matmuls over bf16 weights: f32 (exact, the default; matches the fp32 reference) or bf16 (AVX512-BF16 products with f32 accumulation, like transformers in bfloat16: 2.5–3× faster prefill and vision on bf16 checkpoints, not bit-exact).")
    var precision: String?

    /// The --precision given, if any.
    func matmulPrecision() throws -> MatmulPrecision? {
        switch precision?.lowercased() {
        case nil: return nil
        case "f32", "float32", "fp32": return .float32
        case "bf16", "bfloat16": return .bfloat16
        case let other?: throw ValidationError("--precision must be f32 or bf16, not \(other)")
        }
    }

    func loadOptions(minPixels: Int? = nil, maxPixels: Int? = nil, precision override: MatmulPrecision? = nil) throws -> LoadOptions {
        let precision = try override ?? matmulPrecision() ?? .float32
        if precision == .bfloat16, !VLMModel.supportsBF16Matmul {
            // The bf16 kernels need AVX512-BF16; without it the exact f32 path runs, and the user should know.
            note("--precision bf16: this CPU has no AVX512-BF16, so prefill and vision run in f32 (exact, slower)")
        }
        var quantization: WeightQuantization?
        if let quantize {
            guard let q = WeightQuantization(rawValue: quantize.lowercased()) else {
                throw ValidationError("--quantize must be one of \(WeightQuantization.allCases.map(\.rawValue).joined(separator: ", ")), not \(quantize)")
            }
            quantization = q
        }
        let mode: ActivationMode
        switch activations.lowercased() {
        case "f32", "float32": mode = .float32
        case "ggml": mode = .ggml
        default: throw ValidationError("--activations must be f32 or ggml, not \(activations)")
        }
        return LoadOptions(minPixels: minPixels, maxPixels: maxPixels, precision: precision, quantization: quantization, activations: mode)
    }
}

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Answer one prompt with a local checkpoint: a Qwen2-VL / Qwen2.5-VL or Llama folder, or a GGUF file.")

    @Option(help: "Checkpoint folder (config.json, *.safetensors, tokenizer.json, …) or a .gguf file.") var modelPath: String
    @Option(help: "Image file (PNG or JPEG); repeat for several. Images go before the prompt text.") var image: [String] = []
    @Option(help: "The user's text.") var prompt: String
    @Option(help: "System prompt (default: the chat template's).") var system: String?
    @Option(help: "Most tokens to generate.") var maxTokens = 256
    @Option(help: "Sampling temperature; 0 is greedy.") var temperature: Double = 0
    @Option(help: "Nucleus sampling mass.") var topP: Double = 1
    @Option(help: "Seed of the sampler.") var seed: UInt64 = 0
    @Option(help: "Override the processor's min_pixels.") var minPixels: Int?
    @Option(help: "Override the processor's max_pixels.") var maxPixels: Int?
    @OptionGroup var load: RuntimeLoadOptions
    @Flag(help: "Print {\"token_ids\", \"text\", \"prompt_tokens\", \"finish_reason\", \"images_dropped\"} as JSON.") var json = false

    func run() throws {
        guard (1...10_000_000).contains(maxTokens) else { throw ValidationError("--max-tokens must be between 1 and 10000000") }
        let model = try VLMModel.load(path: modelPath, options: load.loadOptions(minPixels: minPixels, maxPixels: maxPixels))
        var parts: [ChatMessage.Part] = try image.map { .image(try ImageDecoder.loadRGB(path: $0)) }
        parts.append(.text(prompt))
        var conversation: [ChatMessage] = []
        if let system { conversation.append(.system(system)) }
        conversation.append(.user(parts))
        let params = GenerationParameters(
            maxNewTokens: maxTokens,
            sampling: SamplingParameters(temperature: Float(temperature), topP: Float(topP)),
            seeds: [seed])
        guard let out = try model.generate([conversation], parameters: params).first else { return }
        if out.imagesDropped > 0 {
            FileHandle.standardError.write(Data("note: \(out.imagesDropped) image(s) dropped: \(modelPath) is a text-only model\n".utf8))
        }
        if json {
            let text = String(decoding: try JSONEncoder().encode([out.text]), as: UTF8.self).dropFirst().dropLast()
            print("{\"token_ids\": [\(out.tokenIds.map(String.init).joined(separator: ", "))], \"text\": \(text), \"prompt_tokens\": \(out.promptTokens), \"finish_reason\": \"\(out.finishReason.rawValue)\", \"images_dropped\": \(out.imagesDropped)}")
        } else {
            print(out.text)
        }
    }
}

struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "Checkpoint utilities.", subcommands: [InitRandomCommand.self])
}

struct InitRandomCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init-random",
        abstract: "Write a randomly initialised checkpoint for a config (tokenizer and processor files beside the config are copied).")

    @Option(help: "A Qwen2-VL / Qwen2.5-VL / Llama / Qwen2 config.json.") var config: String
    @Option(help: "Output folder.") var out: String
    @Option(help: "Stored dtype: f32 or bf16.") var dtype = "bf16"
    @Option(help: "Seed; the same seed writes the same weights.") var seed: UInt64 = 0

    func run() throws {
        let stored: DType
        switch dtype.lowercased() {
        case "f32", "float32": stored = .f32
        case "bf16", "bfloat16": stored = .bf16
        default: throw RuntimeCommandError(description: "--dtype must be f32 or bf16, not \(dtype)")
        }
        let start = Date()
        try RandomCheckpoint.write(configPath: config, to: out, dtype: stored, seed: seed)
        print(String(format: "wrote %@ (%@) in %.1f s", out, stored.rawValue, Date().timeIntervalSince(start)))
    }
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks (never run as tests).", subcommands: [BenchRuntimeCommand.self, BenchHTTPCommand.self, BenchTrainCommand.self, BenchGRPOCommand.self])
}

struct BenchRuntimeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runtime",
        abstract: "Prefill and decode speed, vision time per image, time to first token and peak memory of the embedded runtime.",
        discussion: """
            The text prompt is exactly --prompt-tokens ids (no chat template), so the numbers compare with other \
            runtimes fed the same ids; decode runs --gen-tokens greedy steps with EOS ignored. With --repeat N the \
            run is repeated and the median printed last.
            """)

    @Option(help: "Checkpoint folder or .gguf file.") var modelPath: String
    @Option(help: "Image to include (measures the vision tower; the prompt then goes through the chat template).") var image: String?
    @Option(help: "Text tokens in the prompt.") var promptTokens = 256
    @Option(help: "Tokens to decode (EOS is ignored).") var genTokens = 128
    @Option(help: "Runs; the median is printed when more than one.") var `repeat` = 1
    @OptionGroup var load: RuntimeLoadOptions

    func run() throws {
        let gb = 1e9
        let loadStart = Date()
        // Without --precision, a bf16 checkpoint is measured both ways (exact first).
        let chosen = try load.matmulPrecision()
        let first = chosen ?? .float32
        let model = try VLMModel.load(path: modelPath, options: load.loadOptions(precision: first))
        let loadSeconds = Date().timeIntervalSince(loadStart)
        let activations = model.activationMode == .float32 ? "f32 activations (exact)" : "ggml activations (quantised, llama.cpp-style)"
        print("model:      \(modelPath) (\(model.config.family.rawValue), \(model.weightFormat), \(String(format: "%.3f", Double(model.weightBytes) / gb)) GB of weights, loaded in \(String(format: "%.2f", loadSeconds)) s)")
        print("cores:      \(ProcessInfo.processInfo.activeProcessorCount); decode: \(activations); kernels: \(KernelPath.summary)")
        var prefillRates: [Double] = [], decodeRates: [Double] = []
        for _ in 0..<max(1, `repeat`) {
            let (p, d) = try measure(model, label: first == .float32 ? "fp32 matmuls (exact)" : "bf16 matmuls (AVX512-BF16)")
            prefillRates.append(p)
            decodeRates.append(d)
        }
        if prefillRates.count > 1 {
            print(String(format: "median of %d runs: prefill %.1f tok/s, decode %.2f tok/s", prefillRates.count,
                         PairedDecodeBandwidth.median(prefillRates), PairedDecodeBandwidth.median(decodeRates)))
        }
        let peak = RuntimeBenchmark.peakResidentBytes()
        if chosen == nil && model.weightFormat == DType.bf16.rawValue && VLMModel.supportsBF16Matmul {
            _ = try measure(try VLMModel.load(path: modelPath, options: load.loadOptions(precision: .bfloat16)), label: "bf16 matmuls (AVX512-BF16)")
        }
        // Measured after the runs so the probe's buffer does not count in the peak: decode steps
        // of the first model, each beside a bandwidth sample (the bandwidth of a shared machine
        // moves by a factor of two within seconds, so only neighbouring figures compare).
        let probe = BandwidthProbe()
        let ids = Array(model.tokenizer.encode(filler).prefix(promptTokens))
        let paired = try model.pairedDecodeBandwidth(prompt: ids, steps: min(max(genTokens, 1), 32), probe: probe)
        let median = PairedDecodeBandwidth.median
        let perToken = Double(model.decodeWeightBytes)
        let best = paired.sampled.max() ?? 0
        print(String(format: "bandwidth:  %.1f GB/s read (all cores), median of %d samples beside decode steps; range %.1f–%.1f GB/s",
                     median(paired.sampled) / gb, paired.sampled.count, (paired.sampled.min() ?? 0) / gb, best / gb))
        print(String(format: "decode:     %.3f GB of weights per token, streamed at %.1f GB/s = %.0f%% of the bandwidth beside each step (median of %d steps); bound at the best sample %.1f tok/s",
                     perToken / gb, median(paired.streamed) / gb, 100 * median(paired.ratios), paired.ratios.count, best / perToken))
        print(String(format: "peak RSS:   %.2f GB", Double(peak) / gb))
    }

    private var filler: String {
        String(repeating: "The quick brown fox jumps over the lazy dog while the chart shows a rising trend. ", count: max(1, promptTokens / 8 + 2))
    }

    /// One prompt + decode run; prints its figures and returns (prefill, decode) tokens/s.
    func measure(_ model: VLMModel, label: String) throws -> (Double, Double) {
        let ids = Array(model.tokenizer.encode(filler).prefix(promptTokens))
        let start = Date()
        let batch: PromptBatch
        if let image {
            batch = try model.prepare([[.user([.image(try ImageDecoder.loadRGB(path: image)), .text(model.tokenizer.decode(ids))])]])
        } else {
            batch = try model.prepare(tokenIds: [ids])
        }
        let prepareSeconds = Date().timeIntervalSince(start)
        var stats = GenerationStats()
        // One more token than --gen-tokens: the first comes from the prefill logits, then --gen-tokens decode steps.
        _ = try model.generate(batch, parameters: GenerationParameters(maxNewTokens: genTokens + 1, stopAtEOS: false), stats: &stats)
        print("[\(label)]")
        if stats.images > 0 {
            let g = batch.images.grids[0]
            print(String(format: "  vision:      %.3f s per image (%d patches → %d tokens)", stats.visionSeconds / Double(stats.images),
                         g.patches, g.tokens(merge: model.imageTokensPerGridMerge)))
        }
        let prefillRate = Double(stats.prefillTokens) / stats.prefillSeconds
        print(String(format: "  prefill:     %d tokens in %.3f s = %.1f tok/s", stats.prefillTokens, stats.prefillSeconds, prefillRate))
        print(String(format: "  first token: %.3f s after the request (preparation %.3f s)",
                     prepareSeconds + stats.timeToFirstToken, prepareSeconds))
        let rate = Double(stats.decodeSteps) / stats.decodeSeconds
        print(String(format: "  decode:      %d tokens in %.3f s = %.2f tok/s", stats.decodeSteps, stats.decodeSeconds, rate))
        return (prefillRate, rate)
    }
}
