#!/usr/bin/python3
"""Converts the face-expression model of npm @vladmandic/face-api@1.7.15 (tfjs weights) to
TorchScript.

The architecture follows the package's TypeScript sources (src/faceFeatureExtractor/
FaceFeatureExtractor.ts, denseBlock.ts, src/common/depthwiseSeparableConv.ts,
src/faceProcessor/FaceProcessor.ts): four dense blocks of (depthwise-separable) 3x3 convolutions
with TF "SAME" padding, 7x7 average pooling, a fully connected layer to 7 expression logits
(neutral, happy, sad, angry, fearful, disgusted, surprised). The package applies softmax on top;
the TorchScript model returns the logits, so LRP explains a logit.

Input: float32 [N, 3, 112, 112], the face crop the package feeds its network (toBatchTensor(112))
normalised as the package does: (rgb - [122.782, 117.001, 104.298]) / 255.

TF "SAME" padding with stride 2 on an even size pads one row/column at the bottom/right only, so
every convolution is preceded by an explicit ZeroPad2d and uses padding 0.

usage: convert.py PACKAGE_DIR OUT.pt
"""
import json
import os
import sys

import numpy as np
import torch
from torch import nn

MEAN_RGB = [122.782, 117.001, 104.298]
LABELS = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]


def load_weights(model_dir, name):
    """tfjs weights manifest + shards -> {name: np.ndarray} (uint8 quantisation undone)."""
    with open(os.path.join(model_dir, name + "-weights_manifest.json")) as f:
        manifest = json.load(f)
    out = {}
    for group in manifest:
        data = b"".join(open(os.path.join(model_dir, p), "rb").read() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            q = w.get("quantization")
            if q:
                assert q["dtype"] == "uint8", q
                raw = np.frombuffer(data, np.uint8, n, off)
                off += n
                val = raw.astype(np.float32) * np.float32(q["scale"]) + np.float32(q["min"])
            else:
                assert w["dtype"] == "float32", w
                val = np.frombuffer(data, np.float32, n, off).copy()
                off += 4 * n
            out[w["name"]] = val.reshape(w["shape"])
        if off != len(data):
            raise SystemExit(f"{name}: read {off} of {len(data)} weight bytes")
    return out


def same_pad(kernel, stride, size):
    """TF 'SAME' padding (left, right, top, bottom) for a square input of `size`."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    lo = total // 2
    return (lo, total - lo, lo, total - lo)


class SeparableConv(nn.Module):
    """tf.separableConv2d(x, depthwise, pointwise, stride, 'same') + bias."""

    def __init__(self, cin, cout, stride, size):
        super().__init__()
        self.pad = nn.ZeroPad2d(same_pad(3, stride, size))
        self.depthwise = nn.Conv2d(cin, cin, 3, stride, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, 1, bias=True)

    def forward(self, x):
        return self.pointwise(self.depthwise(self.pad(x)))


class FirstConv(nn.Module):
    """tf.conv2d(x, filters, 2, 'same') + bias."""

    def __init__(self, cin, cout, size):
        super().__init__()
        self.pad = nn.ZeroPad2d(same_pad(3, 2, size))
        self.conv = nn.Conv2d(cin, cout, 3, 2, bias=True)

    def forward(self, x):
        return self.conv(self.pad(x))


class DenseBlock4(nn.Module):
    """denseBlock4 of src/faceFeatureExtractor/denseBlock.ts (isScaleDown = true)."""

    def __init__(self, cin, cout, size, first):
        super().__init__()
        self.conv0 = FirstConv(cin, cout, size) if first else SeparableConv(cin, cout, 2, size)
        half = size // 2
        self.conv1 = SeparableConv(cout, cout, 1, half)
        self.conv2 = SeparableConv(cout, cout, 1, half)
        self.conv3 = SeparableConv(cout, cout, 1, half)
        self.relu0 = nn.ReLU()
        self.relu1 = nn.ReLU()
        self.relu2 = nn.ReLU()
        self.relu3 = nn.ReLU()

    def forward(self, x):
        out1 = self.relu0(self.conv0(x))
        out2 = self.conv1(out1)
        in3 = self.relu1(out1 + out2)
        out3 = self.conv2(in3)
        in4 = self.relu2(out1 + (out2 + out3))
        out4 = self.conv3(in4)
        return self.relu3(out1 + (out2 + (out3 + out4)))


class FaceExpressionNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense0 = DenseBlock4(3, 32, 112, True)
        self.dense1 = DenseBlock4(32, 64, 56, False)
        self.dense2 = DenseBlock4(64, 128, 28, False)
        self.dense3 = DenseBlock4(128, 256, 14, False)
        self.pool = nn.AvgPool2d(7, 2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(256, 7)

    def forward(self, x):
        x = self.dense3(self.dense2(self.dense1(self.dense0(x))))
        return self.fc(self.flatten(self.pool(x)))


def build(weights):
    net = FaceExpressionNet().eval()
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    with torch.no_grad():
        for b in range(4):
            blk = getattr(net, f"dense{b}")
            for c in range(4):
                p = f"dense{b}/conv{c}/"
                mod = getattr(blk, f"conv{c}")
                if isinstance(mod, FirstConv):
                    mod.conv.weight.copy_(t(weights[p + "filters"]).permute(3, 2, 0, 1))
                    mod.conv.bias.copy_(t(weights[p + "bias"]))
                else:
                    # depthwise [3, 3, C, 1] -> [C, 1, 3, 3]; pointwise [1, 1, C, O] -> [O, C, 1, 1]
                    mod.depthwise.weight.copy_(t(weights[p + "depthwise_filter"]).permute(2, 3, 0, 1))
                    mod.pointwise.weight.copy_(t(weights[p + "pointwise_filter"]).permute(3, 2, 0, 1))
                    mod.pointwise.bias.copy_(t(weights[p + "bias"]))
        net.fc.weight.copy_(t(weights["fc/weights"]).t())
        net.fc.bias.copy_(t(weights["fc/bias"]))
    used = {f"dense{b}/conv{c}/{k}" for b in range(4) for c in range(4)
            for k in (["filters", "bias"] if b == 0 and c == 0
                      else ["depthwise_filter", "pointwise_filter", "bias"])} | {"fc/weights", "fc/bias"}
    missing = set(weights) - used
    if missing:
        raise SystemExit(f"unused tfjs weights: {sorted(missing)}")
    return net


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: convert.py PACKAGE_DIR OUT.pt")
    pkg, out = sys.argv[1], sys.argv[2]
    weights = load_weights(os.path.join(pkg, "model"), "face_expression_model")
    net = build(weights)
    scripted = torch.jit.script(net)
    scripted.save(out)
    n = sum(p.numel() for p in net.parameters())
    print(f"wrote {out}: FaceExpressionNet, {n} parameters, input [N, 3, 112, 112] "
          f"(rgb - {MEAN_RGB}) / 255, output 7 logits {LABELS}")


if __name__ == "__main__":
    main()
