#include <strata/capture/pattern.h>
#include <strata/core/error.h>
#include <strata/lrp/composite.h>
#include <strata/model/model.h>

#include <algorithm>
#include <set>

namespace strata {

namespace {

const std::set<std::string>& linear_types() {
  static const std::set<std::string> s = {"Linear",          "Conv1d",          "Conv2d",
                                          "Conv3d",          "ConvTranspose1d", "ConvTranspose2d",
                                          "ConvTranspose3d", "LazyLinear",      "LazyConv2d"};
  return s;
}

const std::set<std::string>& activation_types() {
  static const std::set<std::string> s = {
      "ReLU",       "ReLU6",      "LeakyReLU",   "PReLU",      "RReLU",      "ELU",
      "SELU",       "CELU",       "GELU",        "SiLU",       "Mish",       "Sigmoid",
      "Tanh",       "Hardtanh",   "Hardsigmoid", "Hardswish",  "Softplus",   "Softsign",
      "Softmax",    "Softmax2d",  "Softmin",     "LogSoftmax", "LogSigmoid", "Tanhshrink",
      "Hardshrink", "Softshrink", "Threshold",   "GLU"};
  return s;
}

const std::set<std::string>& structural_types() {
  static const std::set<std::string> s = {
      "MaxPool1d",         "MaxPool2d",           "MaxPool3d",
      "AvgPool1d",         "AvgPool2d",           "AvgPool3d",
      "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",   "AdaptiveAvgPool3d",
      "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",   "AdaptiveMaxPool3d",
      "Flatten",           "Unflatten",           "Identity",
      "Dropout",           "Dropout1d",           "Dropout2d",
      "Dropout3d",         "AlphaDropout",        "FeatureAlphaDropout",
      "ZeroPad1d",         "ZeroPad2d",           "ZeroPad3d",
      "ConstantPad1d",     "ConstantPad2d",       "ConstantPad3d",
      "Upsample",          "UpsamplingNearest2d", "UpsamplingBilinear2d",
      "PixelShuffle",      "PixelUnshuffle",      "ChannelShuffle"};
  return s;
}

const std::set<std::string>& container_types() {
  static const std::set<std::string> s = {"Sequential", "ModuleList", "ModuleDict"};
  return s;
}

bool is_conv(const std::string& type) { return type.find("Conv") != std::string::npos; }

}  // namespace

LayerClass classify_layer(const std::string& type_name, bool has_children) {
  if (linear_types().count(type_name)) return LayerClass::Linear;
  if (activation_types().count(type_name)) return LayerClass::Activation;
  if (type_name == "BatchNorm1d" || type_name == "BatchNorm2d" || type_name == "BatchNorm3d")
    return LayerClass::BatchNorm;
  if (structural_types().count(type_name)) return LayerClass::Structural;
  if (has_children || container_types().count(type_name)) return LayerClass::Container;
  return LayerClass::Unknown;
}

Composite::Composite() = default;

Composite Composite::epsilon_plus_flat(double eps) {
  Composite c;
  c.set_conv(Rule::zplus()).set_linear(Rule::epsilon(eps)).set_first(Rule::flat(), false);
  c.name_ = "EpsilonPlusFlat";
  return c;
}

Composite Composite::epsilon_gamma_box(double low, double high, double eps, double gamma) {
  Composite c;
  c.set_conv(Rule::gamma(gamma))
      .set_linear(Rule::epsilon(eps))
      .set_first(Rule::zbox(low, high), /*convs_only=*/true);
  c.name_ = str_cat("EpsilonGammaBox(low=", low, ", high=", high, ")");
  return c;
}

Composite Composite::epsilon_alpha2_beta1(double eps) {
  Composite c;
  c.set_conv(Rule::alpha_beta(2, 1)).set_linear(Rule::epsilon(eps));
  c.name_ = "EpsilonAlpha2Beta1";
  return c;
}

Composite Composite::preset(const std::string& name) {
  std::string base = name, rest;
  const auto colon = name.find(':');
  if (colon != std::string::npos) {
    base = name.substr(0, colon);
    rest = name.substr(colon + 1);
  }
  std::string lower;
  for (char ch : base)
    if (ch != '_') lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  const std::string choices =
      "epsilon_plus_flat, epsilon_gamma_box:LOW:HIGH, epsilon_alpha2_beta1, epsilon";
  if (lower == "epsilonplusflat" && rest.empty()) return epsilon_plus_flat();
  if (lower == "epsilonalpha2beta1" && rest.empty()) return epsilon_alpha2_beta1();
  if (lower == "epsilon" && rest.empty()) return Composite();
  if (lower == "epsilongammabox") {
    // The z^B rule needs the bounds of the input (Zennit requires them too).
    const auto c2 = rest.find(':');
    if (rest.empty() || c2 == std::string::npos)
      throw Error(str_cat("composite '", name,
                          "': EpsilonGammaBox needs the input's bounds for the z^B rule of the "
                          "first convolution: epsilon_gamma_box:LOW:HIGH (e.g. "
                          "epsilon_gamma_box:-1:1)"));
    const Rule box = Rule::parse("zbox:" + rest);
    return epsilon_gamma_box(box.low().item<double>(), box.high().item<double>());
  }
  throw Error(str_cat("unknown LRP composite '", name, "'; composites: ", choices));
}

Composite Composite::parse_rules(const std::string& text) {
  Composite c;
  std::string item;
  std::vector<std::string> items;
  for (char ch : text + ",") {
    if (ch == ',') {
      if (!item.empty()) items.push_back(item);
      item.clear();
    } else {
      item += ch;
    }
  }
  STRATA_CHECK(!items.empty(), "--rules: no GLOB=RULE pairs in '", text, "'");
  for (const auto& it : items) {
    const auto eq = it.find('=');
    STRATA_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < it.size(), "--rules: '", it,
                 "' is not GLOB=RULE (e.g. 'features.*=gamma:0.25')");
    c.set(it.substr(0, eq), Rule::parse(it.substr(eq + 1)));
  }
  c.name_ = text;
  return c;
}

