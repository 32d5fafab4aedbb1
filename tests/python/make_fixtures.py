#!/usr/bin/python3
"""Generates the TorchScript fixtures and eager-PyTorch reference data for strata's C++ tests.

Usage:  /usr/bin/python3 tests/python/make_fixtures.py OUTDIR
(Debian's Python with torch 1.13. Deterministic: one thread, fixed seeds. Runs in a few seconds.)

Every file below lies directly in OUTDIR; every path in the manifest is relative to OUTDIR.
All .safetensors files are written with the independent writer tests/python/stio.py.

Hook-point keys (the contract)
------------------------------
* A hook point is one call of a submodule; the top-level module itself is not one.
* Output of a call: NAME (qualified name as in named_modules(), e.g. "blocks.0.attn").
  Tuple/list output: NAME:I = I-th tensor in depth-first flattened order (non-tensor
  elements skipped and not counted).
* The K-th further call of the same module in one forward (K >= 1): NAME@K, NAME@K:I.
  The first call has no suffix.
* Inputs of a call (positional tensor args, flattened the same way): NAME:in:I, NAME@K:in:I.
* The model's return value: "output" (single tensor) or "output:I" (tuple).
* Containers that are never called (ModuleList, ModuleDict) produce no hook point; Sequential
  containers that are called do.

manifest.json
-------------
{
  "version": 1,
  "frozen": "frozen_mlp.pt",            # torch.jit.freeze(torch.jit.script(mlp)): no CallMethod left
  "not_a_model": "not_a_model.pt",      # a text file, not a zip archive
  "cases": [ CASE, ... ]
}
CASE = {
  "name": "gpt_traced",                 # <model>_<scripted|traced>[_<variant>]
  "model_name": "gpt",                  # mlp | cnn | gpt | dict_if | twice
  "mode": "scripted" | "traced",
  "model": "gpt_traced.pt",             # load with torch::jit::load; module is in eval mode
  "input": "gpt.input.safetensors",     # keys "arg0", "arg1", ... = positional forward args
  "input_names": ["arg0"],
  "output_keys": ["output:0", "output:1"],
  "hooks": "gpt_traced.hooks.safetensors",
      # eager reference of EVERY hook point of this input: all output keys, all ":in:" keys and
      # "output"/"output:I"; tensors as produced (same dtype/shape), stored in call order.
  "grads": "gpt_traced.grads.safetensors",
      # "grad_in" / "grad_in:I": the grad_tensors given to torch.autograd.backward for each float
      # model output (integer outputs get none); then for every OUTPUT hook point (incl. the
      # "output" keys) whose gradient is not None: its gradient under the same key. No ":in:" keys.
      # Gradient semantics: the gradient w.r.t. the value the call RETURNED to its caller, i.e.
      # as if an identity op were inserted after the call (the Python forward hook returns
      # out.view_as(out) and retains its grad). It differs from retain_grad() on the raw tensor
      # when a module also uses its output internally: blocks.K.attn:1 (the attention weights,
      # also consumed by att @ v inside attn) only gets the gradient that flows through the
      # returned tuple element (i.e. from torch.stack in GPT.forward).
  "grad_keys": [...],                   # hook-point keys present in the grads file (no grad_in)
  "edits": [ EDIT, ... ]
}
EDIT = {
  "name": "zero_heads",
  "kind": "zero" | "mean" | "patch" | "add" | "skip" | "scale2",
  "key": "blocks.0.attn:1",             # the ONE hook point edited (an output key)
  "module": "blocks.0.attn", "call": 0, "element": 1 or null,   # key split into its parts
  "dim": int or null,                   # null = whole tensor
  "indices": [0, 2] or null,            # same as the "indices" tensor of indices_file
  "indices_file": "<f>.safetensors" or null,  # key "indices", int64, 1-D
  "data": "<f>.safetensors" or null,    # key "vector", float32 1-D of size out.shape[-1] (add)
  "scale": float or null,               # add only; exactly representable in float32
  "patch_input": "<f>.safetensors" or null,   # patch only; same layout as a case's "input"
  "patch_hooks": "<f>.safetensors" or null,   # patch only; eager hooks of patch_input (the cache)
  "expected": "<f>.safetensors"         # model output after the edit: "output" or "output:I"
}
(indices_file and data are the same file when both apply.)

Edit semantics (out = the value at the hook point, idx = indices, cache = hooks of patch_input):
  zero   whole: zeros_like(out);           dim: out.index_fill(dim, idx, 0)
  mean   m = out.mean(dim=0, keepdim=True);
         whole: m.expand_as(out).clone();  dim: out.clone().index_copy_(dim, idx, m.expand_as(out).index_select(dim, idx))
  patch  whole: cache[key];                dim: out.index_copy(dim, idx, cache[key].index_select(dim, idx))
  add    v = scale * vector (float32);
         whole: out + v;                   dim: out.clone().index_add_(dim, idx, v.expand_as(out).index_select(dim, idx))
         (== out + v at the selected slices, untouched elsewhere; indices have no duplicates)
  skip   the call's first positional tensor input (key NAME:in:0), shapes equal
  scale2 out * 2   (stands for a user callback)
For a tuple element key NAME:I only element I is replaced. For NAME@K only call K is edited.

Cases: mlp, cnn, gpt, dict_if, twice, each *_scripted and *_traced, plus dict_if_scripted_neg
(same scripted model, input with negative sum: takes the d["b"] branch; the traced model only
recorded the d["a"] branch, so it has no such case). References always come from the eager
model on the case's input; the script asserts that every saved .pt reloaded with torch.jit.load
gives bit-identical outputs to eager on the case's input.

What the saved TorchScript looks like (torch 1.13), relevant to instrumentation:
* Every submodule call is a prim::CallMethod on a prim::GetAttr chain from self (ModuleList /
  ModuleDict entries: GetAttr "blocks" then GetAttr "0"; GetAttr "d" then GetAttr "a"), in both
  scripted and traced models; parameterless modules (ReLU, GELU, Flatten) are kept as calls.
  Tuple results come back as (Tensor, Tensor) followed by prim::TupleUnpack in the caller.
* Traced: a module called twice gets two methods, "forward" and "forward1" (twice_traced: lin,
  pair), and pair.forward1 calls pair.a.forward1 / pair.b.forward1. Each instance has its own
  mangled class type. A module the trace never called has no forward method at all
  (dict_if_traced: d.b).
* Scripted: a module called twice is two CallMethod "forward" nodes; instances of the same
  class share ONE class type and graph (blocks.0/blocks.1 share __torch__.Block, all
  Linear(32,32) share one type), so a hook inserted in Block.forward runs for both blocks.
* dict_if_scripted keeps both branches in a prim::If; dict_if_traced only has d["a"].
"""
import json
import math
import os
import sys
import time
import warnings
from collections import OrderedDict

