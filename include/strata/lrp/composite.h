// Composites map each module of a model to an LRP rule: by module name (globs, first match wins),
// by module type (convolutions, linear layers), with a special rule for the first linear or
// convolutional layer, as Zennit's composites do. The presets are Zennit's:
//
//   EpsilonPlusFlat      first linear/conv layer: flat; other convs: z+; linear: epsilon
//   EpsilonGammaBox      first conv: z^B(low, high); other convs: gamma(0.25); linear: epsilon
//   EpsilonAlpha2Beta1   convs: alpha2-beta1; linear: epsilon
//
// In every composite element-wise activations (ReLU, ReLU6, Sigmoid, Tanh, Softmax, ...) pass
// relevance through, sums / average pooling / residual additions use the proportional (z) rule,
// max pooling is winner-take-all, and BatchNorm is merged into the layer before it.
//
//   auto c = strata::Composite::epsilon_plus_flat();
//   c.set("fc", strata::Rule::epsilon(0.1));       // by name (glob)
//   auto d = strata::Composite::parse_rules("features.*=gamma:0.1,fc=epsilon");
#pragma once

#include <strata/lrp/rule.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace strata {

struct ModuleInfo;

/// What kind of module an LRP pass sees (from its TorchScript type name).
enum class LayerClass {
  Linear,      ///< Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d: rules apply
  Activation,  ///< element-wise non-linearity: pass rule by default
  BatchNorm,   ///< merged into the preceding linear/conv layer
  Structural,  ///< pooling, padding, flatten, dropout, identity: relevance follows the gradient
  Container,   ///< has submodules; its own code (adds, concatenations) is handled by the gradient
  Unknown,     ///< a leaf module no rule covers
};

/// The class of a module of `type_name` ("Conv2d"); `has_children` marks containers.
LayerClass classify_layer(const std::string& type_name, bool has_children);

/// What Composite::resolve decided for one module.
struct ResolvedLayer {
  LayerClass cls = LayerClass::Unknown;
  std::optional<Rule> rule;  ///< nullopt: relevance follows the gradient (or BatchNorm merging)
};

/// A rule map; see the file comment.
class Composite {
 public:
  /// Every linear/conv layer epsilon (1e-6): what `strata lrp` uses without --composite/--rules.
  Composite();

  /// Zennit's EpsilonPlusFlat.
  static Composite epsilon_plus_flat(double eps = 1e-6);
  /// Zennit's EpsilonGammaBox with the input bounds of the first convolution.
  static Composite epsilon_gamma_box(double low, double high, double eps = 1e-6,
                                     double gamma = 0.25);
  /// Zennit's EpsilonAlpha2Beta1.
  static Composite epsilon_alpha2_beta1(double eps = 1e-6);
  /// A preset by name: epsilon_plus_flat / EpsilonPlusFlat, epsilon_alpha2_beta1 /
  /// EpsilonAlpha2Beta1, epsilon_gamma_box:LOW:HIGH / EpsilonGammaBox:LOW:HIGH, epsilon.
  static Composite preset(const std::string& name);
  /// `GLOB=RULE[,GLOB=RULE...]` (rules as in Rule::parse); unmatched linear/conv layers: epsilon.
  static Composite parse_rules(const std::string& text);

  /// Maps modules whose name matches `glob` to `rule` (earlier name rules win).
  Composite& set(const std::string& glob, Rule rule);
  /// The rule for convolutions (unless a name rule or the first-layer rule applies).
  Composite& set_conv(Rule rule);
  /// The rule for Linear layers.
  Composite& set_linear(Rule rule);
  /// A rule for the first linear/conv layer in module order; `convs_only` limits it to convs.
  Composite& set_first(Rule rule, bool convs_only);
  /// The rule for element-wise activations (default pass).
  Composite& set_activation(Rule rule);

  /// The name rules, in order.
  const std::vector<std::pair<std::string, Rule>>& name_rules() const { return names_; }
  /// A short description ("EpsilonPlusFlat", or the rules text).
  const std::string& name() const { return name_; }
  /// Sets the description shown in reports.
  Composite& set_name(std::string n) {
    name_ = std::move(n);
    return *this;
  }

  /// The class and rule of each module of `modules` (depth-first order, as Model::modules()).
  /// Throws strata::Error for a leaf module whose type no rule covers, naming it and how to map
  /// it, and for a name rule that matches no module.
  std::vector<ResolvedLayer> resolve(const std::vector<ModuleInfo>& modules) const;

 private:
  std::vector<std::pair<std::string, Rule>> names_;
  std::optional<Rule> conv_, linear_, first_, activation_;
  bool first_convs_only_ = false;
  std::string name_ = "epsilon";
};

}  // namespace strata
