#!/usr/bin/python3
"""Test-time fixtures for strata's LRP tests, made with PyTorch (never committed).

Independent references, written from the formulas (Montavon et al. 2019; Zennit's rule
definitions), not from strata's code:
  * every rule on a Linear, a Conv2d and a depthwise Conv2d layer in matrix form: the layer's
    Jacobian W and bias vector b, relevance R_in computed with explicit matrix products;
  * gradient x input (autograd) of a bias-free ReLU network, and of the face-expression model.

usage: make_lrp_fixtures.py OUT_DIR [FACEAPI_DIR]
"""
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import stio  # noqa: E402

torch.set_default_dtype(torch.float64)

RULES = ["zero", "epsilon:0.1", "gamma:0.25", "alphabeta:2:1", "zplus", "zbox:-2:3", "flat",
         "wsquare"]


def stab(z, eps=1e-6):
    return z + ((z == 0).to(z) + z.sign()) * eps


def safe_div(a, b):
    return torch.where(b != 0, a / torch.where(b != 0, b, torch.ones_like(b)), torch.zeros_like(a))


def as_matrix(layer, x):
    """Jacobian W [m, n] and bias vector b [m] of the (affine) layer at x (batch 1)."""
    f = lambda v: layer(v.reshape(x.shape)).flatten()
    W = torch.autograd.functional.jacobian(f, x.flatten())
    b = f(x.flatten()) - W @ x.flatten()
    return W.detach(), b.detach()


def connectivity(layer, x):
    """1 where input j feeds output k (the layer with all weights one, no bias)."""
    ones = type(layer)
    with torch.no_grad():
        w = layer.weight.detach().clone()
        layer.weight.fill_(1.0)
        bias = None
        if layer.bias is not None:
            bias = layer.bias.detach().clone()
            layer.bias.zero_()
    C, _ = as_matrix(layer, x)
    with torch.no_grad():
        layer.weight.copy_(w)
        if bias is not None:
            layer.bias.copy_(bias)
    return (C != 0).to(C)


def rule_matrix(rule, W, b, x, R, C):
    """R_in for rule `rule` in matrix form; x [n], R [m] (relevance at the layer's output)."""
    name, *p = rule.split(":")
    p = [float(v) for v in p]
    xp, xn = x.clamp(min=0), x.clamp(max=0)
    Wp, Wn = W.clamp(min=0), W.clamp(max=0)
    bp, bn = b.clamp(min=0), b.clamp(max=0)
    z = W @ x + b
    if name == "zero":
        return x * (W.t() @ safe_div(R, z))
    if name == "epsilon":
        return x * (W.t() @ (R / stab(z, p[0])))
    if name in ("zplus", "alphabeta"):
        a, be = (1.0, 0.0) if name == "zplus" else (p[0], p[1])
        zp = Wp @ xp + Wn @ xn + bp
        zn = Wn @ xp + Wp @ xn + bn
        rp, rn = R / stab(zp), R / stab(zn)
        return (a * (xp * (Wp.t() @ rp) + xn * (Wn.t() @ rp))
                - be * (xp * (Wn.t() @ rn) + xn * (Wp.t() @ rn)))
    if name == "gamma":
        g = p[0]
        Wa, Wb = W + g * Wp, W + g * Wn
        ba, bb = b + g * bp, b + g * bn
        Zp = Wa @ xp + ba + Wb @ xn
        Zn = Wb @ xp + bb + Wa @ xn
        Rp = R * (z > 0).to(z) / stab(Zp)
        Rn = R * (z < 0).to(z) / stab(Zn)
        return xp * (Wa.t() @ Rp) + xn * (Wb.t() @ Rp) + xp * (Wb.t() @ Rn) + xn * (Wa.t() @ Rn)
    if name == "zbox":
        L = torch.full_like(x, p[0])
        H = torch.full_like(x, p[1])
        d = z - (Wp @ L + bp) - (Wn @ H + bn)
        r = R / stab(d)
        return x * (W.t() @ r) - L * (Wp.t() @ r) - H * (Wn.t() @ r)
    if name == "flat":
        return C.t() @ (R / stab(C @ torch.ones_like(x)))
    if name == "wsquare":
        W2 = W * W
        return W2.t() @ (R / stab(W2 @ torch.ones_like(x) + b * b))
    raise ValueError(rule)


class RuleNet(nn.Module):
    """layer -> flatten -> readout (bias-free Linear, explained with LRP-0 = plain gradient)."""

    def __init__(self, layer, m, classes=3):
        super().__init__()
        self.layer = layer
        self.flatten = nn.Flatten()
        self.readout = nn.Linear(m, classes, bias=False)

    def forward(self, x):
        return self.readout(self.flatten(self.layer(x)))


