#!/usr/bin/python3
"""The Python peer of bench/lrp_bench.cpp: the same TorchScript model (torch.jit.load, Debian's
torch 1.13), one forward pass and gradient x input (forward + backward) for one face.

usage: python_lrp_bench.py MODEL.pt FACES.safetensors REPS OUT.json
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
import stio  # noqa: E402


def median_ms(reps, f):
    for _ in range(3):
        f()
    t = []
    for _ in range(reps):
        a = time.perf_counter()
        f()
        t.append((time.perf_counter() - a) * 1000)
    t.sort()
    return t[len(t) // 2]


def main():
    model_path, faces, reps, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    model = torch.jit.load(model_path).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    d, _ = stio.load(faces)
    x = torch.from_numpy(d["arg0"][:1].copy())

    def forward():
        with torch.no_grad():
            model(x)

    def grad_x_input():
        xi = x.clone().requires_grad_(True)
        y = model(xi)
        y[:, 1].sum().backward()
        (xi.grad * x).sum().item()

    res = {"threads": torch.get_num_threads(), "forward_ms": median_ms(reps, forward),
           "gradient_x_input_ms": median_ms(reps, grad_x_input)}
    with open(out, "w") as f:
        json.dump(res, f, indent=2)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
