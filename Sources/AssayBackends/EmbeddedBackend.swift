import AssayCore
import Foundation
import VLMRuntime

/// Runs a local checkpoint in-process through `VLMRuntime` (`assay sweep --backend local
/// --model-path PATH`): a Qwen2-VL / Qwen2.5-VL or Llama folder, or a GGUF file such as the
/// embedded default SmolLM2-135M.
///
/// Requests are rendered through the checkpoint's chat template, grouped into batches of up to
/// `preferredBatchSize` requests with the same sampling settings, and run one batch at a time
/// (the runtime already uses every core). Per-request failures (an image that does not decode,
/// a prompt the model cannot take) come back as `.error` responses.
///
/// A text-only model cannot see images. Their parts are dropped from the prompt, and that is
/// never silent: the identity's model name says "text-only, images dropped" (so every run record
/// and report shows it) and `runNotes` records it.
public final class EmbeddedBackend: ModelBackend, @unchecked Sendable {
    public let identity: BackendIdentity
    public let preferredBatchSize: Int
    public let model: VLMModel
    /// Facts about the backend worth keeping with the run (`Sweep` stores them as run notes).
    public let runNotes: [String: String]
    private let gate = BatchGate()

    /// Suffix of the model name of a text-only model.
    public static let textOnlyMarker = " (text-only: images dropped)"

    /// - Parameters:
    ///   - modelPath: checkpoint folder (config.json, safetensors, tokenizer.json, processor config) or a .gguf file
    ///   - name: model name for run records; defaults to the folder or file name
    ///   - batchSize: requests per forward batch (`--batch-size`)
    ///   - options: pixel budget, bf16 prefill, `--quantize q8_0`, decode activation path
    public init(modelPath: String, name: String? = nil, batchSize: Int = 1, options: LoadOptions = LoadOptions()) throws {
        model = try VLMModel.load(path: modelPath, options: options)
        preferredBatchSize = max(1, batchSize)
        let fingerprint = try Self.fingerprint(modelPath: modelPath, options: options)
        let bf16Matmuls = options.precision == .bfloat16 && VLMModel.supportsBF16Matmul
        var display = name ?? URL(fileURLWithPath: modelPath).lastPathComponent
        if model.isGGUF, name == nil, display.hasSuffix(".gguf") { display = String(display.dropLast(5)) }
        var notes: [String: String] = ["weights": model.weightFormat,
                                       "decode_activations": options.activations == .float32 ? "f32" : "ggml",
                                       "prefill_matmuls": bf16Matmuls ? "bf16" : "f32"]
        if !model.acceptsImages {
            display += Self.textOnlyMarker
            notes["images"] = "dropped: the model is text-only"
        }
        runNotes = notes
        identity = BackendIdentity(kind: "local", model: display, checkpoint: fingerprint)
    }

    /// The identity's `checkpoint`: the checkpoint's content fingerprint and every load setting
    /// that changes the numbers (a cached answer depends on them). Cheap and needs no loaded
    /// model, so a sweep compares it with a resumed run's before loading anything.
    public static func fingerprint(modelPath: String, options: LoadOptions) throws -> String {
        var fingerprint = try CheckpointFingerprint.compute(path: modelPath)
        if let q = options.quantization { fingerprint += "+quantize=\(q.rawValue)" }
        if options.activations == .ggml { fingerprint += "+activations=ggml" }
        if let pixels = options.minPixels { fingerprint += "+min_pixels=\(pixels)" }
        if let pixels = options.maxPixels { fingerprint += "+max_pixels=\(pixels)" }
        if options.precision == .bfloat16 && VLMModel.supportsBF16Matmul { fingerprint += "+matmul=bf16" }
        return fingerprint
    }

    /// The older signature: pixel budget and bf16 prefill only.
    public convenience init(modelPath: String, name: String? = nil, batchSize: Int = 1, minPixels: Int? = nil, maxPixels: Int? = nil,
                            precision: MatmulPrecision = .float32) throws {
        try self.init(modelPath: modelPath, name: name, batchSize: batchSize,
                      options: LoadOptions(minPixels: minPixels, maxPixels: maxPixels, precision: precision))
    }