def rule_cases(out):
    gen = torch.Generator().manual_seed(5)
    cases = {
        "linear": (nn.Linear(6, 5), torch.randn(1, 6, generator=gen)),
        "conv": (nn.Conv2d(3, 4, 3, stride=2, padding=1), torch.randn(1, 3, 6, 6, generator=gen)),
        "depthwise": (nn.Conv2d(4, 4, 3, stride=1, padding=1, groups=4, bias=True),
                      torch.randn(1, 4, 5, 5, generator=gen)),
    }
    refs = {}
    for name, (layer, x) in cases.items():
        with torch.no_grad():
            for prm in layer.parameters():
                prm.copy_(torch.randn(prm.shape, generator=gen) * 0.7)
        m = layer(x).numel()
        net = RuleNet(layer, m).eval()
        with torch.no_grad():
            net.readout.weight.copy_(torch.randn(net.readout.weight.shape, generator=gen))
        net = net.float()
        torch.jit.script(net).save(os.path.join(out, f"rule_{name}.pt"))
        # The reference in float64 from the same (float32-rounded) parameters.
        net = net.double()
        W, b = as_matrix(net.layer, x)
        C = connectivity(net.layer, x)
        target = 1
        v = net.readout.weight[target].detach()
        with torch.no_grad():
            y = net.layer(x).flatten()
        R_out = y * v  # LRP-0 through the bias-free readout: activation x gradient
        refs[f"{name}/x"] = x.float()
        for rule in RULES:
            refs[f"{name}/{rule}"] = rule_matrix(rule, W, b, x.flatten(), R_out, C).reshape(x.shape).float()
        refs[f"{name}/output_score"] = (y @ v).reshape(1).float()
    stio.save(os.path.join(out, "rules_ref.safetensors"), refs)


class ReluNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1, bias=False)
        self.relu2 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(8, 4, bias=False)

    def forward(self, x):
        x = self.pool(self.relu1(self.conv1(x)))
        x = self.relu2(self.conv2(x))
        return self.fc(self.flatten(self.gap(x)))


def relu_case(out):
    torch.manual_seed(7)
    net = ReluNet().float().eval()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float32)
    torch.jit.script(net).save(os.path.join(out, "relu_net.pt"))
    xi = x.clone().requires_grad_(True)
    y = net(xi)
    y[:, 2].sum().backward()
    stio.save(os.path.join(out, "relu_net.safetensors"),
              {"arg0": x, "grad_x_input": (xi.grad * x).detach(), "output": y.detach()})


class Block(nn.Module):
    """MobileNetV2-like inverted residual: 1x1 expand, depthwise 3x3, 1x1 project, BN, ReLU6."""

    def __init__(self, c, e):
        super().__init__()
        self.expand = nn.Conv2d(c, e, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(e)
        self.act1 = nn.ReLU6()
        self.dw = nn.Conv2d(e, e, 3, padding=1, groups=e, bias=False)
        self.bn2 = nn.BatchNorm2d(e)
        self.act2 = nn.ReLU6()
        self.project = nn.Conv2d(e, c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c)

    def forward(self, x):
        h = self.act1(self.bn1(self.expand(x)))
        h = self.act2(self.bn2(self.dw(h)))
        return x + self.bn3(self.project(h))


class MobileNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(8)
        self.stem_act = nn.ReLU6()
        self.block1 = Block(8, 16)
        self.block2 = Block(8, 24)
        self.branch = nn.Conv2d(8, 4, 1, bias=False)
        self.branch_bn = nn.BatchNorm2d(4)
        self.branch_act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(12, 5, bias=False)

    def forward(self, x):
        x = self.stem_act(self.stem_bn(self.stem(x)))
        x = self.block2(self.block1(x))
        b = self.branch_act(self.branch_bn(self.branch(x)))
        x = torch.cat([x, b], dim=1)
        x = self.gap(self.pool(x))
        return self.fc(self.flatten(x))


def bias_free_batchnorms(net, gen):
    """Random BatchNorm statistics and scales from `gen`, with beta chosen so that the merged bias
    s * (0 - mean) + beta is zero: the merged network is bias-free and LRP must conserve relevance
    exactly."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.running_mean.copy_(torch.randn(c, generator=gen))
                m.bias.copy_(m.weight / torch.sqrt(m.running_var + m.eps) * m.running_mean)


def mobile_case(out):
    torch.manual_seed(11)
    net = MobileNet().float()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.mul_(3.0)  # large enough that some ReLU6 saturate
    bias_free_batchnorms(net, gen)
    net.eval()
    torch.jit.script(net).save(os.path.join(out, "mobile_net.pt"))
    x = torch.randn(1, 3, 16, 16, generator=gen) * 3.0
    saturated = [0]
    hooks = [m.register_forward_hook(lambda m, i, o: saturated.__setitem__(0, saturated[0] + int((i[0] > 6).sum())))
             for m in net.modules() if isinstance(m, nn.ReLU6)]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    stio.save(os.path.join(out, "mobile_net.safetensors"),
              {"arg0": x, "saturated_relu6": torch.tensor([saturated[0]], dtype=torch.int64)})
    # The same network with ordinary BatchNorm biases (not bias-free after merging).
    torch.manual_seed(12)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
    torch.jit.script(net).save(os.path.join(out, "mobile_net_bias.pt"))


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: in-place ReLU, `out += identity`, a downsample branch."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(8, 8, 1), BasicBlock(8, 8, 1))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, 2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10, bias=False)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class PlainBlock(nn.Module):
    """A residual block without BatchNorm whose conv outputs the model changes in place (in-place
    ReLU straight on conv1, `out += identity` on conv2), or the same block written out of place."""

    def __init__(self, c, inplace: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1)
        self.relu1 = nn.ReLU(inplace=inplace)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1)
        self.relu2 = nn.ReLU(inplace=inplace)
        self.inplace = inplace

    def forward(self, x):
        out = self.conv2(self.relu1(self.conv1(x)))
        if self.inplace:
            out += x
        else:
            out = out + x
        return self.relu2(out)


class PlainNet(nn.Module):
    def __init__(self, inplace: bool):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, 1, 1)
        self.relu = nn.ReLU(inplace=inplace)
        self.block = PlainBlock(6, inplace)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        x = self.block(self.relu(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def inplace_case(out):
    """The same weights twice: with in-place ops on conv outputs, and without."""
    torch.manual_seed(3)
    a = PlainNet(True).eval()
    b = PlainNet(False).eval()
    b.load_state_dict(a.state_dict())
    torch.jit.script(a).save(os.path.join(out, "inplace_net.pt"))
    torch.jit.script(b).save(os.path.join(out, "outofplace_net.pt"))
    gen = torch.Generator().manual_seed(4)
    stio.save(os.path.join(out, "inplace_net.safetensors"),
              {"arg0": torch.randn(1, 3, 12, 12, generator=gen)})


def resnet_case(out):
    torch.manual_seed(0)
    net = ResNet()
    gen = torch.Generator().manual_seed(1)
    bias_free_batchnorms(net, gen)
    net.eval()
    torch.jit.script(net).save(os.path.join(out, "resnet.pt"))
    stio.save(os.path.join(out, "resnet.safetensors"), {"arg0": torch.randn(1, 3, 32, 32, generator=gen)})


class LonelyNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.bn(x))


class WithLayerNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.fc2 = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc2(self.norm(self.fc1(x)))


class Hand(nn.Module):
    """Weights chosen so relevance can be worked out by hand (see lrp_test.cpp)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2, 2, bias=False)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[1.0, 2.0], [-1.0, 1.0]]))
            self.fc2.weight.copy_(torch.tensor([[1.0, 3.0]]))

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


