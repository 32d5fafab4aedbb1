// Entropy-based modality uncertainty ("When Modalities Conflict: How Unimodal Reasoning
// Uncertainty Governs Preference Dynamics in MLLMs", 2025): when the image and the text of an
// item disagree, which one does a multimodal model follow, and why?
//
// Each item is run three ways: text + question only, image + question only, and both. From the
// answer-token logits of the three runs:
//   H_t, H_v      entropies (nats) of the text-only and image-only answer distributions
//   ΔH_rel        2 (H_t − H_v) / (H_t + H_v) ∈ [−2, 2]   (negative: text is the easier modality)
//   follows       "text" when the joint answer is the text-only answer, "image" when it is the
//                 image-only answer, "other" when it is neither, "both" when the two unimodal
//                 answers are the same token (no conflict); "other" and "both" are excluded
//   curve         P(follows text) in bins of ΔH_rel, with Wilson score intervals
//   fit           a logistic regression P(text) = σ(a + b·ΔH_rel), maximum likelihood (LBFGS++)
//   balance point the ΔH_rel where the fit crosses 0.5 (−a/b), only when that lies inside the
//                 observed ΔH_rel range and the bins reach 0.5 from both sides, with a seeded
//                 percentile-bootstrap interval
//   oscillation   with the joint run's logit-lens logits per layer: switches of the layer-wise
//                 top-1 between the text answer and the image answer, mean per item in the
//                 ambiguous region |ΔH_rel − bp| ≤ window and in the clear region, and the
//                 per-layer logit difference (text answer − image answer)
// See docs/analyzers/modality_uncertainty.md.
//
//   strata::ModalityUncertainty mu(strata::ModalityOptions().set_bootstrap(1000).set_seed(0));
//   strata::ModalityResult r = mu.analyze(text_logits, image_logits, joint_logits,
//                                         layer_logits);   // [N, V] x 3, [N, L, V] or undefined
//   if (r.balance_point) std::cout << *r.balance_point;  // unset when the curve never crosses 0.5
//   strata::Report report = strata::modality_report(r);   // JSON (balance_point, curve, items...)
//   strata::modality_curve_image(r).save_png("curve.png");
//
// With a model, run_modality_passes() does the three forward passes (and the joint run's logit
// lens, via find_lens_structure) and returns the logits analyze() takes.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>
#include <strata/analysis/analyzer.h>
#include <strata/report/image.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace strata {

class Model;

/// Which unimodal answer the joint run's answer matches.
enum class Follows { Text, Image, Other, Both };

/// "text", "image", "other", "both".
const char* follows_name(Follows f);

/// How ModalityUncertainty computes its statistics.
struct ModalityOptions {
  /// Token ids the answer is chosen from; entropies and answers use the softmax over these
  /// logits only. Empty: the full vocabulary.
  std::vector<int64_t> candidates;
  int64_t bins = 16;         ///< equal-width bins of ΔH_rel over [−2, 2]
  int64_t bootstrap = 1000;  ///< bootstrap resamples for the balance point's interval (0: none)
  uint64_t seed = 0;         ///< seed of the bootstrap resampling
  double confidence = 0.95;  ///< level of the Wilson and bootstrap intervals
  double window = 0.5;       ///< half-width of the ambiguous region around the balance point

  ModalityOptions& set_candidates(std::vector<int64_t> v) {
    candidates = std::move(v);
    return *this;
  }
  ModalityOptions& set_bins(int64_t v) {
    bins = v;
    return *this;
  }
  ModalityOptions& set_bootstrap(int64_t v) {
    bootstrap = v;
    return *this;
  }
  ModalityOptions& set_seed(uint64_t v) {
    seed = v;
    return *this;
  }
  ModalityOptions& set_confidence(double v) {
    confidence = v;
    return *this;
  }
  ModalityOptions& set_window(double v) {
    window = v;
    return *this;
  }
};

