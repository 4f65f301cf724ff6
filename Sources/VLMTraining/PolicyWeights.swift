import Foundation
import VLMRuntime

/// Why a model cannot be trained as given.
public enum TrainingModelError: Error, CustomStringConvertible, Equatable {
    case missingParameter(String)
    case wrongShape(name: String, expected: [Int], actual: [Int])
    case unsupported(String)
    case badInput(String)

    public var description: String {
        switch self {
        case .missingParameter(let n): return "the checkpoint has no parameter \(n)"
        case .wrongShape(let n, let e, let a): return "parameter \(n) has shape \(a), the config implies \(e)"
        case .unsupported(let r): return "cannot train this model: \(r)"
        case .badInput(let r): return r
        }
    }
}

/// A parameter's value and gradient memory for the duration of one pass (no gradient when frozen).
struct ParamView {
    let value: UnsafeMutablePointer<Float>
    let grad: UnsafeMutablePointer<Float>?
    var v: UnsafePointer<Float> { UnsafePointer(value) }
}

/// Where each parameter of the model sits in a `ParameterSet`, resolved and shape-checked once.
struct PolicyLayout {
    struct Norm { let weight: Int; let bias: Int?; let eps: Float }
    struct Proj { let weight: Int; let bias: Int?; let out: Int; let inF: Int }
    struct Layer { let inNorm: Norm; let postNorm: Norm; let q, k, v, o, gate, up, down: Proj }
    enum VisionMLP { case gated(gate: Proj, up: Proj, down: Proj); case plain(fc1: Proj, fc2: Proj, quick: Bool) }
    struct VisionBlock { let norm1: Norm; let norm2: Norm; let qkv: Proj; let proj: Proj; let mlp: VisionMLP }
    struct Vision {
        let patchEmbed: Proj
        let blocks: [VisionBlock]
        let mergerNorm: Norm
        let fc1: Proj
        let fc2: Proj
    }

    let embed: Int
    let head: Int
    let tied: Bool
    let norm: Norm
    let layers: [Layer]
    let vision: Vision?
    /// Every distinct parameter index, in ParameterSet order.
    let count: Int

