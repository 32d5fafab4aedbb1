// One linear probe per layer, with the methodology the probing literature asks for built in:
// a held-out test split (by sample, by group, or given), the regularization strength chosen by
// k-fold cross-validation on the training split only, features standardized with training
// statistics, a majority-class baseline, control tasks and selectivity (Hewitt & Liang, 2019),
// and repeats over seeds reported as mean +- std. See docs/analyzers/probes.md.
//
//   strata::ProbeData data;
//   data.labels = labels;                          // int64 [N]
//   data.groups = word_ids;                        // optional int64 [N]: split by group
//   strata::ProbeOptions opts;
//   opts.set_cv_folds(5).set_control(true).set_num_seeds(3);
//   nlohmann::json report = strata::probe_layers({{"layers.0", f0}, {"layers.1", f1}}, data, opts);
//   // report["layers"]["layers.1"]["test_accuracy"], ["selectivity"], ...
//   strata::probe_curve(report).render().save_png("curve.png");
#pragma once

#include <ATen/core/Tensor.h>
#include <strata/report/line_chart.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace strata {

/// Which linear probe to fit.
enum class ProbeKind {
  Logistic,  ///< multinomial logistic regression with L2 (LogisticRegression)
  Ridge      ///< ridge regression on +-1 targets, argmax (RidgeClassifier; alpha = 1 / C)
};

/// The name used in reports and on the command line ("logistic", "ridge").
const char* probe_kind_name(ProbeKind kind);

/// How to probe; see the file comment.
struct ProbeOptions {
  ProbeKind kind = ProbeKind::Logistic;
  /// A fixed C (scikit-learn's meaning: inverse L2 strength on the summed loss; ridge uses
  /// alpha = 1 / C). When unset, C is chosen by cv_folds-fold cross-validation over `Cs`.
  std::optional<double> C;
  int64_t cv_folds = 5;  ///< folds for choosing C (on the training split only)
  std::vector<double> Cs = {1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1e3, 1e4};  ///< the CV grid
  uint64_t seed = 0;           ///< first seed (split, folds, control labels)
  int64_t num_seeds = 1;       ///< repeats with seeds seed, seed+1, ...; mean and std reported
  double test_fraction = 0.2;  ///< held-out share when the data gives no split
  bool control = false;        ///< also fit the control task and report selectivity
  bool standardize = true;     ///< standardize features with training-split statistics
  /// logistic: L-BFGS stops when the 2-norm of the mean loss's gradient is below tol (at least as
  /// strict as scikit-learn's default, 1e-4 on the largest gradient entry)
  double tol = 1e-4;
  int64_t max_iter = 1000;        ///< logistic: L-BFGS iterations at most
  bool double_precision = false;  ///< logistic: float64 products (see LogisticOptions)

  ProbeOptions& set_kind(ProbeKind v) {
    kind = v;
    return *this;
  }
  ProbeOptions& set_C(std::optional<double> v) {
    C = v;
    return *this;
  }
  ProbeOptions& set_cv_folds(int64_t v) {
    cv_folds = v;
    return *this;
  }
  ProbeOptions& set_Cs(std::vector<double> v) {
    Cs = std::move(v);
    return *this;
  }
  ProbeOptions& set_seed(uint64_t v) {
    seed = v;
    return *this;
  }
  ProbeOptions& set_num_seeds(int64_t v) {
    num_seeds = v;
    return *this;
  }
  ProbeOptions& set_test_fraction(double v) {
    test_fraction = v;
    return *this;
  }
  ProbeOptions& set_control(bool v) {
    control = v;
    return *this;
  }
  ProbeOptions& set_standardize(bool v) {
    standardize = v;
    return *this;
  }
  ProbeOptions& set_tol(double v) {
    tol = v;
    return *this;
  }
  ProbeOptions& set_max_iter(int64_t v) {
    max_iter = v;
    return *this;
  }
  ProbeOptions& set_double_precision(bool v) {
    double_precision = v;
    return *this;
  }
};

/// What is probed for, shared by every layer.
struct ProbeData {
  at::Tensor labels;  ///< int64 [N], the task's labels (required)
  at::Tensor split;   ///< optional int64/bool [N]: 1 = train, 0 = test (else a seeded split)
  at::Tensor groups;  ///< optional int64 [N]: split (and CV folds) keep each group on one side
  /// Optional int64 [N]: the item type of each sample for the control task (e.g. the token id);
  /// when undefined the groups are the types, and without groups each sample is its own type.
  at::Tensor types;
};

/// Checks `data` against a layer's features [N, D] and throws strata::Error naming the layer and
/// the count: labels/feature count mismatch, a single class, NaN or Inf features, a split with
/// an empty side (or a side with a single class, for training).
void check_probe_inputs(const std::string& layer, const at::Tensor& features,
                        const ProbeData& data);

/// Probes one layer (features floating point [N, D]); returns the JSON object of one entry of
/// the report's "layers" (train_accuracy, test_accuracy, ..., see probe_layers).
nlohmann::json probe_layer(const std::string& layer, const at::Tensor& features,
                           const ProbeData& data, const ProbeOptions& options = {});

/// The mean held-out accuracy of each C in options.Cs (in that order) over the folds given by
/// `folds` (int64 [N], ids 0..k-1): for each fold, standardize with the other folds' statistics
/// (when options.standardize), fit on them, score on the fold. The grid is fitted in ascending C,
/// each fit warm-started from the previous one. probe_layer() calls it on the training split.
std::vector<double> cross_validate(const at::Tensor& features, const at::Tensor& labels,
                                   const at::Tensor& folds, const ProbeOptions& options);

/// Probes every layer in order. The report:
///   probe, C | cv, seeds, num_samples, num_classes, test_fraction, split ("given", "sample",
///   "group"), majority_accuracy, layer_order (names in order), and
///   layers: { name: { train_accuracy, test_accuracy, test_accuracy_std, majority_accuracy,
///                     C (mean over seeds of the chosen C), n_train, n_test, num_features,
///                     per_seed: {test_accuracy: [...], C: [...], iterations: [...], ...},
///                     with control: control_accuracy, control_accuracy_std, selectivity,
///                     selectivity_std } }
/// Accuracies are means over seeds; std is the sample std (n - 1), 0 for one seed.
nlohmann::json probe_layers(const std::vector<std::pair<std::string, at::Tensor>>& layers,
                            const ProbeData& data, const ProbeOptions& options = {});

/// The accuracy-vs-layer chart of a probe_layers report: test accuracy (+- std band), train
/// accuracy, control accuracy and selectivity when present, and the majority baseline.
LineChart probe_curve(const nlohmann::json& report, const std::string& title = "");

}  // namespace strata
