#!/usr/bin/env bash
# GPU latency benchmark (issue 13): `bench latency --device cuda:0` on a full profile, measured with ONNX
# Runtime's CUDA provider, committed as benchmarks/latency-h200-ort.json (targets: learned model within 10%
# >= 0.80, MAPE <= 8%). Written for the lent device machine (../.library/device/README.md): its image has
# torch, onnxruntime (CPU build), nvidia-ml-py, scikit-learn and pluggy on Python 3.12, and 15 minutes of
# device time per session, all calls together, at most 10 minutes per call.
#
# onnxruntime-gpu's wheel (256 MB) is larger than one call may carry (64 MiB with the checkout's ~14 MiB), so
# it travels in 49 MiB pieces; the requirements the image lacks (cachetools, pydantic and theirs) travel as
# wheels in .gpu/whl:
#
#   here:    benchmarks/gpu_latency.sh prepare
#            downloads the wheel into .gpu/ (ignored: add /.gpu/ to .git/info/exclude), splits it into
#            .gpu/ort-gpu.part-aa..ae, writes .gpu/SHA256 and downloads the missing requirements (the versions
#            installed here) into .gpu/whl, and .gpu/REVISION (the commit, +dirty: the device's copy has no
#            .git, so the records' source.commit comes from it); prints the pieces. Run it again just before
#            the calls (the wheel stays) so that REVISION names the code that runs
#   device:  one call per piece but the last, back to back so the machine stays warm (30 s idle; all five
#            calls can go in one batch of tool calls, which run one after the other):
#            run(carry=[".gpu/ort-gpu.part-aa"], command="benchmarks/gpu_latency.sh stage")
#   device:  the last piece and the measurement in one call:
#            run(carry=[".gpu/ort-gpu.part-ae", ".gpu/SHA256", ".gpu/REVISION", ".gpu/whl"],
#                command="GPU_LATENCY_BUDGET_S=... \
#                benchmarks/gpu_latency.sh run", timeout_s=GPU_LATENCY_BUDGET_S + 30)
#
# `run` joins the pieces in /root, checks the sha256, installs onnxruntime-gpu (once per machine) and this
# checkout with `pip install --no-deps --target` (the image's own onnxruntime stays, behind them on PYTHONPATH),
# checks that the CUDA provider is there, then, within GPU_LATENCY_BUDGET_S (default 540 s, the whole call):
#   1. builds or continues the profile /root/gpu-profile-ort.json (`profile --device cuda:0 --time-budget-s`,
#      the default plan), handed back as $OUT/gpu-profile-ort.json however the call ends. A partial profile
#      is resumed by the next call: from /root on a warm machine, else from profiles/gpu-profile-ort.json
#      (copy it there from a call's files; untracked files travel with every call);
#   2. once the profile is complete, runs `bench latency --profile` on it with as many held-out networks as
#      the time left measures (the profile's own seconds per network; at most GPU_LATENCY_HELDOUT, default
#      200, in GPU_LATENCY_REPEATS passes, default 2; fewer than GPU_LATENCY_MIN_HELDOUT, default 50, waits
#      for the next call) and writes $OUT/latency-h200-ort.json (commit it as
#      benchmarks/latency-h200-ort.json) and its --dump;
#   3. runs the GPU tests (`pytest -m gpu`) in the time left, into $OUT/gpu-tests.log (GPU_LATENCY_TESTS=0:
#      not).
# It reads the GPU's state through NVML only: it never changes clocks, power limits or modes.
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
  split -b 49m ".gpu/$WHEEL" .gpu/ort-gpu.part-
  (cd .gpu && sha256sum "$WHEEL" | cut -d' ' -f1 > SHA256)
  # the commit the device's copy is (it has no .git): the records' source.commit (NA_TOOLKIT_SOURCE_REVISION)
  rev=$(git rev-parse HEAD)
  [ -z "$(git status --porcelain --untracked-files=no)" ] || rev="$rev+dirty"
  echo "$rev" > .gpu/REVISION
  # the image has torch, numpy, onnx, scikit-learn, scipy, pluggy, nvidia-ml-py, tqdm and matplotlib, not these
  missing=$("$PY" -c "
import importlib.metadata as m
names = ['cachetools', 'pydantic', 'pydantic_core', 'annotated_types', 'typing_inspection', 'typing_extensions']
print(' '.join(f'{n}=={m.version(n)}' for n in names))
")
  # shellcheck disable=SC2086  # one argument per requirement
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu/whl $missing
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
KEEP_DIR="$OUT_DIR"
if [ "$INSTALL" = 1 ]; then
  KEEP_DIR="$ROOT_DIR"  # outlives the call on a warm machine: the next call resumes from it
  want=$(cat "$ROOT_DIR/ort-gpu.SHA256" 2>/dev/null || cat .gpu/SHA256)
  if [ "$(cat "$ROOT_DIR/ortgpu/.installed" 2>/dev/null)" != "$want" ]; then
    stage_pieces
    cat "$ROOT_DIR"/ort-gpu.part-* > "$ROOT_DIR/$WHEEL"
    got=$(sha256sum "$ROOT_DIR/$WHEEL" | cut -d' ' -f1)
    if [ "$want" != "$got" ]; then
      log "the joined wheel's sha256 is $got, not $want: a piece is missing or was carried twice"
      ls -l "$ROOT_DIR"/ort-gpu.part-* >&2
      exit 1
    fi
    rm -rf "$ROOT_DIR/ortgpu"
    pip install --quiet --no-deps --target "$ROOT_DIR/ortgpu" "$ROOT_DIR/$WHEEL"
    echo "$want" > "$ROOT_DIR/ortgpu/.installed"
  fi
  rm -rf "$ROOT_DIR/nat"
  pip install --quiet --no-deps --no-build-isolation --target "$ROOT_DIR/nat" .
  # requirements the image lacks (cachetools, pydantic and theirs): wheels carried in .gpu/whl (see prepare)
  if compgen -G ".gpu/whl/*.whl" > /dev/null; then
    pip install --quiet --no-deps --no-index --upgrade --target "$ROOT_DIR/deps" .gpu/whl/*.whl
  fi
  export PYTHONPATH="$ROOT_DIR/ortgpu:$ROOT_DIR/nat:$ROOT_DIR/deps${PYTHONPATH:+:$PYTHONPATH}"
  if [ -e .gpu/REVISION ]; then
    NA_TOOLKIT_SOURCE_REVISION=$(cat .gpu/REVISION)
    export NA_TOOLKIT_SOURCE_REVISION
  fi
  PY="python3 -P"
  $PY -c "import onnxruntime as ort, sys; p = ort.get_available_providers(); print('providers', p, file=sys.stderr); sys.exit('CUDAExecutionProvider' not in p)"
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw \
    --format=csv > "$OUT_DIR/nvidia-smi-before.csv" 2>&1 || true
elif [ -n "${PYTHON:-}" ]; then
  PY="$PYTHON"
elif [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
fi
log "$(left_s) s left after the install"

PROFILE="$KEEP_DIR/gpu-profile-ort.json"
# every exit hands the profile back, complete or partial
[ "$KEEP_DIR" = "$OUT_DIR" ] || trap 'cp "$PROFILE" "$OUT_DIR/" 2>/dev/null || true' EXIT
if [ -e profiles/gpu-profile-ort.json ] && [ ! -e "$PROFILE" ]; then
  cp profiles/gpu-profile-ort.json "$PROFILE"
fi
complete() { $PY -c "import json, sys; sys.exit(not json.load(open('$PROFILE')).get('complete'))"; }

if [ ! -e "$PROFILE" ] || ! complete; then
  t=$(( $(left_s) - 30 ))
  [ "$t" -gt 30 ] || { log "no time left for the profile"; exit 3; }
  if [ -e "$PROFILE" ]; then
    log "profile: ${t} s (resumed)"
    $PY -m na_toolkit profile --out "$PROFILE" --resume --time-budget-s "$t" --no-progress
  else
    log "profile: ${t} s (new)"
    $PY -m na_toolkit profile --device "$DEVICE" --runtime onnxruntime --out "$PROFILE" --time-budget-s "$t" \
      --no-progress
  fi
fi
if ! complete; then
  log "the profile is partial: run again (a warm machine resumes $PROFILE; a fresh one resumes"
  log "profiles/gpu-profile-ort.json: copy this call's gpu-profile-ort.json there)"
  exit 0
fi

# held-out networks: as many as the time left measures (at most GPU_LATENCY_HELDOUT), from the profile's
# own seconds per item (a network takes about twice a kernel's time); too few for a figure: the next call
REPEATS="${GPU_LATENCY_REPEATS:-2}"
HELDOUT=$($PY -c "
import json
p = json.load(open('$PROFILE'))
per_net_s = 1.5 * p['elapsed_s'] / max(1.0, p['counts']['networks'] + p['counts']['kernels'] / 2)
print(max(0, min(${GPU_LATENCY_HELDOUT:-200}, int(($(left_s) - 60) / ($REPEATS * max(per_net_s, 0.05))))))
")
MIN_HELDOUT="${GPU_LATENCY_MIN_HELDOUT:-50}"
[ "$MIN_HELDOUT" -le "${GPU_LATENCY_HELDOUT:-200}" ] || MIN_HELDOUT="${GPU_LATENCY_HELDOUT:-200}"
if [ "$HELDOUT" -lt "$MIN_HELDOUT" ]; then
  log "time for $HELDOUT held-out networks only: run again for bench latency (the profile is complete)"
  exit 0
fi
t=$(( $(left_s) - 10 ))
log "bench latency: $HELDOUT held-out networks x $REPEATS passes, ${t} s left"
timeout -s INT "$t" $PY -m na_toolkit bench latency --device "$DEVICE" --profile "$PROFILE" \
  --heldout "$HELDOUT" --repeats "$REPEATS" \
  --dump "$OUT_DIR/latency-h200-ort-dump.json" --json --out "$OUT_DIR/latency-h200-ort.json" > /dev/null
log "wrote $OUT_DIR/latency-h200-ort.json"

# the GPU tests (`-m gpu`) in what time is left
if [ "${GPU_LATENCY_TESTS:-$INSTALL}" = 1 ] && [ "$(left_s)" -gt 60 ]; then
  log "GPU tests: $(left_s) s left"
  timeout "$(( $(left_s) - 5 ))" $PY -m pytest -q -p no:cacheprovider -m gpu tests/test_timemodels_measured.py \
    tests/test_hw_cli.py tests/test_evaluator.py > "$OUT_DIR/gpu-tests.log" 2>&1 || log "GPU tests: exit $?"
  tail -n 3 "$OUT_DIR/gpu-tests.log" >&2
fi
