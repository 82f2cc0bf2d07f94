#!/usr/bin/env bash
# GPU latency benchmark (issue 13): `bench latency --device cuda:0` on a full profile, measured with ONNX
# Runtime's CUDA provider, committed as benchmarks/latency-h200-ort.json (targets: learned model within 10%
# >= 0.80, MAPE <= 8%). Written for the lent device machine (../.library/device/README.md): its image has
# torch, onnxruntime (CPU build), nvidia-ml-py, scikit-learn and pluggy on Python 3.12, and 15 minutes of
# device time per session, all calls together, at most 10 minutes per call.
#
# onnxruntime-gpu's wheel (256 MB) is larger than one call may carry (64 MiB), so it travels in pieces:
#
#   here:    benchmarks/gpu_latency.sh prepare
#            downloads the wheel into .gpu/ (ignored), splits it into .gpu/ort-gpu.part-aa.. and writes
#            .gpu/SHA256; prints the pieces
#   device:  one call per piece but the last, back to back so the machine stays warm:
#            run(carry=[".gpu/ort-gpu.part-aa"], command="benchmarks/gpu_latency.sh stage")
#   device:  the last piece and the measurement in one call (timeout_s 600):
#            run(carry=[".gpu/ort-gpu.part-ae", ".gpu/SHA256"], command="benchmarks/gpu_latency.sh run")
#
# `run` joins the pieces in /root, checks the sha256, installs onnxruntime-gpu and this checkout with
# `pip install --no-deps --target` (the image's own onnxruntime stays, behind them on PYTHONPATH), checks that
# the CUDA provider is there, then:
#   1. builds or continues the profile $OUT/gpu-profile-ort.json (`profile --device cuda:0 --time-budget-s`):
#      a partial profile carried in profiles/gpu-profile-ort.json (copy it there from a previous call's
#      files; untracked files travel with every call) is resumed, so a profile may take several calls;
#   2. once the profile is complete, and if time is left, runs `bench latency --profile` on it and writes
#      $OUT/latency-h200-ort.json (commit it as benchmarks/latency-h200-ort.json) and its --dump.
# Time per stage: GPU_LATENCY_BUDGET_S (default 540 s, the whole call) and GPU_LATENCY_HELDOUT /
# GPU_LATENCY_REPEATS (default 200 / 2). It reads the GPU's state through NVML only: it never changes clocks,
# power limits or modes.
#
# `run --no-install --device cpu` runs the same steps here on the CPU with the installed toolkit (a check of
# this script, not a figure; $PYTHON, else .venv/bin/python; tests/test_gpu_runbook.py runs it so).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT_DIR="${GPU_LATENCY_ROOT:-/root}"
OUT_DIR="${OUT:-benchmarks}"
WHEEL=onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl

log() { echo "gpu_latency: $*" >&2; }

stage_pieces() {
  local found=0
  for piece in .gpu/ort-gpu.part-*; do
    [ -e "$piece" ] || continue
    cp "$piece" "$ROOT_DIR/"
    found=1
    log "staged $(basename "$piece") in $ROOT_DIR"
  done
  [ -e .gpu/SHA256 ] && cp .gpu/SHA256 "$ROOT_DIR/ort-gpu.SHA256"
  [ "$found" = 1 ] || log "no piece carried (carry .gpu/ort-gpu.part-XX)"
}

case "${1:-}" in
prepare)
  mkdir -p .gpu
  PY="${PYTHON:-.venv/bin/python}"
  [ -e ".gpu/$WHEEL" ] || "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 onnxruntime-gpu==1.31.1 -d .gpu
  rm -f .gpu/ort-gpu.part-*
  split -b 56m ".gpu/$WHEEL" .gpu/ort-gpu.part-
  (cd .gpu && sha256sum "$WHEEL" | cut -d' ' -f1 > SHA256)
  ls -1 .gpu/ort-gpu.part-*
  exit 0
  ;;
