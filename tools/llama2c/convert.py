#!/usr/bin/env python3
"""Convert a llama2.c legacy checkpoint (.bin) into a TorchScript language model for strata.

    convert.py IN.bin OUT.pt [--check]

The saved module maps tokens [B, T] int64 to logits [B, T, vocab] float32. Its submodules are
the hook points strata sees:

    tok_embeddings                       nn.Embedding
    layers.N                             one transformer block; its output is the residual stream
    layers.N.attention_norm / ffn_norm   RMSNorm
    layers.N.attention(.wq/.wk/.wv/.wo)  causal grouped-query attention with rotary positions
    layers.N.feed_forward(.w1/.w2/.w3)   SwiGLU: w2(silu(w1 x) * w3 x)
    norm                                 final RMSNorm
    output                               nn.Linear dim -> vocab (the embedding table when shared)

The arithmetic follows llama2.c's run.c: RMSNorm with eps 1e-5, rotary embedding applied to
adjacent pairs (2i, 2i+1) inside each head with frequency 10000^(-2i/head_size), computed here
rather than read from the checkpoint's freq_cis tables.

--check runs the eager module, the scripted module and the saved-and-reloaded file on a few
token sequences and compares them with a plain NumPy re-implementation of run.c's
position-by-position forward pass (with a key/value cache); when any of them differ it removes
OUT.pt again and exits 1.

Errors (missing file, wrong size, bad header) are one line on stderr and exit code 1.
"""

import argparse
import json
import math
import os
import struct
import sys
from typing import Dict, List, NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HEADER = struct.Struct("<7i")
MAGIC_V1 = 0x616B3432  # "ak42": llama2.c's newer export formats (version >= 1)
WHERE_TO_GET = "llama2.c checkpoints: https://huggingface.co/karpathy/tinyllamas"


class ConvertError(Exception):
    """A problem with the input; reported as one line."""


