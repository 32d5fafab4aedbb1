#!/usr/bin/env bash
# One LRP explanation of face-api's face-expression CNN (one 112x112 face) against one forward pass
# of the same model, and against gradient x input in Python/PyTorch on the same TorchScript file,
# in one run.
#
#   bench/run_lrp_bench.sh [BUILD_DIR]          (default BUILD_DIR: build)
#
# Environment: THREADS (intra-op threads for both languages, default 1), REPS (timed runs per
# variant, median reported; default 30), JOBS (build parallelism, default 2), MALLOC ("retain",
# the default: the C++ processes call strata::retain_freed_memory() as the strata command does;
# "default": glibc's own settings).
# Prepares the model with tools/faceapi/prepare.py (npm pack + conversion + check against the
# package's tfjs) into BUILD_DIR/faceapi if it is not there, builds strata_lrp_bench, runs C++
# (one process per composite) and Python, and prints the markdown table of docs/benchmarks.md
# (also BUILD_DIR/bench/lrp/lrp_bench.md).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(realpath -m "${1:-$ROOT/build}")
THREADS=${THREADS:-1}
REPS=${REPS:-30}
JOBS=${JOBS:-2}
MALLOC=${MALLOC:-retain}
case "$MALLOC" in
  retain) MALLOC_ARG=() ;;
  default) MALLOC_ARG=(default-malloc) ;;
  *) echo "run_lrp_bench.sh: MALLOC must be 'retain' or 'default', got '$MALLOC'" >&2; exit 2 ;;
esac
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
# One process per composite (and per keep-points setting): each compares its explanation with the
# forward pass and gradient x input of its own process.
COMPOSITES="epsilon epsilon_plus_flat epsilon_gamma_box epsilon_alpha2_beta1"
for c in $COMPOSITES; do
  for mode in plain points; do
    "$BIN" "$FACEAPI/face_expression.pt" "$FACEAPI/faces.safetensors" "$REPS" \
      "$OUT/cpp_${c}_${mode}.json" "$c" "$mode" "${MALLOC_ARG[@]}" >&2
  done
done
"$PY" "$ROOT/bench/python_lrp_bench.py" "$FACEAPI/face_expression.pt" "$FACEAPI/faces.safetensors" \
  "$REPS" "$OUT/py.json" >&2

"$PY" - "$OUT" "$THREADS" "$REPS" "$MALLOC" $COMPOSITES <<'PY' | tee "$OUT/lrp_bench.md"
import json, os, statistics, sys
out, threads, reps, malloc, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
p = json.load(open(os.path.join(out, "py.json")))
runs = {(n, m): json.load(open(os.path.join(out, f"cpp_{n}_{m}.json")))
        for n in names for m in ("plain", "points")}
fwd = statistics.median(r["forward_ms"] for r in runs.values())
gxi = statistics.median(r["gradient_x_input_ms"] for r in runs.values())
print(f"face-api face-expression CNN, one 112x112 face, {threads} thread(s), median of {reps} runs, "
      f"C++ malloc: {malloc}; each LRP row is divided by the forward pass timed in its own process:\n")
print("| what | ms | / strata forward | / PyTorch forward | / PyTorch grad x input | page faults / run |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
def row(name, ms, own_fwd, faults=None):
    f = "" if faults is None else f"{faults:.0f}"
    print(f"| {name} | {ms:.2f} | {ms / own_fwd:.2f} | {ms / p['forward_ms']:.2f} | "
          f"{ms / p['gradient_x_input_ms']:.2f} | {f} |")
pf = lambda key: statistics.median(r["page_faults_per_run"][key] for r in runs.values())
row("strata forward (no grad), median of the processes", fwd, fwd, pf("forward_ms"))
row("PyTorch forward (no grad)", p["forward_ms"], fwd)
row("PyTorch gradient x input", p["gradient_x_input_ms"], fwd)
row("strata gradient x input, median of the processes", gxi, fwd, pf("gradient_x_input_ms"))
for m, suffix in (("plain", ""), ("points", " + relevance at all 86 hook points")):
    for n in names:
        r = runs[(n, m)]
        row(f"strata LRP {n}{suffix}", r["lrp_ms"], r["forward_ms"], r["page_faults_per_run"]["lrp_ms"])
PY
