import Foundation
import VLMRuntime

/// A GGUF-loaded model written as a Hugging Face folder.
extension TrainingCheckpoint {
    /// `config.json`'s architecture per GGUF-loaded family.
    static func huggingFaceArchitecture(_ family: ModelFamily) -> (architecture: String, modelType: String)? {
        switch family {
        case .llama: return ("LlamaForCausalLM", "llama")
        case .qwen2: return ("Qwen2ForCausalLM", "qwen2")
        default: return nil
        }
    }

    static func saveHuggingFace(_ parameters: ParameterSet, config: ModelConfig, gguf path: String, into out: String) throws {
        let file = try GGUFFile(path: path)
        let tokenizer = try GGUFTokenizerData(metadata: file.metadata)
        let files = try huggingFaceFiles(config: config, tokenizer: tokenizer, file: path)
        for (name, object) in files.sorted(by: { $0.key < $1.key }) {
            try writeJSON(object, to: (out as NSString).appendingPathComponent(name))
        }
        // The tensors the config implies, in the loader's order, f32.
        var specs: [SafeTensorsWriter.Spec] = []
        for (name, shape) in RandomCheckpoint.tensorShapes(config) {
            guard let p = parameters[name] else { throw TrainingCheckpointError.missingTensor(file: path, tensor: name) }
            guard p.shape == shape, p.value.count == shape.reduce(1, *) else {
                throw TrainingCheckpointError.shapeMismatch(file: path, tensor: name, expected: shape, actual: p.shape)
            }
            specs.append(.init(name: name, shape: shape, dtype: .f32))
        }
        let known = Set(specs.map(\.name))
        for p in parameters.parameters where !known.contains(p.name) {
            throw TrainingCheckpointError.unsupportedForExport(file: path, what: "parameter '\(p.name)'",
                                                               reason: "a \(config.family.rawValue) checkpoint has no such tensor")
        }
        let weights = (out as NSString).appendingPathComponent("model.safetensors")
        do {
            try SafeTensorsWriter.write(path: weights, tensors: specs) { spec, buf in
                guard let p = parameters[spec.name] else { return }
                p.value.withUnsafeBufferPointer { src in
                    if let s = src.baseAddress, let d = buf.baseAddress { d.update(from: s, count: min(src.count, buf.count)) }
                }
            }
        } catch {
            throw TrainingCheckpointError.writeFailed(path: weights, reason: "\(error)")
        }
    }

