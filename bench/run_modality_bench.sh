#!/usr/bin/env bash
# `strata modality` (file mode: entropies, following decisions, Wilson bins, logistic fit with
# LBFGS++, 1000 bootstrap refits) against the same analysis in Python (numpy + scikit-learn's
# LogisticRegression), on seeded synthetic logit sets of N items whose true balance point is -0.5.
#
#   bench/run_modality_bench.sh [BUILD_DIR]        (default BUILD_DIR: build)
#
# Environment: SIZES (default "2000 20000"), REPS (runs per tool and size, default 3), BOOT
# (bootstrap resamples, default 1000), THREADS (strata --threads, default 1).
# Each run is a fresh process (strata's time includes loading LibTorch, Python's importing numpy
# and scikit-learn). Prints a markdown table: median wall seconds and median CPU seconds
# (user + sys) per tool, their ratio, and both balance points (they must agree: the same
# maximum-likelihood fit).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(realpath -m "${1:-$ROOT/build}")
SIZES=${SIZES:-"2000 20000"}
REPS=${REPS:-3}
BOOT=${BOOT:-1000}
THREADS=${THREADS:-1}
PY=/usr/bin/python3
OUT="$BUILD/bench/modality"
mkdir -p "$OUT"
[[ -x "$BUILD/strata" ]] || { echo "build strata first (ninja -C $BUILD strata_cli)" >&2; exit 1; }

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "| items | strata wall s | Python wall s | wall ratio | strata CPU s | Python CPU s | CPU ratio | balance point strata / sklearn |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
for n in $SIZES; do
  d="$OUT/n$n"
  "$PY" "$ROOT/bench/python_modality_bench.py" make "$d" "$n" 0
  : > "$d/cpp.t"; : > "$d/py.t"
  for ((r = 0; r < REPS; ++r)); do
    /usr/bin/time -f "%e %U %S" -o "$d/t" "$BUILD/strata" --threads "$THREADS" modality \
      --text "$d/text.safetensors" --image "$d/image.safetensors" --joint "$d/joint.safetensors" \
      --bootstrap "$BOOT" --out "$d/strata.json" --quiet 2>/dev/null
    cat "$d/t" >> "$d/cpp.t"
    OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS /usr/bin/time -f "%e %U %S" -o "$d/t" \
      "$PY" "$ROOT/bench/python_modality_bench.py" run "$d" "$BOOT" > "$d/py.json"
    cat "$d/t" >> "$d/py.t"
  done
  cw=$(awk '{print $1}' "$d/cpp.t" | median); pw=$(awk '{print $1}' "$d/py.t" | median)
  cc=$(awk '{print $2+$3}' "$d/cpp.t" | median); pc=$(awk '{print $2+$3}' "$d/py.t" | median)
  bps=$("$PY" -c "import json,sys; print(f\"{json.load(open(sys.argv[1]))['balance_point']:.5f}\")" "$d/strata.json")
  bpp=$("$PY" -c "import json,sys; print(f\"{json.load(open(sys.argv[1]))['balance_point']:.5f}\")" "$d/py.json")
  echo "| $n | $cw | $pw | $(awk -v a="$pw" -v b="$cw" 'BEGIN{printf "%.1f", a/b}') | $cc | $pc | $(awk -v a="$pc" -v b="$cc" 'BEGIN{printf "%.1f", a/b}') | $bps / $bpp |"
done
