#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <strata/capture/hook_session.h>
#include <strata/core/error.h>
#include <strata/lrp/canonizer.h>
#include <strata/lrp/lrp.h>
#include <strata/model/model.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/jit/api/module.h>

#include <cmath>
#include <map>
#include <optional>
#include <unordered_map>

#include "ratio_kernel.h"

namespace strata {

namespace {

std::string shape_of(const at::Tensor& t) { return str_cat(t.sizes()); }  // "[1, 3, 112, 112]"

// a / b where b != 0, else 0 (the 0/0 cases of LRP-0 and the pass rule carry no relevance).
at::Tensor safe_div(const at::Tensor& a, const at::Tensor& b) {
  // a / 0 gives inf or nan, which `where` discards (no gradient flows through this).
  return at::where(b != 0, a / b, at::zeros({}, a.options()));
}

// Temporarily turns requires_grad off on the model's parameters: LRP needs gradients with
// respect to the input only, and must not leave .grad behind on the model.
class FreezeParams {
 public:
  explicit FreezeParams(const std::vector<at::Tensor>& params) {
    for (const auto& p : params) {
      if (p.requires_grad()) {
        at::Tensor t = p;
        t.requires_grad_(false);
        frozen_.push_back(t);
      }
    }
  }
  ~FreezeParams() {
    for (auto& t : frozen_) t.requires_grad_(true);
  }

