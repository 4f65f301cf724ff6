import Foundation
import XCTest
@testable import VLMRuntime

/// A tiny Llama built in a temporary folder, in both checkpoint formats, so the GGUF and the
/// safetensors load paths can be compared on the same weights without any download.
///
/// * `randomFolder`: a Hugging Face folder (config.json `model_type: llama`, tokenizer.json with
///   SmolLM's Digits + ByteLevel pre-tokenizer, tokenizer_config.json with SmolLM2's chat
///   template) whose weights `RandomCheckpoint` draws in f32.
/// * `gguf(from:)`: those weights as a GGUF (`general.architecture = llama`) the way llama.cpp's
///   converter writes them: Q/K rows in its rotary order, matrices quantised to Q8_0 (or kept
///   F32/F16 where asked), the same vocabulary and template in the metadata.
enum TinyLlama {
    static let hidden = 64, layers = 2, heads = 4, kvHeads = 2, headDim = 16, intermediate = 128
    static let merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("o", "r")]
    static let controls = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    static let template = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

    /// Control tokens first (ids 0–2, as in SmolLM2), then the 256 byte characters, then merges.
    static var tokens: [String] {
        controls + Tokenizer.byteEncoder.map { String($0) } + merges.map { $0.0 + $0.1 }
    }

    static var vocabSize: Int { tokens.count }

    /// Writes the Hugging Face folder with random f32 weights; `modelType` `qwen2` adds the q/k/v biases.
    static func randomFolder(in dir: URL, seed: UInt64 = 7, modelType: String = "llama") throws -> URL {
        let spec = dir.appendingPathComponent("spec")
        let out = dir.appendingPathComponent("hf")
        try FileManager.default.createDirectory(at: spec, withIntermediateDirectories: true)
        let config: [String: Any] = [
            "model_type": modelType, "hidden_size": hidden, "intermediate_size": intermediate, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": kvHeads, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
            "vocab_size": vocabSize, "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2,
            "max_position_embeddings": 2048,
        ]
        try JSONSerialization.data(withJSONObject: config).write(to: spec.appendingPathComponent("config.json"))
        let vocab = Dictionary(uniqueKeysWithValues: tokens.enumerated().map { ($0.element, $0.offset) })
        let tokenizer: [String: Any] = [
            "model": ["type": "BPE", "vocab": vocab, "merges": merges.map { "\($0.0) \($0.1)" }],
            "added_tokens": controls.enumerated().map { ["id": $0.offset, "content": $0.element, "special": true] },
            "pre_tokenizer": ["type": "Sequence", "pretokenizers": [
                ["type": "Digits", "individual_digits": true],
                ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true],
            ]],
            "normalizer": NSNull(),
        ]
        try JSONSerialization.data(withJSONObject: tokenizer).write(to: spec.appendingPathComponent("tokenizer.json"))
        let tokenizerConfig: [String: Any] = ["chat_template": template, "eos_token": "<|im_end|>", "bos_token": "<|im_start|>",
                                              "add_bos_token": false]
        try JSONSerialization.data(withJSONObject: tokenizerConfig).write(to: spec.appendingPathComponent("tokenizer_config.json"))
        try RandomCheckpoint.write(configPath: spec.appendingPathComponent("config.json").path, to: out.path, dtype: .f32, seed: seed)
        return out
    }

    /// The Hugging Face name of each GGUF tensor (the converter's table, reversed).
    static func huggingFaceName(_ gguf: String) -> String {
        if gguf.hasSuffix(".bias") { return String(huggingFaceName(String(gguf.dropLast(5)) + ".weight").dropLast(7)) + ".bias" }
        let fixed = ["token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight"]
        if let f = fixed[gguf] { return f }
        let parts = gguf.split(separator: ".")
        let map = ["attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj",
                   "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
                   "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"]
        return "model.layers.\(parts[1]).\(map[String(parts[2])]!).weight"  // invariant: test-built names
    }

    static func ggufTensorNames(architecture: String = "llama") -> [String] {
        var names = ["token_embd.weight", "output_norm.weight"]
        for i in 0..<layers {
            names += ["attn_norm", "ffn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
                .map { "blk.\(i).\($0).weight" }
            if architecture == "qwen2" { names += ["attn_q", "attn_k", "attn_v"].map { "blk.\(i).\($0).bias" } }
        }
        return names
    }

    /// A GGUF of the folder's weights; matrices are Q8_0 unless `types` says otherwise. For
    /// `llama` the Q/K rows are stored in llama.cpp's rotary order; `qwen2` keeps them (NEOX RoPE).
    static func gguf(from folder: URL, to path: URL, types: [String: GGMLType] = [:], architecture a: String = "llama") throws {
        let file = try SafeTensorsFile(path: folder.appendingPathComponent("model.safetensors").path)
        var meta = GGUFMetadata(file: path.path)
        meta.set("general.architecture", .string(a))
        meta.set("general.name", .string("tiny-llama"))
        meta.set("\(a).block_count", .uint32(UInt32(layers)))
        meta.set("\(a).context_length", .uint32(2048))
        meta.set("\(a).embedding_length", .uint32(UInt32(hidden)))
        meta.set("\(a).feed_forward_length", .uint32(UInt32(intermediate)))
        meta.set("\(a).attention.head_count", .uint32(UInt32(heads)))
        meta.set("\(a).attention.head_count_kv", .uint32(UInt32(kvHeads)))
        meta.set("\(a).rope.freq_base", .float32(10000))
        meta.set("\(a).attention.layer_norm_rms_epsilon", .float32(1e-5))
        meta.set("\(a).rope.dimension_count", .uint32(UInt32(headDim)))
        meta.set("tokenizer.ggml.model", .string("gpt2"))
        meta.set("tokenizer.ggml.pre", .string(a == "qwen2" ? "qwen2" : "smollm"))
        meta.set("tokenizer.ggml.tokens", .array(.string(tokens)))
        meta.set("tokenizer.ggml.token_type", .array(.int32(tokens.indices.map { $0 < controls.count ? 3 : 1 })))
        meta.set("tokenizer.ggml.merges", .array(.string(merges.map { "\($0.0) \($0.1)" })))
        meta.set("tokenizer.ggml.bos_token_id", .uint32(1))
        meta.set("tokenizer.ggml.eos_token_id", .uint32(2))
        meta.set("tokenizer.ggml.add_bos_token", .bool(false))
        meta.set("tokenizer.chat_template", .string(template))
        var writer = GGUFWriter(metadata: meta)
        let order = try XCTUnwrap(LlamaRotaryOrder(headDim: headDim))
        for name in ggufTensorNames(architecture: a) {
            let entry = try XCTUnwrap(file.entries[huggingFaceName(name)])
            var values = try file.floats(entry)
            let shape = entry.shape
            if shape.count == 1 {
                try writer.addTensor(name: name, dimensions: [shape[0]], floats: values)
                continue
            }
            let rows = shape[0], cols = shape[1]
            if a == "llama" && (name.contains("attn_q") || name.contains("attn_k")) {
                // Stored row r holds Hugging Face row huggingFaceRow(forGGUFRow: r).
                var permuted = values
                for r in 0..<rows {
                    let src = order.huggingFaceRow(forGGUFRow: r)
                    permuted.replaceSubrange((r * cols)..<((r + 1) * cols), with: values[(src * cols)..<((src + 1) * cols)])
                }
                values = permuted
            }
            switch types[name] ?? .q8_0 {
            case .f32:
                try writer.addTensor(name: name, dimensions: [cols, rows], floats: values)
            case .f16:
                var bytes: [UInt8] = []
                for v in values { GGUFWriter.append(Float16(v).bitPattern, to: &bytes) }
                try writer.addTensor(name: name, dimensions: [cols, rows], type: .f16, data: bytes)
            default:
                let q = try QuantizedMatrix.quantizingToQ8_0(values, rows: rows, columns: cols, name: name)
                try writer.addTensor(name: name, dimensions: [cols, rows], type: .q8_0, data: Array(q.bytes))
            }
        }
        try writer.write(to: path.path)
    }

    /// A Hugging Face folder whose f32 weights are exactly the GGUF's dequantised values (Q/K rows
    /// back in Hugging Face order), with the folder's config and tokenizer files.
    static func dequantisedFolder(of ggufPath: URL, configFrom folder: URL, to out: URL, architecture: String = "llama") throws {
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(at: folder.appendingPathComponent(f), to: out.appendingPathComponent(f))
        }
        let gguf = try GGUFFile(path: ggufPath.path)
        let weights = GGUFWeights(file: gguf, permutedQK: architecture == "llama", headDim: headDim)
        var specs: [SafeTensorsWriter.Spec] = []
        var values: [String: [Float]] = [:]
        for name in ggufTensorNames(architecture: architecture) {
            let hf = huggingFaceName(name)
            let info = try XCTUnwrap(gguf.tensorInfo(named: name))
            if info.dimensions.count == 1 {
                values[hf] = try weights.vector(hf, count: info.dimensions[0])
                specs.append(.init(name: hf, shape: [info.dimensions[0]], dtype: .f32))
            } else {
                let rows = info.dimensions[1], cols = info.dimensions[0]
                let w = try weights.linearWeight(hf, rows: rows, cols: cols)
                var all = [Float](repeating: 0, count: rows * cols)
                all.withUnsafeMutableBufferPointer { buf in
                    for r in 0..<rows { w.row(r, into: buf.baseAddress! + r * cols) }  // invariant: rows·cols elements
                }
                values[hf] = all
                specs.append(.init(name: hf, shape: [rows, cols], dtype: .f32))
            }
        }
        try SafeTensorsWriter.write(path: out.appendingPathComponent("model.safetensors").path, tensors: specs) { spec, buf in
            for (i, v) in (values[spec.name] ?? []).enumerated() { buf[i] = v }
        }
    }
}
