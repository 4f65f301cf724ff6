#!/usr/bin/env bash
# `assay serve` beside llama.cpp's server (llama-cpp-python[server], built from PyPI) on the same
# GGUF, 2 threads each, closed-loop load at concurrency 1, 2, 4, 8, 16: aggregate completion
# tokens/s and p50/p99 request latency. Loopback only; every load run is bounded in requests and
# time.
#
# Usage: tools/bench/serve-vs-llama-server.sh [GGUF] [MAX_TOKENS] [REQUESTS_PER_CLIENT]
# PATH_KIND=native (default) or avx2 picks both sides' kernels (tools/bench/llama-side.sh); the
# first run of a path compiles llama.cpp (~15 minutes on 2 cores), later runs reuse it.
set -euo pipefail
cd "$(dirname "$0")/../.."

GGUF=${1:-$HOME/.cache/assay/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf}
MAX_TOKENS=${2:-64}
PER_CLIENT=${3:-4}
LEVELS=${LEVELS:-"1 2 4 8 16"}
THREADS=2
ASSAY_PORT=${ASSAY_PORT:-18431}
LLAMA_PORT=${LLAMA_PORT:-18432}
PY=python3

[ -f "$GGUF" ] || { echo "no GGUF at $GGUF (run: assay models pull smollm2-135m)" >&2; exit 1; }

source tools/bench/llama-side.sh

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_ready() {  # url, pid
  for _ in $(seq 1 600); do
    curl -sf "$1" >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || { echo "server $2 exited" >&2; return 1; }
    sleep 0.2
  done
  echo "server at $1 not ready after 120 s" >&2; return 1
}

MODEL=$(basename "$GGUF" .gguf)
echo "GGUF: $GGUF; $THREADS threads; max_tokens $MAX_TOKENS; $PER_CLIENT requests per client" >&2

run_levels() {  # name base_url model
  for c in $LEVELS; do
    local n=$((c * PER_CLIENT))
    $PY tools/bench/serve_load.py "$2" "$3" 1 2 "$MAX_TOKENS" 300 >/dev/null  # warm-up
    echo "$1 $($PY tools/bench/serve_load.py "$2" "$3" "$c" "$n" "$MAX_TOKENS" 900)"
  done
}

RESULTS=$(mktemp)
# One server at a time: they would take the cores from each other.
"$ASSAY" serve --model-path "$GGUF" --served-model-name "$MODEL" --port "$ASSAY_PORT" --max-batch 16 --max-queue 256 >/tmp/assay-serve-bench.log 2>&1 &
PIDS+=($!); wait_ready "http://127.0.0.1:$ASSAY_PORT/health" "${PIDS[-1]}"
run_levels assay "http://127.0.0.1:$ASSAY_PORT" "$MODEL" | tee -a "$RESULTS" >&2
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true

"$VENV/bin/python" -m llama_cpp.server --model "$GGUF" --model_alias "$MODEL" --host 127.0.0.1 --port "$LLAMA_PORT" \
  --n_threads "$THREADS" --n_threads_batch "$THREADS" --n_ctx 2048 >/tmp/llama-server-bench.log 2>&1 &
PIDS+=($!); wait_ready "http://127.0.0.1:$LLAMA_PORT/v1/models" "${PIDS[-1]}"
run_levels llama "http://127.0.0.1:$LLAMA_PORT" "$MODEL" | tee -a "$RESULTS" >&2
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true

$PY - "$RESULTS" "$LLAMA_VERSION" <<'PYEOF'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    name, data = line.split(" ", 1)
    d = json.loads(data)
    rows.setdefault(d["concurrency"], {})[name] = d
print(f"| concurrency | Assay tok/s | llama-cpp-python {sys.argv[2]} tok/s | Assay p50 / p99 (s) | llama p50 / p99 (s) |")
print("|---:|---:|---:|---:|---:|")
for c in sorted(rows):
    a, l = rows[c].get("assay", {}), rows[c].get("llama", {})
    print(f"| {c} | {a.get('tokens_per_s', '—')} | {l.get('tokens_per_s', '—')} | {a.get('p50_s', '—')} / {a.get('p99_s', '—')} | {l.get('p50_s', '—')} / {l.get('p99_s', '—')} |")
PYEOF
rm -f "$RESULTS"
