#!/usr/bin/env bash
# Issue 15's side-by-side on an AVX2 kernel path: `assay bench runtime` with the kernels forced to
# AVX2 (ASSAY_KERNELS=avx2) and the Swift code built for an AVX2 CPU, beside llama.cpp built for
# AVX2 only (llama-cpp-python from PyPI compiled with GGML_NATIVE and every AVX512 option off), on
# the same GGUF with the same prompt length, decode length and thread count. Rounds alternate and
# the medians are printed last. Works the same on an AVX512 machine, which is the point: the AVX2
# figures of a Zen 3 user can be reproduced on a Zen 4.
#
#   tools/bench/decode-vs-llama-cpp.sh [GGUF] [ROUNDS]
# Environment: PROMPT_TOKENS (256), GEN_TOKENS (128), THREADS (2), PATH_KIND (avx2 here; native:
# both sides as this CPU allows; see tools/bench/llama-side.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
GGUF=${1:-$HOME/.cache/assay/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf}
ROUNDS=${2:-3}
PROMPT_TOKENS=${PROMPT_TOKENS:-256}
GEN_TOKENS=${GEN_TOKENS:-128}
THREADS=${THREADS:-2}
PATH_KIND=${PATH_KIND:-avx2}
[ -f "$GGUF" ] || { echo "no GGUF at $GGUF (run: assay models pull smollm2-135m)" >&2; exit 1; }

source tools/bench/llama-side.sh
echo "path: $PATH_KIND; GGUF: $GGUF; prompt $PROMPT_TOKENS, decode $GEN_TOKENS, $THREADS threads, $ROUNDS alternating rounds" >&2
RESULTS=$(mktemp)
for round in $(seq 1 "$ROUNDS"); do
  out=$(ASSAY_THREADS=$THREADS "$ASSAY" bench runtime --model-path "$GGUF" \
        --prompt-tokens "$PROMPT_TOKENS" --gen-tokens "$GEN_TOKENS")
  [ "$round" = 1 ] && echo "$out" | sed -n 's/^\(model\|cores\): */  assay \1: /p' >&2
  p=$(echo "$out" | sed -n 's/.*prefill: .*= \([0-9.]*\) tok\/s.*/\1/p' | head -1)
  d=$(echo "$out" | sed -n 's/.*decode: .*= \([0-9.]*\) tok\/s.*/\1/p' | head -1)
  echo "assay $p $d" | tee -a "$RESULTS" >&2
  j=$("$VENV/bin/python" tools/bench/llama_cpp_decode.py "$GGUF" "$PROMPT_TOKENS" "$GEN_TOKENS" "$THREADS")
  echo "llama $(echo "$j" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["prefill_tok_s"], d["decode_tok_s"])')" | tee -a "$RESULTS" >&2
done
python3 - "$RESULTS" "$PATH_KIND" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, p, d = line.split()
    rows.setdefault(name, []).append((float(p), float(d)))
print(f"| SmolLM2 Q4_1, {sys.argv[2]} path | prefill tok/s (median) | decode tok/s (median) | rounds |")
print("|---|---:|---:|---:|")
for name, label in (("assay", "Assay, exact f32 activations"), ("llama", "llama.cpp (llama-cpp-python)")):
    r = rows.get(name, [])
    if r:
        print(f"| {label} | {statistics.median(p for p, _ in r):.1f} | {statistics.median(d for _, d in r):.2f} | {len(r)} |")
PY
