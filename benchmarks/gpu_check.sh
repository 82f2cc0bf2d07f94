#!/usr/bin/env bash
# GPU check of the time models (issue 3): 50 networks measured with the torch time model on CUDA (CUDA
# events, NVML telemetry before/after each measurement, energy from NVML's counter) against the roofline of
# the card's hardware model (hwmodels/h100-sxm.toml, h200-sxm.toml, ... chosen from the GPU's name).
# One short run (< 4 minutes). Writes gpu_check.json and gpu-profile-<card>.json to $OUT if set, else to
# benchmarks/. Reads the GPU's state through NVML only: it never changes clocks, power limits or modes.
#
#   benchmarks/gpu_check.sh [--device cuda:0] [--networks 50] [--hwmodel h100-sxm]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY="${PYTHON:-python3}"; fi
# works installed (pip install -e .) or straight from the checkout
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT_DIR="${OUT:-benchmarks}"
mkdir -p "$OUT_DIR"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw,clocks_event_reasons.active \
    --format=csv > "$OUT_DIR/nvidia-smi-before.csv" 2>&1 || true
fi
timeout 230 "$PY" -m na_toolkit.bench.gpu_check --out-dir "$OUT_DIR" "$@"
