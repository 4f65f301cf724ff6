"""A real trl.GRPOTrainer on the CPU (f32), timed per step: the reference for the step time of Assay's
embedded GRPO trainer. One prompt of about P tokens, G generations of C tokens each (generation forced to
C tokens with min_new_tokens, so EOS cannot end a completion early), beta 0, loss 'dapo', a reward that
varies between completions (len(completion text) mod 3, so the advantages are non-zero), no saving, no
reporting. Bench-time only (the venv from setup_torch_venv.sh).

Per step it reports the wall time between the Trainer's on_step_begin and on_step_end (generation,
reward, loss forward, backward and the AdamW step), split into: generation (model.generate), the rest
of the generation/scoring phase (_generate_and_score_completions minus generate), the loss forward
(compute_loss), and backward + optimiser (the remainder).

  /tmp/assay-torch-venv/bin/python tools/bench/trl_grpo_step.py --model M.gguf --group-size 8 \
      --prompt-tokens 128 --completion-tokens 256 --threads 2 --steps 2 --json
"""
import argparse, json, os, statistics, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_model  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True, help="HF folder or .gguf file")
ap.add_argument("--group-size", type=int, default=8)
ap.add_argument("--prompt-tokens", type=int, default=128)
ap.add_argument("--completion-tokens", type=int, default=256)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, default=2)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--gradient-checkpointing", action="store_true")
ap.add_argument("--json", action="store_true", help="print only the JSON result on stdout")
a = ap.parse_args()

import torch  # noqa: E402
import transformers, trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import TrainerCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

log = (lambda *m: print(*m, file=sys.stderr, flush=True)) if a.json else (lambda *m: print(*m, flush=True))
if a.json:
    transformers.logging.set_verbosity_error()
torch.manual_seed(a.seed)
G, P, C = a.group_size, a.prompt_tokens, a.completion_tokens
folder, model, tok = bench_model.load(a.model, a.threads)
model.float()

# A plain-text prompt of about P tokens (not a chat: no template tokens are added).
filler = ("The quick brown fox jumps over the lazy dog while the chart shows a rising trend in the data. "
          * (P // 8 + 4))
prompt = tok.decode(tok(filler, add_special_tokens=False)["input_ids"][:P])
dataset = Dataset.from_dict({"prompt": [prompt]})


def reward_len_mod3(completions, **kwargs):
    return [float(len(c) % 3) for c in completions]


timing = {"generate": [], "generate_and_score": [], "compute_loss": [], "prompt_len": [], "completion_len": []}


class TimedGRPOTrainer(GRPOTrainer):
    def _generate_and_score_completions(self, inputs):
        t = time.perf_counter()
        out = super()._generate_and_score_completions(inputs)
        timing["generate_and_score"].append(time.perf_counter() - t)
        timing["prompt_len"].append(int(out["prompt_ids"].shape[1]))
        timing["completion_len"].append(int(out["completion_mask"].sum(1).float().mean()))
        return out

    def compute_loss(self, *args, **kwargs):
        t = time.perf_counter()
        out = super().compute_loss(*args, **kwargs)
        timing["compute_loss"].append(time.perf_counter() - t)
        return out


orig_generate = model.generate


def timed_generate(*args, **kwargs):
    t = time.perf_counter()
    out = orig_generate(*args, **kwargs)
    timing["generate"].append(time.perf_counter() - t)
    return out


model.generate = timed_generate


class StepClock(TrainerCallback):
    def __init__(self):
        self.steps, self.logs, self._t = [], [], None

    def on_step_begin(self, args, state, control, **kw):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.steps.append(time.perf_counter() - self._t)
        log(f"step {state.global_step}: {self.steps[-1]:.2f}s")

    def on_log(self, args, state, control, logs=None, **kw):
        if logs:
            self.logs.append(dict(logs))


out_dir = tempfile.mkdtemp(prefix="assay-trl-grpo-")
cfg = GRPOConfig(
    output_dir=out_dir, use_cpu=True, bf16=False, fp16=False, seed=a.seed,
    per_device_train_batch_size=G, num_generations=G, gradient_accumulation_steps=1,
    max_completion_length=C, generation_kwargs={"min_new_tokens": C},
    beta=0.0, loss_type="dapo", max_steps=a.steps, logging_steps=1,
    save_strategy="no", report_to="none", disable_tqdm=True, dataloader_num_workers=0,
    **({"gradient_checkpointing": True} if a.gradient_checkpointing else {}),
)
clock = StepClock()
trainer = TimedGRPOTrainer(model=model, reward_funcs=reward_len_mod3, args=cfg, train_dataset=dataset,
                           processing_class=tok, callbacks=[clock])
torch.set_num_threads(a.threads)
log(f"trl {trl.__version__} threads {torch.get_num_threads()} G {G} C {C}; training {a.steps} steps")
with bench_model.RssSampler() as sampler:
    trainer.train()

n = len(clock.steps)
gen = timing["generate"][:n]
gas = timing["generate_and_score"][:n]
fwd = timing["compute_loss"][:n]
bwd_opt = [s - g - f for s, g, f in zip(clock.steps, gas, fwd)]
p_len = timing["prompt_len"][0] if timing["prompt_len"] else None
med = statistics.median(clock.steps)
r = lambda xs: [round(x, 4) for x in xs]  # noqa: E731
res = {
    "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
    "model": os.path.abspath(a.model), "threads": torch.get_num_threads(), "G": G, "P": p_len, "P_requested": P,
    "C": C, "completion_tokens_mean": timing["completion_len"][:n],
    "tokens_per_step": G * ((p_len or P) + C), "step_seconds": r(clock.steps),
    "median_step_seconds": round(med, 4), "tokens_per_second": round(G * ((p_len or P) + C) / med, 2),
    "generate_seconds": r(gen), "generate_and_score_seconds": r(gas), "loss_forward_seconds": r(fwd),
    "backward_and_optimizer_seconds": r(bwd_opt),
    "generated_tokens_per_second": [round(G * C / g, 2) for g in gen],
    "peak_rss_bytes": max(bench_model.peak_rss_bytes(), sampler.peak), "peak_rss_sampled_bytes": sampler.peak,
    "dtype": "float32", "loss_type": "dapo", "beta": 0.0, "gradient_checkpointing": a.gradient_checkpointing,
    "note": "every step counted (no warm-up excluded); the first includes lazy initialisation",
    "trl_logs": clock.logs,
}
print(json.dumps(res, indent=None if a.json else 1))
