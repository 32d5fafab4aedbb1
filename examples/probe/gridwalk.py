#!/usr/bin/python3
"""A miniature OthelloGPT: a small transformer trained only to predict the next move of a random
walk on a 4 x 4 grid, whose latent state (the walker's square) is never shown after the start.

Tokens 0..15 name the start square (row * 4 + col); tokens 16..19 are the moves up, down, left,
right. Each sequence is a start square and then 19 moves, each drawn uniformly among the moves
that stay on the grid. To predict which moves are legal next, the model has to track the square
from the whole sequence, like OthelloGPT's board. The script trains the model (seeded, 1 CPU
thread, about a minute), saves it as TorchScript, and writes a held-out probing set:

  gridwalk.py OUTDIR  ->  OUTDIR/gridwalk.pt
                          OUTDIR/gridwalk_probe.safetensors   arg0 tokens int64 [N, 20]
                                                               labels   int64 [N, 20]: the square
                                                               after each move (-1 at position 0,
                                                               whose square is the token itself)
Usage: /usr/bin/python3 examples/probe/gridwalk.py OUTDIR [--steps 600] [--probe-sequences 600]
"""
import argparse
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "python"))
import stio  # noqa: E402

SIDE, T = 4, 20
MOVES = [(-1, 0), (1, 0), (0, -1), (0, 1)]  # up, down, left, right
VOCAB = SIDE * SIDE + 4


def walks(n, gen):
    """n random walks: tokens [n, T], squares [n, T], legal-move masks [n, T, 4] (after each token)."""
    tokens = torch.empty(n, T, dtype=torch.long)
    squares = torch.empty(n, T, dtype=torch.long)
    legal = torch.zeros(n, T, 4)
    r = torch.randint(0, SIDE, (n,), generator=gen)
    c = torch.randint(0, SIDE, (n,), generator=gen)
    tokens[:, 0] = r * SIDE + c
    for t in range(T):
        ok = torch.stack([(r + dr >= 0) & (r + dr < SIDE) & (c + dc >= 0) & (c + dc < SIDE)
                          for dr, dc in MOVES], 1).float()
        legal[:, t] = ok
        squares[:, t] = r * SIDE + c
        if t + 1 < T:
            m = torch.multinomial(ok, 1, generator=gen).squeeze(1)
            tokens[:, t + 1] = SIDE * SIDE + m
            r = r + torch.tensor([d[0] for d in MOVES])[m]
            c = c + torch.tensor([d[1] for d in MOVES])[m]
    return tokens, squares, legal


class Block(torch.nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1 = torch.nn.LayerNorm(d)
        self.attn = torch.nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = torch.nn.LayerNorm(d)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(d, 4 * d), torch.nn.GELU(), torch.nn.Linear(4 * d, d))

    def forward(self, x, mask: torch.Tensor):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class GridGPT(torch.nn.Module):
    def __init__(self, d=64, heads=4, layers=4):
        super().__init__()
        self.tok_emb = torch.nn.Embedding(VOCAB, d)
        self.pos_emb = torch.nn.Parameter(torch.randn(T, d) * 0.02)
        self.blocks = torch.nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.ln_f = torch.nn.LayerNorm(d)
        self.head = torch.nn.Linear(d, 4)  # logits of the 4 moves

    def forward(self, tokens):
        t = tokens.shape[1]
        mask = torch.triu(torch.full((t, t), float("-inf")), 1)
        x = self.tok_emb(tokens) + self.pos_emb[:t]
        for b in self.blocks:
            x = b(x, mask)
        return self.head(self.ln_f(x))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--probe-sequences", type=int, default=600)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and the result is reproducible
    gen = torch.Generator().manual_seed(0)
    model = GridGPT()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * s / a.steps)))
    start = time.time()
    for step in range(a.steps):
        tokens, _, legal = walks(64, gen)
        logp = torch.log_softmax(model(tokens)[:, :-1], -1)
        # Target: the uniform distribution over the legal next moves (cross-entropy to it).
        target = legal[:, :-1] / legal[:, :-1].sum(-1, keepdim=True)
        loss = -(target * logp).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == a.steps - 1:
            with torch.no_grad():
                probs = logp.exp()
                illegal = (probs * (1 - legal[:, :-1])).sum(-1).mean().item()
            print(f"step {step:5d}  loss {loss.item():.4f}  prob. on illegal moves {illegal:.4f}  ({time.time() - start:.0f} s)")
    model.eval()
    torch.jit.script(model).save(os.path.join(a.out, "gridwalk.pt"))
    tokens, squares, legal = walks(a.probe_sequences, torch.Generator().manual_seed(12345))
    with torch.no_grad():
        probs = torch.softmax(model(tokens)[:, :-1], -1)
    illegal = (probs * (1 - legal[:, :-1])).sum(-1).mean().item()
    labels = squares.clone()
    labels[:, 0] = -1
    stio.save(os.path.join(a.out, "gridwalk_probe.safetensors"), {"arg0": tokens, "labels": labels})
    print(f"held-out: probability on illegal moves {illegal:.4f}; wrote {a.out}/gridwalk.pt and gridwalk_probe.safetensors")


if __name__ == "__main__":
    main()