Composite& Composite::set(const std::string& glob, Rule rule) {
  names_.emplace_back(glob, std::move(rule));
  return *this;
}
Composite& Composite::set_conv(Rule rule) {
  conv_ = std::move(rule);
  return *this;
}
Composite& Composite::set_linear(Rule rule) {
  linear_ = std::move(rule);
  return *this;
}
Composite& Composite::set_first(Rule rule, bool convs_only) {
  first_ = std::move(rule);
  first_convs_only_ = convs_only;
  return *this;
}
Composite& Composite::set_activation(Rule rule) {
  activation_ = std::move(rule);
  return *this;
}

std::vector<ResolvedLayer> Composite::resolve(const std::vector<ModuleInfo>& modules) const {
  std::vector<ResolvedLayer> out(modules.size());
  std::vector<int64_t> name_hits(names_.size(), 0);
  bool first_done = !first_.has_value();
  for (size_t i = 0; i < modules.size(); ++i) {
    const ModuleInfo& m = modules[i];
    if (m.name.empty()) {  // the root: its own code follows the gradient
      out[i].cls = LayerClass::Container;
      continue;
    }
    bool children = false;
    const std::string prefix = m.name + ".";
    for (const auto& o : modules)
      if (o.name.compare(0, prefix.size(), prefix) == 0) {
        children = true;
        break;
      }
    ResolvedLayer& r = out[i];
    r.cls = classify_layer(m.type_name, children);
    // Zennit's first-layer map looks at modules in order, whatever name rules say.
    bool is_first = false;
    if (!first_done && r.cls == LayerClass::Linear &&
        (!first_convs_only_ || is_conv(m.type_name))) {
      first_done = true;
      is_first = true;
    }
    for (size_t k = 0; k < names_.size(); ++k) {
      if (!glob_match(names_[k].first, m.name)) continue;
      // A glob ("*=zero", "features.*=gamma") maps the modules its rule fits: weight rules the
      // linear/conv layers, the pass rule element-wise modules. An exact name maps its module
      // whatever it is (and gets an error if the rule cannot apply there).
      const bool exact = Pattern(names_[k].first).is_exact();
      const bool weight_rule = names_[k].second.needs_weight();
      const bool fits = weight_rule
                            ? (r.cls == LayerClass::Linear || r.cls == LayerClass::Unknown)
                            : (r.cls == LayerClass::Activation || r.cls == LayerClass::BatchNorm ||
                               r.cls == LayerClass::Unknown);
      if (!exact && !fits) continue;
      ++name_hits[k];
      if (!r.rule) r.rule = names_[k].second;
    }
    if (r.rule) {
      STRATA_CHECK(
          r.cls != LayerClass::Container || r.rule->kind() == Rule::Kind::Pass || !children,
          "LRP: rule '", r.rule->describe(), "' maps '", m.name, "' (", m.type_name,
          "), which has submodules; map its linear/conv submodules instead");
      continue;
    }
    switch (r.cls) {
      case LayerClass::Linear:
        if (is_first) {
          r.rule = *first_;
        } else if (is_conv(m.type_name)) {
          r.rule = conv_ ? *conv_ : Rule::epsilon();
        } else {
          r.rule = linear_ ? *linear_ : Rule::epsilon();
        }
        break;
      case LayerClass::Activation:
        r.rule = activation_ ? *activation_ : Rule::pass();
        break;
      case LayerClass::Unknown:
        throw Error(str_cat(
            "LRP: module '", m.name, "' of type '", m.type_name,
            "' has no LRP rule; map it by name, e.g. --rules '", m.name,
            "=pass' if it acts element-wise (relevance passes through unchanged), or '", m.name,
            "=epsilon' if it is a linear layer with weight (and bias); in C++: "
            "Composite::set(\"",
            m.name, "\", Rule::pass())"));
      default:
        break;
    }
  }
  for (size_t k = 0; k < names_.size(); ++k) {
    if (name_hits[k] > 0) continue;
    std::string some;
    int shown = 0;
    for (const auto& m : modules) {
      if (m.name.empty()) continue;
      if (shown++ == 6) {
        some += ", ...";
        break;
      }
      some += (some.empty() ? "" : ", ") + m.name;
    }
    throw Error(str_cat("LRP: rule pattern '", names_[k].first,
                        "' matches no module of the model (modules: ", some, ")"));
  }
  return out;
}

}  // namespace strata
