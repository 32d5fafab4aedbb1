#!/usr/bin/env bash
# The whole logit lens (every layer, every position, every metric) over a batch of 16 x 128 tokens
# of stories260K: strata (Model + Runner + LogitLens, C++) against the same computation in eager
# PyTorch with forward hooks (TransformerLens-style), in one run.
#
#   bench/run_lens_bench.sh [BUILD_DIR]          (default BUILD_DIR: build)
#
# Environment:
#   THREADS  intra-op threads for both languages (default 1: on a 2-core machine shared with other
#            work, 1 thread is the stable setting; see the capture benchmark in docs/benchmarks.md)
#   MALLOC   "retain" (default): the C++ process calls strata::retain_freed_memory() and the
#            Python process runs with GLIBC_TUNABLES set to the same values (mmap_threshold=32 MiB,
#            trim_threshold=1 GiB, top_pad=256 MiB); "default": glibc as it comes in both
#   ROUNDS (default 4), REPS (timed batches per variant per round, default 8), WARMUP (warm-up
#   batches per variant per process, default 3), JOBS (build parallelism, default 2),
#   MODEL_BIN (default ../shared/models/stories260K/stories260K.bin, relative to the repository)
# Builds strata_lens_bench if needed (turning STRATA_BUILD_BENCHMARKS on in BUILD_DIR), converts the
# model with tools/llama2c/convert.py and writes the tokens (random ids in [3, 512), seed 0) to
# BUILD_DIR/bench/lens, runs ROUNDS rounds of [C++, Python] (the order alternates between rounds;
# inside each process the variants' batches run in a random order), checks that both languages'
# per-layer aggregates agree, runs the C++ step breakdown once, and prints the markdown tables of
# docs/benchmarks.md (also saved as BUILD_DIR/bench/lens/lens_bench.md).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(realpath -m "${1:-$ROOT/build}")
THREADS=${THREADS:-1}
MALLOC=${MALLOC:-retain}
ROUNDS=${ROUNDS:-4}
REPS=${REPS:-8}
WARMUP=${WARMUP:-3}
JOBS=${JOBS:-2}
MODEL_BIN=$(realpath -m "${MODEL_BIN:-$ROOT/../shared/models/stories260K/stories260K.bin}")
PY=/usr/bin/python3  # Debian's Python with torch 1.13
OUT="$BUILD/bench/lens"

if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTRATA_BUILD_BENCHMARKS=ON >&2
elif ! grep -q '^STRATA_BUILD_BENCHMARKS:BOOL=ON' "$BUILD/CMakeCache.txt"; then
  cmake -S "$ROOT" -B "$BUILD" -DSTRATA_BUILD_BENCHMARKS=ON >&2
fi
cmake --build "$BUILD" --target strata_lens_bench --parallel "$JOBS" >&2
BIN="$BUILD/bench/strata_lens_bench"
[[ -x "$BIN" ]] || { echo "run_lens_bench.sh: $BIN was not built (the bench/ directory needs libbenchmark-dev to be configured)" >&2; exit 1; }
[[ -f "$MODEL_BIN" ]] || { echo "run_lens_bench.sh: no model at $MODEL_BIN (set MODEL_BIN)" >&2; exit 1; }

mkdir -p "$OUT"
MODEL_PT="$OUT/stories260K.pt"
TOKENS="$OUT/tokens.safetensors"
[[ -f "$MODEL_PT" && "$MODEL_PT" -nt "$MODEL_BIN" ]] || "$PY" "$ROOT/tools/llama2c/convert.py" "$MODEL_BIN" "$MODEL_PT" >&2
"$PY" "$ROOT/bench/python_lens_bench.py" tokens "$TOKENS" --batch 16 --seq 128 --vocab 512 --seed 0
rm -f "$OUT"/cpp_round*.json "$OUT"/py_round*.json "$OUT"/*_aggregate.json "$OUT"/breakdown.json

export OMP_NUM_THREADS="$THREADS"  # the same for both processes (BLAS and ATen use OpenMP)
CPP_FLAGS=()
case "$MALLOC" in
  default) ;;
  retain) CPP_FLAGS=(--retain-memory)
          PY_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824:glibc.malloc.top_pad=268435456 ;;
  *) echo "run_lens_bench.sh: MALLOC must be retain or default, not '$MALLOC'" >&2; exit 2 ;;
esac
run_cpp() {
  "$BIN" "$MODEL_PT" "$TOKENS" --threads="$THREADS" --reps="$REPS" --warmup="$WARMUP" \
    --seed="$1" "${CPP_FLAGS[@]}" --out="$OUT/cpp_round$1.json" --report="$OUT/cpp_aggregate.json" >&2
}
run_py() {
  env ${PY_TUNABLES:+GLIBC_TUNABLES=$PY_TUNABLES} "$PY" "$ROOT/bench/python_lens_bench.py" run \
    "$MODEL_BIN" "$TOKENS" --threads "$THREADS" --reps "$REPS" --warmup "$WARMUP" --seed "$1" \
    --out "$OUT/py_round$1.json" --report "$OUT/py_aggregate.json"
}
start=$(date +%s)
load_before=$(cut -d" " -f1-3 /proc/loadavg)
for ((r = 1; r <= ROUNDS; r++)); do
  echo "== round $r/$ROUNDS" >&2
  if ((r % 2)); then run_cpp "$r"; run_py "$r"; else run_py "$r"; run_cpp "$r"; fi
done
load_after=$(cut -d" " -f1-3 /proc/loadavg)
seconds=$(( $(date +%s) - start ))
# Where the C++ time goes: LogitLens::end_batch's steps replayed one by one (CPU ms).
echo "== C++ step breakdown" >&2
"$BIN" "$MODEL_PT" "$TOKENS" --threads="$THREADS" --reps="$REPS" --warmup="$WARMUP" \
  "${CPP_FLAGS[@]}" --breakdown > "$OUT/breakdown.json"

{
  echo "Machine: $(nproc --all) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))," \
       "load average before: $load_before, after: $load_after."
  echo "Settings: THREADS=$THREADS MALLOC=$MALLOC ROUNDS=$ROUNDS REPS=$REPS WARMUP=$WARMUP;" \
       "batch 16 x 128 tokens; $seconds s of benchmarking."
  echo
  "$PY" "$ROOT/bench/summarize_lens_bench.py" --breakdown "$OUT/breakdown.json" \
    --aggregates "$OUT/cpp_aggregate.json" "$OUT/py_aggregate.json" \
    "$OUT"/cpp_round*.json -- "$OUT"/py_round*.json
} | tee "$OUT/lens_bench.md"
