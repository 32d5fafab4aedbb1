#!/usr/bin/env python3
"""Reference encoder for strata's Tokenizer tests: llama2.c's tokenizer file and encode rules.

    llama2c_tokenizer.py TOKENIZER.bin TEXTS.json

TEXTS.json holds a JSON list of texts, each as the hex digits of its bytes (so that invalid UTF-8
travels too); prints a JSON list with, for each text, the token ids of encode(text, bos=True,
eos=False). Written separately from the C++ code on purpose.
"""

import json
import struct
import sys


def read_vocab(path):
    data = open(path, "rb").read()
    (max_len,) = struct.unpack_from("<i", data, 0)
    pos, pieces, scores = 4, [], []
    while pos < len(data):
        score, n = struct.unpack_from("<fi", data, pos)
        pos += 8
        pieces.append(data[pos:pos + n])
        scores.append(score)
        pos += n
    return max_len, pieces, scores


def encode(raw, pieces, scores, bos=True, eos=False):
    lookup = {}
    for i, p in enumerate(pieces):
        lookup.setdefault(p, i)
    ids = [1] if bos else []
    if raw:
        ids.append(lookup[b" "])
    # Split into UTF-8 sequences of at most four bytes: a sequence is a lead byte plus the
    # continuation bytes (10xxxxxx) that follow it; a fifth continuation byte starts a new one.
    chunks, current = [], b""
    for b in raw:
        if (b & 0xC0) != 0x80 or len(current) >= 4:
            if current:
                chunks.append(current)
            current = b""
        current += bytes([b])
    if current:
        chunks.append(current)
    for chunk in chunks:
        if chunk in lookup:
            ids.append(lookup[chunk])
        else:
            ids.extend(b + 3 for b in chunk)
    # Merge the adjacent pair whose concatenation is the highest-scoring piece, leftmost first.
    while True:
        best = None
        for i in range(len(ids) - 1):
            merged = lookup.get(pieces[ids[i]] + pieces[ids[i + 1]])
            if merged is not None and (best is None or scores[merged] > best[0]):
                best = (scores[merged], i, merged)
        if best is None:
            break
        _, i, merged = best
        ids[i:i + 2] = [merged]
    if eos:
        ids.append(2)
    return ids


def main():
    _, pieces, scores = read_vocab(sys.argv[1])
    texts = [bytes.fromhex(t) for t in json.load(open(sys.argv[2]))]
    print(json.dumps([encode(t, pieces, scores) for t in texts]))


if __name__ == "__main__":
    main()
