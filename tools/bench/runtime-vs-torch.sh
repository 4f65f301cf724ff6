#!/usr/bin/env bash
# Side-by-side measurement for issues 5 and 15: `assay bench runtime` and transformers on the CPU,
# on the same random checkpoint with Qwen2.5-VL-3B's dimensions in bf16, the same 448×448 image,
# prompt length and thread count; runs alternate and the medians are printed.
#
#   tools/bench/runtime-vs-torch.sh [RUNS]      (needs torch, transformers, pillow from PyPI:
#                                                tools/bench/setup_torch_venv.sh makes the venv;
#                                                ../shared/fixtures/tokenizers/qwen2 for the tokenizer)
# Environment: ASSAY (default .build/release/assay), WORK (default /tmp/assay-bench-3b),
# PROMPT_TOKENS (128), GEN_TOKENS (32), THREADS (2), TORCH_DTYPE (bfloat16; float32 for the exact
# comparison), TORCH_PYTHON (default /tmp/assay-torch-venv/bin/python when it exists, else python3),
# PATH_KIND (native; avx2 forces the AVX2 kernels on both sides: ASSAY_KERNELS=avx2 and
# OPENBLAS_CORETYPE=Haswell for Assay, ATEN_CPU_CAPABILITY=avx2 and ONEDNN_MAX_CPU_ISA=AVX2 for
# torch; build ASSAY with -target-cpu znver3 for it). The medians over the rounds are printed last.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
ASSAY=${ASSAY:-.build/release/assay}
TORCH_DTYPE=${TORCH_DTYPE:-bfloat16}
TORCH_PYTHON=${TORCH_PYTHON:-$( [ -x /tmp/assay-torch-venv/bin/python ] && echo /tmp/assay-torch-venv/bin/python || echo python3)}
if [ "${PATH_KIND:-native}" = avx2 ]; then
  export ASSAY_KERNELS=avx2 OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell} ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
fi
WORK=${WORK:-/tmp/assay-bench-3b}
PROMPT_TOKENS=${PROMPT_TOKENS:-128}
GEN_TOKENS=${GEN_TOKENS:-32}
THREADS=${THREADS:-2}
TOKENIZER=../shared/fixtures/tokenizers/qwen2

mkdir -p "$WORK/src"
if [ ! -f "$WORK/model/config.json" ]; then
  cp tools/bench/qwen2.5-vl-3b-config.json "$WORK/src/config.json"
  cp tools/bench/qwen2.5-vl-3b-preprocessor_config.json "$WORK/src/preprocessor_config.json"
  cp tools/bench/qwen2.5-vl-3b-generation_config.json "$WORK/src/generation_config.json"
  cp "$TOKENIZER/tokenizer.json" "$WORK/src/"
  # The real Qwen2 vocabulary, with Qwen2.5-VL's chat template (the tokenizer fixture's config
  # carries a text model's template, which expects string content).
  python3 - "$TOKENIZER/tokenizer_config.json" ../shared/fixtures/goldens/qwen2_5_vl_tiny/checkpoint/tokenizer_config.json \
    "$WORK/src/tokenizer_config.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["chat_template"] = json.load(open(sys.argv[2]))["chat_template"]
json.dump(config, open(sys.argv[3], "w"), ensure_ascii=False, indent=1)
PY
  "$ASSAY" model init-random --config "$WORK/src/config.json" --out "$WORK/model" --dtype bf16 --seed 0
fi
"$TORCH_PYTHON" - "$WORK/img448.png" <<'PY'
import sys
from PIL import Image
img = Image.new("RGB", (448, 448))
img.putdata([((x * 7 + y * 3) % 256, (x * y) % 256, (x + 2 * y) % 256) for y in range(448) for x in range(448)])
img.save(sys.argv[1])
PY

for i in $(seq 1 "$RUNS"); do
  echo "=== assay run $i (load $(cut -d' ' -f1 /proc/loadavg))"
  OPENBLAS_NUM_THREADS=$THREADS "$ASSAY" bench runtime --model-path "$WORK/model" --image "$WORK/img448.png" \
    --prompt-tokens "$PROMPT_TOKENS" --gen-tokens "$GEN_TOKENS" | tee "$WORK/assay-$i.txt"
  echo "=== torch run $i (load $(cut -d' ' -f1 /proc/loadavg))"
  "$TORCH_PYTHON" tools/bench/torch_runtime_bench.py --model-path "$WORK/model" --image "$WORK/img448.png" \
    --prompt-tokens "$PROMPT_TOKENS" --gen-tokens "$GEN_TOKENS" --threads "$THREADS" --dtype "$TORCH_DTYPE" 2>&1 \
    | grep -v -i -E "warn|loading" | tee "$WORK/torch-$i.txt"
done

# Medians over the rounds, side by side.
python3 - "$WORK" "$RUNS" <<'PY'
import re, statistics, sys
work, runs = sys.argv[1], int(sys.argv[2])
def grab(pattern, text):
    m = re.search(pattern, text)
    return float(m.group(1)) if m else None
rows = {}
for i in range(1, runs + 1):
    text = open(f"{work}/assay-{i}.txt").read()
    for label, section in re.findall(r"\[(fp32|bf16) matmuls[^\]]*\]\n((?:  .*\n)+)", text):
        name = f"assay {label}"
        rows.setdefault(name, []).append({
            "vision s": grab(r"vision:\s+([\d.]+) s", section), "prefill tok/s": grab(r"= ([\d.]+) tok/s", section),
            "first token s": grab(r"first token:\s+([\d.]+) s", section),
            "decode tok/s": grab(r"decode:\s+\d+ tokens in [\d.]+ s = ([\d.]+)", section),
            "peak GB": grab(r"peak RSS:\s+([\d.]+)", text), "decode/bandwidth %": grab(r"= (\d+)% of the bandwidth", text)})
    t = open(f"{work}/torch-{i}.txt").read()
    rows.setdefault("torch " + ("bf16" if "bfloat16" in t else "f32"), []).append({
        "vision s": grab(r"vision ([\d.]+)s", t), "prefill tok/s": grab(r"prefill \d+ tokens in [\d.]+s = ([\d.]+)", t),
        "first token s": grab(r"first token ([\d.]+)s", t), "decode tok/s": grab(r"decode \d+ tokens in [\d.]+s = ([\d.]+)", t),
        "peak GB": grab(r"peak RSS ([\d.]+)", t), "decode/bandwidth %": None})
columns = ["vision s", "prefill tok/s", "first token s", "decode tok/s", "peak GB", "decode/bandwidth %"]
print(f"\nmedians of {runs} alternating rounds")
print(f"{'':12}" + "".join(f"{c:>20}" for c in columns))
for name, values in rows.items():
    cells = []
    for c in columns:
        v = [r[c] for r in values if r[c] is not None]
        cells.append(f"{statistics.median(v):>20.2f}" if v else f"{'-':>20}")
    print(f"{name:12}" + "".join(cells))
PY
