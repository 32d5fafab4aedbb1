#!/usr/bin/env bash
# The probe benchmark: a 20-layer sweep (N = 20000, D = 256, 10 classes by default) with strata's
# logistic probe and with scikit-learn's LogisticRegression, on the same features and split, in
# one run, at 1 and 2 threads each (strata: at::set_num_threads; scikit-learn: OMP_NUM_THREADS and
# OPENBLAS_NUM_THREADS), then the accuracy differences and time ratios as a markdown table.
#
#   bench/run_probe_bench.sh [BUILD_DIR]      (default BUILD_DIR: build)
#   LAYERS=20 N=20000 D=256 CLASSES=10 C=1.0 THREADS="1 2"
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(realpath -m "${1:-$ROOT/build}")
LAYERS=${LAYERS:-20}; N=${N:-20000}; D=${D:-256}; CLASSES=${CLASSES:-10}; C=${C:-1.0}
THREADS=${THREADS:-"1 2"}
PY=/usr/bin/python3
OUT="$BUILD/bench/probe"
mkdir -p "$OUT"
if [[ ! -x "$BUILD/bench/strata_probe_bench" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTRATA_BUILD_BENCHMARKS=ON >&2
  ninja -C "$BUILD" -j2 strata_probe_bench >&2
fi
"$PY" "$ROOT/bench/make_probe_bench_data.py" "$OUT" --layers "$LAYERS" --n "$N" --d "$D" --classes "$CLASSES"
for t in $THREADS; do
  "$BUILD/bench/strata_probe_bench" "$OUT/features.safetensors" "$OUT/labels.safetensors" \
    "$OUT/strata_t$t.json" --threads="$t" --C="$C"
  OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t MKL_NUM_THREADS=$t "$PY" "$ROOT/bench/python_probe_bench.py" \
    "$OUT/features.safetensors" "$OUT/labels.safetensors" "$OUT/sklearn_t$t.json" --C "$C"
done
"$PY" - "$OUT" $THREADS <<'PY'
import json, sys
out, threads = sys.argv[1], sys.argv[2:]
print("| threads | strata (s) | scikit-learn (s) | speed-up | max abs. test-accuracy diff (pp) | mean test accuracy strata / sklearn |")
print("| --- | --- | --- | --- | --- | --- |")
for t in threads:
    s = json.load(open(f"{out}/strata_t{t}.json")); k = json.load(open(f"{out}/sklearn_t{t}.json"))
    names = s["layer_order"]
    diffs = [abs(s["layers"][n]["test_accuracy"] - k["layers"][n]["test_accuracy"]) * 100 for n in names]
    ms = sum(s["layers"][n]["test_accuracy"] for n in names) / len(names)
    mk = sum(k["layers"][n]["test_accuracy"] for n in names) / len(names)
    print(f"| {t} | {s['seconds']:.2f} | {k['seconds']:.2f} | {k['seconds']/s['seconds']:.1f}x | {max(diffs):.2f} | {ms:.4f} / {mk:.4f} |")
PY