 private:
  std::vector<at::Tensor> frozen_;
};

// One linear/conv/BN/activation module as LRP sees it.
struct Layer {
  std::string name, type;
  LayerClass cls = LayerClass::Unknown;
  std::optional<Rule> rule;
  torch::jit::Module mod;
  at::Tensor weight, bias;  // bias undefined when the module has none
  int64_t channel_dim = 1;  // where a bias adds: 1 for convolutions, -1 for Linear
  // Direct ATen call for plain Linear / ConvNd (zero padding) with modified parameters, instead of
  // running the module's TorchScript forward with swapped attributes.
  enum class Fast { None, Linear, Conv } fast = Fast::None;
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups = 1;
  // The model changes this layer's output in place later in the forward, so the rules' backward
  // reads a copy of it taken at the layer (else the output itself; see LrpPass::lazy).
  bool copy_output = false;
  // An activation that works in place gets a copy of its input (the pass rule needs the input).
  bool copy_input = false;
  // Per forward call:
  at::Tensor input;
  at::Tensor last_input;  // input of the latest completed call (a following BatchNorm needs it)
};

double module_double(const torch::jit::Module& m, const std::string& name, double fallback) {
  const auto& type = m.type();
  if (type->hasConstant(name)) return type->getConstant(name).toDouble();
  if (m.hasattr(name)) {
    const c10::IValue v = m.attr(name);
    if (v.isDouble()) return v.toDouble();
  }
  return fallback;
}

at::Tensor optional_tensor_attr(const torch::jit::Module& m, const std::string& name) {
  if (!m.hasattr(name)) return at::Tensor();
  const c10::IValue v = m.attr(name);
  return v.isTensor() ? v.toTensor() : at::Tensor();
}

std::optional<std::vector<int64_t>> int_list(const torch::jit::Module& m, const std::string& name) {
  if (!m.hasattr(name)) return std::nullopt;
  const c10::IValue v = m.attr(name);
  std::vector<int64_t> out;
  if (v.isTuple()) {
    for (const auto& e : v.toTupleRef().elements()) {
      if (!e.isInt()) return std::nullopt;
      out.push_back(e.toInt());
    }
  } else if (v.isIntList()) {
    out = v.toIntVector();
  } else {
    return std::nullopt;
  }
  return out;
}

// Sets up the direct ATen path for Linear and zero-padded Conv1d/2d/3d when the module exposes
// its hyper-parameters (scripted modules do); other modules run their own forward.
void setup_fast_path(Layer& L) {
  if (L.type == "Linear") {
    L.fast = Layer::Fast::Linear;
    return;
  }
  if (L.type != "Conv1d" && L.type != "Conv2d" && L.type != "Conv3d") return;
  const auto stride = int_list(L.mod, "stride"), padding = int_list(L.mod, "padding"),
             dilation = int_list(L.mod, "dilation");
  if (!stride || !padding || !dilation || !L.mod.hasattr("groups") ||
      !L.mod.hasattr("padding_mode"))
    return;
  const c10::IValue groups = L.mod.attr("groups"), mode = L.mod.attr("padding_mode");
  if (!groups.isInt() || !mode.isString() || mode.toStringRef() != "zeros") return;
  L.stride = *stride;
  L.padding = *padding;
  L.dilation = *dilation;
  L.groups = groups.toInt();
  L.fast = Layer::Fast::Conv;
}

// Runs `L` on `in` with weight `w` and bias `b` (undefined: no bias), hooks suspended.
at::Tensor run_layer(Layer& L, const at::Tensor& in, const at::Tensor& w, const at::Tensor& b) {
  if (L.fast == Layer::Fast::Linear) return at::linear(in, w, b);
  if (L.fast == Layer::Fast::Conv) {
    const std::vector<int64_t> out_pad(L.stride.size(), 0);
    return at::convolution(in, w, b, L.stride, L.padding, L.dilation, /*transposed=*/false, out_pad,
                           L.groups);
  }
  SuspendHooks quiet;
  struct Restore {
    Layer& L;
    ~Restore() {
      L.mod.setattr("weight", L.weight);
      if (L.bias.defined()) L.mod.setattr("bias", L.bias);
    }
  } restore{L};
  L.mod.setattr("weight", w);
  if (L.bias.defined()) L.mod.setattr("bias", b.defined() ? b : at::zeros_like(L.bias));
  at::Tensor out = L.mod.forward({in}).toTensor();
  if (!L.bias.defined() && b.defined()) {
    std::vector<int64_t> shape(out.dim(), 1);
    const int64_t d = L.channel_dim < 0 ? out.dim() + L.channel_dim : L.channel_dim;
    shape[d] = b.numel();
    out = out + b.reshape(shape);
  }
  return out;
}

// True when EpsilonBackward can compute layer L's input gradient itself: Linear and zero-padded
// convolutions whose hyper-parameters strata read (Layer::fast), with an input that takes a
// gradient and an output of the shape the layer gives.
bool computes_input_gradient(const Layer& L, const at::Tensor& x, const at::Tensor& y) {
  if (L.fast == Layer::Fast::None || !x.defined() || !x.requires_grad() || !L.weight.defined())
    return false;
  if (!x.is_floating_point() || x.scalar_type() != L.weight.scalar_type() ||
      x.device() != L.weight.device())
    return false;
  if (L.fast == Layer::Fast::Linear)
    return x.dim() >= 1 && y.dim() == x.dim() && x.size(-1) == L.weight.size(1);
  const int64_t spatial = static_cast<int64_t>(L.stride.size());
  return x.dim() == spatial + 2 && y.dim() == x.dim() && L.weight.dim() == x.dim();
}

// The gradient at layer L's input x for gradient g at its output (the bias takes no part).
at::Tensor input_gradient(const Layer& L, const at::Tensor& x, const at::Tensor& g) {
  const at::Tensor& W = L.weight;
  if (L.fast == Layer::Fast::Linear) return at::matmul(g, W);
  bool pointwise = L.groups == 1;
  for (size_t i = 0; i < L.stride.size(); ++i)
    pointwise = pointwise && L.stride[i] == 1 && L.padding[i] == 0 && W.size(2 + i) == 1;
  if (pointwise) {
    // 1x1 convolution: per sample, W^T [Cin x Cout] times g [Cout x positions].
    const int64_t n = g.size(0), cout = W.size(0), cin = W.size(1);
    const at::Tensor wt = W.reshape({cout, cin}).t();
    if (n == 1) return at::mm(wt, g.reshape({cout, -1})).reshape(x.sizes());
    return at::matmul(wt, g.reshape({n, cout, -1})).reshape(x.sizes());
  }
  const std::vector<int64_t> out_pad(L.stride.size(), 0);
  return std::get<0>(at::convolution_backward(g.contiguous(), x, W, c10::nullopt, L.stride,
                                              L.padding, L.dilation, /*transposed=*/false, out_pad,
                                              L.groups, {true, false, false}));
}

// The epsilon rule at a layer whose output y the model computed itself: the autograd node
// between y and the rest of the model. Its forward is no computation at all: the model goes on
// with y.detach() (same memory, same version counter) as the node's output. Its backward
// multiplies the gradient by z / (z + eps sign z), z = y or the copy LrpPass::output_for_backward
// gave, in one fused pass, writing into the gradient's own buffer when nothing else holds it.
//
// For Linear and zero-padded convolutions the node also stands in for the layer's own backward:
// its edge goes to the layer's input, and it computes the input gradient itself, 1x1 convolutions
// and Linear as one matrix product (cheaper than PyTorch's convolution backward on CPU). The
// layer's own autograd node is then never run.
struct EpsilonBackward : public torch::autograd::Node {
  at::Tensor z;
  double eps = 0;
  // Set when the node computes the layer's input gradient.
  const Layer* layer = nullptr;
  at::Tensor input;  // the layer's input (its sizes and options)

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    at::Tensor g = std::move(grads[0]);
    if (!g.defined()) return {at::Tensor()};
    g = lrp_detail::ratio_scaled_grad(std::move(g), z, z, eps, 1.0);
    return {layer == nullptr ? g : input_gradient(*layer, input, g)};
  }
  std::string name() const override { return "strata::LrpEpsilonBackward"; }
  void release_variables() override {
    z.reset();
    input.reset();
  }

