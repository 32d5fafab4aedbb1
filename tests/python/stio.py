"""A small, independent safetensors reader/writer in plain Python + numpy.

It exists so the tests can check strata's C++ implementation against a second implementation
of the public format (8-byte little-endian header length, JSON header, raw little-endian data)
written without looking at strata's code. torch tensors are accepted for convenience; bfloat16
is stored from its raw 16-bit pattern.
"""
import json
import struct

import numpy as np

_NP_TO_ST = {
    np.dtype(np.float32): "F32",
    np.dtype(np.float16): "F16",
    np.dtype(np.int64): "I64",
    np.dtype(np.int32): "I32",
    np.dtype(np.bool_): "BOOL",
    np.dtype(np.float64): "F64",
    np.dtype(np.uint8): "U8",
    np.dtype(np.int8): "I8",
    np.dtype(np.int16): "I16",
}
_ST_TO_NP = {v: k for k, v in _NP_TO_ST.items()}


def _to_raw(value):
    """Returns (dtype string, shape list, little-endian bytes) for a numpy array or torch tensor."""
    try:
        import torch  # only to accept torch tensors; the format code below does not use it

        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            if t.dtype == torch.bfloat16:
                raw = t.view(torch.int16).numpy().astype("<i2").tobytes()
                return "BF16", list(t.shape), raw
            value = t.numpy()
    except ImportError:
        pass
    arr = np.asarray(value, order="C")  # (ascontiguousarray would turn 0-dim into 1-dim)
    code = _NP_TO_ST[arr.dtype]
    return code, list(arr.shape), arr.astype(arr.dtype.newbyteorder("<")).tobytes()


def save(path, tensors, metadata=None, align=8):
    """Writes `tensors` (name -> array) in insertion order; pads the header with spaces."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, value in tensors.items():
        code, shape, raw = _to_raw(value)
        header[name] = {"dtype": code, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((-len(text)) % align)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def load(path):
    """Reads a safetensors file; returns (dict name -> numpy array, metadata dict).

    BF16 tensors come back as float32 arrays (exact: bf16 values are float32 values).
    """
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    base = 8 + n
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = data[base + begin : base + end]
        shape = tuple(info["shape"])
        if info["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            out[name] = bits.view(np.float32).reshape(shape)
        else:
            dt = _ST_TO_NP[info["dtype"]].newbyteorder("<")
            out[name] = np.frombuffer(raw, dtype=dt).reshape(shape).astype(dt.newbyteorder("="))
    return out, meta