    init(config: ModelConfig, parameters set: ParameterSet) throws {
        var idx: [String: Int] = [:]
        for (i, p) in set.parameters.enumerated() { idx[p.name] = i }
        func find(_ name: String, _ shape: [Int]) throws -> Int {
            guard let i = idx[name] else { throw TrainingModelError.missingParameter(name) }
            let p = set.parameters[i]
            guard p.shape == shape, p.value.count == shape.reduce(1, *) else {
                throw TrainingModelError.wrongShape(name: name, expected: shape, actual: p.shape)
            }
            return i
        }
        func proj(_ prefix: String, out: Int, in inF: Int, bias: Bool) throws -> Proj {
            Proj(weight: try find(prefix + ".weight", [out, inF]), bias: bias ? try find(prefix + ".bias", [out]) : nil, out: out, inF: inF)
        }
        let t = config.text
        let h = t.hiddenSize, hd = t.headDim
        guard t.numHeads > 0, t.numKVHeads > 0, t.numHeads % t.numKVHeads == 0, hd % 2 == 0 else {
            throw TrainingModelError.unsupported("\(t.numHeads) heads over \(t.numKVHeads) key/value heads of \(hd) dimensions")
        }
        embed = try find("model.embed_tokens.weight", [t.vocabSize, h])
        if let hi = idx["lm_head.weight"], !config.tieWordEmbeddings || hi != embed {
            head = try find("lm_head.weight", [t.vocabSize, h])
            tied = false
        } else {
            head = embed
            tied = true
        }
        norm = Norm(weight: try find("model.norm.weight", [h]), bias: nil, eps: t.rmsNormEps)
        var layers: [Layer] = []
        for i in 0..<t.numLayers {
            let p = "model.layers.\(i)."
            let oBias = t.attentionBias && idx[p + "self_attn.o_proj.bias"] != nil
            layers.append(Layer(
                inNorm: Norm(weight: try find(p + "input_layernorm.weight", [h]), bias: nil, eps: t.rmsNormEps),
                postNorm: Norm(weight: try find(p + "post_attention_layernorm.weight", [h]), bias: nil, eps: t.rmsNormEps),
                q: try proj(p + "self_attn.q_proj", out: t.numHeads * hd, in: h, bias: t.attentionBias),
                k: try proj(p + "self_attn.k_proj", out: t.numKVHeads * hd, in: h, bias: t.attentionBias),
                v: try proj(p + "self_attn.v_proj", out: t.numKVHeads * hd, in: h, bias: t.attentionBias),
                o: try proj(p + "self_attn.o_proj", out: h, in: t.numHeads * hd, bias: oBias),
                gate: try proj(p + "mlp.gate_proj", out: t.intermediateSize, in: h, bias: t.mlpBias),
                up: try proj(p + "mlp.up_proj", out: t.intermediateSize, in: h, bias: t.mlpBias),
                down: try proj(p + "mlp.down_proj", out: h, in: t.intermediateSize, bias: t.mlpBias)))
        }
        self.layers = layers
        if let v = config.vision, config.family.hasVision {
            let d = v.hiddenSize, m2 = v.spatialMergeSize * v.spatialMergeSize
            let layerNorm = config.family == .qwen2VL
            func vnorm(_ p: String) throws -> Norm {
                Norm(weight: try find(p + ".weight", [d]), bias: layerNorm ? try find(p + ".bias", [d]) : nil, eps: 1e-6)
            }
            guard v.numHeads > 0, d % v.numHeads == 0, (d / v.numHeads) % 4 == 0 else {
                throw TrainingModelError.unsupported("vision width \(d) over \(v.numHeads) heads")
            }
            let pe = v.inChannels * v.temporalPatchSize * v.patchSize * v.patchSize
            guard let pi = idx["visual.patch_embed.proj.weight"] else {
                throw TrainingModelError.missingParameter("visual.patch_embed.proj.weight")
            }
            guard set.parameters[pi].value.count == d * pe else {
                throw TrainingModelError.wrongShape(name: "visual.patch_embed.proj.weight", expected: [d, v.inChannels, v.temporalPatchSize, v.patchSize, v.patchSize],
                                                    actual: set.parameters[pi].shape)
            }
            var blocks: [VisionBlock] = []
            for i in 0..<v.depth {
                let p = "visual.blocks.\(i)."
                let mlp: VisionMLP
                if config.family == .qwen25VL {
                    mlp = .gated(gate: try proj(p + "mlp.gate_proj", out: v.intermediateSize, in: d, bias: true),
                                 up: try proj(p + "mlp.up_proj", out: v.intermediateSize, in: d, bias: true),
                                 down: try proj(p + "mlp.down_proj", out: d, in: v.intermediateSize, bias: true))
                } else {
                    mlp = .plain(fc1: try proj(p + "mlp.fc1", out: v.intermediateSize, in: d, bias: true),
                                 fc2: try proj(p + "mlp.fc2", out: d, in: v.intermediateSize, bias: true),
                                 quick: v.hiddenAct == "quick_gelu")
                }
                blocks.append(VisionBlock(norm1: try vnorm(p + "norm1"), norm2: try vnorm(p + "norm2"),
                                          qkv: try proj(p + "attn.qkv", out: 3 * d, in: d, bias: true),
                                          proj: try proj(p + "attn.proj", out: d, in: d, bias: true), mlp: mlp))
            }
            vision = Vision(patchEmbed: Proj(weight: pi, bias: nil, out: d, inF: pe), blocks: blocks,
                            mergerNorm: try vnorm("visual.merger.ln_q"),
                            fc1: try proj("visual.merger.mlp.0", out: d * m2, in: d * m2, bias: true),
                            fc2: try proj("visual.merger.mlp.2", out: v.outHiddenSize, in: d * m2, bias: true))
        } else {
            vision = nil
        }
        count = set.parameters.count
    }
}

extension ParameterSet {
    /// Stands in for the memory of an empty parameter (never read: it has no elements).
    nonisolated(unsafe) static let emptyStorage = UnsafeMutablePointer<Float>.allocate(capacity: 1)

    /// Runs `body` with the value and gradient memory of every parameter (gradients only for
    /// trainable ones), each array held exclusively for the call: nested `withUnsafeMutableBufferPointer`
    /// scopes, so the pointers are valid for exactly as long as `body` runs.
    func withViews<R>(_ body: ([ParamView]) throws -> R) rethrows -> R {
        var views: [ParamView] = []
        views.reserveCapacity(parameters.count)
        let ps = parameters
        func go(_ i: Int) throws -> R {
            if i == ps.count { return try body(views) }
            let p = ps[i]
            return try p.value.withUnsafeMutableBufferPointer { v in
                try p.grad.withUnsafeMutableBufferPointer { g in
                    guard let vb = v.baseAddress, let gb = g.baseAddress else {
                        views.append(ParamView(value: ParameterSet.emptyStorage, grad: nil))
                        return try go(i + 1)
                    }
                    views.append(ParamView(value: vb, grad: p.trainable ? gb : nil))
                    return try go(i + 1)
                }
            }
        }
        return try go(0)
    }
}
