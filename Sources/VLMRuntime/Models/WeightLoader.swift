import Foundation

/// Reads tensors by their canonical (Hub) name from a checkpoint in any supported layout and
/// checks each against the shape the model expects.
struct WeightLoader {
    let checkpoint: SafeTensorsCheckpoint
    /// canonical name → name in the file
    let names: [String: String]
    let precision: MatmulPrecision

    init(checkpoint: SafeTensorsCheckpoint, precision: MatmulPrecision = .float32) {
        self.checkpoint = checkpoint
        self.precision = precision
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

    func linear(_ prefix: String, out: Int, in inF: Int, bias: Bool) throws -> Linear {
        Linear(weight: try matrix(prefix + ".weight", shape: [out, inF]),
               bias: bias ? try vector(prefix + ".bias", count: out) : nil)
    }
}
