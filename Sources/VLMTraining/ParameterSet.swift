import Foundation

/// One trainable tensor: its canonical (Hub) name, shape, f32 value and gradient.
///
/// Canonical names are the Hugging Face Hub release names whatever layout the checkpoint was
/// read from: `model.embed_tokens.weight`, `model.layers.3.self_attn.q_proj.weight`,
/// `model.norm.weight`, `lm_head.weight` (absent when the head is tied to the embedding),
/// `visual.patch_embed.proj.weight` (stored [out, C·T·P·P], i.e. torch's conv weight flattened),
/// `visual.blocks.0.attn.qkv.weight`, `visual.merger.ln_q.weight`, `visual.merger.mlp.0.weight`, …
public final class Parameter: @unchecked Sendable {
    public let name: String
    /// The tensor's shape as the checkpoint stores it (torch order).
    public let shape: [Int]
    public var value: [Float]
    /// d loss / d value, accumulated by the backward passes; zeroed by `ParameterSet.zeroGradients`.
    public var grad: [Float]
    /// Frozen parameters (e.g. the vision tower under `--freeze-vision`) get no gradient and no update.
    public var trainable: Bool

    public init(name: String, shape: [Int], value: [Float], trainable: Bool = true) {
        self.name = name
        self.shape = shape
        self.value = value
        self.grad = [Float](repeating: 0, count: value.count)
        self.trainable = trainable
    }

    public var count: Int { value.count }
}

/// Every parameter of a model in a fixed order (the order the loader meets them: vision tower
/// first, then the decoder), addressable by canonical name.
public final class ParameterSet: @unchecked Sendable {
    public private(set) var parameters: [Parameter] = []
    private var index: [String: Int] = [:]

    public init(_ parameters: [Parameter] = []) {
        for p in parameters { append(p) }
    }

    public func append(_ p: Parameter) {
        index[p.name] = parameters.count
        parameters.append(p)
    }

    public subscript(name: String) -> Parameter? { index[name].map { parameters[$0] } }

    public var names: [String] { parameters.map(\.name) }

    public var trainable: [Parameter] { parameters.filter(\.trainable) }

    public func zeroGradients() {
        for p in parameters { p.grad.withUnsafeMutableBufferPointer { $0.update(repeating: 0) } }
    }

    /// sqrt(Σ g²) over every trainable parameter, accumulated in Float64.
    public func globalGradientNorm() -> Double {
        var s = 0.0
        for p in parameters where p.trainable {
            p.grad.withUnsafeBufferPointer { g in for v in g { s += Double(v) * Double(v) } }
        }
        return s.squareRoot()
    }

    /// Total number of values (all parameters).
    public var elementCount: Int { parameters.reduce(0) { $0 + $1.count } }
}
