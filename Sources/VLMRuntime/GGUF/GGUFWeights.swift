import Foundation

/// A GGUF file's tensors under the canonical (Hugging Face) names the decoder asks for, so a GGUF
/// model and a safetensors checkpoint load through the same decoder code.
///
/// Matrices stay in the file's block format and are read in place from the mapping, with one
/// exception: llama.cpp's converter stores the `attn_q`/`attn_k` rows of Llama-style models in its
/// adjacent-pair rotary order (see `LlamaRotaryOrder`); those rows are put back into Hugging Face
/// order here (a copy of whole rows, so the blocks themselves are untouched), which lets the one
/// decoder apply rotate-half RoPE to every checkpoint.
package struct GGUFWeights: DecoderWeights {
    let file: GGUFFile
    /// Whether Q/K rows are stored in llama.cpp's rotary order (architectures llama.cpp runs
    /// with its "normal" RoPE; not Qwen2, which uses the NEOX layout as Hugging Face does).
    let permutedQK: Bool
    let headDim: Int

    /// The GGUF name of a canonical tensor name, or nil when there is no counterpart.
    package static func ggufName(_ canonical: String) -> String? {
        let fixed = [
            "model.embed_tokens.weight": "token_embd.weight",
            "model.norm.weight": "output_norm.weight",
            "lm_head.weight": "output.weight",
        ]
        if let f = fixed[canonical] { return f }
        let prefix = "model.layers."
        guard canonical.hasPrefix(prefix) else { return nil }
        let rest = canonical.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]) else { return nil }
        let tail = String(rest[rest.index(after: dot)...])
        let parts: [String: String] = [
            "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
            "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
            "self_attn.o_proj": "attn_output",
            "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
        ]
        for suffix in [".weight", ".bias"] where tail.hasSuffix(suffix) {
            guard let mapped = parts[String(tail.dropLast(suffix.count))] else { return nil }
            return "blk.\(layer).\(mapped)\(suffix)"
        }
        return nil
    }

    func has(_ name: String) -> Bool {
        Self.ggufName(name).map { file.tensorInfo(named: $0) != nil } ?? false
    }

    private func tensor(_ canonical: String) throws -> GGUFTensor {
        guard let name = Self.ggufName(canonical) else {
            throw GGUFError.tensorNotFound(file: file.name, tensor: canonical)
        }
        return try file.tensor(named: name)
    }

    /// Whether `canonical` is a Q or K projection stored in rotary order.
    private func needsUnpermute(_ canonical: String) -> Bool {
        permutedQK && (canonical.contains("self_attn.q_proj.") || canonical.contains("self_attn.k_proj."))
    }

    func linearWeight(_ name: String, rows: Int, cols: Int) throws -> LinearWeight {
        let t = try tensor(name)
        guard t.info.dimensions == [cols, rows] else {
            throw GGUFError.invalidTensorShape(file: file.name, tensor: t.info.name,
                                               reason: "shape \(t.info.dimensions) (ggml order), expected [\(cols), \(rows)]")
        }
        let order = needsUnpermute(name) ? try rotaryOrder(t, rows: rows) : nil
        switch t.info.type {
        case .f32, .f16, .bf16:
            let dtype: DType = t.info.type == .f32 ? .f32 : t.info.type == .f16 ? .f16 : .bf16
            if let order {
                return .dense(WeightMatrix(rows: rows, cols: cols, dtype: dtype, bytes: Self.gather(t, order: order)))
            }
            guard let base = t.bytes.baseAddress else {
                throw GGUFError.invalidTensorShape(file: file.name, tensor: t.info.name, reason: "no data")
            }
            return .dense(WeightMatrix(rows: rows, cols: cols, dtype: dtype, pointer: base, owner: t.storage))
        default:
            guard t.info.type.isSupportedByKernels else {
                throw QuantError.unsupportedType(name: "\(file.name): \(t.info.name)", type: t.info.type)
            }
            guard let order else { return .quantized(try t.matrix()) }
            let bytes = Self.gather(t, order: order)
            let buffer = QuantizedBuffer(byteCount: bytes.count)
            bytes.withUnsafeBytes { src in
                if let s = src.baseAddress, let d = buffer.bytes.baseAddress { d.copyMemory(from: s, byteCount: src.count) }
            }
            return .quantized(try QuantizedMatrix(type: t.info.type, rows: rows, columns: cols,
                                                  bytes: UnsafeRawBufferPointer(buffer.bytes), owner: buffer, name: t.info.name))
        }
    }

    func vector(_ name: String, count: Int) throws -> [Float] {
        let t = try tensor(name)
        guard t.info.elementCount == count, t.info.dimensions.count <= 1 else {
            throw GGUFError.invalidTensorShape(file: file.name, tensor: t.info.name,
                                               reason: "shape \(t.info.dimensions), expected [\(count)]")
        }
        guard t.info.type.isSupportedByKernels else {
            throw QuantError.unsupportedType(name: "\(file.name): \(t.info.name)", type: t.info.type)
        }
        var values = try t.dequantized()
        if needsUnpermute(name) {
            // A bias of a permuted projection is permuted the same way.
            guard let order = LlamaRotaryOrder(headDim: headDim)?.ggufRowsInHuggingFaceOrder(rows: count), order.count == count else {
                throw GGUFError.invalidTensorShape(file: file.name, tensor: t.info.name, reason: "\(count) values are not whole heads of \(headDim)")
            }
            values = order.map { values[$0] }
        }
        return values
    }

    /// For each Hugging Face row, the stored row to read.
    private func rotaryOrder(_ t: GGUFTensor, rows: Int) throws -> [Int] {
        guard let order = LlamaRotaryOrder(headDim: headDim)?.ggufRowsInHuggingFaceOrder(rows: rows), order.count == rows else {
            throw GGUFError.invalidTensorShape(file: file.name, tensor: t.info.name, reason: "\(rows) rows are not whole heads of \(headDim)")
        }
        return order
    }

    /// The tensor's rows copied in `order` (whole rows of blocks; nothing is re-encoded).
    private static func gather(_ t: GGUFTensor, order: [Int]) -> [UInt8] {
        let rowBytes = t.info.rowBytes
        return [UInt8](unsafeUninitializedCapacity: order.count * rowBytes) { buf, n in
            if let dst = buf.baseAddress, let src = t.bytes.baseAddress {
                for (i, r) in order.enumerated() {
                    UnsafeMutableRawPointer(dst + i * rowBytes).copyMemory(from: src + r * rowBytes, byteCount: rowBytes)
                }
            }
            n = order.count * rowBytes
        }
    }
}