# TorchScript serializes class constants from Python sets: fix the string hash seed so that the
# .pt archives are byte-for-byte reproducible too (re-exec once with PYTHONHASHSEED=0).
if __name__ == "__main__" and os.environ.get("PYTHONHASHSEED") != "0":
    os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, PYTHONHASHSEED="0"))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from typing import List, Tuple  # noqa: E402

import stio  # noqa: E402

torch.set_num_threads(1)
torch.manual_seed(0)


# ---------------------------------------------------------------------------------------------
# Models


class Attention(nn.Module):
    def __init__(self, d_model: int, n_head: int, max_len: int):
        super().__init__()
        self.n_head = n_head
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.register_buffer("mask", torch.tril(torch.ones(max_len, max_len)).view(1, 1, max_len, max_len))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        B = x.size(0)
        T = x.size(1)
        C = x.size(2)
        hd = C // self.n_head
        q = self.q(x).view(B, T, self.n_head, hd).transpose(1, 2)
        k = self.k(x).view(B, T, self.n_head, hd).transpose(1, 2)
        v = self.v(x).view(B, T, self.n_head, hd).transpose(1, 2)
        att = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
        att = torch.softmax(att, dim=-1)
        y = torch.matmul(att, v).transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y), att


class Block(nn.Module):
    def __init__(self, d_model: int, n_head: int, max_len: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = Attention(d_model, n_head, max_len)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Linear(2 * d_model, d_model))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        a, w = self.attn(self.ln1(x))
        x = x + a
        x = x + self.mlp(self.ln2(x))
        return x, w


