#!/usr/bin/python3
"""Python peer of `strata modality` (file mode) for bench/run_modality_bench.sh, and the writer of
its synthetic logit sets.

  python_modality_bench.py make DIR N SEED     writes DIR/{text,image,joint}.safetensors (`logits`
      [N, 11]): random answer distributions whose joint answer follows text with probability
      sigmoid(-3 (dH_rel + 0.5)), seeded
  python_modality_bench.py run DIR BOOTSTRAP   the same analysis as strata: entropies (numpy),
      dH_rel, following decisions, 16 bins with Wilson intervals (statsmodels-free closed form),
      an unpenalized logistic fit (scikit-learn, lbfgs) and BOOTSTRAP refits on resampled items;
      prints one JSON line with the seconds and the balance point
"""
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
import stio  # noqa: E402


def entropy(z):
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)


def make(d, n, seed):
    rng = np.random.default_rng(seed)
    V = 11
    at = rng.integers(0, V, n)
    av = (at + rng.integers(1, V, n)) % V
    T = rng.normal(size=(n, V)) * 0.5
    I = rng.normal(size=(n, V)) * 0.5
    T[np.arange(n), at] += rng.uniform(0, 6, n)
    I[np.arange(n), av] += rng.uniform(0, 6, n)
    ht, hv = entropy(T), entropy(I)
    x = 2 * (ht - hv) / (ht + hv)
    follow_text = rng.uniform(size=n) < 1 / (1 + np.exp(3 * (x + 0.5)))
    J = rng.normal(size=(n, V)) * 0.1
    J[np.arange(n), np.where(follow_text, T.argmax(1), I.argmax(1))] += 5
    os.makedirs(d, exist_ok=True)
    for name, z in [("text", T), ("image", I), ("joint", J)]:
        stio.save(os.path.join(d, f"{name}.safetensors"), {"logits": z.astype(np.float32)})


def wilson(k, n, z=1.959963984540054):
    p = k / n
    den = 1 + z * z / n
    c = (p + z * z / (2 * n)) / den
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return c - h, c + h


def run(d, boot):
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    z = {k: np.asarray(stio.load(os.path.join(d, f"{k}.safetensors"))[0]["logits"], np.float64)
         for k in ["text", "image", "joint"]}
    ht, hv = entropy(z["text"]), entropy(z["image"])
    s = ht + hv
    x = np.where(s > 0, 2 * (ht - hv) / np.where(s > 0, s, 1), 0.0)
    at, av, aj = (z[k].argmax(1) for k in ["text", "image", "joint"])
    conflict = at != av
    ft, fv = conflict & (aj == at), conflict & (aj == av)
    keep = ft | fv
    xs, ys = x[keep], ft[keep].astype(int)
    edges = np.linspace(-2, 2, 17)
    b = np.clip(np.floor((xs + 2) / 0.25).astype(int), 0, 15)
    curve = []
    for i in range(16):
        m = b == i
        if m.any():
            curve.append((edges[i], ys[m].mean(), *wilson(ys[m].sum(), m.sum())))

    def fit(xv, yv):
        lr = LogisticRegression(C=1e12, tol=1e-10, max_iter=1000).fit(xv[:, None], yv)
        return lr.intercept_[0], lr.coef_[0, 0]

    a, sl = fit(xs, ys)
    bp = -a / sl
    rng = np.random.default_rng(0)
    cross = []
    for _ in range(boot):
        idx = rng.integers(0, len(xs), len(xs))
        ai, si = fit(xs[idx], ys[idx])
        c = -ai / si
        if xs.min() <= c <= xs.max():
            cross.append(c)
    ci = np.percentile(cross, [2.5, 97.5]) if cross else [None, None]
    print(json.dumps({"seconds": time.perf_counter() - start, "balance_point": bp,
                      "ci": [float(v) for v in ci], "intercept": a, "slope": sl,
                      "items": int(keep.sum())}))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        run(sys.argv[2], int(sys.argv[3]))
