#!/usr/bin/python3
"""Reference numbers for strata's probe tests, computed with scikit-learn at test time.

Usage:  /usr/bin/python3 tests/probe/probe_reference.py OUTDIR

Data no one here made: scikit-learn's bundled real datasets (digits: 1797 x 64, 10 classes;
wine: 178 x 13, 3 classes; breast cancer: 569 x 30, 2 classes). For each, a seeded 80/20 split
and 5 CV fold ids on the training rows; then, on StandardScaler-standardized features (fit on the
training rows), scikit-learn's LogisticRegression (lbfgs, L2, several C, tight tolerance), its
RidgeClassifier, Ridge on a multi-output target, and the 5-fold CV accuracy per C. Everything goes
to OUTDIR/probe_<name>.safetensors, written with the independent tests/python/stio.py.

It also writes a tiny TorchScript model (embedding -> two linear blocks) with token inputs and
the eager per-layer activations, for the LayerwiseProbe and `strata probe MODEL.pt` tests.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import stio  # noqa: E402

from sklearn import datasets  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

CS = [0.01, 1.0, 100.0]
CV_GRID = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]


def reference(name, x, y, out):
    rng = np.random.RandomState(1234)
    n = len(y)
    perm = rng.permutation(n)
    split = np.ones(n, dtype=np.int64)
    split[perm[: int(round(0.2 * n))]] = 0
    tr, te = split == 1, split == 0
    folds = (rng.permutation(tr.sum()) % 5).astype(np.int64)
    sc = StandardScaler().fit(x[tr])
    ztr, zte = sc.transform(x[tr]), sc.transform(x[te])
    t = {
        "x": x.astype(np.float32),
        "y": y.astype(np.int64),
        "split": split,
        "folds": folds,
        "scaler_mean": sc.mean_,
        "scaler_scale": sc.scale_,
    }
    for c in CS:
        lr = LogisticRegression(C=c, tol=1e-10, max_iter=20000).fit(ztr, y[tr])
        key = f"lr_C{c:g}"
        t[key + "_coef"] = lr.coef_
        t[key + "_intercept"] = lr.intercept_
        t[key + "_pred"] = lr.predict(zte).astype(np.int64)
        t[key + "_test_acc"] = np.array([lr.score(zte, y[te])])
        t[key + "_train_acc"] = np.array([lr.score(ztr, y[tr])])
        rc = RidgeClassifier(alpha=1.0 / c).fit(ztr, y[tr])
        key = f"ridge_C{c:g}"
        t[key + "_coef"] = rc.coef_
        t[key + "_intercept"] = np.atleast_1d(rc.intercept_)
        t[key + "_pred"] = rc.predict(zte).astype(np.int64)
        t[key + "_test_acc"] = np.array([rc.score(zte, y[te])])
    # Multi-output ridge regression on the raw features (its own centring).
    target = np.stack([x[:, : 3].sum(1), np.sin(x[:, 0]) + y, y * 0.5], 1).astype(np.float64)
    r = Ridge(alpha=2.5).fit(x.astype(np.float64), target)
    t["ridge_target"] = target
    t["ridge_reg_coef"] = r.coef_
    t["ridge_reg_intercept"] = r.intercept_
    # CV accuracy per C, standardizing inside each fold (fit on the fold's training rows).
    xtr_raw, ytr = x[tr], y[tr]
    cv = []
    for c in CV_GRID:
        accs = []
        for f in range(5):
            a, b = folds != f, folds == f
            s = StandardScaler().fit(xtr_raw[a])
            m = LogisticRegression(C=c, tol=1e-8, max_iter=5000).fit(s.transform(xtr_raw[a]), ytr[a])
            accs.append(m.score(s.transform(xtr_raw[b]), ytr[b]))
        cv.append(np.mean(accs))
    t["cv_grid"] = np.array(CV_GRID)
    t["cv_accuracy"] = np.array(cv)
    stio.save(os.path.join(out, f"probe_{name}.safetensors"), t)

    # The same data as `strata probe` files: two "layers" (the features, and the features with
    # the informative half zeroed), labels with the split.
    feats = {"full": x.astype(np.float32), "half": x.astype(np.float32).copy()}
    feats["half"][:, : x.shape[1] // 2] = 0
    stio.save(os.path.join(out, f"probe_{name}_features.safetensors"), feats)
    stio.save(os.path.join(out, f"probe_{name}_labels.safetensors"),
              {"labels": y.astype(np.int64), "split": split})
    lr_half = LogisticRegression(C=1.0, tol=1e-10, max_iter=20000)
    s2 = StandardScaler().fit(feats["half"][tr])
    lr_half.fit(s2.transform(feats["half"][tr]), y[tr])
    return {"half_C1_test_acc": lr_half.score(s2.transform(feats["half"][te]), y[te])}


def tiny_model(out):
    import torch

    torch.manual_seed(0)

    class Block(torch.nn.Module):
        def __init__(self, d):
            super().__init__()
            self.lin = torch.nn.Linear(d, d)

        def forward(self, h):
            return h + torch.tanh(self.lin(h))

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(20, 16)
            self.blocks = torch.nn.ModuleList([Block(16), Block(16)])
            self.head = torch.nn.Linear(16, 20)

        def forward(self, tokens):
            h = self.emb(tokens)
            for b in self.blocks:
                h = b(h)
            return self.head(h)

    m = Tiny().eval()
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 20, (64, 6), generator=g)
    torch.jit.script(m).save(os.path.join(out, "probe_tiny.pt"))
    with torch.no_grad():
        e = m.emb(tokens)
        b0 = m.blocks[0](e)
        b1 = m.blocks[1](b0)
    # labels: last position -> parity of the last token; every position -> token >= 10
    stio.save(os.path.join(out, "probe_tiny_last.safetensors"),
              {"arg0": tokens, "labels": (tokens[:, -1] % 2).long()})
    stio.save(os.path.join(out, "probe_tiny_every.safetensors"),
              {"arg0": tokens, "labels": (tokens >= 10).long()})
    stio.save(os.path.join(out, "probe_tiny_acts.safetensors"),
              {"emb": e, "blocks.0": b0, "blocks.1": b1})


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    import json
    summary = {}
    summary["digits"] = reference("digits", *datasets.load_digits(return_X_y=True), out)
    summary["wine"] = reference("wine", *datasets.load_wine(return_X_y=True), out)
    summary["cancer"] = reference("cancer", *datasets.load_breast_cancer(return_X_y=True), out)
    tiny_model(out)
    with open(os.path.join(out, "probe_reference.json"), "w") as f:
        json.dump(summary, f)


if __name__ == "__main__":
    main()