class GPT(nn.Module):
    def __init__(self, vocab: int = 50, d_model: int = 32, n_head: int = 4, max_len: int = 16, n_layer: int = 2):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, d_model)
        self.pos_emb = nn.Parameter(0.1 * torch.randn(max_len, d_model))
        self.blocks = nn.ModuleList([Block(d_model, n_head, max_len) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, idx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        T = idx.size(1)
        x = self.tok_emb(idx) + self.pos_emb[:T]
        ws: List[torch.Tensor] = []
        for blk in self.blocks:
            x, w = blk(x)
            ws.append(w)
        logits = self.head(self.ln_f(x))
        return logits, torch.stack(ws)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(3, 8, 3, padding=1)),
                    ("bn1", nn.BatchNorm2d(8)),
                    ("relu1", nn.ReLU()),
                    ("pool", nn.MaxPool2d(2)),
                    ("conv2", nn.Conv2d(8, 16, 3, stride=2)),
                    ("bn2", nn.BatchNorm2d(16)),
                    ("relu2", nn.ReLU()),
                ]
            )
        )
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.gap(self.features(x))))


class DictIf(nn.Module):
    def __init__(self):
        super().__init__()
        self.d = nn.ModuleDict({"a": nn.Linear(8, 8), "b": nn.Linear(8, 8)})
        self.layers = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(x.sum() > 0):
            y = self.d["a"](x)
        else:
            y = self.d["b"](x)
        for i, layer in enumerate(self.layers):
            if i > 0:
                y = F.relu(y)
            y = layer(y)
        return y


class Pair(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.a(x), torch.sigmoid(self.b(x))


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.lin(x))


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.pair = Pair()
        self.inner = Inner()
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lin(x)
        x = torch.tanh(x)
        x = self.lin(x)
        a, b = self.pair(x)
        a2, b2 = self.pair(a + b)
        h = self.inner(a2 * b2)
        return self.head(h)


def make_mlp():
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.GELU(), nn.Linear(32, 4))


def make_cnn():
    m = CNN()
    g = torch.Generator().manual_seed(1234)
    for bn in (m.features.bn1, m.features.bn2):
        n = bn.num_features
        with torch.no_grad():
            bn.running_mean.copy_(0.5 * torch.randn(n, generator=g))
            bn.running_var.copy_(0.5 + torch.rand(n, generator=g))
            bn.weight.copy_(1.0 + 0.3 * torch.randn(n, generator=g))
            bn.bias.copy_(0.2 * torch.randn(n, generator=g))
    return m


# ---------------------------------------------------------------------------------------------
# Hook machinery (eager reference)


def flatten_tensors(obj, acc=None):
    """Tensors of a (nested) tuple/list in depth-first order; non-tensors skipped."""
    if acc is None:
        acc = []
    if isinstance(obj, torch.Tensor):
        acc.append(obj)
    elif isinstance(obj, (tuple, list)):
        for e in obj:
            flatten_tensors(e, acc)
    return acc


def map_tensors(obj, fn, counter=None):
    """Rebuilds a (nested) tuple/list, replacing its I-th tensor t by fn(I, t)."""
    if counter is None:
        counter = [0]
    if isinstance(obj, torch.Tensor):
        i = counter[0]
        counter[0] += 1
        return fn(i, obj)
    if isinstance(obj, (tuple, list)):
        return type(obj)(map_tensors(e, fn, counter) for e in obj)
    return obj


def output_items(base, out):
    """(key, tensor) pairs of a call's output under the key convention."""
    if isinstance(out, torch.Tensor):
        return [(base, out)]
    return [("%s:%d" % (base, i), t) for i, t in enumerate(flatten_tensors(out))]


def parse_key(key):
    """'blocks.0.attn@1:1' -> ('blocks.0.attn', 1, 1); 'lin' -> ('lin', 0, None)."""
    assert ":in:" not in key, key
    name, _, elem = key.partition(":")
    name, _, call = name.partition("@")
    return name, int(call) if call else 0, int(elem) if elem else None