/// One item (one row of the input logits).
struct ModalityItem {
  double h_text = 0;       ///< entropy of the text-only answer distribution, nats
  double h_image = 0;      ///< entropy of the image-only answer distribution, nats
  double delta_h_rel = 0;  ///< 2 (H_t − H_v) / (H_t + H_v); 0 when both entropies are 0
  int64_t text_answer = 0, image_answer = 0, joint_answer = 0;  ///< argmax token ids
  Follows follows = Follows::Other;
  /// With layer logits (conflicting items, text or image followed): switches of the layer-wise
  /// top-1 between the text and the image answer (layers whose top-1 is neither are skipped),
  /// and z_text − z_image per layer. Unset / empty otherwise.
  std::optional<int64_t> switches;
  std::vector<double> layer_logit_diff;
};

/// One bin of the following curve.
struct CurveBin {
  double lo = 0, hi = 0;        ///< bin edges ([lo, hi); the last bin includes 2)
  double center = 0;            ///< (lo + hi) / 2
  double mean_delta_h_rel = 0;  ///< mean ΔH_rel of the bin's items
  int64_t n = 0;                ///< items that followed text or image
  int64_t n_text = 0;           ///< of them, followed text
  double p_text = 0;            ///< n_text / n
  double ci_lo = 0, ci_hi = 0;  ///< Wilson score interval at ModalityOptions::confidence
};

/// A fitted logistic curve P(text | x) = σ(intercept + slope · x).
struct LogisticFit {
  double intercept = 0, slope = 0;  ///< a and b
  double log_likelihood = 0;        ///< at the fit (natural log)
  bool converged = false;           ///< LBFGS++ reached its gradient tolerance
  /// The x where the curve is 0.5 (−intercept/slope), when it lies in [lo, hi]; unset otherwise.
  std::optional<double> crossing(double lo, double hi) const;
};

/// Layer-wise oscillation (needs the joint run's lens logits).
struct Oscillation {
  int64_t layers = 0;                      ///< L
  std::optional<double> ambiguous, clear;  ///< mean switches per item; unset when the region
                                           ///< is empty or there is no balance point
  int64_t n_ambiguous = 0, n_clear = 0;    ///< items in each region
  std::optional<double> all;               ///< mean switches over every conflicting item
  /// Per-layer mean of z_text − z_image over the items of each group (empty groups: empty).
  std::vector<double> diff_all, diff_ambiguous, diff_clear, diff_follows_text, diff_follows_image;
};

/// Everything analyze() finds.
struct ModalityResult {
  ModalityOptions options;                                   ///< the options used
  int64_t vocab_size = 0;                                    ///< V
  std::vector<ModalityItem> items;                           ///< in input order
  int64_t n_text = 0, n_image = 0, n_other = 0, n_both = 0;  ///< items per Follows value
  std::vector<CurveBin> curve;     ///< non-empty bins only, in ΔH_rel order
  double x_min = 0, x_max = 0;     ///< the observed ΔH_rel range of the curve's items
  std::optional<LogisticFit> fit;  ///< unset when fewer than 2 items or one class only
  std::optional<double> balance_point;
  std::optional<std::pair<double, double>> balance_point_ci;
  int64_t bootstrap_crossing = 0;  ///< resamples whose fit crossed 0.5 in the observed range
  /// Why there is no balance point (or a caveat about its interval); empty when there is none.
  std::string note;
  std::optional<Oscillation> oscillation;
};

/// The analysis; see the file comment.
class ModalityUncertainty {
 public:
  /// Errors: bins < 1, bootstrap < 0, confidence outside (0, 1), window <= 0, duplicate or
  /// negative candidate ids, fewer than 2 candidates.
  explicit ModalityUncertainty(ModalityOptions options = {});

  /// Analyzes N items: `text`, `image`, `joint` are the answer-token logits [N, V] of the three
  /// runs; `layer_logits` (optional, may be undefined) the joint run's lens logits [N, L, V].
  /// Errors (strata::Error, naming the tensors and shapes): N or V that differ, tensors that are
  /// not 2-D (3-D for the layers) floating point, non-finite logits (naming the item), candidate
  /// ids outside [0, V), no item where the joint answer follows text or image.
  ModalityResult analyze(const at::Tensor& text, const at::Tensor& image, const at::Tensor& joint,
                         const at::Tensor& layer_logits = {}) const;

