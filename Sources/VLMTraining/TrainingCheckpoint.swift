import Foundation
import VLMRuntime

/// Why a checkpoint could not be loaded for training or saved after it. Every case names the file
/// (or folder) and, where there is one, the tensor. Errors of the runtime's readers
/// (`SafeTensorsError`, `GGUFError`, `ConfigError`, `TokenizerError`) pass through unchanged; they
/// name the file and tensor too.
public enum TrainingCheckpointError: Error, CustomStringConvertible, Equatable {
    /// The path is neither a checkpoint folder nor a GGUF file.
    case notACheckpoint(path: String, reason: String)
    /// A tensor the config implies is not in the checkpoint.
    case missingTensor(file: String, tensor: String)
    /// A tensor whose shape disagrees with the config (or, on save, a parameter whose value count
    /// disagrees with its shape).
    case shapeMismatch(file: String, tensor: String, expected: [Int], actual: [Int])
    /// A GGUF tensor type the runtime cannot dequantise.
    case unsupportedTensorType(file: String, tensor: String, type: String)
    /// A safetensors dtype that is not a float type (only when it would have to become a parameter).
    case unsupportedDType(file: String, tensor: String, dtype: String)
    /// A tensor with no canonical (Hub) name: the loader would not know what it is.
    case unmappedTensor(file: String, tensor: String)
    /// Two stored tensors that map to the same canonical name.
    case duplicateTensor(file: String, tensor: String, canonical: String)
    /// Something of the checkpoint that the Hugging Face export cannot express.
    case unsupportedForExport(file: String, what: String, reason: String)
    /// The output path is the source folder (or inside it, or the source file).
    case outputIsSource(path: String)
    /// The output path exists and is not a previous save of ours.
    case outputExists(path: String, reason: String)
    /// The source changed between load and save (or a parameter no longer fits it).
    case sourceChanged(file: String, reason: String)
    /// Writing the output failed.
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .notACheckpoint(p, r): return "\(p): not a checkpoint folder or GGUF file: \(r)"
        case let .missingTensor(f, t): return "\(f): tensor '\(t)' is missing"
        case let .shapeMismatch(f, t, e, a): return "\(f): tensor '\(t)' has shape \(a), expected \(e)"
        case let .unsupportedTensorType(f, t, ty): return "\(f): tensor '\(t)' has type \(ty), which cannot be dequantised to f32"
        case let .unsupportedDType(f, t, d): return "\(f): tensor '\(t)' has dtype \(d), not a float type"
        case let .unmappedTensor(f, t): return "\(f): tensor '\(t)' has no Hugging Face counterpart"
        case let .duplicateTensor(f, t, c): return "\(f): tensor '\(t)' maps to '\(c)', which another tensor already provides"
        case let .unsupportedForExport(f, w, r): return "\(f): \(w) cannot be exported as a Hugging Face folder: \(r)"
        case let .outputIsSource(p): return "\(p): refusing to write a checkpoint into its own source"
        case let .outputExists(p, r): return "\(p): output exists: \(r)"
        case let .sourceChanged(f, r): return "\(f): the source checkpoint no longer matches what was loaded: \(r)"
        case let .writeFailed(p, r): return "\(p): cannot write checkpoint: \(r)"
        }
    }
}

/// One tensor as a safetensors folder stores it.
public struct StoredTensor: Sendable, Equatable {
    /// Shard file name inside the folder (e.g. `model-00001-of-00002.safetensors`).
    public let file: String
    /// Name in the file (any layout: Hub, transformers v5, mlx).
    public let storedName: String
    /// Canonical (Hub) name, nil when the layout table does not know it.
    public let canonicalName: String?
    public let dtype: DType
    /// Shape in the file.
    public let shape: [Int]
    /// Whether this is mlx's channels-last patch-embedding conv weight [out, T, P, P, C]
    /// (the parameter holds torch order [out, C, T, P, P]).
    public let channelsLast: Bool
    /// Whether the parameter set carries this tensor (false: copied unchanged on save).
    public let isParameter: Bool
}

