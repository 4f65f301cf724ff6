#!/usr/bin/env bash
# Creates (idempotently) the Python reference environment for the GRPO training benchmarks:
# CPU torch, transformers, trl, gguf, safetensors, numpy, psutil in a venv under /tmp.
# Bench-time only: nothing in the Swift package depends on it.
#
#   tools/bench/setup_torch_venv.sh
# Environment: VENV (default /tmp/assay-torch-venv), PYTHON (default python3),
# TORCH_SPEC (default "torch"; e.g. a path to a local +cpu wheel to skip the CUDA wheels).
# CPU wheels come from PyTorch's own CPU index when it answers; otherwise plain PyPI `torch`
# (which on Linux also pulls the CUDA runtime packages, a few GB, unused here).
set -euo pipefail
VENV=${VENV:-/tmp/assay-torch-venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch}
CPU_INDEX=https://download.pytorch.org/whl/cpu

if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  if command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3-venv python3-pip
  fi
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip

if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  if curl -fsS -m 10 -o /dev/null "$CPU_INDEX/torch/" 2>/dev/null; then
    echo "torch from the CPU index"
    $PIP install -q --index-url "$CPU_INDEX" "$TORCH_SPEC"
  else
    echo "CPU index not reachable: torch from PyPI ($TORCH_SPEC)"
    $PIP install -q "$TORCH_SPEC"
  fi
fi
$PIP install -q transformers trl gguf safetensors numpy psutil accelerate datasets

"$VENV/bin/python" - <<'PY'
import importlib.metadata as md, platform
print("python", platform.python_version())
for m in ["torch", "transformers", "trl", "accelerate", "datasets", "gguf", "safetensors", "numpy", "psutil"]:
    try:
        print(m, md.version(m))
    except md.PackageNotFoundError:
        print(m, "MISSING")
import torch
print("torch cuda build:", torch.version.cuda, "| threads default:", torch.get_num_threads())
PY
