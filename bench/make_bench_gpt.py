#!/usr/bin/python3
"""Builds the GPT-like model that the capture benchmark runs (bench/run_capture_bench.sh).

Usage:  /usr/bin/python3 bench/make_bench_gpt.py OUTDIR
(Debian's Python with torch 1.13; the `python3` first on PATH may lack torch.)

Writes, deterministically (fixed seed):
  OUTDIR/bench_gpt.pt                    torch.jit.script of the model, eval mode (what C++ loads)
  OUTDIR/bench_gpt.state.pt              its state_dict (what the Python peer loads into the eager
                                         model built from the same classes below)
  OUTDIR/bench_gpt.input.safetensors     key "arg0": int64 tokens [8, 128]
  OUTDIR/bench_gpt.tiny.input.safetensors  key "arg0": int64 tokens [1, 4]; so little compute that
                                         the hook layer's own cost per hook point shows

Model: 6 pre-LayerNorm blocks, d=256, 8 heads, MLP 4x with GELU, vocabulary 1000, learned
positions, context 128. Module names: tok_emb, blocks.N.{ln1, attn{,.qkv,.proj}, ln2,
mlp{,.fc,.act,.proj}}, ln_f, head -> 63 called submodules, i.e. 63 output hook points per forward.
"""
import math
import os
import sys

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))

VOCAB = 1000
D = 256
HEADS = 8
LAYERS = 6
SEQ = 128
BATCH = 8
SEED = 1234


class Attention(nn.Module):
    def __init__(self, d: int, heads: int, seq: int):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.heads = heads
        self.head_dim = d // heads
        self.scale = 1.0 / math.sqrt(d // heads)
        self.register_buffer("mask", torch.tril(torch.ones(seq, seq, dtype=torch.bool)).view(1, 1, seq, seq))

    def forward(self, x):
        b, t, c = x.size(0), x.size(1), x.size(2)
        q, k, v = self.qkv(x).split(c, dim=2)
        q = q.view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = k.view(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = v.view(b, t, self.heads, self.head_dim).transpose(1, 2)
        att = torch.matmul(q, k.transpose(-2, -1)) * self.scale
        att = att.masked_fill(self.mask[:, :, :t, :t].logical_not(), float("-inf"))
        att = torch.softmax(att, dim=-1)
        y = torch.matmul(att, v).transpose(1, 2).contiguous().view(b, t, c)
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.fc = nn.Linear(d, 4 * d)
        self.act = nn.GELU()
        self.proj = nn.Linear(4 * d, d)

    def forward(self, x):
        return self.proj(self.act(self.fc(x)))


class Block(nn.Module):
    def __init__(self, d: int, heads: int, seq: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = Attention(d, heads, seq)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = MLP(d)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        x = x + self.mlp(self.ln2(x))
        return x


class GPT(nn.Module):
    def __init__(self, vocab: int = VOCAB, d: int = D, heads: int = HEADS, layers: int = LAYERS,
                 seq: int = SEQ):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, d)
        self.pos_emb = nn.Parameter(torch.zeros(1, seq, d))
        self.blocks = nn.ModuleList([Block(d, heads, seq) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, idx):
        t = idx.size(1)
        x = self.tok_emb(idx) + self.pos_emb[:, :t]
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln_f(x))


def build(seed: int = SEED) -> GPT:
    """The benchmark model with its seeded random weights (GPT-2-style init), in eval mode."""
    torch.manual_seed(seed)
    model = GPT()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif ".ln" in name or name.startswith("ln_f"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02)
    return model.eval()


def paths(outdir: str):
    return (os.path.join(outdir, "bench_gpt.pt"), os.path.join(outdir, "bench_gpt.state.pt"),
            os.path.join(outdir, "bench_gpt.input.safetensors"))


def tiny_path(outdir: str):
    return os.path.join(outdir, "bench_gpt.tiny.input.safetensors")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_bench_gpt.py OUTDIR")
    import stio

    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    model = build()
    model_path, state_path, input_path = paths(outdir)
    scripted = torch.jit.script(model)
    scripted.save(model_path)
    torch.save(model.state_dict(), state_path)
    gen = torch.Generator().manual_seed(SEED + 1)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ), generator=gen, dtype=torch.int64)
    stio.save(input_path, {"arg0": tokens})
    stio.save(tiny_path(outdir), {"arg0": tokens[:1, :4].clone()})
    with torch.no_grad():  # the scripted file computes what the eager model does
        diff = (scripted(tokens) - model(tokens)).abs().max().item()
    if diff > 1e-4:
        sys.exit(f"make_bench_gpt.py: scripted and eager outputs differ by {diff}")
    called = sum(1 for n, m in model.named_modules() if n and not isinstance(m, nn.ModuleList))
    print(f"wrote {model_path} ({called} called submodules), {state_path}, {input_path}")


if __name__ == "__main__":
    main()
