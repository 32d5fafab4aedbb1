#include <ATen/ATen.h>
#include <strata/core/error.h>
#include <strata/probe/control_task.h>
#include <strata/probe/layer_probe.h>
#include <strata/probe/logistic_regression.h>
#include <strata/probe/ridge_regression.h>
#include <strata/probe/split.h>
#include <strata/probe/standardizer.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "label_index.h"

namespace strata {

const char* probe_kind_name(ProbeKind kind) {
  return kind == ProbeKind::Logistic ? "logistic" : "ridge";
}

namespace {

std::string where(const std::string& layer) { return str_cat("probe: layer '", layer, "'"); }

void check_side_tensor(const std::string& layer, const at::Tensor& t, const char* what, int64_t n) {
  if (!t.defined()) return;
  STRATA_CHECK(t.dim() == 1, where(layer), ": '", what, "' has shape ", t.sizes(),
               "; expected 1-D [", n, "]");
  STRATA_CHECK(t.size(0) == n, where(layer), " has ", n, " samples (feature rows) but '", what,
               "' has ", t.size(0), " entries");
  STRATA_CHECK(!t.is_floating_point() && !t.is_complex(), where(layer), ": '", what,
               "' must be integer (int64), got ", t.scalar_type());
}

struct Sides {
  at::Tensor train_idx, test_idx;  // int64
};

Sides sides_of(const at::Tensor& train_mask) {
  return {train_mask.nonzero().squeeze(1), (~train_mask).nonzero().squeeze(1)};
}

// One classifier behind both probe kinds.
class Classifier {
 public:
  Classifier(ProbeKind kind, const ProbeOptions& o)
      : kind_(kind),
        logistic_(LogisticOptions()
                      .set_tol(o.tol)
                      .set_max_iter(o.max_iter)
                      .set_warm_start(true)
                      .set_double_precision(o.double_precision)) {}
  void fit(const at::Tensor& x, const at::Tensor& y, double C) {
    if (kind_ == ProbeKind::Logistic) {
      logistic_.options().C = C;
      logistic_.fit(x, y);
      converged_ = converged_ && logistic_.converged();
      iterations_ += logistic_.iterations();
    } else {
      ridge_.alpha() = 1.0 / C;
      ridge_.fit(x, y);
    }
  }
  double score(const at::Tensor& x, const at::Tensor& y) const {
    return kind_ == ProbeKind::Logistic ? logistic_.score(x, y) : ridge_.score(x, y);
  }
  bool converged() const { return converged_; }
  int64_t iterations() const { return iterations_; }

