// LRP rules: how one linear or convolutional layer (or an element-wise module) passes relevance
// from its output to its input. Each rule is defined exactly as in Zennit (chr5tphr/zennit,
// zennit/rules.py) and in Montavon et al. 2019, "Layer-Wise Relevance Propagation: An Overview";
// docs/analyzers/lrp.md lists the formulas.
//
//   strata::Rule r = strata::Rule::gamma(0.25);
//   strata::Rule s = strata::Rule::parse("alphabeta:2:1");   // the CLI spelling
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace strata {

/// One LRP rule with its parameters.
class Rule {
 public:
  enum class Kind {
    Zero,       ///< LRP-0: R_j = sum_k x_j w_jk / z_k R_k (plain gradient x input)
    Epsilon,    ///< z_k stabilised by epsilon * sign(z_k)
    Gamma,      ///< positive weights boosted by gamma (Zennit's generalised form)
    AlphaBeta,  ///< alpha * positive - beta * negative contributions (alpha - beta = 1)
    ZPlus,      ///< alpha = 1, beta = 0
    ZBox,       ///< z^B: inputs bounded by [low, high]
    Flat,       ///< all weights and inputs one: relevance spread uniformly over the receptive field
    WSquare,    ///< w^2, inputs one
    Pass,       ///< element-wise modules: R_in = R_out
  };

  /// LRP-0.
  static Rule zero();
  /// LRP-epsilon (Zennit's default epsilon is 1e-6).
  static Rule epsilon(double eps = 1e-6);
  /// LRP-gamma (default 0.25).
  static Rule gamma(double g = 0.25);
  /// LRP-alpha-beta; alpha, beta >= 0 and alpha - beta == 1 (else strata::Error).
  static Rule alpha_beta(double alpha = 2.0, double beta = 1.0);
  /// LRP-z+ (alpha-beta with alpha = 1, beta = 0).
  static Rule zplus();
  /// z^B with scalar bounds (low < high).
  static Rule zbox(double low, double high);
  /// z^B with tensor bounds, broadcast to the layer's input (e.g. [1, 3, 1, 1] per channel).
  static Rule zbox(at::Tensor low, at::Tensor high);
  /// The flat rule.
  static Rule flat();
  /// The w^2 rule.
  static Rule wsquare();
  /// Pass-through for element-wise modules.
  static Rule pass();

  /// Parses the CLI spelling: `epsilon[:eps]`, `zero`, `gamma[:g]`, `alphabeta[:a:b]`, `zplus`,
  /// `zbox:low:high`, `flat`, `wsquare`, `pass`. Errors name the text and list the choices.
  static Rule parse(const std::string& text);

  /// Which rule this is.
  Kind kind() const { return kind_; }
  /// Epsilon of the epsilon rule.
  double eps() const { return eps_; }
  /// Gamma of the gamma rule.
  double gamma_value() const { return gamma_; }
  /// Alpha of the alpha-beta rule (1 for z+).
  double alpha() const { return alpha_; }
  /// Beta of the alpha-beta rule (0 for z+).
  double beta() const { return beta_; }
  /// z^B bounds (defined only for ZBox).
  const at::Tensor& low() const { return low_; }
  const at::Tensor& high() const { return high_; }
  /// True for rules that need a layer with a weight (all but Pass).
  bool needs_weight() const { return kind_ != Kind::Pass; }
  /// The CLI spelling with its parameters ("gamma:0.25").
  std::string describe() const;

 private:
  explicit Rule(Kind k) : kind_(k) {}
  Kind kind_;
  double eps_ = 1e-6;
  double gamma_ = 0.25;
  double alpha_ = 1.0, beta_ = 0.0;
  at::Tensor low_, high_;
};

}  // namespace strata