    /// config.json, generation_config.json, tokenizer.json, tokenizer_config.json and
    /// special_tokens_map.json for a GGUF's config and tokenizer.
    static func huggingFaceFiles(config: ModelConfig, tokenizer tok: GGUFTokenizerData, file: String) throws -> [String: Any] {
        guard let (architecture, modelType) = huggingFaceArchitecture(config.family) else {
            throw TrainingCheckpointError.unsupportedForExport(file: file, what: "model family \(config.family.rawValue)", reason: "only llama and qwen2 GGUFs")
        }
        let t = config.text
        if config.family == .llama && t.attentionBias {
            throw TrainingCheckpointError.unsupportedForExport(
                file: file, what: "q/k/v biases", reason: "transformers' LlamaConfig.attention_bias also needs an o_proj bias")
        }
        if config.family == .qwen2 && t.headDim * t.numHeads != t.hiddenSize {
            throw TrainingCheckpointError.unsupportedForExport(
                file: file, what: "head_dim \(t.headDim)", reason: "Qwen2Config derives head_dim from hidden_size / num_attention_heads")
        }
        var cfg: [String: Any] = [
            "architectures": [architecture], "model_type": modelType,
            "hidden_size": t.hiddenSize, "intermediate_size": t.intermediateSize, "num_hidden_layers": t.numLayers,
            "num_attention_heads": t.numHeads, "num_key_value_heads": t.numKVHeads, "head_dim": t.headDim,
            "rms_norm_eps": shortest(t.rmsNormEps), "rope_theta": t.ropeTheta, "vocab_size": t.vocabSize,
            "tie_word_embeddings": config.tieWordEmbeddings, "torch_dtype": "float32", "hidden_act": "silu",
            "attention_dropout": 0.0, "initializer_range": 0.02, "use_cache": true,
        ]
        if let m = t.maxPositions { cfg["max_position_embeddings"] = m }
        if config.family == .llama {
            cfg["attention_bias"] = false
            cfg["mlp_bias"] = false
            cfg["pretraining_tp"] = 1
        } else {
            cfg["use_sliding_window"] = false
            cfg["max_window_layers"] = t.numLayers
        }
        if let d = t.ropeFrequencyDivisors {
            guard let f = d.first, d.allSatisfy({ $0 == f }) else {
                throw TrainingCheckpointError.unsupportedForExport(
                    file: file, what: "per-frequency RoPE factors (rope_freqs)", reason: "only uniform (linear) scaling is written")
            }
            let scaling: [String: Any] = ["rope_type": "linear", "type": "linear", "factor": shortest(f)]
            cfg["rope_scaling"] = scaling
        }
        if let b = config.bosTokenId { cfg["bos_token_id"] = b }
        if let p = config.padTokenId { cfg["pad_token_id"] = p }
        if let e = config.eosTokenIds.first { cfg["eos_token_id"] = config.eosTokenIds.count == 1 ? e as Any : config.eosTokenIds as Any }

        // generation_config: every id the GGUF path stops on (EOS ids and end-of-turn control tokens).
        var stops = config.eosTokenIds
        for id in tok.controlTokenIDs where VLMModel.endOfTurnTokens.contains(tok.tokens[id]) && !stops.contains(id) { stops.append(id) }
        var gen: [String: Any] = [:]
        if let b = config.bosTokenId { gen["bos_token_id"] = b }
        if let p = config.padTokenId { gen["pad_token_id"] = p }
        if let e = stops.first { gen["eos_token_id"] = stops.count == 1 ? e as Any : stops as Any }

        let tokenizerJSON = try tokenizerJSON(tok, file: file)
        let name: (Int?) -> String? = { $0.map { tok.tokens[$0] } }
        var special: [String: Any] = [:]
        for (key, id) in [("bos_token", tok.bosTokenID), ("eos_token", tok.eosTokenID), ("pad_token", tok.paddingTokenID),
                          ("unk_token", tok.unknownTokenID)] {
            if let s = name(id) { special[key] = s }
        }
        let named = Set([tok.bosTokenID, tok.eosTokenID, tok.paddingTokenID, tok.unknownTokenID].compactMap { $0 })
        let additional = tok.controlTokenIDs.filter { !named.contains($0) && !tok.tokens[$0].isEmpty }.map { tok.tokens[$0] }
        var specialMap = special
        if !additional.isEmpty { specialMap["additional_special_tokens"] = additional }

        var tokCfg = special
        tokCfg["tokenizer_class"] = "GPT2Tokenizer"
        tokCfg["add_bos_token"] = tok.addBOS ?? false
        tokCfg["add_eos_token"] = tok.addEOS ?? false
        tokCfg["add_prefix_space"] = false
        tokCfg["clean_up_tokenization_spaces"] = false
        if let m = t.maxPositions { tokCfg["model_max_length"] = m }
        if !additional.isEmpty { tokCfg["additional_special_tokens"] = additional }
        var decoderMap: [String: Any] = [:]
        for a in addedTokens(tok) {
            decoderMap[String(a.id)] = ["content": a.content, "lstrip": false, "normalized": false, "rstrip": false,
                                        "single_word": false, "special": a.special]
        }
        tokCfg["added_tokens_decoder"] = decoderMap
        if let template = tok.chatTemplate {
            if tok.namedChatTemplates.isEmpty {
                tokCfg["chat_template"] = template
            } else {
                tokCfg["chat_template"] = [["name": "default", "template": template]]
                    + tok.namedChatTemplates.sorted { $0.key < $1.key }.map { ["name": $0.key, "template": $0.value] }
            }
        }
        return ["config.json": cfg, "generation_config.json": gen, "tokenizer.json": tokenizerJSON,
                "tokenizer_config.json": tokCfg, "special_tokens_map.json": specialMap]
    }