    public func generate(_ request: GenerationRequest) async throws -> ModelResponse {
        try await generate(batch: [request])[0]
    }

    public func generate(batch requests: [GenerationRequest]) async throws -> [ModelResponse] {
        var responses = [ModelResponse?](repeating: nil, count: requests.count)
        var pending: [(index: Int, conversation: [ChatMessage], seed: UInt64)] = []
        for (i, request) in requests.enumerated() {
            do {
                pending.append((i, try Self.conversation(request), Self.seed(for: request)))
            } catch {
                responses[i] = .failure(kind: "bad_input", message: "\(error)", attempts: 1)
            }
        }
        // Rows of one runtime batch must share token budget and sampling settings.
        var groups: [[(index: Int, conversation: [ChatMessage], seed: UInt64)]] = []
        for item in pending {
            let p = requests[item.index].params
            if let last = groups.last, last.count < preferredBatchSize, requests[last[0].index].params.sameSampling(as: p) {
                groups[groups.count - 1].append(item)
            } else {
                groups.append([item])
            }
        }
        for group in groups {
            try Task.checkCancellation()
            let params = requests[group[0].index].params
            let generation = GenerationParameters(
                maxNewTokens: params.maxTokens,
                sampling: SamplingParameters(temperature: Float(params.temperature), topP: Float(params.topP)),
                seeds: group.map(\.seed))
            let started = Date()
            let result: Result<[GenerationOutput], Error> = await gate.run { [model] in
                Result { try model.generate(group.map(\.conversation), parameters: generation) }
            }
            let latency = Date().timeIntervalSince(started)
            switch result {
            case .success(let outputs):
                for (item, out) in zip(group, outputs) {
                    responses[item.index] = ModelResponse(
                        text: out.text, status: out.finishReason == .stop ? .ok : .truncated,
                        promptTokens: out.promptTokens, completionTokens: out.tokenIds.count,
                        latencySeconds: latency / Double(group.count))
                }
            case .failure(let error):
                for item in group {
                    responses[item.index] = .failure(kind: "runtime_error", message: "\(error)", attempts: 1, latency: latency)
                }
            }
        }
        return responses.map { $0 ?? .failure(kind: "runtime_error", message: "no response produced", attempts: 1) }
    }

    /// AssayCore messages → runtime chat messages, images decoded from the request's bytes.
    static func conversation(_ request: GenerationRequest) throws -> [ChatMessage] {
        try request.messages.map { message in
            ChatMessage(role: message.role.rawValue, parts: try message.content.map { part in
                switch part {
                case .text(let text):
                    return .text(text)
                case .image(let ref):
                    guard let data = request.images[ref.sha256] else {
                        throw ModelInputError.missingImage("no bytes for image \(ref.sha256) (\(ref.origin))")
                    }
                    return .image(try ImageDecoder.loadRGB(data: data, name: ref.origin))
                }
            })
        }
    }

    /// The draw's seed: the request seed (0 without one) mixed with the sample index, so the
    /// `--samples N` draws differ from each other and each is reproducible.
    static func seed(for request: GenerationRequest) -> UInt64 {
        seed(request.params.seed, sample: request.sampleIndex)
    }

    /// The seed of draw `sample` of a request seeded with `seed`; `assay serve` seeds choice i of
    /// a request the same way, so its choices are the embedded backend's samples.
    public static func seed(_ seed: UInt64?, sample: Int) -> UInt64 {
        var z = (seed ?? 0) &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(sample + 1)
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension GenerationParams {
    func sameSampling(as other: GenerationParams) -> Bool {
        temperature == other.temperature && topP == other.topP && maxTokens == other.maxTokens
    }
}

/// Runs one runtime batch at a time on a serial queue off the cooperative pool: the runtime
/// blocks its thread and already spreads work over every core. (An actor would not do: it is
/// re-entered while a batch is suspended.)
private final class BatchGate: Sendable {
    private let queue = DispatchQueue(label: "assay.embedded-backend", qos: .userInitiated)
    func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: body()) }
        }
    }
}