  /// The options in use.
  const ModalityOptions& options() const { return options_; }

 private:
  ModalityOptions options_;
};

/// Entropy (nats) of softmax(logits) for each row of `logits` [N, V], over the `candidates`
/// columns only when given.
std::vector<double> answer_entropy(const at::Tensor& logits,
                                   const std::vector<int64_t>& candidates = {});

/// 2 (h_text − h_image) / (h_text + h_image); 0 when both are 0.
double relative_uncertainty(double h_text, double h_image);

/// Wilson score interval for `k` successes in `n` trials at `confidence` (e.g. 0.95).
std::pair<double, double> wilson_interval(int64_t k, int64_t n, double confidence = 0.95);

/// Maximum-likelihood logistic regression of `y` (0/1) on `x` with LBFGS++. A tiny ridge
/// penalty on the slope only (1e-6 · slope² added to the mean negative log-likelihood) keeps
/// perfectly separated data finite without
/// moving the crossing of balanced data. Errors: sizes differ, fewer than 2 points.
LogisticFit fit_logistic(const std::vector<double>& x, const std::vector<int>& y);

/// The JSON report: balance_point (null when none), balance_point_ci, curve, fit, items,
/// counts, excluded, note, fit_decreasing (the fit's slope < 0), significant_rises (consecutive
/// bins where p_text rises with disjoint Wilson intervals, against the monotonic law), and with
/// layer logits `oscillation` {ambiguous, clear, ...}.
Report modality_report(const ModalityResult& result);

/// The following curve as a picture: P(follows text) per bin with its interval, the logistic
/// fit, the 0.5 line and the balance point (with its interval) marked.
Image modality_curve_image(const ModalityResult& result, const std::string& title = "");

/// The logits of the three runs, as analyze() takes them.
struct ModalityRuns {
  at::Tensor text, image, joint;    ///< [N, V] at the answer position
  at::Tensor layer_logits;          ///< [N, L, V]: the joint run decoded at each lens layer
  std::vector<std::string> layers;  ///< the lens layers (hook-point keys), L of them
};

/// How run_modality_passes() runs a model.
struct ModalityPassOptions {
  int64_t position = -1;    ///< sequence position of the answer in the logits [B, T, V]
                            ///< (negative: from the end); ignored for logits [B, V]
  int64_t batch_size = 64;  ///< rows per forward pass
  bool layers = true;       ///< also decode the joint run with the logit lens
  std::string norm;         ///< final norm module for find_lens_structure ("": found; "none")
  std::string unembed;      ///< unembedding module ("": found automatically)
  std::vector<std::string> lens_layers;  ///< hook-point patterns to decode (empty: found)

  ModalityPassOptions& set_position(int64_t v) {
    position = v;
    return *this;
  }
  ModalityPassOptions& set_batch_size(int64_t v) {
    batch_size = v;
    return *this;
  }
  ModalityPassOptions& set_layers(bool v) {
    layers = v;
    return *this;
  }
  ModalityPassOptions& set_norm(std::string v) {
    norm = std::move(v);
    return *this;
  }
  ModalityPassOptions& set_unembed(std::string v) {
    unembed = std::move(v);
    return *this;
  }
  ModalityPassOptions& set_lens_layers(std::vector<std::string> v) {
    lens_layers = std::move(v);
    return *this;
  }
};

/// Runs `model` on the three input sets (each: forward's positional arguments, every tensor with
/// N rows in dim 0) and returns the answer-position logits; with `options.layers`, the joint run
/// is also decoded layer by layer through the model's own final norm and unembedding (the
/// structure comes from find_lens_structure, logit_lens.h). Errors name the run and the shapes.
ModalityRuns run_modality_passes(const Model& model, const std::vector<at::Tensor>& text_inputs,
                                 const std::vector<at::Tensor>& image_inputs,
                                 const std::vector<at::Tensor>& joint_inputs,
                                 const ModalityPassOptions& options = {});

}  // namespace strata
