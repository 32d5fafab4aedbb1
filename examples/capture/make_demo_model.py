#!/usr/bin/python3
"""Builds and trains the small transformer that strata's demo and capture example run on.

Task ("skip counting"): the first token chooses a step s in 1..4, the second a start digit d;
every later token is the previous one plus s, modulo 10. Example (s=3, d=7): S3 7 0 3 6 9 2 5 ...
To predict any digit the model must carry the step from position 0 forward through attention,
which makes it a good subject for activation patching.

Usage: /usr/bin/python3 make_demo_model.py OUT.pt [--steps N]
Writes OUT.pt (TorchScript, torch.jit.script) and prints the held-out accuracy.
Deterministic (seeded, one thread); about 20 s on 2 CPU cores.
"""
import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 14  # digits 0-9, step tokens S1..S4 = 10..13
SEQ = 12


def make_batch(n, generator):
    step = torch.randint(1, 5, (n,), generator=generator)
    start = torch.randint(0, 10, (n,), generator=generator)
    pos = torch.arange(SEQ - 1)
    digits = (start[:, None] + step[:, None] * pos[None, :]) % 10
    return torch.cat([(9 + step)[:, None], digits], dim=1)


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        h = self.heads
        q = q.view(b, t, h, d // h).transpose(1, 2)
        k = k.view(b, t, h, d // h).transpose(1, 2)
        v = v.view(b, t, h, d // h).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // h)
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = Attention(d, heads)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    def __init__(self, d=48, heads=4, layers=3):
        super().__init__()
        self.tok_emb = nn.Embedding(VOCAB, d)
        self.pos_emb = nn.Parameter(torch.randn(SEQ, d) * 0.02)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, VOCAB)

    def forward(self, tokens):
        x = self.tok_emb(tokens) + self.pos_emb[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=250)
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    model = TinyGPT()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    for step in range(args.steps):
        batch = make_batch(128, gen)
        logits = model(batch[:, :-1])
        # Position 0 holds the step token; its next token (the start digit) is random: skip it.
        loss = F.cross_entropy(logits[:, 1:].reshape(-1, VOCAB), batch[:, 2:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    test = make_batch(512, torch.Generator().manual_seed(2))
    with torch.no_grad():
        pred = model(test[:, :-1])[:, 1:].argmax(-1)
    acc = (pred == test[:, 2:]).float().mean().item()
    torch.jit.script(model).save(args.out)
    print(f"make_demo_model: trained {args.steps} steps, final loss {loss.item():.4f}, "
          f"held-out next-digit accuracy {acc:.4f}, wrote {args.out}")


if __name__ == "__main__":
    main()
