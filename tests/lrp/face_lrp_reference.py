"""An independent LRP for face-api's face-expression network, written the way Zennit computes it
(relevance flows backwards; each rule is a "BasicHook": input modifiers, parameter modifiers,
gradient mapper, reducer, evaluated with torch.autograd.grad per layer; sums use the stabilised
proportional `Norm` rule; activations `Pass`), walking the network's known structure by hand
(tools/faceapi/convert.py: four dense blocks, average pooling, a linear layer). It shares no
code with strata, and propagates relevance directly instead of through strata's gradient trick.
"""
import torch
import torch.nn.functional as F

EPS = 1e-6


def stabilize(z, eps=EPS):
    return z + ((z == 0).to(z) + z.sign()) * eps


def conv_fn(module):
    stride = module.stride
    groups = module.groups

    def f(x, w, b):
        return F.conv2d(x, w, b, stride=stride, groups=groups)
    return f


def basic_hook(f, x, R, w, b, input_mods, param_mods, mapper, reducer):
    inputs = [m(x).detach().requires_grad_(True) for m in input_mods]
    outputs = []
    for inp, (pw, pb) in zip(inputs, param_mods):
        outputs.append(f(inp, pw(w), None if b is None else pb(b)))
    grads = torch.autograd.grad(outputs, inputs, mapper(R, outputs))
    return reducer(inputs, grads)


def rule(name, f, x, R, w, b, low=None, high=None, eps=EPS, gamma=0.25):
    ident = lambda t: t
    zero = lambda t: torch.zeros_like(t)
    pos = lambda t: t.clamp(min=0)
    neg = lambda t: t.clamp(max=0)
    if name == "epsilon":
        return basic_hook(f, x, R, w, b, [ident], [(ident, ident)],
                          lambda R, o: [R / stabilize(o[0], eps)],
                          lambda i, g: i[0] * g[0])
    if name == "zplus":
        return basic_hook(f, x, R, w, b, [pos, neg], [(pos, pos), (neg, zero)],
                          lambda R, o: [R / stabilize(o[0] + o[1])] * 2,
                          lambda i, g: i[0] * g[0] + i[1] * g[1])
    if name == "alphabeta":
        a, be = 2.0, 1.0
        return basic_hook(f, x, R, w, b, [pos, neg, pos, neg],
                          [(pos, pos), (neg, zero), (neg, neg), (pos, zero)],
                          lambda R, o: [R / stabilize(o[0] + o[1])] * 2 + [R / stabilize(o[2] + o[3])] * 2,
                          lambda i, g: a * (i[0] * g[0] + i[1] * g[1]) - be * (i[2] * g[2] + i[3] * g[3]))
    if name == "gamma":
        ga = lambda t: t + gamma * t.clamp(min=0)
        gb = lambda t: t + gamma * t.clamp(max=0)
        z = f(x, w, b).detach()

        def mapper(R, o):
            return [R * (z > 0).to(z) / stabilize(o[0] + o[1])] * 2 + \
                   [R * (z < 0).to(z) / stabilize(o[2] + o[3])] * 2
        return basic_hook(f, x, R, w, b, [pos, neg, pos, neg],
                          [(ga, ga), (gb, zero), (gb, gb), (ga, zero)], mapper,
                          lambda i, g: sum(a * c for a, c in zip(i, g)))
    if name == "zbox":
        lo = lambda t: torch.full_like(t, low)
        hi = lambda t: torch.full_like(t, high)
        return basic_hook(f, x, R, w, b, [ident, lo, hi], [(ident, ident), (pos, pos), (neg, neg)],
                          lambda R, o: [R / stabilize(o[0] - o[1] - o[2])] * 3,
                          lambda i, g: i[0] * g[0] - i[1] * g[1] - i[2] * g[2])
    if name == "flat":
        one = lambda t: torch.ones_like(t)
        return basic_hook(f, x, R, w, b, [one], [(one, zero)],
                          lambda R, o: [R / stabilize(o[0])], lambda i, g: g[0])
    raise ValueError(name)


def norm_split(parts, R, eps):
    """Zennit's Norm rule on a sum of `parts`: R_i = part_i / stab_eps(sum) * R. Zennit's Norm
    uses eps = 1e-6; strata's proportional rule is exact (eps = 0, 0/0 := 0), and with this
    network's cancelling sums the 1e-6 changes some pixels by a few percent, so the test compares
    with eps = 0."""
    s = sum(parts)
    if eps == 0:
        s = torch.where(s == 0, torch.ones_like(s), s)
    else:
        s = stabilize(s, eps)
    return [p * R / s for p in parts]


