import Dispatch
import Foundation

/// Writes safetensors files: a JSON header (padded to 8 bytes) followed by the tensors in order,
/// streamed so that multi-gigabyte checkpoints never sit in memory whole.
public struct SafeTensorsWriter {
    public struct Spec {
        public var name: String
        public var shape: [Int]
        public var dtype: DType
        public init(name: String, shape: [Int], dtype: DType) { self.name = name; self.shape = shape; self.dtype = dtype }
        var byteCount: Int { shape.reduce(1, *) * dtype.byteSize }
    }

    /// `fill(spec, index, buffer)` writes the Float32 values of each tensor; they are stored in
    /// the spec's dtype (bf16 with round-to-nearest-even).
    public static func write(path: String, tensors: [Spec], metadata: [String: String] = ["format": "pt"],
                             fill: (Spec, UnsafeMutableBufferPointer<Float>) -> Void) throws {
        var header: [String: Any] = ["__metadata__": metadata]
        var offset = 0
        for t in tensors {
            header[t.name] = ["dtype": t.dtype.rawValue, "shape": t.shape, "data_offsets": [offset, offset + t.byteCount]]
            offset += t.byteCount
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw SafeTensorsError.unreadable(file: path, reason: "cannot create file")
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.write(contentsOf: withUnsafeBytes(of: UInt64(json.count).littleEndian, Array.init))
        try handle.write(contentsOf: json)
        for t in tensors {
            let n = t.shape.reduce(1, *)
            var values = [Float](repeating: 0, count: n)
            values.withUnsafeMutableBufferPointer { fill(t, $0) }
            switch t.dtype {
            case .bf16:
                var out = [UInt16](repeating: 0, count: n)
                for i in 0..<n { out[i] = floatToBF16(values[i]).littleEndian }
                try out.withUnsafeBytes { try handle.write(contentsOf: Data($0)) }
            default:
                try values.withUnsafeBytes { try handle.write(contentsOf: Data($0)) }
            }
        }
    }
}

/// A randomly initialised checkpoint with the tensor names and shapes a config implies (Hub
/// layout; any supported family, vision or text-only), for benchmarks and side-by-side runs:
/// `assay model init-random`.
public enum RandomCheckpoint {
    /// Every tensor a Hub-layout checkpoint of `config` holds.
    public static func tensorShapes(_ config: ModelConfig) -> [(name: String, shape: [Int])] {
        let t = config.text
        let h = t.hiddenSize, hd = t.headDim
        var out: [(String, [Int])] = []
        if let v = config.vision {
            let d = v.hiddenSize, m2 = v.spatialMergeSize * v.spatialMergeSize
            let layerNorm = config.family == .qwen2VL
            out.append(("visual.patch_embed.proj.weight", [d, v.inChannels, v.temporalPatchSize, v.patchSize, v.patchSize]))
            for i in 0..<v.depth {
                let p = "visual.blocks.\(i)."
                for n in ["norm1", "norm2"] {
                    out.append((p + n + ".weight", [d]))
                    if layerNorm { out.append((p + n + ".bias", [d])) }
                }
                out += [(p + "attn.qkv.weight", [3 * d, d]), (p + "attn.qkv.bias", [3 * d]),
                        (p + "attn.proj.weight", [d, d]), (p + "attn.proj.bias", [d])]
                if layerNorm {
                    out += [(p + "mlp.fc1.weight", [v.intermediateSize, d]), (p + "mlp.fc1.bias", [v.intermediateSize]),
                            (p + "mlp.fc2.weight", [d, v.intermediateSize]), (p + "mlp.fc2.bias", [d])]
                } else {
                    for n in ["gate_proj", "up_proj"] {
                        out += [(p + "mlp.\(n).weight", [v.intermediateSize, d]), (p + "mlp.\(n).bias", [v.intermediateSize])]
                    }
                    out += [(p + "mlp.down_proj.weight", [d, v.intermediateSize]), (p + "mlp.down_proj.bias", [d])]
                }
            }
            out.append(("visual.merger.ln_q.weight", [d]))
            if layerNorm { out.append(("visual.merger.ln_q.bias", [d])) }
            out += [("visual.merger.mlp.0.weight", [d * m2, d * m2]), ("visual.merger.mlp.0.bias", [d * m2]),
                    ("visual.merger.mlp.2.weight", [v.outHiddenSize, d * m2]), ("visual.merger.mlp.2.bias", [v.outHiddenSize])]
        }
        out.append(("model.embed_tokens.weight", [t.vocabSize, h]))
        for i in 0..<t.numLayers {
            let p = "model.layers.\(i)."
            out += [(p + "input_layernorm.weight", [h]), (p + "post_attention_layernorm.weight", [h])]
            for (n, rows) in [("q_proj", t.numHeads * hd), ("k_proj", t.numKVHeads * hd), ("v_proj", t.numKVHeads * hd)] {
                out.append((p + "self_attn.\(n).weight", [rows, h]))
                if t.attentionBias { out.append((p + "self_attn.\(n).bias", [rows])) }
            }
            out.append((p + "self_attn.o_proj.weight", [h, t.numHeads * hd]))
            for (n, shape) in [("gate_proj", [t.intermediateSize, h]), ("up_proj", [t.intermediateSize, h]), ("down_proj", [h, t.intermediateSize])] {
                out.append((p + "mlp.\(n).weight", shape))
                if t.mlpBias { out.append((p + "mlp.\(n).bias", [shape[0]])) }
            }
        }
        out.append(("model.norm.weight", [h]))
        if !config.tieWordEmbeddings { out.append(("lm_head.weight", [t.vocabSize, h])) }
        return out
    }

