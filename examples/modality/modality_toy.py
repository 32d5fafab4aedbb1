#!/usr/bin/python3
"""A toy vision-language model and a controllable conflict dataset for `strata modality`.

The task: "what colour is the object?". Each item has
  - an IMAGE, 3 x 12 x 12: a grey, noisy background with one square object of one of six colours;
    visual difficulty dv in [0, 1] raises the pixel noise, shrinks the object and lowers its
    contrast, so the colour gets harder to see;
  - a TEXT, 8 clue words: each word is either a colour name or the filler "unk"; textual
    difficulty dt in [0, 1] makes fewer words informative and more of the informative ones name a
    wrong colour, so the majority gets harder to read.
The two difficulties are drawn independently, as in the MC2 benchmark of "When Modalities
Conflict" (2025). A conflicting pair gives the text one colour and the image another.

Token sequence (10 tokens): [flag, w1 .. w8, "?"], flag = <img> when an image is present,
<noimg> when it is absent (the image is then all zeros); absent text is eight <none> tokens.
The answer is read at the last position ("?").

The model (ModalityVLM): an image encoder (4x4-patch convolution + MLP, 9 patch vectors), a text
encoder (token embedding + MLP), their outputs concatenated with a learned position embedding
and fed to a transformer (`blocks.0` .. `blocks.3`, pre-LayerNorm, bidirectional attention),
then the final LayerNorm `norm` and the unembedding `unembed`: forward(tokens [B, 10] int64,
image [B, 3, 12, 12] float32) -> logits [B, 19, V]. The logit lens finds blocks/norm/unembed by
itself. Training mixes text-only, image-only and joint (same colour) items; in a fraction
`--lie` of the joint items the text names a wrong colour (noisy captions), which gives the model
an inherent preference for the image that the balance point should reveal.

Usage:
  modality_toy.py train OUT.pt [--steps N] [--seed S] [--lie F] [--tiny]
  modality_toy.py data OUT_DIR [--n N] [--seed S]
      writes OUT_DIR/{text,image,joint}_inputs.safetensors (arg0 tokens, arg1 image: the three
      runs of each conflicting item) and OUT_DIR/items.safetensors (text_color, image_color,
      text_difficulty, image_difficulty; colours are token ids)
  modality_toy.py fixture OUT_DIR [--n N]
      the tests' fixture: train --tiny to OUT_DIR/tiny.pt, then data and logits in OUT_DIR
  modality_toy.py logits MODEL.pt OUT_DIR
      runs the three passes in PyTorch and writes OUT_DIR/{text,image,joint}.safetensors with
      `logits` [N, V] at the answer position (the input format of `strata modality --text ...`)
Everything is seeded; training uses one thread (about 3 minutes on 2 CPU cores for the default
1200 steps; --tiny: a 2-block model, 150 steps, a few seconds, for tests).
"""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "python"))
import stio  # noqa: E402  (the project's plain safetensors writer)

NONE, IMG, NOIMG, QUESTION, UNK = 0, 1, 2, 3, 4
COLORS = ["red", "green", "blue", "yellow", "cyan", "magenta"]
COLOR0 = 5  # token id of the first colour
VOCAB = COLOR0 + len(COLORS)  # 11
TOKEN_NAMES = ["<none>", "<img>", "<noimg>", "?", "unk"] + COLORS
RGB = torch.tensor([[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1], [-1, 1, 1], [1, -1, 1]],
                   dtype=torch.float32)