/// Where loaded weights came from; `TrainingCheckpoint.save` writes the output in its image.
public enum CheckpointSource: Sendable, Equatable {
    /// A safetensors folder: its shards and every stored tensor (in shard order, then file offset).
    case folder(directory: String, shards: [String], hasIndex: Bool, tensors: [StoredTensor])
    /// A GGUF file: architecture, whether llama.cpp's q/k row permutation was undone, and the
    /// tensor types it held (type name → count).
    case gguf(path: String, architecture: String, permutedQK: Bool, tensorTypes: [String: Int])

    /// The folder or file path.
    public var path: String {
        switch self {
        case let .folder(d, _, _, _): return d
        case let .gguf(p, _, _, _): return p
        }
    }
}

/// A checkpoint's tensors as f32 parameters under canonical names, with its config and origin.
public struct LoadedWeights: @unchecked Sendable {
    /// Every float tensor, f32, canonical (Hub) names, in `TrainingCheckpoint.order`.
    public let parameters: ParameterSet
    public let config: ModelConfig
    public let source: CheckpointSource

    public init(parameters: ParameterSet, config: ModelConfig, source: CheckpointSource) {
        self.parameters = parameters
        self.config = config
        self.source = source
    }
}

/// Reading a checkpoint for training and writing it back.
///
/// `load` accepts a safetensors folder in any layout the runtime reads (Hub release names,
/// transformers v5 `model.language_model.*` / `model.visual.*`, mlx `language_model.*` /
/// `vision_tower.*` with its channels-last patch embedding; f32, bf16 or f16; sharded through
/// `model.safetensors.index.json`) or a GGUF file (every tensor dequantised to f32, llama.cpp's
/// q/k row order undone as the inference path does it).
///
/// Parameters come in a fixed order: the vision tower (patch embedding, blocks, merger), then the
/// embedding, the decoder layers in order, the final norm and `lm_head` — the order of
/// `RandomCheckpoint.tensorShapes` — followed by any further float tensors of a folder under their
/// canonical names, sorted by name. Shapes are torch order; `visual.patch_embed.proj.weight` is
/// [out, C, T, P, P] with its values flattened row-major, whatever layout the file used.
///
/// Tied embeddings (`tie_word_embeddings`, or a GGUF without `output.weight`): there is no
/// `lm_head.weight` parameter; the head is `model.embed_tokens.weight`. A folder that stores an
/// `lm_head.weight` anyway keeps it out of the parameter set, and `save` rewrites it from the
/// embedding so the two stay equal.
public enum TrainingCheckpoint {
    /// Writes a line to standard error (the default `log`).
    public static func standardErrorLog(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// Loads a checkpoint folder or a `.gguf` file as f32 parameters.
    public static func load(path: String, log: (String) -> Void = TrainingCheckpoint.standardErrorLog) throws -> LoadedWeights {
        var info = stat()
        guard stat(path, &info) == 0 else { throw TrainingCheckpointError.notACheckpoint(path: path, reason: "no such file or folder") }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: return try loadFolder(path, log: log)
        case S_IFREG: return try loadGGUF(path, log: log)
        default: throw TrainingCheckpointError.notACheckpoint(path: path, reason: "not a regular file or a folder")
        }
    }

    // MARK: - Folders

    static let patchEmbedName = "visual.patch_embed.proj.weight"

    static func loadFolder(_ directory: String, log: (String) -> Void) throws -> LoadedWeights {
        let configPath = (directory as NSString).appendingPathComponent("config.json")
        let config = try ModelConfig.load(path: configPath)
        let checkpoint = try SafeTensorsCheckpoint(directory: directory)
        let hasIndex = FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent("model.safetensors.index.json"))