  // The node's output for output `y` of layer `L` with input `x`; `z`: y's values for the
  // backward.
  static at::Tensor apply_to(const Layer& L, const at::Tensor& x, const at::Tensor& y,
                             const at::Tensor& z, double eps) {
    auto node =
        std::shared_ptr<EpsilonBackward>(new EpsilonBackward(), torch::autograd::deleteNode);
    if (computes_input_gradient(L, x, y)) {
      node->layer = &L;
      node->input = x.detach();
      node->set_next_edges(torch::autograd::collect_next_edges(x));
    } else {
      node->set_next_edges(torch::autograd::collect_next_edges(y));
    }
    node->eps = eps;
    node->z = z;
    at::Tensor out = y.detach();
    torch::autograd::create_gradient_edge(out, std::move(node));
    return out;
  }
};

// One modified run of a layer inside a rule: `t` carries the gradient to the layer's input (its
// autograd graph runs the modified weights backwards); the gradient it receives is
// coef * g * num / (den + eps sign den).
struct RuleTerm {
  at::Tensor t;    // the modified run
  at::Tensor num;  // the layer's output (masked for gamma), detached
  at::Tensor den;  // the run plus its modified bias, detached
  double eps = 1e-6;
  double coef = 1.0;
};

// The output of a layer under a rule with modified runs (every rule but epsilon/zero at a layer's
// own output): value the layer's output y (an alias, no copy), gradient sent to each term's run
// in one fused pass per term. Replaces the ATen form y + (T - T.detach()), T = sum of
// coef * t * (num / stabilize(den)), whose forward and backward take ten element-wise kernels
// per term.
struct RuleBackward : public torch::autograd::Node {
  std::vector<RuleTerm> terms;  // without t (its graph is reached through the edges)

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    at::Tensor g = std::move(grads[0]);
    torch::autograd::variable_list out(terms.size());
    if (!g.defined()) return out;
    for (size_t k = 0; k < terms.size(); ++k) {
      const RuleTerm& r = terms[k];
      if (!should_compute_output(k)) continue;
      // the last term may take over g's buffer
      out[k] = k + 1 == terms.size()
                   ? lrp_detail::ratio_scaled_grad(std::move(g), r.num, r.den, r.eps, r.coef)
                   : lrp_detail::ratio_scaled_grad(g, r.num, r.den, r.eps, r.coef);
    }
    return out;
  }
  std::string name() const override { return "strata::LrpRuleBackward"; }
  void release_variables() override { terms.clear(); }

  static at::Tensor apply_to(const at::Tensor& y, std::vector<RuleTerm> terms) {
    bool any = false;
    for (const auto& r : terms) any = any || r.t.requires_grad();
    at::Tensor out = y.detach();
    if (!any) return out;
    auto node = std::shared_ptr<RuleBackward>(new RuleBackward(), torch::autograd::deleteNode);
    torch::autograd::edge_list edges;
    for (auto& r : terms) {
      edges.push_back(torch::autograd::impl::gradient_edge(r.t));
      r.t.reset();
    }
    node->set_next_edges(std::move(edges));
    node->terms = std::move(terms);
    torch::autograd::create_gradient_edge(out, std::move(node));
    return out;
  }
};

}  // namespace

