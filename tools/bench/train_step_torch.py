"""PyTorch reference for one GRPO step (forward + backward) of Assay's embedded trainer, f32 on the CPU.

Per round it does what TRL's GRPOTrainer does for the loss of one step: one forward of the G sequences
(prompt + completion, batch G, no padding: equal lengths), the per-token log-probs of the completions at
temperature 1, TRL's per-token loss with old = logp.detach() (ratio 1, clip eps 0.2/0.2), fixed seeded
advantages (mean 0), beta 0, 'dapo' aggregation (sum over all completion tokens / their count), then
loss.backward(). Forward + backward is timed per round; one warm-up round runs first and is not counted.

--logps selects how the completion log-probs are computed (both are TRL code paths):
  logits_to_keep (default): model(..., logits_to_keep=C+1).logits, drop the last, keep the last C,
      selective_log_softmax (gather - logsumexp, the f32 branch), as TRL's GRPOTrainer up to its 0.x/1.x
      releases without the fused head did.
  trl-fused: the installed TRL's own path (1.16 here): trl's add_fused_lm_head, then
      model(input_ids, attention_mask, labels=..., fused_lm_head=True).log_probs, which projects the LM head
      in chunks without materialising the logits (on the CPU every position is scored, then masked).

  /tmp/assay-torch-venv/bin/python tools/bench/train_step_torch.py --model M.gguf --group-size 8 \
      --prompt-tokens 128 --completion-tokens 256 --threads 2 --rounds 3 --seed 0 --json
"""
import argparse, json, os, statistics, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_model  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True, help="HF folder or .gguf file")
ap.add_argument("--group-size", type=int, default=8)
ap.add_argument("--prompt-tokens", type=int, default=128)
ap.add_argument("--completion-tokens", type=int, default=256)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--gradient-checkpointing", action="store_true")
ap.add_argument("--logps", choices=["logits_to_keep", "trl-fused"], default="logits_to_keep")
ap.add_argument("--json", action="store_true", help="print only the JSON result on stdout")
a = ap.parse_args()

import torch  # noqa: E402
import transformers  # noqa: E402

log = (lambda *m: print(*m, file=sys.stderr, flush=True)) if a.json else (lambda *m: print(*m, flush=True))
torch.manual_seed(a.seed)
t = time.time()
folder, model, tok = bench_model.load(a.model, a.threads)
log(f"loaded {folder} in {time.time() - t:.1f}s; threads {torch.get_num_threads()}")
rss_after_load = bench_model.peak_rss_bytes()
model.float().train()
if a.gradient_checkpointing:
    model.gradient_checkpointing_enable()
    model.config.use_cache = False

G, P, C = a.group_size, a.prompt_tokens, a.completion_tokens
gen = torch.Generator().manual_seed(a.seed)
pool = torch.tensor(bench_model.ordinary_ids(tok, model.config.vocab_size))
prompt = pool[torch.randint(len(pool), (P,), generator=gen)]
completions = pool[torch.randint(len(pool), (G, C), generator=gen)]
input_ids = torch.cat([prompt.expand(G, P), completions], dim=1)
attention_mask = torch.ones_like(input_ids)
completion_mask = torch.ones(G, C)
adv = torch.randn(G, generator=gen)
advantages = (adv - adv.mean()) / adv.std().clamp(min=1e-4)  # as TRL's group normalisation: mean 0
eps_low = eps_high = 0.2

if a.logps == "logits_to_keep":
    try:
        from trl.trainer.utils import selective_log_softmax
    except ImportError:  # the f32 branch of TRL's selective_log_softmax
        def selective_log_softmax(logits, index):
            sel = torch.gather(logits, -1, index.unsqueeze(-1)).squeeze(-1)
            return sel - torch.stack([torch.logsumexp(lg, dim=-1) for lg in logits])

    def completion_logps():
        logits = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=C + 1).logits
        logits = logits[:, :-1, :][:, -C:, :] / 1.0  # temperature 1
        return selective_log_softmax(logits, input_ids[:, -C:])
else:
    from trl.trainer.utils import add_fused_lm_head
    add_fused_lm_head(model, temperature=1.0, outputs=("log_probs", "entropy"))
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    labels[:, :-C] = -100

    def completion_logps():
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, fused_lm_head=True)
        return out.log_probs[:, -C:]


def step():
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    logp = completion_logps()
    old = logp.detach()
    coef_1 = torch.exp(logp - old)
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    A = advantages.unsqueeze(1)
    per_token_loss = -torch.min(coef_1 * A, coef_2 * A)
    loss = (per_token_loss * completion_mask).sum() / completion_mask.sum().clamp(min=1.0)  # dapo
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    return t2 - t0, t1 - t0, t2 - t1, loss.item()


with bench_model.RssSampler() as sampler:
    w = step()
    log(f"warm-up round (not counted): {w[0]:.2f}s (forward {w[1]:.2f}s, backward {w[2]:.2f}s) loss {w[3]:.6f}")
    rounds = []
    for r in range(a.rounds):
        rounds.append(step())
        log(f"round {r + 1}: {rounds[-1][0]:.2f}s (forward {rounds[-1][1]:.2f}s, backward {rounds[-1][2]:.2f}s)")

steps = [r[0] for r in rounds]
med = statistics.median(steps)
grad_norm = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in model.parameters() if p.grad is not None)).item()
res = {
    "torch": torch.__version__, "transformers": transformers.__version__,
    "model": os.path.abspath(a.model), "threads": torch.get_num_threads(), "G": G, "P": P, "C": C,
    "tokens_per_step": G * (P + C), "step_seconds": [round(s, 4) for s in steps],
    "forward_seconds": [round(r[1], 4) for r in rounds], "backward_seconds": [round(r[2], 4) for r in rounds],
    "median_step_seconds": round(med, 4), "tokens_per_second": round(G * (P + C) / med, 2),
    "peak_rss_bytes": max(bench_model.peak_rss_bytes(), sampler.peak),
    "peak_rss_sampled_bytes": sampler.peak, "rss_peak_after_load_bytes": rss_after_load,
    "dtype": "float32", "logps": a.logps, "gradient_checkpointing": a.gradient_checkpointing,
    "warmup_rounds_excluded": 1, "warmup_step_seconds": round(w[0], 4), "loss": w[3], "grad_norm": grad_norm,
    "seed": a.seed,
}
try:
    import trl
    res["trl"] = trl.__version__
except ImportError:
    pass
print(json.dumps(res, indent=None if a.json else 1))