    /// A float written with its shortest decimal form (1e-05, not 9.99999974737875e-06), so the
    /// reader's Float conversion gives back the same value.
    static func shortest(_ f: Float) -> Double { Double("\(f)") ?? Double(f) }

    /// The tokens matched whole before BPE: CONTROL (special) and USER_DEFINED, as the runtime's
    /// GGUF tokenizer takes them.
    static func addedTokens(_ tok: GGUFTokenizerData) -> [(id: Int, content: String, special: Bool)] {
        tok.tokenTypes.indices.compactMap { id in
            let type = tok.tokenTypes[id]
            guard type == .control || type == .userDefined, !tok.tokens[id].isEmpty else { return nil }
            return (id, tok.tokens[id], type == .control)
        }
    }

    /// The Hugging Face `tokenizer.json` of a GGUF byte-level BPE vocabulary: vocab, merges, added
    /// tokens, and the pre-tokenizer `tokenizer.ggml.pre` names (refused when the runtime does not
    /// know it, since a wrong split gives plausible but different ids).
    static func tokenizerJSON(_ tok: GGUFTokenizerData, file: String) throws -> [String: Any] {
        guard tok.isByteLevelBPE else {
            throw TrainingCheckpointError.unsupportedForExport(file: file, what: "tokenizer.ggml.model '\(tok.model)'",
                                                               reason: "only gpt2 byte-level BPE is written as tokenizer.json")
        }
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        func split(_ regex: String) -> [String: Any] {
            ["type": "Sequence", "pretokenizers": [
                ["type": "Split", "pattern": ["Regex": regex], "behavior": "Isolated", "invert": false] as [String: Any],
                ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false] as [String: Any],
            ]]
        }
        let qwen2 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        let llama3 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        let pre: [String: Any]
        switch PreTokenizer.forGGUF(tok.preTokenizer) {
        case .gpt2?: pre = byteLevel
        case .digitsThenGPT2?:
            pre = ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true] as [String: Any], byteLevel]]
        case .qwen2(let digits)? where digits == 1: pre = split(qwen2)
        case .qwen2(let digits)? where digits == 3: pre = split(llama3)
        default:
            throw TrainingCheckpointError.unsupportedForExport(file: file, what: "tokenizer.ggml.pre '\(tok.preTokenizer ?? "")'",
                                                               reason: "no Hugging Face pre-tokenizer is known for it")
        }
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(tok.tokens.count)
        for (id, t) in tok.tokens.enumerated() where vocab[t] == nil { vocab[t] = id }
        let merges = try tok.mergePairs().map { "\($0.left) \($0.right)" }
        let added: [[String: Any]] = addedTokens(tok).map {
            ["id": $0.id, "content": $0.content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false,
             "special": $0.special]
        }
        var post: Any = ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true] as [String: Any]
        if tok.addBOS == true, let bos = tok.bosTokenID {
            let b = tok.tokens[bos]
            post = ["type": "TemplateProcessing",
                    "single": [["SpecialToken": ["id": b, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                    "pair": [["SpecialToken": ["id": b, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]],
                             ["SpecialToken": ["id": b, "type_id": 1]], ["Sequence": ["id": "B", "type_id": 1]]],
                    "special_tokens": [b: ["id": b, "ids": [bos], "tokens": [b]]]] as [String: Any]
        }
        return [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added, "normalizer": NSNull(),
            "pre_tokenizer": pre, "post_processor": post,
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true] as [String: Any],
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                      "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": merges] as [String: Any],
        ]
    }
}