    /// Writes `model.safetensors` (+ config.json) into `directory` and copies the tokenizer,
    /// processor and generation files found beside the config. Same seed, same weights.
    /// Weights follow the golden fixtures' recipe: biases N(0, 0.1), norms 1 + 0.1·N(0, 1),
    /// matrices N(0, 1/fan_in), embeddings N(0, 1) (0.35 when tied), lm_head N(0, 0.3).
    public static func write(configPath: String, to directory: String, dtype: DType, seed: UInt64) throws {
        let config = try ModelConfig.load(path: configPath)
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let srcDir = (configPath as NSString).deletingLastPathComponent
        for name in ["config.json", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json",
                     "generation_config.json", "chat_template.jinja", "chat_template.json"] {
            let src = name == "config.json" ? configPath : (srcDir as NSString).appendingPathComponent(name)
            let dst = (directory as NSString).appendingPathComponent(name)
            guard fm.fileExists(atPath: src), src != dst else { continue }
            try? fm.removeItem(atPath: dst)
            try fm.copyItem(atPath: src, toPath: dst)
        }
        let specs = tensorShapes(config).map { SafeTensorsWriter.Spec(name: $0.name, shape: $0.shape, dtype: dtype) }
        let path = (directory as NSString).appendingPathComponent("model.safetensors")
        try SafeTensorsWriter.write(path: path, tensors: specs) { spec, buf in
            let name = spec.name
            var tensorSeed = seed
            for b in name.utf8 { tensorSeed = (tensorSeed ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
            let (mean, std): (Float, Float)
            if name.hasSuffix(".bias") { (mean, std) = (0, 0.1) }
            else if spec.shape.count == 1 { (mean, std) = (1, 0.1) }
            else if name == "model.embed_tokens.weight" { (mean, std) = (0, config.tieWordEmbeddings ? 0.35 : 1) }
            else if name == "lm_head.weight" { (mean, std) = (0, 0.3) }
            else { (mean, std) = (0, 1 / Float(spec.shape.dropFirst().reduce(1, *)).squareRoot()) }
            let chunk = 1 << 20
            let chunks = (buf.count + chunk - 1) / chunk
            let base = buf.baseAddress!  // invariant: every tensor has at least one element
            Kernels.parallel(chunks) { c in
                var rng = SeededRandom(seed: tensorSeed &+ UInt64(c) &* 0x9E37_79B9_7F4A_7C15)
                let a = c * chunk, b = min(buf.count, a + chunk)
                var i = a
                while i < b {
                    // Box–Muller: two normals per pair of uniforms.
                    let u1 = max(rng.unit(), 1e-300), u2 = rng.unit()
                    let r = (-2 * Foundation.log(u1)).squareRoot()
                    base[i] = mean + std * Float(r * cos(2 * Double.pi * u2))
                    if i + 1 < b { base[i + 1] = mean + std * Float(r * sin(2 * Double.pi * u2)) }
                    i += 2
                }
            }
        }
    }
}
