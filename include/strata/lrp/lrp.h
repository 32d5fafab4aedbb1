// Layer-wise relevance propagation (Bach et al. 2015; Montavon et al. 2019) on any TorchScript
// model, through the hook layer. At every linear/conv layer the output y is replaced, during one
// forward pass, by a tensor with the same value whose gradient carries the rule, i.e. the value
// and gradient of
//     out = y + (T - T.detach()),   T = sum_i c_i z'_i(x) * (y * mask_i / stab(d_i)).detach()
// with z'_i the rule-modified layer (the "gradient trick"; strata computes it with one autograd
// node per layer and fused kernels, not with these ATen ops); relevance at any tensor is then
// tensor x gradient. Element-wise activation modules get the pass rule, and everything the
// graph does between modules (residual adds, concatenation, average pooling, reshapes) follows the
// gradient, which for these linear operations is exactly the proportional z-rule; max pooling is
// winner-take-all. So residual networks, DenseNets and depthwise convolutions need no special
// code. See docs/analyzers/lrp.md.
//
//   auto model = strata::Model::load("face_expression.pt");
//   strata::LrpResult r = strata::lrp(model, {image}, /*target=*/1,
//                                     strata::Composite::epsilon_plus_flat());
//   r.relevance;                       // same shape as image, sums to ~ r.output_score
//   r.points.at("dense0.conv0");       // relevance at a hook point
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>
#include <strata/io/safetensors.h>
#include <strata/lrp/composite.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace strata {

class Model;

/// Options for lrp().
struct LrpOptions {
  bool keep_points = true;        ///< keep the relevance at every hook point (LrpResult::points)
  double merge_tolerance = 1e-3;  ///< largest allowed |BN(conv(x)) - merged(x)| / (1 + max|y|)

  /// Sets keep_points.
  LrpOptions& set_keep_points(bool v) {
    keep_points = v;
    return *this;
  }
  /// Sets merge_tolerance.
  LrpOptions& set_merge_tolerance(double v) {
    merge_tolerance = v;
    return *this;
  }
};

/// One row of the conservation table: a hook point and the relevance on it.
struct LayerRelevance {
  std::string key;          ///< hook point ("dense0.conv0")
  std::string type;         ///< module type ("Conv2d")
  std::string rule;         ///< rule applied at this module ("zplus"; "" when none)
  double sum = 0;           ///< sum of relevance over the point (batch summed)
  double abs_sum = 0;       ///< sum of |relevance|
  double contribution = 0;  ///< abs_sum / (sum of abs_sum over all rows): the contribution score
};

/// A BatchNorm merged into the layer before it.
struct MergedPair {
  std::string layer;         ///< the linear/conv layer
  std::string batchnorm;     ///< the BatchNorm merged into it
  double max_deviation = 0;  ///< largest |BN output - merged layer output| seen
};

/// What lrp() returns.
struct LrpResult {
  at::Tensor relevance;               ///< relevance of the first input, same shape
  TensorMap points;                   ///< relevance at each hook point reached by the gradient
  std::vector<LayerRelevance> table;  ///< per hook point in forward order (conservation table)
  double output_score = 0;         ///< the start relevance: sum over the batch of output[:, target]
  double input_sum = 0;            ///< relevance.sum()
  int64_t target = 0;              ///< the explained class
  at::Tensor output;               ///< the model output (detached)
  std::vector<MergedPair> merged;  ///< BatchNorms merged during the pass
  std::vector<std::pair<std::string, std::string>> rules;  ///< module -> rule used
  std::string composite;                                   ///< the composite's name

  /// Numbers for a JSON report (no tensors): target, score, input sum, conservation table,
  /// merged BatchNorms, rules.
  nlohmann::json to_json() const;
};

/// Explains predictions of one model with one composite; keeps what it learned about the model
/// (which BatchNorm follows which layer, which layer outputs the model changes in place) between
/// calls, so repeated explanations cost one forward and one backward pass each. A program that
/// explains many inputs should call strata::retain_freed_memory() (strata/core/memory.h) once at
/// start-up, as the strata command does: otherwise glibc may return the memory each explanation
/// frees to the kernel and the next one pays page faults for it (up to 3x its run time).
///
///   strata::LrpExplainer ex(model, strata::Composite::epsilon_gamma_box(-1, 1));
///   for (auto& img : images) heat.push_back(ex.explain({img}, 3).relevance);
class LrpExplainer {
 public:
  /// Resolves the composite on the model's modules (errors as for lrp()).
  LrpExplainer(const Model& model, Composite composite = Composite(), LrpOptions options = {});
  ~LrpExplainer();
  LrpExplainer(const LrpExplainer&) = delete;
  LrpExplainer& operator=(const LrpExplainer&) = delete;
  /// One explanation; see lrp().
  LrpResult explain(const std::vector<c10::IValue>& inputs, int64_t target);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Explains `target` (an index into the last dimension of the model's first output tensor) for
/// `inputs` (arg0 is explained; the others are passed along). The start relevance is the output
/// at `target` (one-hot times the output score) for every batch row. Errors: a target out of
/// range, a module no rule covers (named, with how to map it), a rule on a module without weights,
/// a BatchNorm with no linear/conv layer directly before it, inputs the model rejects.
LrpResult lrp(const Model& model, const std::vector<c10::IValue>& inputs, int64_t target,
              const Composite& composite = Composite(), const LrpOptions& options = {});

}  // namespace strata
