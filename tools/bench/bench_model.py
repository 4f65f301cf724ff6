"""Shared by train_step_torch.py and trl_grpo_step.py: resolve --model (an HF folder or a .gguf file)
to a loadable HF folder, and small measuring helpers. Bench-time only (the venv from
setup_torch_venv.sh); nothing in the Swift package imports it.

A .gguf is loaded through transformers' own GGUF support (`from_pretrained(dir, gguf_file=name)`,
which dequantises every tensor to f32 with the `gguf` package) and written once as an f32
safetensors HF folder under /tmp (GGUF_CACHE, default /tmp/assay-gguf-hf/<stem>), so both scripts
and TRL load the same plain checkpoint. Should transformers refuse the file, the fallback dequantises
with `gguf.quants.dequantize` and builds a LlamaForCausalLM state dict itself."""
import os, resource, threading, time


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # ru_maxrss is KiB on Linux


class RssSampler:
    """Samples this process's RSS every `every` seconds with psutil; `peak` is the maximum seen."""

    def __init__(self, every=0.02):
        import psutil
        self.proc, self.every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.every)

    def __enter__(self):
        self._t.start(); return self

    def __exit__(self, *exc):
        self._stop.set(); self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def _gguf_to_hf_fallback(path, out):
    """Builds the HF folder from the GGUF by hand: gguf.quants.dequantize per tensor, llama names."""
    import json, numpy as np, torch
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors.torch import save_file
    r = GGUFReader(path)

    def field(name, default=None):
        f = r.fields.get(name)
        if f is None:
            return default
        v = f.parts[f.data[0]]
        return bytes(v).decode() if f.types and f.types[0].name == "STRING" else v.tolist()[0]

    arch = field("general.architecture")
    assert arch == "llama", f"fallback handles llama only, got {arch}"
    hd = field(f"{arch}.embedding_length"); heads = field(f"{arch}.attention.head_count")
    kv = field(f"{arch}.attention.head_count_kv", heads)
    names = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
    per = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
           "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
           "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}

    def unpermute(w, n_head):  # undoes llama.cpp's convert permutation of the q/k rows (its rope layout)
        return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    sd = {}
    for t in r.tensors:
        w = dequantize(t.data, t.tensor_type).astype(np.float32).reshape([int(x) for x in reversed(t.shape)])
        base, kind = t.name.rsplit(".", 1)
        if base.startswith("blk."):
            _, i, rest = base.split(".", 2)
            if rest == "attn_q": w = unpermute(w, heads)
            if rest == "attn_k": w = unpermute(w, kv)
            hf = f"model.layers.{i}.{per[rest]}"
        else:
            hf = names[base]
        sd[f"{hf}.{kind}"] = torch.from_numpy(np.ascontiguousarray(w))
    tied = "lm_head.weight" not in sd
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hd,
           "intermediate_size": field(f"{arch}.feed_forward_length"), "num_attention_heads": heads,
           "num_key_value_heads": kv, "num_hidden_layers": field(f"{arch}.block_count"),
           "rms_norm_eps": field(f"{arch}.attention.layer_norm_rms_epsilon"),
           "rope_theta": field(f"{arch}.rope.freq_base", 10000.0),
           "max_position_embeddings": field(f"{arch}.context_length"),
           "vocab_size": sd["model.embed_tokens.weight"].shape[0], "tie_word_embeddings": tied,
           "bos_token_id": field("tokenizer.ggml.bos_token_id"), "eos_token_id": field("tokenizer.ggml.eos_token_id"),
           "torch_dtype": "float32"}
    os.makedirs(out, exist_ok=True)
    save_file(sd, os.path.join(out, "model.safetensors"))
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=1)


def resolve_model(path):
    """Returns an HF folder for `path`: the folder itself, or the cached f32 conversion of a .gguf."""
    if os.path.isdir(path):
        return path
    assert path.endswith(".gguf"), f"--model must be an HF folder or a .gguf file: {path}"
    stem = os.path.basename(path)[:-5]
    out = os.path.join(os.environ.get("GGUF_CACHE", "/tmp/assay-gguf-hf"), stem)
    if os.path.exists(os.path.join(out, "config.json")):
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    d, name = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    t = time.time()
    try:
        if os.environ.get("GGUF_FALLBACK"):
            raise RuntimeError("GGUF_FALLBACK set")
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32)
        # The weights are plain f32 tensors by now; only the GGUF quantizer marker blocks save_pretrained.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(out)
        how = "transformers gguf_file="
    except Exception as e:  # noqa: BLE001 - report and fall back
        print(f"transformers could not load {name} ({type(e).__name__}: {e}); dequantising by hand")
        _gguf_to_hf_fallback(path, out)
        how = "gguf.quants.dequantize fallback"
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    tok.save_pretrained(out)
    print(f"converted {name} -> {out} (f32, {how}) in {time.time() - t:.1f}s", flush=True)
    return out


def load(path, threads):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(threads)
    folder = resolve_model(path)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(folder)
    return folder, model, tok


def ordinary_ids(tok, vocab_size):
    """Token ids within the model's vocabulary that are not special tokens."""
    special = set(tok.all_special_ids) | set(getattr(tok, "added_tokens_decoder", {}).keys())
    n = min(vocab_size, len(tok))
    return [i for i in range(n) if i not in special]
