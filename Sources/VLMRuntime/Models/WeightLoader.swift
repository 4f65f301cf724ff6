import Foundation

/// How weights are stored in memory after loading.
public enum WeightQuantization: String, Sendable, CaseIterable {
    /// Quantise every decoder matrix of a safetensors checkpoint to ggml Q8_0 at load time
    /// (`--quantize q8_0`): about a quarter of fp32's bytes per decode step, at Q8_0's accuracy.
    /// Matrices whose row length is not a multiple of 32 stay as stored. GGUF files are already
    /// quantised and are used as they are.
    case q8_0
}

/// Where the decoder gets its weights: tensors by their canonical (Hugging Face) names, checked
/// against the shapes the config implies. Safetensors folders (`WeightLoader`) and GGUF files
/// (`GGUFWeights`) both provide it, so everything after the reader is one code path.
protocol DecoderWeights {
    /// Whether a tensor exists (optional ones: `lm_head.weight`, biases).
    func has(_ name: String) -> Bool
    /// A [rows, cols] projection or embedding matrix, in the storage the source keeps it in.
    func linearWeight(_ name: String, rows: Int, cols: Int) throws -> LinearWeight
    /// A 1-D tensor of `count` values as Float32 (norm weights, biases).
    func vector(_ name: String, count: Int) throws -> [Float]
}

/// What the vision tower reads beyond the decoder's needs: the patch embedding (torch order) and
/// layers that always stay as stored.
protocol VisionWeights: DecoderWeights {
    func patchEmbed(_ name: String, out: Int, channels: Int, temporal: Int, patch: Int) throws -> WeightMatrix
    func denseLinear(_ prefix: String, out: Int, in inF: Int, bias: Bool) throws -> Linear
}

/// f32 tensors held in memory under canonical (Hub) names, torch shapes: a model being trained,
/// whose current values the runtime samples from (`VLMModel.replacingWeights`). Each matrix is
/// copied into the runtime's own aligned storage, so later changes to the caller's arrays do not
/// reach the model, and the model holds no reference to them.
package struct InMemoryWeights: VisionWeights {
    package struct Tensor {
        package var shape: [Int]
        package var values: [Float]
        package init(shape: [Int], values: [Float]) {
            self.shape = shape
            self.values = values
        }
    }

    let tensors: [String: Tensor]
    /// Shown in errors where a file name would be.
    let origin: String

    package init(_ tensors: [String: Tensor], origin: String) {
        self.tensors = tensors
        self.origin = origin
    }

    func has(_ name: String) -> Bool { tensors[name] != nil }

    private func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        guard let t = tensors[name] else { throw SafeTensorsError.missingTensor(name: name, checkpoint: origin) }
        guard t.shape == shape, t.values.count == shape.reduce(1, *) else {
            throw SafeTensorsError.wrongShape(file: origin, tensor: name, expected: shape, actual: t.shape)
        }
        return t
    }

    func linearWeight(_ name: String, rows: Int, cols: Int) throws -> LinearWeight {
        .dense(WeightMatrix(rows: rows, cols: cols, floats: try tensor(name, shape: [rows, cols]).values))
    }

    func vector(_ name: String, count: Int) throws -> [Float] { try tensor(name, shape: [count]).values }

    func patchEmbed(_ name: String, out: Int, channels: Int, temporal: Int, patch: Int) throws -> WeightMatrix {
        let t = try tensor(name, shape: [out, channels, temporal, patch, patch])
        return WeightMatrix(rows: out, cols: channels * temporal * patch * patch, floats: t.values)
    }

    func denseLinear(_ prefix: String, out: Int, in inF: Int, bias: Bool) throws -> Linear {
        Linear(weight: try linearWeight(prefix + ".weight", rows: out, cols: inF),
               bias: bias ? try vector(prefix + ".bias", count: out) : nil)
    }
}

extension DecoderWeights {
    /// `prefix.weight` [out, in] and, when `bias`, `prefix.bias` [out].
    func linear(_ prefix: String, out: Int, in inF: Int, bias: Bool) throws -> Linear {
        Linear(weight: try linearWeight(prefix + ".weight", rows: out, cols: inF),
               bias: bias ? try vector(prefix + ".bias", count: out) : nil)
    }
}