        // canonical name → (file, entry)
        var byCanonical: [String: (SafeTensorsFile, TensorEntry)] = [:]
        for file in checkpoint.files {
            for name in file.entries.keys.sorted() {
                guard let e = file.entries[name], let canonical = WeightLayout.canonical(name) else { continue }
                if byCanonical[canonical] != nil {
                    throw TrainingCheckpointError.duplicateTensor(file: file.path, tensor: name, canonical: canonical)
                }
                byCanonical[canonical] = (file, e)
            }
        }

        let parameters = ParameterSet()
        var used = Set<String>()
        var channelsLast = false
        for (name, shape) in RandomCheckpoint.tensorShapes(config) {
            guard let (file, e) = byCanonical[name] else {
                throw TrainingCheckpointError.missingTensor(file: directory, tensor: name)
            }
            try requireFloat(file, e)
            var values: [Float]
            if e.shape == shape {
                values = try file.floats(e)
            } else if name == patchEmbedName, shape.count == 5, e.shape == [shape[0], shape[2], shape[3], shape[4], shape[1]] {
                values = channelsLastToTorch(try file.floats(e), out: shape[0], channels: shape[1], temporal: shape[2], patch: shape[3])
                channelsLast = true
            } else {
                throw TrainingCheckpointError.shapeMismatch(file: file.path, tensor: e.name, expected: shape, actual: e.shape)
            }
            parameters.append(Parameter(name: name, shape: shape, value: values))
            used.insert(name)
        }
        // Further float tensors under a canonical name become parameters too (sorted, after the
        // known ones). A stored lm_head of a tied model is left out: the embedding is the head.
        for name in byCanonical.keys.sorted() where !used.contains(name) {
            guard let (file, e) = byCanonical[name] else { continue }
            if name == "lm_head.weight" && config.tieWordEmbeddings {
                log("\(file.path): lm_head.weight is stored but tie_word_embeddings is set; it is not a parameter and is rewritten from model.embed_tokens.weight on save")
                continue
            }
            guard [.f32, .bf16, .f16, .f64].contains(e.dtype) else {
                log("\(file.path): tensor '\(e.name)' (\(e.dtype.rawValue)) is not a float tensor; kept out of the parameters and copied on save")
                continue
            }
            log("\(file.path): tensor '\(e.name)' is not one the config implies; loaded as parameter '\(name)'")
            parameters.append(Parameter(name: name, shape: e.shape, value: try file.floats(e)))
            used.insert(name)
        }