struct LrpPass {
  std::unordered_map<std::string, Layer> layers;
  at::Tensor model_input;
  std::vector<at::Tensor> proxies;
  // Outputs of linear/conv layers in this pass (TensorImpl -> layer name), for BatchNorm merging.
  // Keyed by data pointer: the hook layer may hand on a view of the tensor an edit returned.
  // The tensors are kept so that their memory (and so the key) cannot be reused within the pass.
  std::unordered_map<const void*, std::pair<at::Tensor, std::string>> linear_outputs;
  std::map<std::string, std::string> bn_of_layer;  // layer -> bn (learned during the pass)
  std::map<std::string, MergedPair> merged;        // by bn name
  double merge_tolerance = 1e-3;
  // Layer outputs the backward reads as they are, with their version at the time: if the model
  // changed one in place later in the forward, the backward would read the wrong values, so the
  // layer switches to a copy (Layer::copy_output) and the pass runs again.
  struct Lazy {
    Layer* layer;
    at::Tensor output;
    int64_t version;
  };
  std::vector<Lazy> lazy;

  // After the forward: switches the layers whose output changed in place to copies; true when
  // there were any (the pass must run again).
  bool switch_modified_to_copies() {
    bool any = false;
    for (const Lazy& l : lazy) {
      if (l.output._version() == l.version) continue;
      l.layer->copy_output = true;
      any = true;
    }
    lazy.clear();
    return any;
  }

  // Layer L's output (detached) as the backward will read it: the output itself, checked after
  // the forward for in-place changes, or a copy for a layer known to change it.
  at::Tensor output_for_backward(Layer& L, const at::Tensor& yd) {
    if (L.copy_output) return yd.clone();
    lazy.push_back({&L, yd, yd._version()});
    return yd;
  }

  // The input the gradient should carry for modifier value `c` (a constant such as ones or a
  // bound) at a layer with input `x`: x * (c / x) has value c and x * d/dx = c.
  at::Tensor const_input(const at::Tensor& x, const at::Tensor& c) {
    const at::Tensor cv = c.expand_as(x).to(x.scalar_type()).contiguous();
    if (x.data_ptr() == model_input.data_ptr() && x.sizes() == model_input.sizes()) {
      at::Tensor p = cv.clone().requires_grad_(true);
      proxies.push_back(p);
      return p;
    }
    // Value c everywhere; gradient c / x where x != 0 (relevance cannot reach x == 0 through
    // x * gradient, so none is sent there).
    const at::Tensor k = safe_div(cv, x.detach());
    const at::Tensor carried = x * k;
    return carried + (cv - carried.detach());
  }

