#!/usr/bin/env python3
"""Independent logit-lens reference for tests/analysis/logit_lens_test.cpp.

    logit_lens_reference.py reference BIN --tokens 1,403,... [--target ID] [--top-k K]
                            [--translators FILE.safetensors] --out OUT.json
    logit_lens_reference.py models OUTDIR

`reference` rebuilds the llama2.c model EAGERLY from the .bin checkpoint (with
tools/llama2c/convert.py's build_model; no TorchScript, no strata), records the residual stream
with PyTorch forward hooks on tok_embeddings and layers.N, decodes each hidden state with
model.norm and model.output (the norm recomputed on that hidden state), and writes per layer and
position: top1, top1_prob, entropy, kl_to_final (KL(final || layer)), rank_of_final_top1,
topk_tokens/topk_probs and, with --target, target_prob/target_rank; the last row ("output") is the
model's own logits. Metrics use float64 log-softmax of the float32 logits. --translators applies
tuned-lens translators h + h W^T + b read with tests/python/stio.py (the project's independent
safetensors reader).

`models` writes small TorchScript models for structure tests: nonorm.pt (no final norm: an
unembedding fed by a ReLU) and tuple_gpt.pt (blocks return (hidden, attention) tuples, token and
position embeddings added inline, LayerNorm ln_f, Linear head).
"""
import argparse
import json
import math
import os
import sys
from typing import List, Tuple

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "llama2c"))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
import convert  # noqa: E402
import stio  # noqa: E402


def metrics(logp, final_logp, k, target):
    p = logp.exp()
    entropy = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1)
    pf = final_logp.exp()
    kl = torch.where(pf > 0, pf * (final_logp - logp), torch.zeros_like(pf)).sum(-1)
    vals, ids = logp.topk(k, -1)
    final_top1 = final_logp.argmax(-1)
    ref = logp.gather(-1, final_top1.unsqueeze(-1))
    rank = (logp > ref).sum(-1) + 1
    out = dict(top1=ids[..., 0].tolist(), top1_prob=vals[..., 0].exp().tolist(),
               entropy=entropy.tolist(), kl_to_final=kl.tolist(),
               rank_of_final_top1=rank.tolist(), topk_tokens=ids.tolist(),
               topk_probs=vals.exp().tolist())
    if target is not None:
        t = logp[..., target]
        out["target_prob"] = t.exp().tolist()
        out["target_rank"] = ((logp > t.unsqueeze(-1)).sum(-1) + 1).tolist()
    return out


def reference(args):
    config, weights = convert.read_checkpoint(args.bin)
    model = convert.build_model(config, weights)
    tokens = torch.tensor([[int(t) for t in args.tokens.split(",")]], dtype=torch.long)
    names = ["tok_embeddings"] + [f"layers.{i}" for i in range(config.n_layers)]
    hidden = {}

    def keep(name):
        def hook(module, inputs, output):
            hidden[name] = output.detach().clone()
        return hook

    handles = [model.tok_embeddings.register_forward_hook(keep("tok_embeddings"))]
    for i, layer in enumerate(model.layers):
        handles.append(layer.register_forward_hook(keep(f"layers.{i}")))
    translators = stio.load(args.translators)[0] if args.translators else {}
    with torch.no_grad():
        final = model(tokens)[0]
        for h in handles:
            h.remove()
        final_logp = final.double().log_softmax(-1)
        rows = {}
        for name in names:
            h = hidden[name][0]
            w = translators.get(name + ".weight")
            b = translators.get(name + ".bias")
            x = h
            if w is not None:
                x = x + h @ torch.as_tensor(w).float().T
            if b is not None:
                x = x + torch.as_tensor(b).float()
            logits = model.output(model.norm(x))  # the norm's statistics come from x itself
            rows[name] = metrics(logits.double().log_softmax(-1), final_logp, args.top_k,
                                 args.target)
        rows["output"] = metrics(final_logp, final_logp, args.top_k, args.target)
    layers = names + ["output"]
    out = {"layers": layers, "tokens": tokens[0].tolist()}
    for key in rows["output"]:
        out[key] = [rows[name][key] for name in layers]
    with open(args.out, "w") as f:
        json.dump(out, f)


class NoNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.body = nn.Linear(8, 8)
        self.act = nn.ReLU()
        self.head = nn.Linear(8, 10)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.body(self.embed(tokens))))


class Block(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.mix = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        a = self.mix(self.ln(x))
        return x + torch.tanh(a), a.softmax(-1)


class TupleGPT(nn.Module):
    def __init__(self, vocab: int = 20, d: int = 16, max_len: int = 8):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, d)
        self.pos_emb = nn.Parameter(0.5 * torch.randn(max_len, d))
        self.blocks = nn.ModuleList([Block(d) for _ in range(2)])
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(idx) + self.pos_emb[: idx.size(1)]
        ws: List[torch.Tensor] = []
        for blk in self.blocks:
            x, w = blk(x)
            ws.append(w)
        return self.head(self.ln_f(x))


class MaskedHead(nn.Module):
    """An unembedding that scales its logits and masks tokens 3 and 7 with -inf."""

    def __init__(self, d: int, vocab: int, scale: float):
        super().__init__()
        self.proj = nn.Linear(d, vocab)
        self.scale = scale
        mask = torch.zeros(vocab, dtype=torch.bool)
        mask[3] = True
        mask[7] = True
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.proj(x) * self.scale).masked_fill(self.mask, float("-inf"))


def models(args):
    torch.manual_seed(0)
    os.makedirs(args.outdir, exist_ok=True)
    torch.jit.script(NoNorm().eval()).save(os.path.join(args.outdir, "nonorm.pt"))
    gpt = TupleGPT().eval()
    with torch.no_grad():  # a non-trivial final LayerNorm
        gpt.ln_f.weight.uniform_(0.5, 1.5)
        gpt.ln_f.bias.uniform_(-0.2, 0.2)
    torch.jit.script(gpt).save(os.path.join(args.outdir, "tuple_gpt.pt"))
    # Masked tokens (-inf logits) and logits far above 80 (exp(x) would overflow).
    for name, scale in (("masked_gpt.pt", 1.0), ("hot_gpt.pt", 100.0)):
        torch.manual_seed(1)
        m = TupleGPT().eval()
        m.head = MaskedHead(16, 20, scale)
        torch.jit.script(m).save(os.path.join(args.outdir, name))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reference")
    r.add_argument("bin")
    r.add_argument("--tokens", required=True)
    r.add_argument("--target", type=int)
    r.add_argument("--top-k", type=int, default=5)
    r.add_argument("--translators")
    r.add_argument("--out", required=True)
    m = sub.add_parser("models")
    m.add_argument("outdir")
    args = parser.parse_args()
    torch.set_num_threads(1)
    reference(args) if args.cmd == "reference" else models(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