stage)
  stage_pieces
  exit 0
  ;;
run) shift ;;
*)
  echo "usage: benchmarks/gpu_latency.sh prepare | stage | run [--no-install] [--device cuda:0]" >&2
  exit 2
  ;;
esac

INSTALL=1
DEVICE=cuda:0
while [ $# -gt 0 ]; do
  case "$1" in
  --no-install) INSTALL=0 ;;
  --device) DEVICE="$2"; shift ;;
  *) echo "gpu_latency: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

START_S=$(date +%s)
BUDGET_S="${GPU_LATENCY_BUDGET_S:-540}"
left_s() { echo $((BUDGET_S - ($(date +%s) - START_S))); }
mkdir -p "$OUT_DIR"
PY=python3
if [ "$INSTALL" = 1 ]; then
  stage_pieces
  cat "$ROOT_DIR"/ort-gpu.part-* > "$ROOT_DIR/$WHEEL"
  want=$(cat "$ROOT_DIR/ort-gpu.SHA256")
  got=$(sha256sum "$ROOT_DIR/$WHEEL" | cut -d' ' -f1)
  if [ "$want" != "$got" ]; then
    log "the joined wheel's sha256 is $got, not $want: a piece is missing or was carried twice"
    ls -l "$ROOT_DIR"/ort-gpu.part-* >&2
    exit 1
  fi
  pip install --quiet --no-deps --target "$ROOT_DIR/ortgpu" "$ROOT_DIR/$WHEEL"
  pip install --quiet --no-deps --no-build-isolation --target "$ROOT_DIR/nat" .
  export PYTHONPATH="$ROOT_DIR/ortgpu:$ROOT_DIR/nat${PYTHONPATH:+:$PYTHONPATH}"
  PY="python3 -P"
  $PY -c "import onnxruntime as ort, sys; p = ort.get_available_providers(); print('providers', p, file=sys.stderr); sys.exit('CUDAExecutionProvider' not in p)"
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw \
    --format=csv > "$OUT_DIR/nvidia-smi-before.csv" 2>&1 || true
elif [ -n "${PYTHON:-}" ]; then
  PY="$PYTHON"
elif [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
fi

PROFILE="$OUT_DIR/gpu-profile-ort.json"
RESUME=()
if [ -e profiles/gpu-profile-ort.json ] && [ ! -e "$PROFILE" ]; then
  cp profiles/gpu-profile-ort.json "$PROFILE"
fi
[ -e "$PROFILE" ] && RESUME=(--resume)
complete() { $PY -c "import json, sys; sys.exit(not json.load(open('$PROFILE')).get('complete'))"; }

if [ ! -e "$PROFILE" ] || ! complete; then
  t=$(( $(left_s) - 30 ))
  [ "$t" -gt 30 ] || { log "no time left for the profile"; exit 3; }
  log "profile: ${t} s (${RESUME[*]:-new})"
  if [ ${#RESUME[@]} -gt 0 ]; then
    $PY -m na_toolkit profile --out "$PROFILE" --resume --time-budget-s "$t" --no-progress
  else
    $PY -m na_toolkit profile --device "$DEVICE" --runtime onnxruntime --out "$PROFILE" --time-budget-s "$t" \
      --no-progress
  fi
fi
if ! complete; then
  log "the profile is partial: copy $PROFILE from this call's files to profiles/gpu-profile-ort.json and run again"
  exit 0
fi

t=$(( $(left_s) - 10 ))
log "bench latency: ${t} s left"
timeout -s INT "$t" $PY -m na_toolkit bench latency --device "$DEVICE" --profile "$PROFILE" \
  --heldout "${GPU_LATENCY_HELDOUT:-200}" --repeats "${GPU_LATENCY_REPEATS:-2}" \
  --dump "$OUT_DIR/latency-h200-ort-dump.json" --json --out "$OUT_DIR/latency-h200-ort.json" > /dev/null
log "wrote $OUT_DIR/latency-h200-ort.json"