  // The replacement of output `y` of layer `L` for input `x` with weight `W`, bias `B`. Each
  // rule's denominators are the values of the terms whose gradients carry it (plus their biases),
  // so every modified layer runs once.
  at::Tensor apply_rule(Layer& L, const Rule& rule, const at::Tensor& x, const at::Tensor& y,
                        const at::Tensor& W, const at::Tensor& B, bool y_is_layer_output) {
    const at::Tensor yd = y.detach();
    auto f = [&](const at::Tensor& in, const at::Tensor& w) {
      return run_layer(L, in, w, at::Tensor());
    };
    // t (detached) plus a bias along the channel dimension.
    auto addb = [&](const at::Tensor& t, const at::Tensor& b) {
      at::Tensor v = t.detach();
      if (!b.defined()) return v;
      std::vector<int64_t> shape(v.dim(), 1);
      const int64_t d = L.channel_dim < 0 ? v.dim() + L.channel_dim : L.channel_dim;
      shape[d] = b.numel();
      return v + b.reshape(shape);
    };
    const at::Tensor xd = x.detach();
    auto pos = [](const at::Tensor& t) { return t.defined() ? t.clamp_min(0) : t; };
    auto neg = [](const at::Tensor& t) { return t.defined() ? t.clamp_max(0) : t; };
    // The numerator of every term but gamma's is the layer's output (output_for_backward).
    std::vector<RuleTerm> terms;
    switch (rule.kind()) {
      case Rule::Kind::Zero:
      case Rule::Kind::Epsilon: {
        const double eps = rule.kind() == Rule::Kind::Zero ? 0.0 : rule.eps();
        if (y_is_layer_output) {
          if (eps == 0.0) return y;  // LRP-0 is the gradient
          return EpsilonBackward::apply_to(L, x, y, output_for_backward(L, yd), eps);
        }
        at::Tensor z = run_layer(L, x, W, B);
        const at::Tensor zd = z.detach();
        terms.push_back({z, output_for_backward(L, yd), zd, eps, 1.0});
        break;
      }
      case Rule::Kind::ZPlus:
      case Rule::Kind::AlphaBeta: {
        const double alpha = rule.kind() == Rule::Kind::ZPlus ? 1.0 : rule.alpha();
        const double beta = rule.kind() == Rule::Kind::ZPlus ? 0.0 : rule.beta();
        const at::Tensor Wp = W.clamp_min(0), Wn = W.clamp_max(0);
        const bool nonneg = xd.min().item<double>() >= 0;  // x- = 0: skip its terms
        const at::Tensor xp = nonneg ? x : x.clamp_min(0), xn = x.clamp_max(0);
        // positive part: x+ W+ (+ b+) + x- W-; negative part: x+ W- (+ b-) + x- W+
        const at::Tensor out = output_for_backward(L, yd);
        at::Tensor tp = f(xp, Wp);
        if (!nonneg) tp = tp + f(xn, Wn);
        terms.push_back({tp, out, addb(tp, pos(B)), 1e-6, alpha});
        if (beta != 0.0) {
          at::Tensor tn = f(xp, Wn);
          if (!nonneg) tn = tn + f(xn, Wp);
          terms.push_back({tn, out, addb(tn, neg(B)), 1e-6, -beta});
        }
        break;
      }
      case Rule::Kind::Gamma: {
        const double g = rule.gamma_value();
        const at::Tensor Wa = W + g * W.clamp_min(0), Wb = W + g * W.clamp_max(0);
        const at::Tensor Ba = B.defined() ? B + g * B.clamp_min(0) : B;
        const at::Tensor Bb = B.defined() ? B + g * B.clamp_max(0) : B;
        const bool nonneg = xd.min().item<double>() >= 0;
        const at::Tensor xp = nonneg ? x : x.clamp_min(0), xn = x.clamp_max(0);
        // z > 0: x+ (W + g W+) [+ b + g b+] + x- (W + g W-);
        // z < 0: x+ (W + g W-) [+ b + g b-] + x- (W + g W+)   (Zennit's generalised gamma)
        const at::Tensor z = y_is_layer_output ? yd : addb(f(xd, W), B);
        at::Tensor tp = f(xp, Wa), tn = f(xp, Wb);
        if (!nonneg) {
          tp = tp + f(xn, Wb);
          tn = tn + f(xn, Wa);
        }
        // numerators computed now, so they do not read the output later
        terms.push_back({tp, yd * (z > 0).to(z.scalar_type()), addb(tp, Ba), 1e-6, 1.0});
        terms.push_back({tn, yd * (z < 0).to(z.scalar_type()), addb(tn, Bb), 1e-6, 1.0});
        break;
      }
      case Rule::Kind::ZBox: {
        at::Tensor lo = rule.low().to(xd.scalar_type()).to(xd.device()).expand_as(xd);
        at::Tensor hi = rule.high().to(xd.scalar_type()).to(xd.device()).expand_as(xd);
        const at::Tensor Wp = W.clamp_min(0), Wn = W.clamp_max(0);
        const at::Tensor tx = f(x, W), tl = f(const_input(x, lo), Wp),
                         th = f(const_input(x, hi), Wn);
        // The biases b - b+ - b- cancel.
        const at::Tensor d = addb(tx, B) - addb(tl, pos(B)) - addb(th, neg(B));
        terms.push_back({tx - tl - th, output_for_backward(L, yd), d, 1e-6, 1.0});
        break;
      }
      case Rule::Kind::Flat:
      case Rule::Kind::WSquare: {
        const bool flat = rule.kind() == Rule::Kind::Flat;
        const at::Tensor Wm = flat ? at::ones_like(W) : W * W;
        const at::Tensor Bm = (flat || !B.defined()) ? at::Tensor() : B * B;
        const at::Tensor t = f(const_input(x, at::ones_like(xd)), Wm);
        terms.push_back({t, output_for_backward(L, yd), addb(t, Bm), 1e-6, 1.0});
        break;
      }
      case Rule::Kind::Pass:
        throw Error(str_cat("LRP: internal: pass rule at linear layer '", L.name, "'"));
    }
    return RuleBackward::apply_to(y, std::move(terms));
  }

  at::Tensor on_input(const HookPoint& p, const at::Tensor& x) {
    if (p.index > 0) return x;
    auto it = layers.find(p.module);
    if (it == layers.end()) return x;
    Layer& L = it->second;
    L.input = x;
    // In-place activations (ReLU6(inplace=True)) would overwrite the recorded input: give them a
    // copy to work on.
    if (L.copy_input) return x.clone();
    return x;
  }

