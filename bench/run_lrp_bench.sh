#!/usr/bin/env bash
# One LRP explanation of face-api's face-expression CNN (one 112x112 face) against one forward pass
# of the same model, and against gradient x input in Python/PyTorch on the same TorchScript file,
# in one run.
#
#   bench/run_lrp_bench.sh [BUILD_DIR]          (default BUILD_DIR: build)
#
# Environment: THREADS (intra-op threads for both languages, default 1), REPS (timed runs per
# variant, median reported; default 30), JOBS (build parallelism, default 2).
# Prepares the model with tools/faceapi/prepare.py (npm pack + conversion + check against the
# package's tfjs) into BUILD_DIR/faceapi if it is not there, builds strata_lrp_bench, runs C++
# and Python, and prints the markdown table of docs/benchmarks.md (also BUILD_DIR/bench/lrp/lrp_bench.md).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(realpath -m "${1:-$ROOT/build}")
THREADS=${THREADS:-1}
REPS=${REPS:-30}
JOBS=${JOBS:-2}
PY=/usr/bin/python3
OUT="$BUILD/bench/lrp"
FACEAPI="$BUILD/faceapi"

if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTRATA_BUILD_BENCHMARKS=ON >&2
elif ! grep -q '^STRATA_BUILD_BENCHMARKS:BOOL=ON' "$BUILD/CMakeCache.txt"; then
  cmake -S "$ROOT" -B "$BUILD" -DSTRATA_BUILD_BENCHMARKS=ON >&2
fi
cmake --build "$BUILD" --target strata_lrp_bench --parallel "$JOBS" >&2
BIN="$BUILD/bench/strata_lrp_bench"
[[ -x "$BIN" ]] || { echo "run_lrp_bench.sh: $BIN was not built" >&2; exit 1; }
[[ -f "$FACEAPI/face_expression.pt" && -f "$FACEAPI/faces.safetensors" ]] ||
  "$PY" "$ROOT/tools/faceapi/prepare.py" "$FACEAPI" --images 1 >&2
mkdir -p "$OUT"

export OMP_NUM_THREADS="$THREADS"
"$BIN" "$FACEAPI/face_expression.pt" "$FACEAPI/faces.safetensors" "$REPS" "$OUT/cpp.json" >&2
"$PY" "$ROOT/bench/python_lrp_bench.py" "$FACEAPI/face_expression.pt" "$FACEAPI/faces.safetensors" \
  "$REPS" "$OUT/py.json" >&2

"$PY" - "$OUT/cpp.json" "$OUT/py.json" "$THREADS" <<'PY' | tee "$OUT/lrp_bench.md"
import json, sys
c = json.load(open(sys.argv[1])); p = json.load(open(sys.argv[2])); threads = sys.argv[3]
fwd = c["forward_ms"]
print(f"face-api face-expression CNN, one 112x112 face, {threads} thread(s), median of REPS runs:\n")
print("| what | ms | / strata forward | / PyTorch forward | / PyTorch grad x input |")
print("| --- | ---: | ---: | ---: | ---: |")
def row(name, ms):
    print(f"| {name} | {ms:.2f} | {ms / fwd:.2f} | {ms / p['forward_ms']:.2f} | {ms / p['gradient_x_input_ms']:.2f} |")
row("strata forward (no grad)", fwd)
row("PyTorch forward (no grad)", p["forward_ms"])
row("PyTorch gradient x input", p["gradient_x_input_ms"])
row("strata gradient x input", c["gradient_x_input_ms"])
for name, ms in c["lrp_ms"].items():
    row(f"strata LRP {name}", ms)
for name, ms in c["lrp_with_points_ms"].items():
    row(f"strata LRP {name} + relevance at all 86 hook points", ms)
PY