 private:
  ProbeKind kind_;
  LogisticRegression logistic_;
  RidgeClassifier ridge_;
  bool converged_ = true;
  int64_t iterations_ = 0;
};

int64_t num_distinct(const at::Tensor& y) { return std::get<0>(at::_unique(y)).numel(); }

// Fit on train, score on test; a single-class training side (possible for a control task) is
// answered with that class, which is what any classifier would learn.
std::pair<double, double> fit_and_score(Classifier& clf, const at::Tensor& xtr,
                                        const at::Tensor& ytr, const at::Tensor& xte,
                                        const at::Tensor& yte, double C) {
  if (num_distinct(ytr) < 2) {
    const int64_t only = ytr[0].item<int64_t>();
    return {1.0, yte.eq(only).to(at::kDouble).mean().item<double>()};
  }
  clf.fit(xtr, ytr, C);
  return {clf.score(xtr, ytr), clf.score(xte, yte)};
}

struct Standardized {
  at::Tensor train, test;
};

Standardized standardize(const at::Tensor& xtr, const at::Tensor& xte, bool on) {
  if (!on) return {xtr, xte};
  const Standardizer s = Standardizer::fit(xtr);
  return {s.transform(xtr), s.transform(xte)};
}

// Mean held-out accuracy per C over k folds of the training split; each fold fits the grid in
// ascending C, warm-starting from the previous (more regularized) solution.
std::vector<double> cross_validate_folds(const at::Tensor& x, const at::Tensor& y,
                                         const at::Tensor& fold, int64_t k, const ProbeOptions& o,
                                         bool& converged) {
  const std::vector<double>& Cs = o.Cs;
  std::vector<double> acc(Cs.size(), 0.0);
  std::vector<size_t> order(Cs.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return Cs[a] < Cs[b]; });
  for (int64_t f = 0; f < k; ++f) {
    const Sides s = sides_of(fold.ne(f));
    const Standardized z =
        standardize(x.index_select(0, s.train_idx), x.index_select(0, s.test_idx), o.standardize);
    const at::Tensor ytr = y.index_select(0, s.train_idx), yte = y.index_select(0, s.test_idx);
    Classifier clf(o.kind, o);
    for (size_t j : order) acc[j] += fit_and_score(clf, z.train, ytr, z.test, yte, Cs[j]).second;
    converged = converged && clf.converged();
  }
  for (double& a : acc) a /= static_cast<double>(k);
  return acc;
}

double mean(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

double stdev(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

void check_options(const ProbeOptions& o) {
  STRATA_CHECK(!o.C || (std::isfinite(*o.C) && *o.C > 0), "probe: C = ", o.C.value_or(0),
               "; it must be a positive number");
  if (!o.C) {
    STRATA_CHECK(o.cv_folds >= 2, "probe: cv_folds = ", o.cv_folds, "; needs at least 2");
    STRATA_CHECK(!o.Cs.empty(), "probe: the CV grid Cs is empty");
    for (double c : o.Cs)
      STRATA_CHECK(std::isfinite(c) && c > 0, "probe: the CV grid holds C = ", c,
                   "; every C must be positive");
  }
  STRATA_CHECK(o.num_seeds >= 1, "probe: num_seeds = ", o.num_seeds, "; needs at least 1");
  STRATA_CHECK(o.test_fraction > 0 && o.test_fraction < 1, "probe: test_fraction ", o.test_fraction,
               " is not in (0, 1)");
}

at::Tensor train_mask_for(const ProbeData& data, int64_t n, const ProbeOptions& o, uint64_t seed) {
  if (data.split.defined()) return data.split.to(at::kLong).ne(0);
  if (data.groups.defined()) return split_by_group(data.groups, o.test_fraction, seed);
  return split_by_sample(n, o.test_fraction, seed);
}

void check_train_side(const std::string& layer, const at::Tensor& y, const at::Tensor& mask,
                      const char* how) {
  const int64_t n = mask.numel(), n_train = mask.sum().item<int64_t>();
  STRATA_CHECK(n_train > 0 && n_train < n, where(layer), ": the ", how, " split has ", n_train,
               " train and ", n - n_train, " test samples of ", n,
               "; both sides need at least one sample");
  const at::Tensor ytr = y.masked_select(mask);
  STRATA_CHECK(num_distinct(ytr) >= 2, where(layer), ": the training side of the ", how,
               " split holds a single class (", ytr[0].item<int64_t>(), ") in its ", n_train,
               " samples; a probe needs at least two classes to learn from");
}

}  // namespace

void check_probe_inputs(const std::string& layer, const at::Tensor& features,
                        const ProbeData& data) {
  STRATA_CHECK(features.defined() && features.dim() == 2, where(layer), ": features have ",
               features.defined() ? str_cat("shape ", features.sizes()) : std::string("no data"),
               "; expected a 2-D [N, D] matrix");
  STRATA_CHECK(features.is_floating_point(), where(layer),
               ": features must be floating point, got ", features.scalar_type());
  const int64_t n = features.size(0), d = features.size(1);
  STRATA_CHECK(data.labels.defined(), "probe: no labels given");
  STRATA_CHECK(data.labels.dim() == 1, where(layer), ": labels have shape ", data.labels.sizes(),
               "; expected 1-D [", n, "]");
  STRATA_CHECK(data.labels.size(0) == n, where(layer), " has ", n,
               " samples (feature rows) but the labels have ", data.labels.size(0), " entries");
  STRATA_CHECK(!data.labels.is_floating_point() && !data.labels.is_complex(), where(layer),
               ": labels must be integer class ids (int64), got ", data.labels.scalar_type());
  check_side_tensor(layer, data.split, "split", n);
  check_side_tensor(layer, data.groups, "groups", n);
  check_side_tensor(layer, data.types, "types", n);
  STRATA_CHECK(n >= 2 && d >= 1, where(layer), ": features have shape ", features.sizes(),
               "; a probe needs at least 2 samples and 1 feature");
  const at::Tensor y = data.labels.to(at::kLong);
  const int64_t classes = num_distinct(y);
  STRATA_CHECK(classes >= 2, where(layer), ": the labels hold a single class (",
               y[0].item<int64_t>(), ") for all ", n,
               " samples; a probe needs at least two classes");
  const at::Tensor bad = ~at::isfinite(features.cpu());
  const int64_t nonfinite = bad.sum().item<int64_t>();
  if (nonfinite > 0) {
    const at::Tensor first = bad.nonzero()[0];
    throw Error(str_cat(where(layer), ": ", nonfinite, " NaN or Inf feature values among ", n,
                        " x ", d, " (the first at sample ", first[0].item<int64_t>(), ", feature ",
                        first[1].item<int64_t>(), ")"));
  }
  if (data.split.defined()) {
    const at::Tensor s = data.split.to(at::kLong);
    const int64_t other = (s.ne(0) & s.ne(1)).sum().item<int64_t>();
    STRATA_CHECK(other == 0, where(layer), ": 'split' holds ", other,
                 " values other than 1 (train) and 0 (test)");
    check_train_side(layer, y, s.ne(0), "given");
  }
}

nlohmann::json probe_layer(const std::string& layer, const at::Tensor& features,
                           const ProbeData& data, const ProbeOptions& o) {
  check_options(o);
  check_probe_inputs(layer, features, data);
  const at::Tensor x = features.to(at::kCPU).to(at::kFloat).contiguous();
  const at::Tensor y = data.labels.to(at::kCPU).to(at::kLong).contiguous();
  const int64_t n = x.size(0);
  const at::Tensor groups =
      data.groups.defined() ? data.groups.to(at::kCPU).to(at::kLong) : at::Tensor();
  const at::Tensor types = data.types.defined() ? data.types.to(at::kCPU).to(at::kLong)
                           : groups.defined()   ? groups
                                                : at::arange(n, at::kLong);
  const char* how = data.split.defined() ? "given" : groups.defined() ? "group" : "sample";

  std::vector<double> train_acc, test_acc, majority, chosen_C, control_acc, selectivity;
  std::vector<int64_t> n_train, n_test, iterations;
  std::vector<std::vector<double>> cv_acc;
  bool converged = true;
  for (int64_t r = 0; r < o.num_seeds; ++r) {
    const uint64_t seed = o.seed + static_cast<uint64_t>(r);
    const at::Tensor mask = train_mask_for(data, n, o, seed);
    check_train_side(layer, y, mask, how);
    const Sides s = sides_of(mask);
    n_train.push_back(s.train_idx.numel());
    n_test.push_back(s.test_idx.numel());
    const at::Tensor xtr_raw = x.index_select(0, s.train_idx);
    const at::Tensor ytr = y.index_select(0, s.train_idx), yte = y.index_select(0, s.test_idx);

    double C = o.C.value_or(1.0);
    if (!o.C) {
      const at::Tensor gtr = groups.defined() ? groups.index_select(0, s.train_idx) : at::Tensor();
      const at::Tensor fold = kfold(xtr_raw.size(0), gtr, o.cv_folds, seed);
      std::vector<double> acc = cross_validate_folds(xtr_raw, ytr, fold, o.cv_folds, o, converged);
      // The best mean accuracy; ties go to the smallest C (the strongest regularization).
      size_t best = 0;
      for (size_t j = 0; j < acc.size(); ++j)
        if (acc[j] > acc[best] + 1e-12 ||
            (std::abs(acc[j] - acc[best]) <= 1e-12 && o.Cs[j] < o.Cs[best]))
          best = j;
      C = o.Cs[best];
      cv_acc.push_back(std::move(acc));
    }
    chosen_C.push_back(C);

    const Standardized z = standardize(xtr_raw, x.index_select(0, s.test_idx), o.standardize);
    Classifier clf(o.kind, o);
    const auto [tr, te] = fit_and_score(clf, z.train, ytr, z.test, yte, C);
    converged = converged && clf.converged();
    iterations.push_back(clf.iterations());
    train_acc.push_back(tr);
    test_acc.push_back(te);
    majority.push_back(majority_accuracy(y, mask));

    if (o.control) {
      const at::Tensor yc = control_labels(types, y, seed);
      Classifier cc(o.kind, o);
      const double ca = fit_and_score(cc, z.train, yc.index_select(0, s.train_idx), z.test,
                                      yc.index_select(0, s.test_idx), C)
                            .second;
      converged = converged && cc.converged();
      control_acc.push_back(ca);
      selectivity.push_back(te - ca);
    }
  }

  nlohmann::json j;
  j["train_accuracy"] = mean(train_acc);
  j["test_accuracy"] = mean(test_acc);
  j["test_accuracy_std"] = stdev(test_acc);
  j["majority_accuracy"] = mean(majority);
  j["C"] = mean(chosen_C);
  j["n_train"] = n_train.front();
  j["n_test"] = n_test.front();
  j["num_features"] = x.size(1);
  j["converged"] = converged;
  nlohmann::json per_seed = {{"train_accuracy", train_acc},
                             {"test_accuracy", test_acc},
                             {"majority_accuracy", majority},
                             {"C", chosen_C},
                             {"n_train", n_train},
                             {"n_test", n_test},
                             {"iterations", iterations}};
  if (!cv_acc.empty()) {
    std::vector<double> m(o.Cs.size(), 0.0);
    for (const auto& a : cv_acc)
      for (size_t i = 0; i < a.size(); ++i) m[i] += a[i] / static_cast<double>(cv_acc.size());
    j["cv_accuracy"] = m;
  }
  if (o.control) {
    j["control_accuracy"] = mean(control_acc);
    j["control_accuracy_std"] = stdev(control_acc);
    j["selectivity"] = mean(selectivity);
    j["selectivity_std"] = stdev(selectivity);
    per_seed["control_accuracy"] = control_acc;
    per_seed["selectivity"] = selectivity;
  }
  j["per_seed"] = per_seed;
  return j;
}

std::vector<double> cross_validate(const at::Tensor& features, const at::Tensor& labels,
                                   const at::Tensor& folds, const ProbeOptions& o) {
  check_options(ProbeOptions(o).set_C(std::nullopt));
  STRATA_CHECK(features.defined() && features.dim() == 2 && folds.defined() && folds.dim() == 1 &&
                   folds.size(0) == features.size(0) && labels.defined() &&
                   labels.size(0) == features.size(0),
               "cross_validate: features [N, D], labels [N] and folds [N] must agree");
  const at::Tensor f = folds.to(at::kLong);
  const int64_t k = f.max().item<int64_t>() + 1;
  STRATA_CHECK(f.min().item<int64_t>() >= 0 && k >= 2,
               "cross_validate: fold ids must be 0..k-1 with k >= 2");
  bool converged = true;
  return cross_validate_folds(features.to(at::kCPU).to(at::kFloat).contiguous(),
                              labels.to(at::kCPU).to(at::kLong), f, k, o, converged);
}

nlohmann::json probe_layers(const std::vector<std::pair<std::string, at::Tensor>>& layers,
                            const ProbeData& data, const ProbeOptions& o) {
  check_options(o);
  STRATA_CHECK(!layers.empty(), "probe: no layers to probe");
  // Check every layer before fitting any, so a bad layer fails fast.
  for (const auto& [name, f] : layers) check_probe_inputs(name, f, data);
  nlohmann::json report;
  report["analyzer"] = "probe";
  report["probe"] = probe_kind_name(o.kind);
  if (o.C) {
    report["C"] = *o.C;
  } else {
    report["cv"] = o.cv_folds;
    report["Cs"] = o.Cs;
  }
  std::vector<uint64_t> seeds;
  for (int64_t r = 0; r < o.num_seeds; ++r) seeds.push_back(o.seed + static_cast<uint64_t>(r));
  report["seeds"] = seeds;
  report["num_samples"] = data.labels.size(0);
  report["num_classes"] = num_distinct(data.labels.to(at::kLong));
  report["split"] = data.split.defined() ? "given" : data.groups.defined() ? "group" : "sample";
  if (!data.split.defined()) report["test_fraction"] = o.test_fraction;
  report["standardize"] = o.standardize;
  report["control"] = o.control;
  if (o.control)
    report["control_types"] = data.types.defined()    ? "types"
                              : data.groups.defined() ? "groups"
                                                      : "samples";
  nlohmann::json out = nlohmann::json::object();
  std::vector<std::string> order;
  for (const auto& [name, f] : layers) {
    out[name] = probe_layer(name, f, data, o);
    order.push_back(name);
  }
  report["majority_accuracy"] = out[order.front()]["majority_accuracy"];
  report["layer_order"] = order;
  report["layers"] = out;
  return report;
}

LineChart probe_curve(const nlohmann::json& report, const std::string& title) {
  STRATA_CHECK(report.contains("layers") && report.contains("layer_order"),
               "probe_curve: not a probe report (no 'layers' / 'layer_order')");
  LineChart c;
  const auto order = report.at("layer_order").get<std::vector<std::string>>();
  c.x_labels = order;
  LineSeries test{"test accuracy", {}, {}, Rgb{31, 119, 180}};
  LineSeries train{"train accuracy", {}, {}, Rgb{140, 170, 220}};
  train.dashed = true;
  LineSeries control{"control task", {}, {}, Rgb{214, 39, 40}};
  LineSeries sel{"selectivity", {}, {}, Rgb{44, 160, 44}};
  LineSeries major{"majority baseline", {}, {}, Rgb{120, 120, 120}};
  major.dashed = true;
  major.markers = false;
  const bool has_control = report.value("control", false);
  for (const auto& name : order) {
    const auto& l = report.at("layers").at(name);
    test.y.push_back(l.at("test_accuracy").get<double>());
    test.std.push_back(l.value("test_accuracy_std", 0.0));
    train.y.push_back(l.at("train_accuracy").get<double>());
    major.y.push_back(l.at("majority_accuracy").get<double>());
    if (has_control) {
      control.y.push_back(l.at("control_accuracy").get<double>());
      control.std.push_back(l.value("control_accuracy_std", 0.0));
      sel.y.push_back(l.at("selectivity").get<double>());
      sel.std.push_back(l.value("selectivity_std", 0.0));
    }
  }
  c.series = {test, train};
  if (has_control) {
    c.series.push_back(control);
    c.series.push_back(sel);
  }
  c.series.push_back(major);
  std::string t = title;
  if (t.empty()) {
    t = str_cat("linear probe (", report.value("probe", std::string("logistic")), ")");
  }
  const int64_t seeds = report.contains("seeds") ? static_cast<int64_t>(report["seeds"].size()) : 1;
  c.title = str_cat(t, ": accuracy by layer",
                    seeds > 1 ? str_cat(", mean +- std over ", seeds, " seeds") : std::string());
  c.x_label = "layer";
  c.y_label = "accuracy";
  // 0..1, extended downwards when a selectivity is negative (a control task easier than the task).
  double lo = 0.0;
  for (size_t i = 0; i < sel.y.size(); ++i) lo = std::min(lo, sel.y[i] - sel.std[i]);
  c.y_min = lo < 0 ? std::floor(lo * 10 - 1e-9) / 10 : 0.0;
  c.y_max = 1.0;
  return c;
}

}  // namespace strata