  at::Tensor on_output(const HookPoint& p, const at::Tensor& y) {
    if (p.index > 0) return y;
    auto it = layers.find(p.module);
    if (it == layers.end()) return y;
    Layer& L = it->second;
    STRATA_CHECK(L.input.defined(), "LRP: module '", L.name,
                 "' produced an output without a tensor input; LRP cannot apply '",
                 L.rule ? L.rule->describe() : std::string("its rule"), "' there");
    const at::Tensor x = L.input;
    L.input = at::Tensor();
    L.last_input = x;
    if (L.cls == LayerClass::BatchNorm && !L.rule) return merge_bn(L, x, y);
    const Rule& rule = *L.rule;
    if (rule.kind() == Rule::Kind::Pass) {
      if (x.sizes() != y.sizes() || !x.is_floating_point()) return y;
      return y.detach() + (x - x.detach()) * safe_div(y.detach(), x.detach());
    }
    at::Tensor out;
    if (bn_of_layer.count(L.name)) {
      out = y;  // its BatchNorm applies the rule with the merged parameters
    } else {
      out = apply_rule(L, rule, x, y, L.weight, L.bias, /*y_is_layer_output=*/true);
    }
    linear_outputs[out.data_ptr()] = {out, L.name};
    return out;
  }

  at::Tensor merge_bn(Layer& bn, const at::Tensor& x_bn, const at::Tensor& y) {
    auto it = linear_outputs.find(x_bn.data_ptr());
    if (it == linear_outputs.end()) {
      throw Error(str_cat("LRP: BatchNorm '", bn.name,
                          "' does not directly follow a linear or convolutional layer, so it "
                          "cannot be merged into one; map it with --rules '",
                          bn.name, "=pass' (C++: Composite::set(\"", bn.name,
                          "\", Rule::pass())) to pass relevance through it"));
    }
    Layer& L = layers.at(it->second.second);
    STRATA_CHECK(L.type.find("Transpose") == std::string::npos, "LRP: BatchNorm '", bn.name,
                 "' follows the transposed convolution '", L.name,
                 "', which strata cannot merge; map the BatchNorm with --rules '", bn.name,
                 "=pass'");
    STRATA_CHECK(!bn.mod.is_training(), "LRP: BatchNorm '", bn.name,
                 "' is in training mode; load the model in eval mode to merge it into '", L.name,
                 "'");
    bn_of_layer[L.name] = bn.name;
    BatchNormParams p;
    p.weight = optional_tensor_attr(bn.mod, "weight");
    p.bias = optional_tensor_attr(bn.mod, "bias");
    p.running_mean = optional_tensor_attr(bn.mod, "running_mean");
    p.running_var = optional_tensor_attr(bn.mod, "running_var");
    p.eps = module_double(bn.mod, "eps", 1e-5);
    const MergedLayer m = merge_batchnorm(L.weight, L.bias, p);
    // The layer's input of this call: it ran just before (its output is this BN's input).
    const at::Tensor x = L.last_input;
    double dev = 0;
    {
      at::NoGradGuard g;
      const at::Tensor z = run_layer(L, x.detach(), m.weight, m.bias);
      dev = (z - y.detach()).abs().max().item<double>();
      const double scale = 1.0 + y.detach().abs().max().item<double>();
      STRATA_CHECK(dev <= merge_tolerance * scale, "LRP: merging BatchNorm '", bn.name, "' into '",
                   L.name, "' changes the output by up to ", dev, " (tolerance ",
                   merge_tolerance * scale,
                   "); is something between them, or is the BatchNorm not in eval mode?");
    }
    MergedPair& mp = merged[bn.name];
    mp.layer = L.name;
    mp.batchnorm = bn.name;
    mp.max_deviation = std::max(mp.max_deviation, dev);
    at::Tensor out = apply_rule(L, *L.rule, x, y, m.weight, m.bias, /*y_is_layer_output=*/false);
    linear_outputs[out.data_ptr()] = {out, L.name};
    return out;
  }
};

struct LrpExplainer::Impl {
  const Model* model = nullptr;
  Composite composite;
  LrpOptions options;
  LrpPass pass;
  std::vector<std::pair<std::string, std::string>> rules;
  std::unordered_map<std::string, std::string> type_of;
  std::vector<at::Tensor> params;  // the model's parameters (read once: listing them is not free)
};

