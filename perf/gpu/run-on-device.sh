#!/usr/bin/env bash
# The gpu-triton scenario on a machine with an NVIDIA GPU, as one bounded command:
#
#     perf/gpu/run-on-device.sh [OUT_DIR]        (LIMIT_S=540 by default)
#
# Checks first, in a few seconds, everything the scenario needs, and says what is missing:
# the GPU, the project's Python deps, etcd, Triton 2.51 (`make deps`), and torch with CUDA in
# the Python that Triton's python backend runs (the pytriton venv: install it there with
# ~/.cache/modelmesh/venvs/pytriton-0.7.0/bin/pip install torch). Then runs
# `python -m perf run gpu-triton --quick` and leaves gpu-triton.json, its plot and the summary
# in OUT_DIR ($OUT on the device machine, else perf/results).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT_DIR=${1:-${OUT:-perf/results}}
LIMIT_S=${LIMIT_S:-540}
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
CACHE=${MODELMESH_CACHE:-$HOME/.cache/modelmesh}
missing=()

nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv || missing+=("an NVIDIA GPU (nvidia-smi)")
"$PY" -c 'import grpc, aiohttp, aetcd, orjson, structlog, prometheus_client, matplotlib' 2>/dev/null \
  || missing+=("the project's Python deps in $PY (make deps, or pip install -e .[dev,perf])")
command -v etcd >/dev/null || [ -x /usr/bin/etcd ] || missing+=("etcd (apt-get install -y etcd-server)")
if [ -f "$CACHE/triton-2.51/env" ]; then
  TRITON_PATH=$(sed -n 's/^TRITON_PATH=//p' "$CACHE/triton-2.51/env")
  "$TRITON_PATH/python3" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null \
    || missing+=("torch with CUDA in Triton's python ($TRITON_PATH/pip install torch)")
else
  missing+=("Triton 2.51 (scripts/install-triton.sh or make deps)")
fi
if [ ${#missing[@]} -gt 0 ]; then
  printf 'gpu-triton cannot run here; missing:\n' >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 3
fi
mkdir -p "$OUT_DIR"
PYTHONPATH=$PWD timeout "$LIMIT_S" "$PY" -m perf run gpu-triton --quick --out "$OUT_DIR" --limit "$LIMIT_S"
