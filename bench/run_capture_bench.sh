#!/usr/bin/env bash
# Capture-all overhead on a GPT-like model (6 blocks, d=256, batch 8 x 128 tokens): strata's C++
# hook layer against a plain forward, next to PyTorch forward hooks in Python, in one run.
#
#   bench/run_capture_bench.sh [BUILD_DIR]          (default BUILD_DIR: build)
#
# Environment:
#   THREADS  intra-op threads for both languages (default 1: on a 2-core machine shared with other
#            work, 2 OpenMP threads turn every preemption into a stalled barrier and single
#            forwards take up to ~25x longer at random; use THREADS=2 on a quiet machine)
#   MALLOC   "default" (glibc as it comes) or "retain": both processes run with GLIBC_TUNABLES that
#            keep freed memory in the process (mmap_threshold=32 MiB, trim_threshold=4 GiB,
#            top_pad=256 MiB), which removes the page faults that keeping activations alive costs
#            (see docs/benchmarks.md)
#   ROUNDS (default 3), REPS (repetitions per variant per round, default 4), ITERS (forwards per
#   repetition, default 2), JOBS (build parallelism, default 2).
# Builds strata_capture_bench if needed (turning STRATA_BUILD_BENCHMARKS on in BUILD_DIR), writes
# the model to BUILD_DIR/bench, then runs ROUNDS rounds of [C++ benchmark, Python peer] (the order
# alternates between rounds), each with its variants' repetitions in random order, then the C++
# benchmark once more on a 1 x 4-token input (the hook layer's own cost per hook point), and
# prints the markdown tables of docs/benchmarks.md (also saved as BUILD_DIR/bench/capture_bench.md).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(realpath -m "${1:-$ROOT/build}")
THREADS=${THREADS:-1}
MALLOC=${MALLOC:-default}
ROUNDS=${ROUNDS:-3}
REPS=${REPS:-4}
ITERS=${ITERS:-2}
JOBS=${JOBS:-2}
PY=/usr/bin/python3  # Debian's Python with torch 1.13
OUT="$BUILD/bench"

if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTRATA_BUILD_BENCHMARKS=ON >&2
elif ! grep -q '^STRATA_BUILD_BENCHMARKS:BOOL=ON' "$BUILD/CMakeCache.txt"; then
  cmake -S "$ROOT" -B "$BUILD" -DSTRATA_BUILD_BENCHMARKS=ON >&2
fi
cmake --build "$BUILD" --target strata_capture_bench --parallel "$JOBS" >&2
BIN="$BUILD/bench/strata_capture_bench"
[[ -x "$BIN" ]] || { echo "run_capture_bench.sh: $BIN was not built (is libbenchmark-dev installed?)" >&2; exit 1; }

mkdir -p "$OUT"
"$PY" "$ROOT/bench/make_bench_gpt.py" "$OUT" >&2
rm -f "$OUT"/cpp_round*.json "$OUT"/py_round*.json "$OUT"/cpp_tiny.json "$OUT"/cpp_hookpath.json

export OMP_NUM_THREADS="$THREADS"  # the same for both processes (BLAS and ATen use OpenMP)
case "$MALLOC" in
  default) ;;
  retain) export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296:glibc.malloc.top_pad=268435456 ;;
  *) echo "run_capture_bench.sh: MALLOC must be default or retain, not '$MALLOC'" >&2; exit 2 ;;
esac
run_cpp() {
  "$BIN" "$OUT/bench_gpt.pt" "$OUT/bench_gpt.input.safetensors" --threads="$THREADS" \
    --iters="$ITERS" --benchmark_repetitions="$REPS" --benchmark_enable_random_interleaving=true \
    --benchmark_out="$OUT/cpp_round$1.json" --benchmark_out_format=json \
    --benchmark_format=console --benchmark_report_aggregates_only=false >&2
}
run_py() {
  "$PY" "$ROOT/bench/python_hooks_bench.py" "$OUT" --threads "$THREADS" --repetitions "$REPS" \
    --iters "$ITERS" --seed "$1" --out "$OUT/py_round$1.json"
}
start=$(date +%s)
load_before=$(cut -d" " -f1-3 /proc/loadavg)
for ((r = 1; r <= ROUNDS; r++)); do
  echo "== round $r/$ROUNDS" >&2
  if ((r % 2)); then run_cpp "$r"; run_py "$r"; else run_py "$r"; run_cpp "$r"; fi
done
# The hook layer's own cost per hook point: the same model on 1 x 4 tokens, C++ only.
echo "== per hook point (input 1 x 4 tokens)" >&2
"$BIN" "$OUT/bench_gpt.pt" "$OUT/bench_gpt.tiny.input.safetensors" --threads="$THREADS" \
  --iters=100 --benchmark_repetitions=$((3 * REPS)) --benchmark_enable_random_interleaving=true \
  --benchmark_out="$OUT/cpp_tiny.json" --benchmark_out_format=json \
  --benchmark_format=console --benchmark_display_aggregates_only=true >&2
# ... and strata's bookkeeping alone: one pass's hook points replayed into HookSession::on_hook.
"$BIN" "$OUT/bench_gpt.pt" "$OUT/bench_gpt.tiny.input.safetensors" --threads="$THREADS" \
  --suite=hookpath --benchmark_repetitions=5 --benchmark_out="$OUT/cpp_hookpath.json" \
  --benchmark_out_format=json --benchmark_format=console --benchmark_report_aggregates_only=true >&2

{
  echo "Machine: $(nproc --all) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))," \
       "load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Settings: THREADS=$THREADS MALLOC=$MALLOC ROUNDS=$ROUNDS REPS=$REPS ITERS=$ITERS;" \
       "$(( $(date +%s) - start )) s of benchmarking."
  echo
  "$PY" "$ROOT/bench/summarize_capture_bench.py" --tiny "$OUT/cpp_tiny.json" --hookpath "$OUT/cpp_hookpath.json" \
    "$OUT"/cpp_round*.json -- "$OUT"/py_round*.json
} | tee "$OUT/capture_bench.md"