def apply_edit(edit, out, inp0, cache):
    kind, dim = edit["kind"], edit["dim"]
    idx = edit.get("_idx")
    if kind == "zero":
        return torch.zeros_like(out) if dim is None else out.index_fill(dim, idx, 0)
    if kind == "mean":
        m = out.mean(dim=0, keepdim=True)
        if dim is None:
            return m.expand_as(out).clone()
        r = out.clone()
        r.index_copy_(dim, idx, m.expand_as(out).index_select(dim, idx))
        return r
    if kind == "patch":
        src = cache[edit["key"]]
        assert src.shape == out.shape and src.dtype == out.dtype
        return src.clone() if dim is None else out.index_copy(dim, idx, src.index_select(dim, idx))
    if kind == "add":
        v = edit["scale"] * edit["_vector"]
        if dim is None:
            return out + v
        r = out.clone()
        r.index_add_(dim, idx, v.expand_as(out).index_select(dim, idx))
        # cross-check: really "out + v" at the selected slices and out elsewhere
        mask = torch.zeros(out.shape, dtype=torch.bool).index_fill(dim, idx, True)
        assert torch.equal(r, torch.where(mask, out + v, out)), edit["name"]
        return r
    if kind == "skip":
        assert inp0 is not None and inp0.shape == out.shape, (edit["name"], inp0, out.shape)
        return inp0
    if kind == "scale2":
        return out * 2
    raise ValueError(kind)


class Tap:
    """Hooks on every submodule (root excluded) of an eager model for one forward.

    record: dict to fill with key -> detached clone (inputs and outputs, call order)
    retain: list to fill with (key, tensor); each call's outputs are replaced by view_as aliases
            with retain_grad() (the gradient of the value returned to the caller)
    edit:   one edit dict (see apply_edit) applied on its key; cache for "patch"
    """

    def __init__(self, model, record=None, retain=None, edit=None, cache=None):
        self.model, self.record, self.retain, self.edit, self.cache = model, record, retain, edit, cache
        self.count, self.stack, self.handles = {}, {}, []
        self.edited = 0
        if edit is not None:
            self.target = parse_key(edit["key"])

    def __enter__(self):
        for name, mod in self.model.named_modules():
            if name == "":
                continue
            self.count[name] = 0
            self.stack[name] = []
            self.handles.append(mod.register_forward_pre_hook(self._pre(name)))
            self.handles.append(mod.register_forward_hook(self._post(name)))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.handles = []

    @staticmethod
    def _base(name, k):
        return name if k == 0 else "%s@%d" % (name, k)

    def _pre(self, name):
        def hook(mod, args):
            k = self.count[name]
            self.count[name] += 1
            self.stack[name].append(k)
            if self.record is not None:
                for i, t in enumerate(flatten_tensors(args)):
                    self.record["%s:in:%d" % (self._base(name, k), i)] = t.detach().clone()

        return hook

    def _post(self, name):
        def hook(mod, args, out):
            k = self.stack[name].pop()
            base = self._base(name, k)
            changed = False
            if self.edit is not None and self.target[:2] == (name, k):
                ins = flatten_tensors(args)
                inp0 = ins[0] if ins else None
                elem = self.target[2]
                if elem is None:
                    assert isinstance(out, torch.Tensor), self.edit["key"]
                    out = apply_edit(self.edit, out, inp0, self.cache)
                else:
                    assert not isinstance(out, torch.Tensor), self.edit["key"]
                    n = len(flatten_tensors(out))
                    assert elem < n, self.edit["key"]
                    out = map_tensors(out, lambda i, t: apply_edit(self.edit, t, inp0, self.cache) if i == elem else t)
                self.edited += 1
                changed = True
            if self.retain is not None:
                out = map_tensors(out, lambda i, t: t.view_as(t))
                for key, t in output_items(base, out):
                    if t.requires_grad:
                        t.retain_grad()
                        self.retain.append((key, t))
                changed = True
            if self.record is not None:
                for key, t in output_items(base, out):
                    self.record[key] = t.detach().clone()
            return out if changed else None

        return hook


def output_dict(out):
    return OrderedDict((k, t.detach().clone()) for k, t in output_items("output", out))


def run_record(model, args):
    rec = OrderedDict()
    with torch.no_grad(), Tap(model, record=rec):
        out = model(*args)
    for k, t in output_items("output", out):
        rec[k] = t.detach().clone()
    return rec, out


# ---------------------------------------------------------------------------------------------
# Scenarios


def g(seed):
    return torch.Generator().manual_seed(seed)


def signed_input(gen, sign):
    """A [3, 8] input for dict_if whose sum has the given sign (mean 0.3 * sign)."""
    x = torch.randn(3, 8, generator=gen)
    x = x - x.mean() + 0.3 * sign
    assert float(x.sum()) * sign > 0
    return x


