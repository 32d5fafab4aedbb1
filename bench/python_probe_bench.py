#!/usr/bin/python3
"""The scikit-learn peer of the probe benchmark: for every layer of FEATURES, StandardScaler fit on
the train split, LogisticRegression(C, lbfgs, tol=1e-4 [its default], max_iter=1000) fit, test
accuracy. Threads: set OMP_NUM_THREADS / OPENBLAS_NUM_THREADS before starting (the runner does).

  python_probe_bench.py FEATURES LABELS OUT.json [--C 1.0]
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
import stio  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("features")
ap.add_argument("labels")
ap.add_argument("out")
ap.add_argument("--C", type=float, default=1.0)
a = ap.parse_args()
feats, _ = stio.load(a.features)
lab, _ = stio.load(a.labels)
y, split = lab["labels"], lab["split"]
tr, te = split == 1, split == 0
res = {"layers": {}, "C": a.C}
t_all = time.perf_counter()
for name, x in feats.items():
    t0 = time.perf_counter()
    s = StandardScaler().fit(x[tr])
    m = LogisticRegression(C=a.C, max_iter=1000).fit(s.transform(x[tr]), y[tr])
    acc = m.score(s.transform(x[te]), y[te])
    res["layers"][name] = {"test_accuracy": acc, "seconds": time.perf_counter() - t0,
                           "iterations": int(m.n_iter_[0])}
res["seconds"] = time.perf_counter() - t_all
with open(a.out, "w") as f:
    json.dump(res, f, indent=1)
print(f"scikit-learn: {len(feats)} layers in {res['seconds']:.2f} s")
