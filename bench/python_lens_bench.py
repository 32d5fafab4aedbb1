#!/usr/bin/python3
"""The Python peer of strata_lens_bench: the same logit lens in eager PyTorch with forward hooks.

Usage:
  /usr/bin/python3 bench/python_lens_bench.py tokens OUT.safetensors [--batch B] [--seq T]
                   [--vocab V] [--seed S]
  /usr/bin/python3 bench/python_lens_bench.py run MODEL.bin TOKENS.safetensors [--threads N]
                   [--reps R] [--warmup W] [--seed S] [--top-k K] [--target ID]
                   [--out SAMPLES.json] [--report AGGREGATE.json]

`tokens` writes random token ids in [3, V) (seeded; 0-2 are llama2.c's unk/bos/eos) as `arg0`
(int64 [B, T]) with tests/python/stio.py.

`run` rebuilds the llama2.c model eagerly from the .bin checkpoint (tools/llama2c/convert.py's
build_model, the classes the TorchScript file is scripted from; no strata), and times, under
torch.no_grad(), one whole batch per sample:
  forward  model(tokens)
  lens     the TransformerLens-style logit lens: register_forward_hook on tok_embeddings and every
           layers.N storing output.detach().clone(), the forward, then for every layer
           model.output(model.norm(h)) (the norm's statistics recomputed on h), float64
           log_softmax, and the metrics strata's LogitLens computes, batched over all positions
           with the same torch ops: entropy, KL(final || layer), top-k ids and probabilities,
           rank of the final top-1, target probability and rank; per-layer aggregates read with
           .item() and the first sequence's per-position rows with .tolist() (what the C++ report
           holds). The final logits are the last row.
W warm-up runs of each variant first, then R repetitions of each in a random order (seeded). The
JSON output: {"samples": [{"variant", "wall_ms", "cpu_ms" (calling thread), "faults"}]}; --report
writes the last lens run's aggregates in the layout of the C++ report's "aggregate".
"""
import argparse
import json
import os
import random
import resource
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "llama2c"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))

import convert  # noqa: E402
import stio  # noqa: E402


def metrics(logp, final_logp, final_top1, k, target):
    """tests/analysis/logit_lens_reference.py's metrics, as tensors over [B, T]."""
    p = logp.exp()
    entropy = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1)
    pf = final_logp.exp()
    kl = torch.where(pf > 0, pf * (final_logp - logp), torch.zeros_like(pf)).sum(-1)
    vals, ids = logp.topk(k, -1)
    probs = vals.exp()
    ref = logp.gather(-1, final_top1.unsqueeze(-1))
    rank = (logp > ref).sum(-1) + 1
    t = logp[..., target]
    return dict(top1=ids[..., 0], top1_prob=probs[..., 0], entropy=entropy, kl=kl, rank=rank,
                topk_ids=ids, topk_probs=probs, target_prob=t.exp(),
                target_rank=(logp > t.unsqueeze(-1)).sum(-1) + 1)


def logit_lens(model, names, tokens, k, target):
    hidden = {}

    def keep(name):
        def hook(module, inputs, output):
            hidden[name] = output.detach().clone()
        return hook

    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_hook(keep(name)) for name in names]
    try:
        final = model(tokens)
    finally:
        for h in handles:
            h.remove()
    final_logp = final.double().log_softmax(-1)
    final_top1 = final_logp.argmax(-1)
    aggregate, first = [], {}
    for name in names + ["output"]:
        if name == "output":
            logp = final_logp
        else:
            logp = model.output(model.norm(hidden[name])).double().log_softmax(-1)
        m = metrics(logp, final_logp, final_top1, k, target)
        n = m["entropy"].numel()
        aggregate.append({
            "layer": name, "positions": n,
            "mean_entropy": m["entropy"].sum().item() / n,
            "mean_kl_to_final": m["kl"].sum().item() / n,
            "mean_top1_prob": m["top1_prob"].sum().item() / n,
            "top1_agreement": (m["top1"] == final_top1).sum().item() / n,
            "mean_rank_of_final_top1": m["rank"].double().sum().item() / n,
            "final_top1_in_topk": (m["rank"] <= k).sum().item() / n,
            "mean_target_prob": m["target_prob"].sum().item() / n,
            "mean_target_rank": m["target_rank"].double().sum().item() / n,
        })
        for key in ("top1", "top1_prob", "entropy", "kl", "rank", "target_prob", "target_rank",
                    "topk_ids", "topk_probs"):
            first.setdefault(key, []).append(m[key][0].tolist())
    return {"sequences": tokens.shape[0], "layers": aggregate}, first


def cmd_tokens(args):
    g = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(3, args.vocab, (args.batch, args.seq), generator=g, dtype=torch.long)
    stio.save(args.out, {"arg0": ids})


def cmd_run(args):
    torch.set_num_threads(args.threads)
    config, weights = convert.read_checkpoint(args.bin)
    model = convert.build_model(config, weights).eval()
    tokens = torch.from_numpy(stio.load(args.tokens)[0]["arg0"]).long()
    names = ["tok_embeddings"] + [f"layers.{i}" for i in range(config.n_layers)]
    last = [None]

    def run_forward():
        with torch.no_grad():
            model(tokens)

    def run_lens():
        with torch.no_grad():
            last[0] = logit_lens(model, names, tokens, args.top_k, args.target)

    variants = {"forward": run_forward, "lens": run_lens}
    for _ in range(args.warmup):
        for fn in variants.values():
            fn()
    order = [v for v in variants for _ in range(args.reps)]
    random.Random(args.seed).shuffle(order)
    samples = []
    for v in order:
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        c0, w0 = time.thread_time(), time.perf_counter()
        variants[v]()
        w1, c1 = time.perf_counter(), time.thread_time()
        samples.append({"variant": v, "wall_ms": (w1 - w0) * 1e3, "cpu_ms": (c1 - c0) * 1e3,
                        "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0})
    for v in variants:
        w = sorted(s["wall_ms"] for s in samples if s["variant"] == v)
        print(f"  Python {v}: median {w[len(w) // 2]:.1f} ms over {len(w)}", file=sys.stderr)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"language": "Python", "threads": torch.get_num_threads(),
                       "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
                       "samples": samples}, f)
    if args.report:
        with open(args.report, "w") as f:
            json.dump(last[0][0], f, indent=1)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tokens")
    t.add_argument("out")
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--seq", type=int, default=128)
    t.add_argument("--vocab", type=int, default=512)
    t.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("run")
    r.add_argument("bin")
    r.add_argument("tokens")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--reps", type=int, default=10)
    r.add_argument("--warmup", type=int, default=3)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--top-k", type=int, default=5)
    r.add_argument("--target", type=int, default=13)
    r.add_argument("--out")
    r.add_argument("--report")
    args = ap.parse_args()
    cmd_tokens(args) if args.cmd == "tokens" else cmd_run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