def build_scenarios():
    """Returns list of dicts: model_name, model, input(s), edits, modes."""
    sc = []

    torch.manual_seed(10)
    mlp = make_mlp().eval()
    sc.append(
        dict(
            name="mlp",
            model_name="mlp",
            model=mlp,
            args=[torch.randn(5, 16, generator=g(11))],
            modes=["scripted", "traced"],
            edits=[
                dict(name="zero_relu", kind="zero", key="1"),
                dict(name="zero_cols", kind="zero", key="2", dim=1, indices=[0, 3, 7]),
                dict(name="mean_first", kind="mean", key="0"),
                dict(name="add_rows", kind="add", key="3", dim=0, indices=[1, 3], scale=1.5, vector_seed=12),
                dict(name="skip_relu", kind="skip", key="1"),
                dict(name="scale2_mid", kind="scale2", key="2"),
            ],
        )
    )

    torch.manual_seed(20)
    cnn = make_cnn().eval()
    sc.append(
        dict(
            name="cnn",
            model_name="cnn",
            model=cnn,
            args=[torch.randn(2, 3, 16, 16, generator=g(21))],
            modes=["scripted", "traced"],
            edits=[
                dict(name="zero_channels", kind="zero", key="features.relu1", dim=1, indices=[1, 5]),
                dict(name="mean_channels", kind="mean", key="features.bn1", dim=1, indices=[0, 2, 4]),
                dict(name="patch_conv2", kind="patch", key="features.conv2", patch_seed=22),
                dict(name="add_channel", kind="add", key="features.conv1", dim=1, indices=[3], scale=0.5, vector_seed=23),
                dict(name="skip_relu2", kind="skip", key="features.relu2"),
                dict(name="scale2_gap", kind="scale2", key="gap"),
            ],
        )
    )

    torch.manual_seed(30)
    gpt = GPT().eval()
    sc.append(
        dict(
            name="gpt",
            model_name="gpt",
            model=gpt,
            args=[torch.randint(0, 50, (2, 8), generator=g(31), dtype=torch.int64)],
            modes=["scripted", "traced"],
            edits=[
                dict(name="zero_heads", kind="zero", key="blocks.0.attn:1", dim=1, indices=[0, 2]),
                dict(name="add_attn_out", kind="add", key="blocks.1.attn:0", scale=0.75, vector_seed=32),
                dict(name="patch_positions", kind="patch", key="blocks.0:0", dim=1, indices=[1, 4, 6], patch_seed=33),
                dict(name="mean_gelu", kind="mean", key="blocks.1.mlp.1"),
                dict(name="skip_mlp", kind="skip", key="blocks.0.mlp"),
                dict(name="scale2_emb", kind="scale2", key="tok_emb"),
                dict(name="zero_ln2", kind="zero", key="blocks.1.ln2"),
            ],
        )
    )

    torch.manual_seed(40)
    dict_if = DictIf().eval()
    x_pos = signed_input(g(41), 1.0)
    x_neg = signed_input(g(42), -1.0)
    assert float(x_pos.sum()) > 0 and float(x_neg.sum()) < 0
    sc.append(
        dict(
            name="dict_if",
            model_name="dict_if",
            model=dict_if,
            args=[x_pos],
            modes=["scripted", "traced"],
            edits=[
                dict(name="scale2_a", kind="scale2", key="d.a"),
                dict(name="zero_cols", kind="zero", key="layers.0", dim=1, indices=[2, 3]),
                dict(name="patch_a", kind="patch", key="d.a", patch_seed=43, patch_sign=1.0),
                dict(name="add_rows", kind="add", key="layers.0", dim=0, indices=[0, 2], scale=-2.0, vector_seed=44),
            ],
        )
    )
    sc.append(
        dict(
            name="dict_if_neg",
            model_name="dict_if",
            variant="neg",
            model=dict_if,
            args=[x_neg],
            modes=["scripted"],
            edits=[
                dict(name="zero_b", kind="zero", key="d.b"),
                dict(name="mean_rows", kind="mean", key="d.b", dim=0, indices=[1]),
                dict(name="scale2_last", kind="scale2", key="layers.1"),
            ],
        )
    )

    torch.manual_seed(50)
    twice = Twice().eval()
    sc.append(
        dict(
            name="twice",
            model_name="twice",
            model=twice,
            args=[torch.randn(4, 8, generator=g(51))],
            modes=["scripted", "traced"],
            edits=[
                dict(name="scale2_lin1", kind="scale2", key="lin@1"),
                dict(name="patch_pair1_b", kind="patch", key="pair@1:1", dim=1, indices=[0, 5], patch_seed=52),
                dict(name="mean_lin0_cols", kind="mean", key="lin", dim=1, indices=[0, 4]),
                dict(name="skip_inner", kind="skip", key="inner"),
                dict(name="add_pair0_a", kind="add", key="pair:0", dim=1, indices=[1, 2], scale=-2.0, vector_seed=53),
                dict(name="zero_inner_lin", kind="zero", key="inner.lin"),
                dict(name="mean_pair_a1", kind="mean", key="pair.a@1"),
            ],
        )
    )
    return sc