WORDS = 8
SIDE = 12
PATCH = 4
SEQ = (SIDE // PATCH) ** 2 + WORDS + 2  # 9 image patches + flag + 8 words + "?"


# ---------------------------------------------------------------------------------------------
# Data

def make_text(color, dt, g):
    """color [n] in 0..5, dt [n] in [0, 1] -> clue words [n, WORDS] (token ids)."""
    n = color.shape[0]
    p_inf = 1.0 - 0.75 * dt            # share of informative words
    q = 0.95 - 0.6 * dt                # share of informative words naming the right colour
    informative = torch.rand(n, WORDS, generator=g) < p_inf[:, None]
    right = torch.rand(n, WORDS, generator=g) < q[:, None]
    other = (color[:, None] + torch.randint(1, len(COLORS), (n, WORDS), generator=g)) % len(COLORS)
    said = torch.where(right, color[:, None].expand(n, WORDS), other)
    return torch.where(informative, COLOR0 + said, torch.full_like(said, UNK))


def make_image(color, dv, g):
    """color [n], dv [n] in [0, 1] -> images [n, 3, SIDE, SIDE]."""
    n = color.shape[0]
    sigma = 0.25 + 1.6 * dv
    size = (6 - 4 * dv).round().long().clamp(min=2)
    contrast = 1.0 - 0.5 * dv
    img = torch.randn(n, 3, SIDE, SIDE, generator=g) * sigma[:, None, None, None]
    ys = torch.arange(SIDE)[None, :]
    y0 = (torch.rand(n, generator=g) * (SIDE - size + 1)).long()[:, None]
    x0 = (torch.rand(n, generator=g) * (SIDE - size + 1)).long()[:, None]
    s = size[:, None]
    rows = (ys >= y0) & (ys < y0 + s)  # [n, SIDE]
    cols = (ys >= x0) & (ys < x0 + s)
    mask = (rows[:, :, None] & cols[:, None, :]).float()  # [n, SIDE, SIDE]
    paint = (RGB[color] * contrast[:, None])[:, :, None, None] * mask[:, None]
    return img + paint


def assemble(words, image, has_text, has_image):
    """Token sequences and images for a batch; absent parts become <none> words / a zero image."""
    n = words.shape[0]
    words = torch.where(has_text[:, None], words, torch.full_like(words, NONE))
    flag = torch.where(has_image, torch.full((n,), IMG), torch.full((n,), NOIMG))
    tokens = torch.cat([flag[:, None], words, torch.full((n, 1), QUESTION)], dim=1)
    image = image * has_image[:, None, None, None].float()
    return tokens.long(), image


def training_batch(n, g, lie):
    color = torch.randint(0, len(COLORS), (n,), generator=g)
    dt = torch.rand(n, generator=g)
    dv = torch.rand(n, generator=g)
    kind = torch.randint(0, 3, (n,), generator=g)  # 0 text only, 1 image only, 2 joint
    text_color = color.clone()
    lying = (kind == 2) & (torch.rand(n, generator=g) < lie)
    text_color[lying] = (color[lying] + torch.randint(1, len(COLORS), (int(lying.sum()),),
                                                      generator=g)) % len(COLORS)
    words = make_text(text_color, dt, g)
    image = make_image(color, dv, g)
    tokens, image = assemble(words, image, kind != 1, kind != 0)
    return tokens, image, COLOR0 + color


def conflict_set(n, seed):
    """n conflicting items: the text names one colour, the image shows another."""
    g = torch.Generator().manual_seed(seed)
    text_color = torch.randint(0, len(COLORS), (n,), generator=g)
    image_color = (text_color + torch.randint(1, len(COLORS), (n,), generator=g)) % len(COLORS)
    dt = torch.rand(n, generator=g)
    dv = torch.rand(n, generator=g)
    words = make_text(text_color, dt, g)
    image = make_image(image_color, dv, g)
    yes, no = torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)
    runs = {
        "text": assemble(words, image, yes, no),
        "image": assemble(words, image, no, yes),
        "joint": assemble(words, image, yes, yes),
    }
    items = {"text_color": COLOR0 + text_color, "image_color": COLOR0 + image_color,
             "text_difficulty": dt, "image_difficulty": dv}
    return runs, items


# ---------------------------------------------------------------------------------------------
# Model

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
        att = ((q @ k.transpose(-2, -1)) / math.sqrt(d // h)).softmax(dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, t, d))


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


class ImageEncoder(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.patch = nn.Conv2d(3, d, PATCH, stride=PATCH)
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))

    def forward(self, image):
        x = self.patch(image).flatten(2).transpose(1, 2)  # [B, 9, d]
        return x + self.mlp(x)


class TextEncoder(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d)
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))

    def forward(self, tokens):
        x = self.embed(tokens)
        return x + self.mlp(x)


