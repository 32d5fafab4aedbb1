#!/usr/bin/python3
"""The Python peer of strata_capture_bench: the same model, eager PyTorch, forward hooks.

Usage:  /usr/bin/python3 bench/python_hooks_bench.py DIR [--threads N] [--repetitions R]
                                                          [--iters K] [--out FILE.json]

DIR holds what bench/make_bench_gpt.py wrote. The eager model is rebuilt from the classes in
make_bench_gpt.py and given the same state_dict, so it computes what the scripted file does.
Variants, all under torch.no_grad(), one forward per iteration, wall-clock time:
  plain         model(tokens)
  hooks         register_forward_hook on every submodule, each storing out.detach() in a dict
                (read and cleared every iteration, as strata's capture_all benchmark does)
  hooks_clone   the same storing out.detach().clone()
  hooks_observe every hook computes out.detach() and drops it (nothing retained)
  hooks_overwrite  hooks without clearing the dict: each pass replaces the previous pass's entries
Each repetition times K forwards of one variant; the variants' repetitions run in a random
order (like Google Benchmark's --benchmark_enable_random_interleaving). The JSON output mimics
Google Benchmark's: {"benchmarks": [{"name", "real_time" (ms per forward), "cpu_time" (CPU time of
the calling thread, ms per forward), "time_unit", "faults" (minor page faults per forward)}, ...]}.
"""
import argparse
import json
import os
import random
import resource
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))

import make_bench_gpt  # noqa: E402
import stio  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repetitions", type=int, default=10)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    _, state_path, input_path = make_bench_gpt.paths(args.dir)
    model = make_bench_gpt.GPT()
    model.load_state_dict(torch.load(state_path))
    model.eval()
    tokens = torch.from_numpy(stio.load(input_path)[0]["arg0"])

    variants = ("plain", "hooks", "hooks_clone", "hooks_observe", "hooks_overwrite")
    acts = {}
    mode = ["hooks"]

    def make_hook(name):
        def hook(module, inputs, output):
            if mode[0] == "hooks_clone":
                acts[name] = output.detach().clone()
            elif mode[0] == "hooks_observe":
                output.detach()
            else:
                acts[name] = output.detach()
        return hook

    handles = []

    def set_hooks(on):
        for h in handles:
            h.remove()
        handles.clear()
        if on:
            for name, m in model.named_modules():
                if name:  # every submodule (the ModuleList is never called, so its hook never fires)
                    handles.append(m.register_forward_hook(make_hook(name)))

    def run(variant, iters):
        set_hooks(variant != "plain")
        mode[0] = variant
        stores = variant in ("hooks", "hooks_clone", "hooks_overwrite")
        acts.clear()
        times, cpu = [], []
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        with torch.no_grad():
            for _ in range(iters):
                t0, c0 = time.perf_counter(), time.thread_time()
                model(tokens)
                if stores:
                    if len(acts) != expected:
                        sys.exit(f"python_hooks_bench.py: {len(acts)} activations, expected {expected}")
                    if variant != "hooks_overwrite":
                        acts.clear()
                times.append(time.perf_counter() - t0)
                cpu.append(time.thread_time() - c0)
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / iters
        acts.clear()
        return times, cpu, faults

    # Warm-up, and the number of hook points (called submodules) for the check above.
    with torch.no_grad():
        set_hooks(True)
        model(tokens)
        expected = len(acts)
        acts.clear()
    for v in variants:
        run(v, 2)
    print(f"python_hooks_bench.py: {expected} activations captured per forward, "
          f"threads {torch.get_num_threads()}, torch {torch.__version__}", file=sys.stderr)

    rng = random.Random(args.seed)
    order = [v for v in variants for _ in range(args.repetitions)]
    rng.shuffle(order)
    results = []
    for v in order:
        times, cpu, faults = run(v, args.iters)
        results.append({"name": v, "run_type": "iteration", "iterations": args.iters,
                        "real_time": 1e3 * statistics.mean(times),
                        "cpu_time": 1e3 * statistics.mean(cpu), "time_unit": "ms",
                        "faults": faults})
    for v in variants:
        med = statistics.median(r["real_time"] for r in results if r["name"] == v)
        print(f"{v:<16} median {med:8.1f} ms", file=sys.stderr)
    doc = {"context": {"threads": args.threads, "torch": torch.__version__,
                       "activations": expected},
           "benchmarks": results}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)
    else:
        json.dump(doc, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