LrpExplainer::LrpExplainer(const Model& model, Composite composite, LrpOptions options)
    : impl_(std::make_unique<Impl>()) {
  model.require_hook_points();
  impl_->model = &model;
  for (const auto& p : model.module().parameters(/*recurse=*/true)) impl_->params.push_back(p);
  impl_->composite = std::move(composite);
  impl_->options = options;
  impl_->pass.merge_tolerance = options.merge_tolerance;
  const auto& mods = model.modules();
  const std::vector<ResolvedLayer> plan = impl_->composite.resolve(mods);
  for (size_t i = 0; i < mods.size(); ++i) {
    const ModuleInfo& m = mods[i];
    impl_->type_of[m.name] = m.type_name;
    const ResolvedLayer& r = plan[i];
    const bool bn = r.cls == LayerClass::BatchNorm;
    if (!r.rule && !bn) continue;
    Layer L;
    L.name = m.name;
    L.type = m.type_name;
    L.cls = r.cls;
    L.rule = r.rule;
    L.mod = model.submodule(m.name);
    L.channel_dim = m.type_name == "Linear" ? -1 : 1;
    if (L.cls == LayerClass::Activation) {
      // torch.nn's activations say whether they work in place (those without the flag never do);
      // a module of the model's own code is assumed to.
      const c10::IValue inplace = L.mod.hasattr("inplace") ? L.mod.attr("inplace") : c10::IValue();
      const auto qn = L.mod.type()->name();
      const bool torch_nn = qn && qn->qualifiedName().rfind("__torch__.torch.nn.", 0) == 0;
      L.copy_input = inplace.isBool() ? inplace.toBool() : !torch_nn;
    }
    if (r.rule && r.rule->needs_weight()) {
      const at::Tensor w = optional_tensor_attr(L.mod, "weight");
      STRATA_CHECK(w.defined(), "LRP: rule '", r.rule->describe(),
                   "' needs a layer with a weight, "
                   "but module '",
                   m.name, "' (", m.type_name,
                   ") has none; map it with 'pass' or leave it to the composite");
      L.weight = w;
      L.bias = optional_tensor_attr(L.mod, "bias");
      setup_fast_path(L);
    }
    impl_->rules.emplace_back(m.name, r.rule ? r.rule->describe() : "merge into the layer before");
    // For piecewise-linear activations through the origin f(x) = x f'(x), so x * gradient is
    // already y * gradient: the pass rule needs no edit (and no copy of the input).
    if (r.rule && r.rule->kind() == Rule::Kind::Pass &&
        (m.type_name == "ReLU" || m.type_name == "LeakyReLU" || m.type_name == "PReLU"))
      continue;
    impl_->pass.layers.emplace(m.name, std::move(L));
  }
}

LrpExplainer::~LrpExplainer() = default;