def explain(net, x, target, composite, low=None, high=None, norm_eps=0.0):
    """Input relevance of `target` for x [1, 3, 112, 112] under EpsilonGammaBox ('gamma_box'),
    EpsilonPlusFlat ('plus_flat') or EpsilonAlpha2Beta1 ('alpha2_beta1')."""
    conv_rule = {"gamma_box": "gamma", "plus_flat": "zplus", "alpha2_beta1": "alphabeta"}[composite]
    first_rule = {"gamma_box": "zbox", "plus_flat": "flat", "alpha2_beta1": "alphabeta"}[composite]

    def sep_forward(m, h):
        p = F.pad(h, list(m.pad.padding))
        d = conv_fn(m.depthwise)(p, m.depthwise.weight, None)
        return p, d, conv_fn(m.pointwise)(d, m.pointwise.weight, m.pointwise.bias)

    def sep_backward(m, h, R, first):
        p, d, _ = sep_forward(m, h)
        Rd = rule(conv_rule, conv_fn(m.pointwise), d, R, m.pointwise.weight, m.pointwise.bias)
        Rp = rule(conv_rule, conv_fn(m.depthwise), p, Rd, m.depthwise.weight, None)
        pad = list(m.pad.padding)  # (left, right, top, bottom): crop the padded border
        return Rp[:, :, pad[2]:Rp.shape[2] - pad[3], pad[0]:Rp.shape[3] - pad[1]]

    blocks = [net.dense0, net.dense1, net.dense2, net.dense3]
    acts = []  # per block: x, out1..out4
    h = x
    with torch.no_grad():
        for bi, blk in enumerate(blocks):
            if bi == 0:
                c = blk.conv0
                p = F.pad(h, list(c.pad.padding))
                o1 = F.relu(conv_fn(c.conv)(p, c.conv.weight, c.conv.bias))
            else:
                o1 = F.relu(sep_forward(blk.conv0, h)[2])
            o2 = sep_forward(blk.conv1, o1)[2]
            i3 = F.relu(o1 + o2)
            o3 = sep_forward(blk.conv2, i3)[2]
            i4 = F.relu(o1 + (o2 + o3))
            o4 = sep_forward(blk.conv3, i4)[2]
            acts.append((h, o1, o2, o3, o4, i3, i4))
            h = F.relu(o1 + (o2 + (o3 + o4)))
        pooled = F.avg_pool2d(h, 7, 2)
        flat = pooled.flatten(1)
        logits = F.linear(flat, net.fc.weight, net.fc.bias)
    R = torch.zeros_like(logits)
    R[:, target] = logits[:, target]
    lin = lambda inp, w, b: F.linear(inp, w, b)
    R = rule("epsilon", lin, flat, R, net.fc.weight, net.fc.bias).reshape(pooled.shape)
    R = rule("epsilon", lambda inp, w, b: F.avg_pool2d(inp, 7, 2), h, R,
             torch.zeros(1), None)  # Norm on average pooling (of ReLU outputs: no cancellation)
    for bi in reversed(range(4)):
        blk = blocks[bi]
        x_in, o1, o2, o3, o4, i3, i4 = acts[bi]
        # relu3 passes; y = o1 + (o2 + (o3 + o4)), nested sums with Norm each
        r1, r234 = norm_split([o1, o2 + (o3 + o4)], R, norm_eps)
        r2, r34 = norm_split([o2, o3 + o4], r234, norm_eps)
        r3, r4 = norm_split([o3, o4], r34, norm_eps)
        ri4 = sep_backward(blk.conv3, i4, r4, False)  # relu2 passes
        a1, a23 = norm_split([o1, o2 + o3], ri4, norm_eps)
        a2, a3 = norm_split([o2, o3], a23, norm_eps)
        r1, r2, r3 = r1 + a1, r2 + a2, r3 + a3
        ri3 = sep_backward(blk.conv2, i3, r3, False)  # relu1 passes
        b1, b2 = norm_split([o1, o2], ri3, norm_eps)
        r1, r2 = r1 + b1, r2 + b2
        r1 = r1 + sep_backward(blk.conv1, o1, r2, False)
        # relu0 passes; conv0
        if bi == 0:
            c = blk.conv0
            p = F.pad(x_in, list(c.pad.padding))
            Rp = rule(first_rule, conv_fn(c.conv), p, r1, c.conv.weight, c.conv.bias, low, high)
            pad = list(c.pad.padding)
            R = Rp[:, :, pad[2]:Rp.shape[2] - pad[3], pad[0]:Rp.shape[3] - pad[1]]
        else:
            R = sep_backward(blk.conv0, x_in, r1, False)
    return R.detach(), logits