class ModalityVLM(nn.Module):
    def __init__(self, d=48, heads=4, layers=4):
        super().__init__()
        self.image_encoder = ImageEncoder(d)
        self.text_encoder = TextEncoder(d)
        self.pos_emb = nn.Parameter(torch.randn(SEQ, d) * 0.02)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(d)
        self.unembed = nn.Linear(d, VOCAB)

    def forward(self, tokens, image):
        x = torch.cat([self.image_encoder(image), self.text_encoder(tokens)], dim=1) + self.pos_emb
        for block in self.blocks:
            x = block(x)
        return self.unembed(self.norm(x))


# ---------------------------------------------------------------------------------------------
# Commands

def train(args):
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(args.seed + 1)
    steps = args.steps if args.steps else (150 if args.tiny else 1200)
    model = ModalityVLM(d=32 if args.tiny else 48, layers=2 if args.tiny else 4)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    start = time.time()
    model.train()
    for step in range(steps):
        tokens, image, label = training_batch(256, g, args.lie)
        loss = F.cross_entropy(model(tokens, image)[:, -1], label)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 500 == 0 or step + 1 == steps:
            print(f"step {step + 1}/{steps}: loss {loss.item():.4f} ({time.time() - start:.0f} s)",
                  flush=True)
    model.eval()
    # Held-out accuracy per run kind (joint items with truthful text).
    gh = torch.Generator().manual_seed(10_000 + args.seed)
    with torch.no_grad():
        for kind, name in [(0, "text only"), (1, "image only"), (2, "joint, consistent")]:
            n = 2000
            color = torch.randint(0, len(COLORS), (n,), generator=gh)
            dt, dv = torch.rand(n, generator=gh), torch.rand(n, generator=gh)
            words, image = make_text(color, dt, gh), make_image(color, dv, gh)
            tokens, image = assemble(words, image, torch.full((n,), kind != 1),
                                     torch.full((n,), kind != 0))
            acc = (model(tokens, image)[:, -1].argmax(-1) == COLOR0 + color).float().mean()
            print(f"held-out accuracy, {name}: {acc.item():.3f}")
    scripted = torch.jit.script(model)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    scripted.save(args.out)
    print(f"wrote {args.out} ({sum(p.numel() for p in model.parameters())} parameters)")


def data(args):
    os.makedirs(args.out, exist_ok=True)
    runs, items = conflict_set(args.n, args.seed)
    for name, (tokens, image) in runs.items():
        stio.save(os.path.join(args.out, f"{name}_inputs.safetensors"),
                  {"arg0": tokens, "arg1": image})
    stio.save(os.path.join(args.out, "items.safetensors"), items)
    print(f"wrote {args.n} conflicting items to {args.out}/"
          "{text,image,joint}_inputs.safetensors and items.safetensors")


def logits(args):
    torch.set_num_threads(1)
    model = torch.jit.load(args.model)
    for name in ["text", "image", "joint"]:
        t, _ = stio.load(os.path.join(args.out, f"{name}_inputs.safetensors"))
        with torch.no_grad():
            out = model(torch.as_tensor(t["arg0"]), torch.as_tensor(t["arg1"]))[:, -1]
        stio.save(os.path.join(args.out, f"{name}.safetensors"), {"logits": out})
    print(f"wrote {args.out}/{{text,image,joint}}.safetensors")


def fixture(args):
    """The tiny model, a small conflict set and its PyTorch logits, for strata's tests."""
    os.makedirs(args.out, exist_ok=True)
    train(argparse.Namespace(out=os.path.join(args.out, "tiny.pt"), steps=0, seed=0, lie=0.15,
                             tiny=True))
    data(argparse.Namespace(out=args.out, n=args.n, seed=1))
    logits(argparse.Namespace(model=os.path.join(args.out, "tiny.pt"), out=args.out))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("out")
    t.add_argument("--steps", type=int, default=0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--lie", type=float, default=0.15)
    t.add_argument("--tiny", action="store_true")
    d = sub.add_parser("data")
    d.add_argument("out")
    d.add_argument("--n", type=int, default=2000)
    d.add_argument("--seed", type=int, default=1)
    lg = sub.add_parser("logits")
    lg.add_argument("model")
    lg.add_argument("out")
    f = sub.add_parser("fixture")
    f.add_argument("out")
    f.add_argument("--n", type=int, default=200)
    a = p.parse_args()
    {"train": train, "data": data, "logits": logits, "fixture": fixture}[a.cmd](a)


if __name__ == "__main__":
    main()
