#!/usr/bin/python3
"""Synthetic layer-sweep data for the probe benchmark: L layers of N x D float32 features with
K classes, the class signal growing with depth (layer l: class means scaled by (l+1)/L, plus
Gaussian noise and a random rotation-like mixing), one shared seeded 80/20 split.

  make_probe_bench_data.py OUTDIR [--layers 20] [--n 20000] [--d 256] [--classes 10] [--seed 0]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
import stio  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--layers", type=int, default=20)
ap.add_argument("--n", type=int, default=20000)
ap.add_argument("--d", type=int, default=256)
ap.add_argument("--classes", type=int, default=10)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
os.makedirs(a.out, exist_ok=True)
rng = np.random.RandomState(a.seed)
y = rng.randint(0, a.classes, a.n).astype(np.int64)
split = np.ones(a.n, dtype=np.int64)
split[rng.permutation(a.n)[: a.n // 5]] = 0
means = rng.randn(a.classes, a.d)
feats = {}
for l in range(a.layers):
    mix = rng.randn(a.d, a.d) / np.sqrt(a.d)
    x = 0.6 * (l + 1) / a.layers * means[y] + rng.randn(a.n, a.d)
    feats[f"layers.{l}"] = (x @ mix + 0.1 * rng.randn(a.d)).astype(np.float32)
stio.save(os.path.join(a.out, "features.safetensors"), feats)
stio.save(os.path.join(a.out, "labels.safetensors"), {"labels": y, "split": split})
print(f"wrote {a.layers} layers of {a.n} x {a.d}, {a.classes} classes to {a.out}")
