#!/usr/bin/python3
"""Cross-checks strata's safetensors code against tests/python/stio.py and plain numpy.

  write_samples.py write DIR   writes DIR/samples.safetensors and DIR/unicode.safetensors with stio
  write_samples.py check FILE  checks a file strata wrote: stio.load and a numpy-only reader must
                               both find expected_for_check() and METADATA

Run by tests/io/safetensors_test.cpp with /usr/bin/python3 (it needs numpy and torch); the C++
test computes the same values (expected_samples() there) and compares exactly. Exit status: 0
when every check passed, 1 when one failed, 77 when numpy or torch is missing.
"""
import json
import os
import struct
import sys

try:
    import numpy as np
    import torch
except ImportError as e:  # the C++ test skips on this exit status
    print(f"write_samples.py: {e}", file=sys.stderr)
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import stio  # noqa: E402

# Sorted keys: strata writes metadata from a std::map, so the bytes match stio's.
METADATA = {"format": "pt", "producer": "strata-tests"}

UNICODE_NAME = "gr\u00f6\u00dfe.\u00e9\U0001d11e"
UNICODE_METADATA = {"note": "na\u00efve \u2603 \U0001d11e", "plain": "x"}


def _ar(n):
    return np.arange(n, dtype=np.float64)


def samples():
    """name -> numpy array (bf16 as a torch tensor), in file order; mirrors expected_samples()."""
    return {
        "f32": ((_ar(24) - 11.5) * 0.25).astype(np.float32).reshape(2, 3, 4),
        "f16": ((_ar(15) - 7) * 0.5).astype(np.float16).reshape(5, 3),
        # Every value fits bf16's 8 significant bits exactly.
        "bf16": torch.from_numpy((_ar(16) - 8) * 0.125 + _ar(16) / 128)
        .to(torch.bfloat16)
        .view(4, 4),
        "f64": ((_ar(6) - 1) / 3.0).reshape(2, 3),
        "i64": (np.arange(6, dtype=np.int64) - 3) * 1000000000007,
        "i32": ((np.arange(8, dtype=np.int64) - 4) * 100000007).astype(np.int32).reshape(2, 2, 2),
        "i16": ((np.arange(7) - 3) * 10007).astype(np.int16),
        "i8": ((np.arange(9) - 4) * 31).astype(np.int8),
        "u8": (np.arange(10) * 25 + 5).astype(np.uint8),
        "bool": (np.arange(9) % 3 == 0).reshape(3, 3),
        "empty": np.zeros((0, 3), dtype=np.int32),
        "f32_special": np.array(
            [np.inf, -np.inf, -0.0, np.nan, np.finfo(np.float32).smallest_subnormal,
             np.finfo(np.float32).max],
            dtype=np.float32,
        ),
    }


def expected_for_check():
    """What strata's file must hold: samples() (bf16 as float32), then "f32_t" (strata writes a
    transposed view of "f32") and the 0-dim "scalar". The scalar only goes this way: stio stores
    0-dim arrays as shape [1] (np.ascontiguousarray returns ndim >= 1)."""
    out = {}
    for name, value in samples().items():
        if isinstance(value, torch.Tensor):
            value = value.float().numpy()
        out[name] = value
    out["f32_t"] = np.ascontiguousarray(out["f32"].transpose(2, 1, 0))
    out["scalar"] = np.array(3.5, dtype=np.float32)
    return out


_NP_DTYPES = {
    "F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "I32": "<i4",
    "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?",
}


def numpy_load(path):
    """A second reader, numpy only, that also checks strata's layout choices."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    assert n % 8 == 0, f"header length {n} is not a multiple of 8"
    text = data[8 : 8 + n].decode("utf-8")
    stripped = text.rstrip(" ")
    assert stripped.endswith("}") and len(text) - len(stripped) < 8, "header padding is not spaces"
    header = json.loads(text)
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    expected_begin = 0
    for name, info in header.items():
        begin, end = info["data_offsets"]
        assert begin == expected_begin, f"{name}: begins at {begin}, not {expected_begin}"
        expected_begin = end
        raw = data[base + begin : base + end]
        shape = tuple(info["shape"])
        if info["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            out[name] = bits.view(np.float32).reshape(shape)
        else:
            out[name] = np.frombuffer(raw, dtype=_NP_DTYPES[info["dtype"]]).reshape(shape)
    assert base + expected_begin == len(data), "trailing bytes after the last tensor"
    return out, meta


def same(got, want):
    """Same shape, same dtype, same bytes (so -0.0 and NaN patterns count too)."""
    got, want = np.asarray(got), np.asarray(want)
    return got.shape == want.shape and got.dtype == want.dtype and got.tobytes() == want.tobytes()


def check(path):
    expected = expected_for_check()
    failures = []
    for reader_name, reader in (("stio.load", stio.load), ("numpy", numpy_load)):
        tensors, meta = reader(path)
        if meta != METADATA:
            failures.append(f"{reader_name}: metadata {meta!r} != {METADATA!r}")
        if list(tensors) != list(expected):
            failures.append(f"{reader_name}: names {list(tensors)} != {list(expected)}")
        for name, want in expected.items():
            got = tensors.get(name)
            if got is None or not same(got, want):
                failures.append(f"{reader_name}: {name}: got {got!r}, want {want!r}")
    for f in failures:
        print("write_samples.py check:", f, file=sys.stderr)
    return 1 if failures else 0


def write(directory):
    stio.save(os.path.join(directory, "samples.safetensors"), samples(), METADATA)
    stio.save(
        os.path.join(directory, "unicode.safetensors"),
        {UNICODE_NAME: np.array([1, 2, 3], dtype=np.uint8)},
        UNICODE_METADATA,
    )
    return 0


def main(argv):
    if len(argv) != 3 or argv[1] not in ("write", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    return write(argv[2]) if argv[1] == "write" else check(argv[2])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