LrpResult LrpExplainer::explain(const std::vector<c10::IValue>& inputs, int64_t target) {
  STRATA_CHECK(!inputs.empty() && inputs[0].isTensor(),
               "LRP: the first input (arg0) must be a tensor to explain");
  const at::Tensor x0 = inputs[0].toTensor();
  STRATA_CHECK(x0.is_floating_point(), "LRP: arg0 is ", x0.scalar_type(), " ", shape_of(x0),
               "; LRP explains a floating-point input (an image, features)");
  LrpPass& P = impl_->pass;
  LrpResult res;
  res.target = target;
  res.composite = impl_->composite.name();
  res.rules = impl_->rules;
  FreezeParams freeze(impl_->params);
  at::AutoGradMode grad_on(true);
  at::Tensor x;
  std::optional<HookSession> session;
  c10::IValue out_v;
  // A second run only when the model turned out to modify a layer output in place (see
  // LrpPass::lazy); the layer then keeps reading a copy, so later calls run once.
  do {
    P.proxies.clear();
    P.linear_outputs.clear();
    P.lazy.clear();
    for (auto& kv : P.layers) kv.second.input = kv.second.last_input = at::Tensor();
    x = x0.detach().clone().requires_grad_(true);
    P.model_input = x;
    std::vector<c10::IValue> args = inputs;
    args[0] = x;
    session.reset();
    session.emplace();
    session->edit("*", Edit::callback([&P](const HookPoint& p, const at::Tensor& v) {
                    return p.kind == HookKind::Input ? P.on_input(p, v) : P.on_output(p, v);
                  }),
                  Which::Both);
    if (impl_->options.keep_points) {
      session->capture_all(Which::Output)
          .retain_grad(true)
          .keep(KeepOptions().set_clone(true).set_device(std::nullopt));
    }
    out_v = impl_->model->forward(args);
  } while (P.switch_modified_to_copies());
  const std::vector<at::Tensor> outs = flatten_tensors(out_v);
  STRATA_CHECK(!outs.empty(), "LRP: the model returned no tensor (", describe_value(out_v), ")");
  const at::Tensor out = outs[0];
  STRATA_CHECK(out.dim() >= 1 && out.is_floating_point(), "LRP: the model's output ",
               describe_value(out_v), " has no class dimension to explain");
  const int64_t classes = out.size(-1);
  STRATA_CHECK(target >= 0 && target < classes, "LRP: target ", target,
               " is out of range: the model's output has shape ", shape_of(out), ", i.e. ", classes,
               " classes (0..", classes - 1, ")");
  STRATA_CHECK(out.requires_grad(),
               "LRP: the model's output does not depend on arg0 through "
               "autograd (was it computed under no_grad, or from a detached copy?)");
  at::Tensor grad = at::zeros_like(out);
  grad.select(-1, target).fill_(1.0);
  // backward (not autograd::grad) so that the hook layer's retained points get their .grad.
  torch::autograd::backward({out}, {grad}, /*retain_graph=*/false, /*create_graph=*/false);
  at::Tensor rel = x.grad().defined() ? x.detach() * x.grad() : at::zeros_like(x0);
  for (const auto& p : P.proxies) {
    // Proxies stand for constant inputs (ones, bounds) of a rule on the input layer.
    if (p.grad().defined()) rel = rel + p.detach() * p.grad();
  }
  res.relevance = rel.detach();
  res.output = out.detach();
  res.output_score = out.detach().select(-1, target).sum().item<double>();
  res.input_sum = res.relevance.sum().item<double>();
  for (const auto& kv : P.merged) res.merged.push_back(kv.second);

  if (impl_->options.keep_points) {
    const TensorMap grads = session->gradients();
    const TensorMap& acts = session->activations();
    std::unordered_map<std::string, std::string> rule_of;
    for (const auto& kv : impl_->rules) rule_of[kv.first] = kv.second;
    for (const auto& kv : P.bn_of_layer) rule_of[kv.first] = "merged into " + kv.second;
    for (const auto& kv : P.merged)
      rule_of[kv.first] = P.layers.at(kv.second.layer).rule->describe() + " (merged " +
                          kv.second.layer + " + " + kv.first + ")";
    double total_abs = 0;
    for (const HookPoint& hp : session->seen()) {
      if (hp.kind != HookKind::Output) continue;
      const std::string key = hp.key();
      if (!acts.contains(key) || res.points.contains(key)) continue;
      at::Tensor r;
      if (grads.contains(key)) {
        r = (acts.at(key).to(grads.at(key).device()) * grads.at(key)).detach();
      } else {
        r = at::zeros_like(acts.at(key));
      }
      res.points.insert(key, r);
      LayerRelevance row;
      row.key = key;
      auto t = impl_->type_of.find(hp.module);
      row.type = t == impl_->type_of.end() ? "" : t->second;
      auto ru = rule_of.find(hp.module);
      row.rule = ru == rule_of.end() ? "" : ru->second;
      row.sum = r.sum().item<double>();
      row.abs_sum = r.abs().sum().item<double>();
      total_abs += row.abs_sum;
      res.table.push_back(row);
    }
    for (auto& row : res.table) row.contribution = total_abs > 0 ? row.abs_sum / total_abs : 0.0;
  }
  P.model_input = at::Tensor();
  return res;
}

LrpResult lrp(const Model& model, const std::vector<c10::IValue>& inputs, int64_t target,
              const Composite& composite, const LrpOptions& options) {
  LrpExplainer ex(model, composite, options);
  return ex.explain(inputs, target);
}

nlohmann::json LrpResult::to_json() const {
  nlohmann::json j;
  j["target"] = target;
  j["composite"] = composite;
  j["output_score"] = output_score;
  j["input_relevance_sum"] = input_sum;
  j["conservation_ratio"] = output_score != 0 ? input_sum / output_score : 0.0;
  nlohmann::json t = nlohmann::json::array();
  for (const auto& r : table)
    t.push_back({{"point", r.key},
                 {"type", r.type},
                 {"rule", r.rule},
                 {"sum", r.sum},
                 {"abs_sum", r.abs_sum},
                 {"contribution", r.contribution}});
  j["layers"] = t;
  nlohmann::json m = nlohmann::json::array();
  for (const auto& p : merged)
    m.push_back(
        {{"layer", p.layer}, {"batchnorm", p.batchnorm}, {"max_deviation", p.max_deviation}});
  j["merged_batchnorm"] = m;
  nlohmann::json rl = nlohmann::json::object();
  for (const auto& kv : rules) rl[kv.first] = kv.second;
  j["rules"] = rl;
  return j;
}

}  // namespace strata