def make_patch_input(s, e):
    gen = g(e["patch_seed"])
    a0 = s["args"][0]
    if a0.dtype == torch.int64:
        return [torch.randint(0, 50, tuple(a0.shape), generator=gen, dtype=torch.int64)]
    if "patch_sign" in e:  # keep the same branch of dict_if
        return [signed_input(gen, e["patch_sign"])]
    return [torch.randn(tuple(a0.shape), generator=gen)]


def save_args(path, args):
    stio.save(path, OrderedDict(("arg%d" % i, a) for i, a in enumerate(args)))


def assert_same(a, b, what):
    ta, tb = flatten_tensors(a), flatten_tensors(b)
    assert len(ta) == len(tb), what
    for x, y in zip(ta, tb):
        assert x.dtype == y.dtype and x.shape == y.shape, what
        assert torch.equal(x, y), "%s: max diff %g" % (what, (x.double() - y.double()).abs().max())


# ---------------------------------------------------------------------------------------------


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_fixtures.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    t0 = time.time()
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)

    P = lambda f: os.path.join(outdir, f)  # noqa: E731
    manifest = OrderedDict(version=1, cases=[])
    scenarios = build_scenarios()

    # 1. Compile and save every model BEFORE any Python hook is attached (scripting would try to
    #    compile the hooks, tracing would record them).
    compiled = {}
    for s in scenarios:
        m = s["model"]
        for mode in s["modes"]:
            fname = "%s_%s.pt" % (s["model_name"], mode)
            if fname in compiled:
                continue
            with torch.no_grad():
                if mode == "scripted":
                    jm = torch.jit.script(m)
                else:
                    jm = torch.jit.trace(m, tuple(s["args"]))
            jm.save(P(fname))
            compiled[fname] = True

    frozen = torch.jit.freeze(torch.jit.script(scenarios[0]["model"].eval()))
    frozen.save(P("frozen_mlp.pt"))
    fz = torch.jit.load(P("frozen_mlp.pt"))
    assert "prim::CallMethod" not in str(fz.graph), "frozen model still calls submodules"
    with torch.no_grad():
        assert torch.allclose(fz(*scenarios[0]["args"]), scenarios[0]["model"](*scenarios[0]["args"]), atol=1e-5)
    with open(P("not_a_model.pt"), "w") as f:
        f.write("This is not a TorchScript archive, just some junk text.\n" * 4)
    manifest["frozen"] = "frozen_mlp.pt"
    manifest["not_a_model"] = "not_a_model.pt"

    for s in scenarios:
        model, args, sname = s["model"], s["args"], s["name"]
        input_file = "%s.input.safetensors" % sname
        save_args(P(input_file), args)

        # reference hooks (no grad)
        rec, base_out = run_record(model, args)
        base_out_d = output_dict(base_out)
        # the hook recording must not change anything
        with torch.no_grad():
            assert_same(model(*args), base_out, sname + " hooks changed the output")

        # gradients
        retained = []
        with torch.enable_grad(), Tap(model, retain=retained):
            out = model(*args)
        out_items = output_items("output", out)
        gen = g(1000 + sum(map(ord, sname)))
        grads_file = OrderedDict()
        bw_t, bw_g = [], []
        for (k, t) in out_items:
            if t.is_floating_point():
                gi = torch.randn(tuple(t.shape), generator=gen, dtype=t.dtype)
                grads_file["grad_in" + k[len("output"):]] = gi
                if t.requires_grad:
                    t.retain_grad()
                    bw_t.append(t)
                    bw_g.append(gi)
        torch.autograd.backward(bw_t, bw_g)
        grad_keys = []
        seen = set()
        for k, t in retained + out_items:
            if k in seen or t.grad is None:
                continue
            seen.add(k)
            grads_file[k] = t.grad.detach().clone()
            grad_keys.append(k)
        with torch.no_grad():
            assert_same(out, base_out, sname + " grad run output differs")

        # edits (shared by the scripted/traced cases of this scenario)
        edits_json = []
        for e in s["edits"]:
            e = dict(e)
            e.setdefault("dim", None)
            efile = lambda suffix: "%s.edit.%s.%s.safetensors" % (sname, e["name"], suffix)  # noqa: E731
            ej = OrderedDict(name=e["name"], kind=e["kind"], key=e["key"])
            mname, call, elem = parse_key(e["key"])
            ej.update(module=mname, call=call, element=elem, dim=e["dim"])
            assert e["key"] in rec, (sname, e["key"])
            params = OrderedDict()
            if e.get("indices") is not None:
                e["_idx"] = torch.tensor(e["indices"], dtype=torch.int64)
                assert len(set(e["indices"])) == len(e["indices"])
                params["indices"] = e["_idx"]
            if e["kind"] == "add":
                n = rec[e["key"]].shape[-1]
                e["_vector"] = torch.randn(n, generator=g(e["vector_seed"]), dtype=torch.float32)
                params["vector"] = e["_vector"]
                assert float(torch.tensor(e["scale"], dtype=torch.float32)) == e["scale"]
            pfile = efile("params") if params else None
            if params:
                stio.save(P(pfile), params)
            ej["indices"] = e.get("indices")
            ej["indices_file"] = pfile if "indices" in params else None
            ej["data"] = pfile if "vector" in params else None
            ej["scale"] = e.get("scale")
            cache = None
            ej["patch_input"] = ej["patch_hooks"] = None
            if e["kind"] == "patch":
                pargs = make_patch_input(s, e)
                ej["patch_input"] = efile("patch_input")
                save_args(P(ej["patch_input"]), pargs)
                cache, _ = run_record(model, pargs)
                assert e["key"] in cache
                ej["patch_hooks"] = efile("patch_hooks")
                stio.save(P(ej["patch_hooks"]), cache)
            tap = Tap(model, edit=e, cache=cache)
            with torch.no_grad(), tap:
                eout = model(*args)
            assert tap.edited == 1, (sname, e["name"], tap.edited)
            eout_d = output_dict(eout)
            assert list(eout_d) == list(base_out_d)
            assert any(not torch.equal(eout_d[k], base_out_d[k]) for k in eout_d), (sname, e["name"], "no effect")
            ej["expected"] = efile("expected")
            stio.save(P(ej["expected"]), eout_d)
            edits_json.append(ej)

        for mode in s["modes"]:
            cname = "%s_%s" % (s["model_name"], mode) + ("_" + s["variant"] if s.get("variant") else "")
            mfile = "%s_%s.pt" % (s["model_name"], mode)
            # reloaded TorchScript must reproduce eager bit for bit (several runs: the profiling
            # executor optimizes after the first ones)
            jm = torch.jit.load(P(mfile))
            jm.eval()
            with torch.no_grad():
                for _ in range(3):
                    assert_same(jm(*args), base_out, cname + " TorchScript != eager")
            jout = jm(*args)
            assert_same(jout, base_out, cname + " TorchScript (grad mode) != eager")
            hooks_file = "%s.hooks.safetensors" % cname
            stio.save(P(hooks_file), rec, metadata={"case": cname})
            grads_name = "%s.grads.safetensors" % cname
            stio.save(P(grads_name), grads_file, metadata={"case": cname})
            manifest["cases"].append(
                OrderedDict(
                    name=cname,
                    model_name=s["model_name"],
                    mode=mode,
                    model=mfile,
                    input=input_file,
                    input_names=["arg%d" % i for i in range(len(args))],
                    output_keys=list(base_out_d),
                    hooks=hooks_file,
                    grads=grads_name,
                    grad_keys=grad_keys,
                    edits=edits_json,
                )
            )

    with open(P("manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print("make_fixtures: %d cases written to %s in %.1f s" % (len(manifest["cases"]), outdir, time.time() - t0))


if __name__ == "__main__":
    main()