/// Reads tensors by their canonical (Hub) name from a checkpoint in any supported layout and
/// checks each against the shape the model expects.
struct WeightLoader: VisionWeights {
    let checkpoint: SafeTensorsCheckpoint
    /// canonical name → name in the file
    let names: [String: String]
    let precision: MatmulPrecision
    /// Decoder matrices are quantised at load when set (the vision tower always stays as stored).
    let quantization: WeightQuantization?

    init(checkpoint: SafeTensorsCheckpoint, precision: MatmulPrecision = .float32, quantization: WeightQuantization? = nil) {
        self.checkpoint = checkpoint
        self.precision = precision
        self.quantization = quantization
        var names: [String: String] = [:]
        for n in checkpoint.tensorNames {
            if let c = WeightLayout.canonical(n) { names[c] = n }
        }
        self.names = names
    }

    func has(_ name: String) -> Bool { names[name] != nil }

    private func entry(_ name: String) throws -> (SafeTensorsFile, TensorEntry) {
        guard let stored = names[name] else {
            throw SafeTensorsError.missingTensor(name: name, checkpoint: checkpoint.directory)
        }
        return try checkpoint.lookup(stored)
    }

    /// A weight of shape `shape` viewed as [shape[0], product(rest)], kept in its stored dtype.
    func matrix(_ name: String, shape: [Int]) throws -> WeightMatrix {
        let (file, e) = try entry(name)
        guard e.shape == shape else { throw SafeTensorsError.wrongShape(file: file.path, tensor: e.name, expected: shape, actual: e.shape) }
        guard e.dtype == .f32 || e.dtype == .bf16 || e.dtype == .f16 else {
            throw SafeTensorsError.unsupportedDType(file: file.path, tensor: e.name, dtype: e.dtype.rawValue)
        }
        return WeightMatrix(rows: shape[0], cols: shape.dropFirst().reduce(1, *), dtype: e.dtype, pointer: file.pointer(e), owner: file,
                            precision: precision)
    }

    /// The conv weight of the patch embedding, accepting mlx's channels-last layout too.
    func patchEmbed(_ name: String, out: Int, channels: Int, temporal: Int, patch: Int) throws -> WeightMatrix {
        let (file, e) = try entry(name)
        let torchShape = [out, channels, temporal, patch, patch]
        if e.shape == torchShape { return try matrix(name, shape: torchShape) }
        let mlxShape = [out, temporal, patch, patch, channels]
        guard e.shape == mlxShape else {
            throw SafeTensorsError.wrongShape(file: file.path, tensor: e.name, expected: torchShape, actual: e.shape)
        }
        let src = try file.floats(e)
        var dst = [Float](repeating: 0, count: src.count)
        for o in 0..<out { for t in 0..<temporal { for y in 0..<patch { for x in 0..<patch { for c in 0..<channels {
            dst[(((o * channels + c) * temporal + t) * patch + y) * patch + x] = src[(((o * temporal + t) * patch + y) * patch + x) * channels + c]
        } } } } }
        return WeightMatrix(rows: out, cols: channels * temporal * patch * patch, floats: dst)
    }

    func vector(_ name: String, count: Int) throws -> [Float] {
        let (file, e) = try entry(name)
        guard e.shape == [count] else { throw SafeTensorsError.wrongShape(file: file.path, tensor: e.name, expected: [count], actual: e.shape) }
        return try file.floats(e)
    }

    /// A vision-tower layer, always kept as stored (`quantization` is for the decoder).
    func denseLinear(_ prefix: String, out: Int, in inF: Int, bias: Bool) throws -> Linear {
        Linear(weight: try matrix(prefix + ".weight", shape: [out, inF]),
               bias: bias ? try vector(prefix + ".bias", count: out) : nil)
    }

    func linearWeight(_ name: String, rows: Int, cols: Int) throws -> LinearWeight {
        let dense = try matrix(name, shape: [rows, cols])
        guard quantization == .q8_0, cols % 32 == 0 else { return .dense(dense) }
        // Converted one matrix at a time, so the f32 copy never exceeds the largest matrix.
        return .quantized(try QuantizedMatrix.quantizingToQ8_0(dense.floats(), rows: rows, columns: cols, name: name))
    }
}