        var stored: [StoredTensor] = []
        var shards: [String] = []
        for file in checkpoint.files {
            let shard = (file.path as NSString).lastPathComponent
            shards.append(shard)
            for e in file.entries.values.sorted(by: { ($0.offset, $0.name) < ($1.offset, $1.name) }) {
                let canonical = WeightLayout.canonical(e.name)
                stored.append(StoredTensor(file: shard, storedName: e.name, canonicalName: canonical, dtype: e.dtype, shape: e.shape,
                                           channelsLast: channelsLast && canonical == patchEmbedName,
                                           isParameter: canonical.map { used.contains($0) } ?? false))
            }
        }
        return LoadedWeights(parameters: parameters, config: config,
                             source: .folder(directory: directory, shards: shards, hasIndex: hasIndex, tensors: stored))
    }

    static func requireFloat(_ file: SafeTensorsFile, _ e: TensorEntry) throws {
        guard [.f32, .bf16, .f16, .f64].contains(e.dtype) else {
            throw TrainingCheckpointError.unsupportedDType(file: file.path, tensor: e.name, dtype: e.dtype.rawValue)
        }
    }

    /// mlx [out, T, P, P, C] → torch [out, C, T, P, P], exactly as `WeightLoader.patchEmbed` does.
    static func channelsLastToTorch(_ src: [Float], out: Int, channels: Int, temporal: Int, patch: Int) -> [Float] {
        var dst = [Float](repeating: 0, count: src.count)
        for o in 0..<out { for t in 0..<temporal { for y in 0..<patch { for x in 0..<patch { for c in 0..<channels {
            dst[(((o * channels + c) * temporal + t) * patch + y) * patch + x] = src[(((o * temporal + t) * patch + y) * patch + x) * channels + c]
        } } } } }
        return dst
    }

    /// torch [out, C, T, P, P] → mlx [out, T, P, P, C].
    static func torchToChannelsLast(_ src: [Float], out: Int, channels: Int, temporal: Int, patch: Int) -> [Float] {
        var dst = [Float](repeating: 0, count: src.count)
        for o in 0..<out { for t in 0..<temporal { for y in 0..<patch { for x in 0..<patch { for c in 0..<channels {
            dst[(((o * temporal + t) * patch + y) * patch + x) * channels + c] = src[(((o * channels + c) * temporal + t) * patch + y) * patch + x]
        } } } } }
        return dst
    }

    // MARK: - GGUF

    /// GGUF tensors that carry configuration rather than weights (folded into `ModelConfig`).
    static let ggufConfigTensors: Set<String> = ["rope_freqs.weight"]

    static func loadGGUF(_ path: String, log: (String) -> Void) throws -> LoadedWeights {
        let file = try GGUFFile(path: path)
        let config = try ModelConfig(gguf: file)
        let arch = (try? file.metadata.string("general.architecture")).flatMap { $0 } ?? "?"
        let permuted = ModelConfig.ggufPermutedQK(file)
        let types = file.tensorTypeCounts
        // Every tensor's type is checked before anything is dequantised.
        for t in file.tensors where !t.type.isSupportedByKernels {
            throw TrainingCheckpointError.unsupportedTensorType(file: path, tensor: t.name, type: t.type.name)
        }
        log("dequantising GGUF \(path) (\(types.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))) to f32 for training")

        let headDim = config.text.headDim
        let parameters = ParameterSet()
        var used = Set<String>()
        for (name, shape) in RandomCheckpoint.tensorShapes(config) {
            guard let gname = GGUFWeights.ggufName(name) else {
                throw TrainingCheckpointError.unmappedTensor(file: path, tensor: name)
            }
            guard let info = file.tensorInfo(named: gname) else {
                throw TrainingCheckpointError.missingTensor(file: path, tensor: gname)
            }
            // ggml lists dimensions innermost first: [cols, rows] is torch's [rows, cols].
            guard Array(info.dimensions.reversed()) == shape else {
                throw TrainingCheckpointError.shapeMismatch(file: path, tensor: gname, expected: shape.reversed(), actual: info.dimensions)
            }
            var values = try file.tensor(named: gname).dequantized()
            if permuted && (name.contains("self_attn.q_proj.") || name.contains("self_attn.k_proj.")) {
                // llama.cpp stores q/k rows in adjacent-pair rotary order; put them back in Hugging
                // Face order with the runtime's own map (GGUFWeights does the same on whole rows).
                let rows = shape[0], cols = shape.count > 1 ? shape[1] : 1
                guard let order = LlamaRotaryOrder(headDim: headDim)?.ggufRowsInHuggingFaceOrder(rows: rows), order.count == rows else {
                    throw TrainingCheckpointError.shapeMismatch(file: path, tensor: gname, expected: [headDim], actual: info.dimensions)
                }
                values = unpermuteRows(values, order: order, cols: cols)
            }
            parameters.append(Parameter(name: name, shape: shape, value: values))
            used.insert(gname)
        }
        for t in file.tensors where !used.contains(t.name) {
            if ggufConfigTensors.contains(t.name) { continue }
            throw TrainingCheckpointError.unmappedTensor(file: path, tensor: t.name)
        }
        return LoadedWeights(parameters: parameters, config: config,
                             source: .gguf(path: path, architecture: arch, permutedQK: permuted, tensorTypes: types))
    }

    /// `hf[h] = gguf[order[h]]`, row by row.
    static func unpermuteRows(_ values: [Float], order: [Int], cols: Int) -> [Float] {
        var out = [Float](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (h, g) in order.enumerated() {
                    for c in 0..<cols { dst[h * cols + c] = src[g * cols + c] }
                }
            }
        }
        return out
    }
}
