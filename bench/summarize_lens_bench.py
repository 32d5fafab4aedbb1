#!/usr/bin/python3
"""Turns strata_lens_bench and python_lens_bench.py samples into the tables of docs/benchmarks.md.

Usage:  summarize_lens_bench.py [--breakdown BREAKDOWN.json] [--aggregates CPP.json PY.json]
                                CPP_ROUND.json... -- PY_ROUND.json...

Medians pool every round's samples; each ratio is a ratio of medians with a 95 % bootstrap
interval (resampling each side's samples, 2000 draws, fixed seed).
"""
import argparse
import json
import random
import statistics
import sys


def load(paths, lang):
    out = {}
    for p in paths:
        with open(p) as f:
            for s in json.load(f)["samples"]:
                out.setdefault((lang, s["variant"]), []).append(s)
    return out


def med(samples, key):
    return statistics.median(s[key] for s in samples)


def ratio_ci(num, den, key, draws=2000, seed=0):
    rng = random.Random(seed)
    a = [s[key] for s in num]
    b = [s[key] for s in den]
    rs = sorted(statistics.median(rng.choices(a, k=len(a))) /
                statistics.median(rng.choices(b, k=len(b))) for _ in range(draws))
    return rs[int(0.025 * draws)], rs[int(0.975 * draws) - 1]


def main():
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit("usage: summarize_lens_bench.py [options] CPP.json... -- PY.json...")
    cut = argv.index("--")
    ap = argparse.ArgumentParser()
    ap.add_argument("--breakdown")
    ap.add_argument("--aggregates", nargs=2)
    ap.add_argument("cpp", nargs="+")
    args = ap.parse_args(argv[:cut])
    data = load(args.cpp, "C++")
    data.update(load(argv[cut + 1:], "Python"))

    print("| variant | wall ms / batch | CPU ms, calling thread | page faults / batch | samples |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for lang in ("C++", "Python"):
        for v in ("forward", "lens"):
            s = data.get((lang, v), [])
            if s:
                print(f"| {lang} `{v}` | {med(s, 'wall_ms'):.1f} | {med(s, 'cpu_ms'):.1f} | "
                      f"{med(s, 'faults'):.0f} | {len(s)} |")
    print()
    print("| ratio | wall time | 95% interval | CPU time (calling thread) |")
    print("| --- | ---: | :---: | ---: |")
    rows = [("**Python lens / C++ lens (speed-up of strata)**", ("Python", "lens"), ("C++", "lens")),
            ("Python forward / C++ forward", ("Python", "forward"), ("C++", "forward")),
            ("C++ lens / C++ forward", ("C++", "lens"), ("C++", "forward")),
            ("Python lens / Python forward", ("Python", "lens"), ("Python", "forward"))]
    for label, n, d in rows:
        if n in data and d in data:
            lo, hi = ratio_ci(data[n], data[d], "wall_ms")
            w = med(data[n], "wall_ms") / med(data[d], "wall_ms")
            c = med(data[n], "cpu_ms") / med(data[d], "cpu_ms")
            print(f"| {label} | {w:.2f} | {lo:.2f} – {hi:.2f} | {c:.2f} |")
    # The lens's own part: lens minus forward, per language.
    if all(k in data for k in (("C++", "lens"), ("C++", "forward"), ("Python", "lens"),
                               ("Python", "forward"))):
        own = {lang: med(data[(lang, "lens")], "wall_ms") - med(data[(lang, "forward")], "wall_ms")
               for lang in ("C++", "Python")}
        print(f"| Python / C++, lens minus forward ({own['Python']:.1f} / {own['C++']:.1f} ms) | "
              f"{own['Python'] / own['C++']:.2f} | | |")

    if args.aggregates:
        with open(args.aggregates[0]) as f:
            a = json.load(f)
        with open(args.aggregates[1]) as f:
            b = json.load(f)
        worst = 0.0
        for x, y in zip(a["layers"], b["layers"]):
            assert x["layer"] == y["layer"], (x["layer"], y["layer"])
            for key, val in x.items():
                if key != "layer":
                    worst = max(worst, abs(val - y[key]) / max(1.0, abs(y[key])))
        print()
        print(f"Same computation: the C++ report's per-layer aggregates ({len(a['layers'])} rows, "
              f"{a['sequences']} sequences) and Python's agree to a largest relative difference "
              f"of {worst:.1e}.")

    if args.breakdown:
        with open(args.breakdown) as f:
            bd = json.load(f)
        print()
        print("What the first `LogitLens::end_batch` spent its time on (`strata_lens_bench "
              "--breakdown` replays that version's ATen calls step by step, plus the rewrites R "
              "and F; kept as the record of why the lens is built the way it is now; CPU ms per "
              "batch, median; summed over the calls of one batch):")
        print()
        print("| step | calls / batch | CPU ms / batch |")
        print("| --- | ---: | ---: |")
        total = 0.0
        for step, v in sorted(bd["steps"].items()):
            if step[:2] in ("R ", "F "):
                continue
            total += v["ms"]
            print(f"| {step} | {v['calls_per_batch']} | {v['ms']:.1f} |")
        print(f"| sum of the steps | | {total:.1f} |")
        after = total - bd["steps"]["1 forward, capture + clone the layers"]["ms"]
        print(f"| sum of steps 2–7 (the lens after the forward) | | {after:.1f} |")
        for step, v in sorted(bd["steps"].items()):
            if step[:2] in ("R ", "F "):
                print(f"| {step} | {v['calls_per_batch']} | {v['ms']:.1f} |")
        if args.aggregates and bd.get("fused_means"):
            keys = ["mean_entropy", "mean_kl_to_final", "mean_top1_prob", "top1_agreement",
                    "mean_rank_of_final_top1", "final_top1_in_topk", "mean_target_prob",
                    "mean_target_rank"]
            f = bd["fused_means"]
            worst = max(abs(f[8 * l + i] - row[key]) / max(1.0, abs(row[key]))
                        for l, row in enumerate(a["layers"]) for i, key in enumerate(keys))
            print()
            print(f"Step F's per-layer means agree with the C++ report's to a largest relative "
                  f"difference of {worst:.1e}.")


if __name__ == "__main__":
    main()
