#!/usr/bin/python3
"""Probing sets for stories260K (llama2.c): text sampled from the model itself (seeded), with
per-token labels computable from the text. At position t the model has read tokens 0..t.

  stories_probe_data.py MODEL.pt TOKENIZER.bin OUTDIR [--sequences 256] [--length 48] [--seed 0]

Writes OUTDIR/stories_<property>.safetensors, each with arg0 (int64 [N, T], BOS first) and
labels (int64 [N, T], -1 = not labelled):
  newword  does the NEXT token start a new word (its piece begins with a space)? 1/0
           (the last position: -1) - a property of the future, so the model must predict it
  prev     the PREVIOUS token's id, for the 12 most frequent previous tokens (others -1)
  period   has a sentence ended by position t (a '.' among tokens 0..t)? 1/0 - the model has
           to remember an event of the past (quotations, the issue's other example, hardly occur
           in 48 sampled tokens of TinyStories text: 0 of 12288 positions with seed 0)
"""
import argparse
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "python"))
import stio  # noqa: E402


def read_tokenizer(path, vocab=512):
    with open(path, "rb") as f:
        data = f.read()
    off = 4  # max_token_length
    pieces = []
    for _ in range(vocab):
        off += 4  # score
        (n,) = struct.unpack_from("<i", data, off)
        off += 4
        pieces.append(data[off: off + n].decode("utf-8", errors="replace"))
        off += n
    return pieces


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("tokenizer")
    ap.add_argument("out")
    ap.add_argument("--sequences", type=int, default=256)
    ap.add_argument("--length", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(2)
    model = torch.jit.load(a.model).eval()
    pieces = read_tokenizer(a.tokenizer)
    gen = torch.Generator().manual_seed(a.seed)
    tokens = torch.ones(a.sequences, 1, dtype=torch.long)  # BOS = 1
    with torch.no_grad():
        for _ in range(a.length - 1):
            logits = model(tokens)[:, -1] / 0.8
            nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)
            tokens = torch.cat([tokens, nxt], 1)
    N, T = tokens.shape
    text = [[pieces[i] for i in row] for row in tokens.tolist()]
    newword = torch.full((N, T), -1, dtype=torch.long)
    quote = torch.zeros(N, T, dtype=torch.long)
    period = torch.zeros(N, T, dtype=torch.long)
    prev = torch.full((N, T), -1, dtype=torch.long)
    for n in range(N):
        inside, ended = 0, 0
        for t in range(T):
            inside ^= text[n][t].count('"') % 2
            ended |= int("." in text[n][t])
            quote[n, t] = inside
            period[n, t] = ended
            if t + 1 < T:
                newword[n, t] = int(text[n][t + 1].startswith(" "))
    counts = torch.bincount(tokens[:, :-1].reshape(-1), minlength=512)
    counts[1] = 0  # BOS is not a previous token of interest
    top = set(torch.argsort(counts, descending=True)[:12].tolist())
    for n in range(N):
        for t in range(1, T):
            p = int(tokens[n, t - 1])
            if p in top:
                prev[n, t] = p
    for name, lab in (("newword", newword), ("prev", prev), ("period", period)):
        stio.save(os.path.join(a.out, f"stories_{name}.safetensors"), {"arg0": tokens, "labels": lab})
    sample = "".join(text[0][1:]).replace("\n", " ")
    print(f"{N} sampled sequences of {T} tokens, e.g.: {sample[:160]}...")
    print(f"inside a quotation: {quote.float().mean():.3f} of positions; a sentence has ended: "
          f"{period.float().mean():.3f}; next token starts a word: "
          f"{(newword[newword >= 0]).float().mean():.3f}; previous-token classes: "
          + ", ".join(repr(pieces[i]) for i in sorted(top, key=lambda i: -counts[i])))


if __name__ == "__main__":
    main()