def face_case(out, faceapi):
    path = os.path.join(faceapi, "face_expression.pt")
    if not os.path.isfile(path):
        return
    faces, _ = stio.load(os.path.join(faceapi, "faces.safetensors"))
    x = torch.from_numpy(faces["arg0"].copy()).float()
    net = torch.jit.load(path).float().eval()
    xi = x.clone().requires_grad_(True)
    y = net(xi)
    top = y.argmax(dim=1)
    y.gather(1, top[:, None]).sum().backward()
    refs = {"grad_x_input": (xi.grad * x).detach(), "top": top.to(torch.int64),
            "logits": y.detach()}
    # Zennit-style LRP (tests/lrp/face_lrp_reference.py) on the eager network rebuilt from the
    # package's weights, for the first faces and their top class.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                    "tools", "faceapi"))
    import convert
    import face_lrp_reference as ref
    # In float64: alpha2-beta1 multiplies relevance ~10^6-fold over this network, so float32
    # rounding alone would blur the comparison.
    eager = convert.build(convert.load_weights(os.path.join(faceapi, "package", "model"),
                                               "face_expression_model")).double().eval()
    torch.jit.script(eager).save(os.path.join(out, "face_expression_f64.pt"))
    x64 = x.double()
    n = min(3, x.shape[0])
    for comp in ("gamma_box", "plus_flat", "alpha2_beta1"):
        rel = []
        for i in range(n):
            r, logits = ref.explain(eager, x64[i:i + 1], int(top[i]), comp, low=-0.49, high=0.6)
            assert torch.allclose(logits.float(), y[i:i + 1].detach(), atol=1e-3), "eager != TorchScript"
            rel.append(r)
        refs["zennit_style/" + comp] = torch.cat(rel)
    refs["arg0_f64"] = x64[:n]
    stio.save(os.path.join(out, "face_gradxinput.safetensors"), refs)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rule_cases(out)
    torch.set_default_dtype(torch.float32)
    relu_case(out)
    mobile_case(out)
    resnet_case(out)
    inplace_case(out)
    torch.jit.script(LonelyNorm().eval()).save(os.path.join(out, "lonely_bn.pt"))
    torch.jit.script(WithLayerNorm().eval()).save(os.path.join(out, "layernorm_net.pt"))
    torch.jit.script(Hand().eval()).save(os.path.join(out, "hand.pt"))
    if len(sys.argv) > 2:
        face_case(out, sys.argv[2])
    print(f"LRP fixtures written to {out}")


if __name__ == "__main__":
    main()
