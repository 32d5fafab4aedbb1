#!/usr/bin/python3
"""Fetches npm @vladmandic/face-api@1.7.15 (npm pack, into OUT_DIR; never committed), converts its
face-expression model to TorchScript, runs the package's OWN code (its bundled tfjs, CPU backend,
in node) on its demo photos, and checks that the converted model reproduces the package's logits.

usage: prepare.py OUT_DIR [--images 1,2,3,4,5,6] [--tolerance 1e-3]

Writes into OUT_DIR:
  face_expression.pt      the TorchScript model (input [N, 3, 112, 112] normalised, 7 logits)
  faces.safetensors       arg0: the faces the package's network saw, normalised, [F, 3, 112, 112];
                          pixels: the same faces as RGB 0..255 [F, 3, 112, 112]; tfjs_logits [F, 7]
  faces.json              per face: photo, box, the package's logits/probabilities, ours, max diff
Exits 1 when any logit differs from the package's by more than the tolerance.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "python"))
import convert  # noqa: E402
import stio  # noqa: E402

PACKAGE = "@vladmandic/face-api@1.7.15"
TARBALL = "vladmandic-face-api-1.7.15.tgz"


def fetch(out):
    pkg = os.path.join(out, "package")
    if os.path.isfile(os.path.join(pkg, "model", "face_expression_model.bin")):
        return pkg
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("prepare.py: npm is not installed (scripts/setup.sh installs it)")
    if not os.path.isfile(os.path.join(out, TARBALL)):
        r = subprocess.run([npm, "pack", PACKAGE, "--silent"], cwd=out, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"prepare.py: 'npm pack {PACKAGE}' failed:\n{r.stderr}")
    with tarfile.open(os.path.join(out, TARBALL)) as t:
        t.extractall(out)
    return pkg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--images", default="1,2,3,4,5,6")
    ap.add_argument("--tolerance", type=float, default=1e-3)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    pkg = fetch(a.out)

    model_path = os.path.join(a.out, "face_expression.pt")
    net = convert.build(convert.load_weights(os.path.join(pkg, "model"), "face_expression_model"))
    torch.jit.script(net).save(model_path)

    work = os.path.join(a.out, "work")
    os.makedirs(work, exist_ok=True)
    images = []
    for i in a.images.split(","):
        name = f"sample{i}"
        im = Image.open(os.path.join(pkg, "demo", name + ".jpg")).convert("RGB")
        with open(os.path.join(work, name + ".rgb"), "wb") as f:
            f.write(im.tobytes())
        images.append({"name": name, "file": name + ".rgb", "width": im.width, "height": im.height})
    with open(os.path.join(work, "images.json"), "w") as f:
        json.dump(images, f)
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        raise SystemExit("prepare.py: node is not installed (scripts/setup.sh installs nodejs)")
    r = subprocess.run([node, os.path.join(HERE, "reference.mjs"), pkg, work],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"prepare.py: the face-api reference run failed:\n{r.stderr[-3000:]}")
    print(r.stdout.strip().splitlines()[-1])
    with open(os.path.join(work, "reference.json")) as f:
        ref = json.load(f)
    if not ref:
        raise SystemExit("prepare.py: face-api found no faces in the demo photos")

    mean = torch.tensor(convert.MEAN_RGB).view(1, 3, 1, 1)
    pixels = []
    for face in ref:
        raw = np.fromfile(os.path.join(work, face["input_file"]), dtype="<f4").reshape(112, 112, 3)
        pixels.append(torch.from_numpy(raw.copy()).permute(2, 0, 1))
    pixels = torch.stack(pixels)
    x = (pixels - mean) / 255.0
    with torch.no_grad():
        ours = torch.jit.load(model_path)(x)
    theirs = torch.tensor([f["logits"] for f in ref])
    diff = (ours - theirs).abs().max(dim=1).values
    for f, o, d in zip(ref, ours, diff):
        f["strata_logits"] = o.tolist()
        f["max_abs_diff"] = float(d)
        f["label"] = convert.LABELS[int(torch.tensor(f["probabilities"]).argmax())]
    stio.save(os.path.join(a.out, "faces.safetensors"),
              {"arg0": x.float(), "pixels": pixels.float(), "tfjs_logits": theirs.float()})
    with open(os.path.join(a.out, "faces.json"), "w") as f:
        json.dump({"labels": convert.LABELS, "mean_rgb": convert.MEAN_RGB, "faces": ref,
                   "max_abs_diff": float(diff.max())}, f, indent=1)
    agree = sum(int(torch.tensor(f["logits"]).argmax() == torch.tensor(f["strata_logits"]).argmax())
                for f in ref)
    print(f"{len(ref)} faces: max |logit(TorchScript) - logit(face-api)| = {float(diff.max()):.3g}, "
          f"same top class on {agree}/{len(ref)}")
    if float(diff.max()) > a.tolerance:
        raise SystemExit(f"prepare.py: the converted model differs from face-api by "
                         f"{float(diff.max()):.3g} > {a.tolerance}")


if __name__ == "__main__":
    main()
