#!/usr/bin/python3
"""Turns the JSON files of bench/run_capture_bench.sh into the markdown table of docs/benchmarks.md.

Usage:  /usr/bin/python3 bench/summarize_capture_bench.py [--tiny CPP_TINY.json]
            [--hookpath CPP_HOOKPATH.json] CPP_1.json [...] -- PY_1.json [...]

Every repetition (one sample = mean wall time of the forwards in that repetition) of every round
is pooled per variant; the table gives medians and ratios of medians, each ratio with a 95%
bootstrap interval (samples resampled within each variant), so the noise of a shared machine is
visible next to the number.
"""
import json
import random
import statistics
import sys


def samples(paths):
    """name -> {"real": [...], "cpu": [...], "faults": [...]} (ms per forward, faults per forward)."""
    out = {}
    for p in paths:
        with open(p) as f:
            doc = json.load(f)
        for b in doc["benchmarks"]:
            if b.get("run_type", "iteration") != "iteration" or b.get("error_occurred"):
                continue
            scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ms")]
            d = out.setdefault(b["name"].split("/")[0], {"real": [], "cpu": [], "faults": []})
            d["real"].append(b["real_time"] * scale)
            d["cpu"].append(b["cpu_time"] * scale)
            d["faults"].append(b.get("faults", float("nan")))
    return out


ORDER = ["original", "instrumented", "session_idle", "capture_all", "capture_all_clone",
         "capture_all_observe", "capture_all_overwrite", "plain", "hooks", "hooks_clone",
         "hooks_observe", "hooks_overwrite"]


def ratio(num, den, rng, n=2000):
    r = statistics.median(num) / statistics.median(den)
    boots = sorted(
        statistics.median(rng.choices(num, k=len(num))) / statistics.median(rng.choices(den, k=len(den)))
        for _ in range(n))
    return r, boots[int(0.025 * n)], boots[int(0.975 * n) - 1]


def main():
    args = sys.argv[1:]
    extra = {}
    while args[:1] in (["--tiny"], ["--hookpath"]):
        extra[args[0][2:]], args = args[1], args[2:]
    if "--" not in args:
        sys.exit("usage: summarize_capture_bench.py CPP.json... -- PY.json...")
    cut = args.index("--")
    cpp, py = samples(args[:cut]), samples(args[cut + 1:])
    rng = random.Random(0)

    print("| variant | wall ms / forward | CPU ms, calling thread | page faults / forward | samples |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for lang, d in (("C++", cpp), ("Python", py)):
        for name in sorted(d, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER)):
            x = d[name]
            print(f"| {lang} `{name}` | {statistics.median(x['real']):.1f} | "
                  f"{statistics.median(x['cpu']):.1f} | {statistics.median(x['faults']):.0f} | "
                  f"{len(x['real'])} |")
    print()

    rows = [
        ("C++ capture-all / C++ plain (instrumented, no session)", cpp, "capture_all", cpp, "instrumented"),
        ("C++ capture-all / C++ original (uninstrumented module)", cpp, "capture_all", cpp, "original"),
        ("C++ capture-all with clone / C++ original", cpp, "capture_all_clone", cpp, "original"),
        ("C++ instrumented, no session / C++ original", cpp, "instrumented", cpp, "original"),
        ("C++ idle session (nothing selected) / C++ original", cpp, "session_idle", cpp, "original"),
        ("C++ capture-all, observer only (nothing kept) / C++ original", cpp, "capture_all_observe", cpp, "original"),
        ("C++ capture-all, overwrite instead of clear / C++ original", cpp, "capture_all_overwrite", cpp, "original"),
        ("Python hooks / Python plain", py, "hooks", py, "plain"),
        ("Python hooks with clone / Python plain", py, "hooks_clone", py, "plain"),
        ("Python hooks, nothing kept / Python plain", py, "hooks_observe", py, "plain"),
        ("Python hooks, overwrite instead of clear / Python plain", py, "hooks_overwrite", py, "plain"),
        ("C++ original / Python plain", cpp, "original", py, "plain"),
        ("C++ capture-all / Python hooks", cpp, "capture_all", py, "hooks"),
        ("C++ capture-all with clone / Python hooks with clone", cpp, "capture_all_clone", py, "hooks_clone"),
    ]
    print("| ratio | wall time | 95% interval | overhead | CPU time (calling thread) |")
    print("| --- | ---: | :---: | ---: | ---: |")
    for label, a, an, b, bn in rows:
        if an not in a or bn not in b:
            continue
        r, lo, hi = ratio(a[an]["real"], b[bn]["real"], rng)
        c = statistics.median(a[an]["cpu"]) / statistics.median(b[bn]["cpu"])
        print(f"| {label} | {r:.3f} | {lo:.3f} – {hi:.3f} | {100 * (r - 1):+.1f}% | {c:.3f} |")

    if "tiny" in extra:
        per_hook(extra["tiny"])
    if "hookpath" in extra:
        hook_path(extra["hookpath"])


def medians_us(path):
    """name -> (median µs per iteration, hook_points counter or None) from a run's aggregates."""
    with open(path) as f:
        doc = json.load(f)
    out = {}
    for b in doc["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b.get("time_unit", "ms")]
        out[b["name"].split("/")[0]] = (b["real_time"] * scale, b.get("hook_points"))
    return out


def per_hook(path):
    """Extra time per hook point on the tiny input: the fastest repetition of each variant (at
    ~3 ms per forward, interference from other work only ever adds time, so the minimum is the
    estimate of the undisturbed cost)."""
    with open(path) as f:
        doc = json.load(f)
    med, points = {}, None
    for b in doc["benchmarks"]:
        if b.get("run_type") != "iteration" or b.get("error_occurred"):
            continue
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b.get("time_unit", "ms")]
        name = b["name"].split("/")[0]
        med[name] = min(med.get(name, float("inf")), b["real_time"] * scale)
        if name == "session_idle" and "hook_points" in b:
            points = b["hook_points"]
    if "original" not in med or not points:
        return
    print()
    print(f"Hook layer's own cost (C++, input 1 x 4 tokens, fastest repetition; {points:.0f} hook "
          "points per forward: every submodule call's input and output):")
    print()
    print("| variant | µs / forward | extra µs / forward | extra µs / hook point |")
    print("| --- | ---: | ---: | ---: |")
    for name in ORDER:
        if name in med:
            extra = med[name] - med["original"]
            print(f"| `{name}` | {med[name]:.0f} | {extra:+.0f} | {extra / points:+.2f} |")


def hook_path(path):
    """strata's bookkeeping alone: one pass's hook points replayed into HookSession::on_hook."""
    m = medians_us(path)
    if not m:
        return
    print()
    print("strata's bookkeeping alone (one forward's hook points replayed into "
          "HookSession::on_hook, no model):")
    print()
    print("| variant | µs / pass | hook points | ns / hook point |")
    print("| --- | ---: | ---: | ---: |")
    for name, (us, points) in m.items():
        if points:
            print(f"| `{name}` | {us:.1f} | {points:.0f} | {1e3 * us / points:.0f} |")


if __name__ == "__main__":
    main()