class Config(NamedTuple):
    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int
    shared_classifier: bool

    @property
    def head_size(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_size


def weight_layout(c: Config) -> List[tuple]:
    """(name, shape) of every float32 array in the file, in llama2.c's order."""
    L, d, h, kv = c.n_layers, c.dim, c.hidden_dim, c.kv_dim
    layout = [
        ("token_embedding_table", (c.vocab_size, d)),
        ("rms_att_weight", (L, d)),
        ("wq", (L, d, d)),
        ("wk", (L, kv, d)),
        ("wv", (L, kv, d)),
        ("wo", (L, d, d)),
        ("rms_ffn_weight", (L, d)),
        ("w1", (L, h, d)),
        ("w2", (L, d, h)),
        ("w3", (L, h, d)),
        ("rms_final_weight", (d,)),
        ("freq_cis_real", (c.seq_len, c.head_size // 2)),
        ("freq_cis_imag", (c.seq_len, c.head_size // 2)),
    ]
    if not c.shared_classifier:
        layout.append(("wcls", (c.vocab_size, d)))
    return layout


def read_checkpoint(path: str):
    """Returns (Config, {name: float32 array}) after checking the header and the file size."""
    if not os.path.exists(path):
        raise ConvertError(f"{path}: no such file ({WHERE_TO_GET})")
    if os.path.isdir(path):
        raise ConvertError(f"{path}: is a directory, expected a llama2.c .bin checkpoint")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConvertError(f"{path}: cannot read: {e.strerror}")
    if len(data) >= 4 and struct.unpack_from("<I", data, 0)[0] == MAGIC_V1:
        version = struct.unpack_from("<i", data, 4)[0] if len(data) >= 8 else -1
        raise ConvertError(
            f"{path}: llama2.c export version {version} (magic 'ak42'); only the legacy "
            "format (export.py --version 0) is supported")
    if len(data) < HEADER.size:
        raise ConvertError(
            f"{path}: {len(data)} bytes, too short for the {HEADER.size}-byte llama2.c header")
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = HEADER.unpack_from(data, 0)
    fields = dict(dim=dim, hidden_dim=hidden, n_layers=layers, n_heads=heads,
                  n_kv_heads=kv_heads, vocab_size=abs(vocab), seq_len=seq_len)
    bad = [f"{k}={v}" for k, v in fields.items() if v <= 0]
    if bad:
        raise ConvertError(f"{path}: not a llama2.c checkpoint (header has {', '.join(bad)})")
    if dim % heads or (dim // heads) % 2:
        raise ConvertError(
            f"{path}: dim {dim} does not split into {heads} heads of an even size")
    if heads % kv_heads:
        raise ConvertError(f"{path}: n_heads {heads} is not a multiple of n_kv_heads {kv_heads}")
    config = Config(shared_classifier=vocab > 0, **fields)

    layout = weight_layout(config)
    expected = HEADER.size + 4 * sum(math.prod(shape) for _, shape in layout)
    if len(data) != expected:
        raise ConvertError(
            f"{path}: {len(data)} bytes, but its header (dim {dim}, hidden_dim {hidden}, "
            f"n_layers {layers}, n_heads {heads}, n_kv_heads {kv_heads}, vocab_size {vocab}, "
            f"seq_len {seq_len}) needs {expected}")

    weights: Dict[str, np.ndarray] = {}
    offset = HEADER.size
    for name, shape in layout:
        n = math.prod(shape)
        weights[name] = np.frombuffer(data, dtype="<f4", count=n, offset=offset).reshape(shape)
        offset += 4 * n
    return config, weights


# --------------------------------------------------------------------------------------------
# The model. Plain modules so that torch.jit.script keeps every submodule call (a hook point).


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Attention(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.n_heads = c.n_heads
        self.n_kv_heads = c.n_kv_heads
        self.head_size = c.head_size
        self.wq = nn.Linear(c.dim, c.n_heads * c.head_size, bias=False)
        self.wk = nn.Linear(c.dim, c.kv_dim, bias=False)
        self.wv = nn.Linear(c.dim, c.kv_dim, bias=False)
        self.wo = nn.Linear(c.n_heads * c.head_size, c.dim, bias=False)

    def rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        # x [B, T, H, hs]: rotate the adjacent pairs (2i, 2i+1) by the angle pos * freq_i.
        pairs = x.reshape(x.shape[0], x.shape[1], x.shape[2], -1, 2)
        x0 = pairs[..., 0]
        x1 = pairs[..., 1]
        out = torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
        return out.flatten(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T = x.shape[0], x.shape[1]
        q = self.wq(x).view(B, T, self.n_heads, self.head_size)
        k = self.wk(x).view(B, T, self.n_kv_heads, self.head_size)
        v = self.wv(x).view(B, T, self.n_kv_heads, self.head_size)

        # run.c: freq = 1 / 10000^(head_dim / head_size) for the even head_dim indices.
        index = torch.arange(0, self.head_size, 2, device=x.device).to(torch.float32)
        freq = 1.0 / torch.pow(10000.0, index / self.head_size)
        angle = torch.arange(T, device=x.device).to(torch.float32)[:, None] * freq[None, :]
        cos = torch.cos(angle)[None, :, None, :]  # [1, T, 1, hs/2]
        sin = torch.sin(angle)[None, :, None, :]
        q = self.rotate(q, cos, sin)
        k = self.rotate(k, cos, sin)

        # Grouped-query attention: query head h reads key/value head h // (n_heads / n_kv).
        group = self.n_heads // self.n_kv_heads
        if group > 1:
            k = k.repeat_interleave(group, dim=2)
            v = v.repeat_interleave(group, dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, T, hs]
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_size)
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
        out = torch.matmul(F.softmax(scores, dim=-1), v)  # [B, H, T, hs]
        return self.wo(out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_size))


class FeedForward(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.w1 = nn.Linear(c.dim, c.hidden_dim, bias=False)
        self.w2 = nn.Linear(c.hidden_dim, c.dim, bias=False)
        self.w3 = nn.Linear(c.dim, c.hidden_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.attention_norm = RMSNorm(c.dim)
        self.attention = Attention(c)
        self.ffn_norm = RMSNorm(c.dim)
        self.feed_forward = FeedForward(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x))
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.max_seq_len = c.seq_len
        self.tok_embeddings = nn.Embedding(c.vocab_size, c.dim)
        self.layers = nn.ModuleList([TransformerBlock(c) for _ in range(c.n_layers)])
        self.norm = RMSNorm(c.dim)
        self.output = nn.Linear(c.dim, c.vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2:
            raise RuntimeError("llama2c model: tokens must be [batch, time] int64")
        if tokens.shape[1] > self.max_seq_len:
            raise RuntimeError("llama2c model: sequence longer than the trained seq_len")
        x = self.tok_embeddings(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.output(self.norm(x))


def build_model(c: Config, w: Dict[str, np.ndarray]) -> Transformer:
    model = Transformer(c)

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a, dtype=np.float32))

    with torch.no_grad():
        model.tok_embeddings.weight.copy_(t(w["token_embedding_table"]))
        for i, layer in enumerate(model.layers):
            layer.attention_norm.weight.copy_(t(w["rms_att_weight"][i]))
            layer.attention.wq.weight.copy_(t(w["wq"][i]))
            layer.attention.wk.weight.copy_(t(w["wk"][i]))
            layer.attention.wv.weight.copy_(t(w["wv"][i]))
            layer.attention.wo.weight.copy_(t(w["wo"][i]))
            layer.ffn_norm.weight.copy_(t(w["rms_ffn_weight"][i]))
            layer.feed_forward.w1.weight.copy_(t(w["w1"][i]))
            layer.feed_forward.w2.weight.copy_(t(w["w2"][i]))
            layer.feed_forward.w3.weight.copy_(t(w["w3"][i]))
        model.norm.weight.copy_(t(w["rms_final_weight"]))
    if c.shared_classifier:
        model.output.weight = model.tok_embeddings.weight  # tied: one tensor, saved once
    else:
        with torch.no_grad():
            model.output.weight.copy_(t(w["wcls"]))
    return model.eval()


# --------------------------------------------------------------------------------------------
# --check: an independent NumPy forward pass in run.c's style, one position at a time.


def reference_logits(c: Config, w: Dict[str, np.ndarray], tokens: List[int]) -> np.ndarray:
    f32 = np.float32
    hs = c.head_size
    group = c.n_heads // c.n_kv_heads
    wcls = w["token_embedding_table"] if c.shared_classifier else w["wcls"]

    def rmsnorm(x, weight):
        return weight * (x / np.sqrt(np.mean(x * x, dtype=f32) + f32(1e-5)))

    keys = np.zeros((c.n_layers, len(tokens), c.kv_dim), f32)
    values = np.zeros_like(keys)
    out = []
    for pos, token in enumerate(tokens):
        x = np.array(w["token_embedding_table"][token], f32)
        for l in range(c.n_layers):
            xb = rmsnorm(x, w["rms_att_weight"][l])
            q = w["wq"][l] @ xb
            k = w["wk"][l] @ xb
            v = w["wv"][l] @ xb
            for i in range(0, c.dim, 2):
                freq = 1.0 / 10000.0 ** ((i % hs) / hs)
                fcr, fci = math.cos(pos * freq), math.sin(pos * freq)
                vecs = (q, k) if i < c.kv_dim else (q,)
                for vec in vecs:
                    v0, v1 = vec[i], vec[i + 1]
                    vec[i], vec[i + 1] = v0 * fcr - v1 * fci, v0 * fci + v1 * fcr
            keys[l, pos], values[l, pos] = k, v
            att_out = np.zeros(c.dim, f32)
            for h in range(c.n_heads):
                kvh = h // group
                qh = q[h * hs:(h + 1) * hs]
                kh = keys[l, :pos + 1, kvh * hs:(kvh + 1) * hs]
                vh = values[l, :pos + 1, kvh * hs:(kvh + 1) * hs]
                scores = kh @ qh / math.sqrt(hs)
                scores = np.exp(scores - scores.max())
                scores /= scores.sum()
                att_out[h * hs:(h + 1) * hs] = scores @ vh
            x = x + w["wo"][l] @ att_out
            xb = rmsnorm(x, w["rms_ffn_weight"][l])
            h1 = w["w1"][l] @ xb
            h1 = h1 / (1.0 + np.exp(-h1)) * (w["w3"][l] @ xb)
            x = x + w["w2"][l] @ h1
        out.append(wcls @ rmsnorm(x, w["rms_final_weight"]))
    return np.stack(out)


def check(c: Config, w: Dict[str, np.ndarray], eager: nn.Module, scripted, out_path: str) -> bool:
    reloaded = torch.jit.load(out_path)
    gen = torch.Generator().manual_seed(0)
    lengths = [1, 7, min(c.seq_len, 33)]
    ok = True
    for T in lengths:
        tokens = torch.randint(0, c.vocab_size, (2, T), generator=gen)
        tokens[:, 0] = 1  # BOS, as in generation
        with torch.no_grad():
            a = eager(tokens)
            b = scripted(tokens)
            r = reloaded(tokens)
        ref = np.stack([reference_logits(c, w, row.tolist()) for row in tokens])
        d_script = (a - b).abs().max().item()
        d_reload = (b - r).abs().max().item()
        d_ref = float(np.abs(a.numpy() - ref).max())
        scale = float(np.abs(ref).max())
        good = (a.shape == (2, T, c.vocab_size) and a.dtype == torch.float32
                and d_script <= 1e-5 * max(1.0, scale) and d_reload == 0.0
                and d_ref <= 1e-4 * max(1.0, scale))
        print(f"check T={T}: max|eager-scripted| {d_script:.3g}, max|scripted-reloaded| "
              f"{d_reload:.3g}, max|eager-run.c reference| {d_ref:.3g} "
              f"(logits up to {scale:.3g}): {'ok' if good else 'MISMATCH'}")
        ok = ok and good
    return ok


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(
        description="Convert a llama2.c legacy checkpoint into a TorchScript module.")
    parser.add_argument("input", help="llama2.c checkpoint (.bin, legacy format)")
    parser.add_argument("output", help="TorchScript file to write (.pt)")
    parser.add_argument("--check", action="store_true",
                        help="compare eager, scripted and reloaded outputs with a NumPy "
                             "re-implementation of run.c's forward pass")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        config, weights = read_checkpoint(args.input)
    except ConvertError as e:
        print(f"convert.py: {e}", file=sys.stderr)
        return 1

    eager = build_model(config, weights)
    scripted = torch.jit.script(eager)
    meta = dict(config._asdict(), source=os.path.basename(args.input), format="llama2c")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        scripted.save(args.output, _extra_files={"llama2c_config.json": json.dumps(meta)})
    except (OSError, RuntimeError) as e:
        print(f"convert.py: cannot write {args.output}: {str(e).splitlines()[0]}",
              file=sys.stderr)
        return 1
    n_params = sum(p.numel() for p in eager.parameters())
    print(f"wrote {args.output}: dim {config.dim}, {config.n_layers} layers, {config.n_heads} "
          f"heads ({config.n_kv_heads} kv), hidden {config.hidden_dim}, vocab "
          f"{config.vocab_size}, seq_len {config.seq_len}, "
          f"{'shared' if config.shared_classifier else 'separate'} classifier, "
          f"{n_params} parameters")
    if args.check and not check(config, weights, eager, scripted, args.output):
        os.remove(args.output)  # leave no model behind that is known to be wrong
        sys.stdout.flush()
        print(f"convert.py: --check failed: the converted model's outputs differ; removed "
              f"{args.output}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
