// The probes against scikit-learn on real datasets it ships (digits, wine, breast cancer), with
// the same standardization, split and folds (tests/probe/probe_reference.py, run at test time),
// plus the methodology: splits, control tasks and selectivity, baselines, and the errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <strata/core/error.h>
#include <strata/probe/control_task.h>
#include <strata/probe/layer_probe.h>
#include <strata/probe/logistic_regression.h>
#include <strata/probe/ridge_regression.h>
#include <strata/probe/split.h>
#include <strata/probe/standardizer.h>

#include <cmath>
#include <set>
#include <string>

#include "test_support.h"

namespace strata {
namespace {

TensorMap reference(const std::string& name) {
  return testing::fixture_tensors("probe_" + name + ".safetensors");
}

struct Sides {
  at::Tensor xtr, xte, ytr, yte;
};

Sides standardized_sides(const TensorMap& t) {
  const at::Tensor train = t.at("split").eq(1);
  const at::Tensor x = t.at("x"), y = t.at("y");
  const at::Tensor xtr = x.index({train}), xte = x.index({~train});
  const Standardizer s = Standardizer::fit(xtr);
  return {s.transform(xtr), s.transform(xte), y.index({train}), y.index({~train})};
}

double rel_diff(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor ad = a.to(at::kDouble), bd = b.to(at::kDouble);
  return (ad - bd).norm().item<double>() / std::max(1e-12, bd.norm().item<double>());
}

double scalar(const TensorMap& t, const std::string& key) { return t.at(key).item<double>(); }

std::string c_key(double c) { return c == 0.01 ? "0.01" : c == 1.0 ? "1" : "100"; }

class Sklearn : public ::testing::TestWithParam<std::string> {};

TEST_P(Sklearn, StandardizerEqualsStandardScaler) {
  const TensorMap t = reference(GetParam());
  const at::Tensor train = t.at("split").eq(1);
  const Standardizer s = Standardizer::fit(t.at("x").index({train}));
  EXPECT_LT(rel_diff(s.mean(), t.at("scaler_mean")), 1e-6);
  EXPECT_LT(rel_diff(s.scale(), t.at("scaler_scale")), 1e-6);
}

TEST_P(Sklearn, LogisticRegressionEqualsScikitLearn) {
  const TensorMap t = reference(GetParam());
  const Sides d = standardized_sides(t);
  for (double c : {0.01, 1.0, 100.0}) {
    SCOPED_TRACE("C = " + c_key(c));
    const std::string k = "lr_C" + c_key(c);
    LogisticRegression lr(
        LogisticOptions().set_C(c).set_tol(1e-7).set_max_iter(5000).set_double_precision(true));
    lr.fit(d.xtr, d.ytr);
    const at::Tensor pred = lr.predict(d.xte);
    const double agree = pred.eq(t.at(k + "_pred")).to(at::kDouble).mean().item<double>();
    EXPECT_GE(agree, 0.99);
    EXPECT_NEAR(lr.score(d.xte, d.yte), scalar(t, k + "_test_acc"), 0.005);
    // The same objective has the same minimizer; C = 100 is nearly unregularized and flat
    // (digits, cancer), so its coefficients are compared looser.
    const double tol = c <= 1.0 ? 1e-3 : 3e-2;
    EXPECT_LT(rel_diff(lr.coef(), t.at(k + "_coef")), tol);
    EXPECT_LT((lr.intercept() - t.at(k + "_intercept")).abs().max().item<double>(),
              tol * std::max(1.0, t.at(k + "_intercept").abs().max().item<double>()));
  }
}

TEST_P(Sklearn, RidgeClassifierEqualsScikitLearn) {
  const TensorMap t = reference(GetParam());
  const Sides d = standardized_sides(t);
  for (double c : {0.01, 1.0, 100.0}) {
    SCOPED_TRACE("C = " + c_key(c));
    const std::string k = "ridge_C" + c_key(c);
    RidgeClassifier rc(1.0 / c);
    rc.fit(d.xtr, d.ytr);
    EXPECT_LT(rel_diff(rc.regression().coef(), t.at(k + "_coef")), 1e-4);
    EXPECT_LT(rel_diff(rc.regression().intercept(), t.at(k + "_intercept")), 1e-4);
    EXPECT_TRUE(at::equal(rc.predict(d.xte), t.at(k + "_pred")));
    EXPECT_NEAR(rc.score(d.xte, d.yte), scalar(t, k + "_test_acc"), 1e-12);
  }
}

TEST_P(Sklearn, RidgeRegressionMultiOutputEqualsScikitLearn) {
  const TensorMap t = reference(GetParam());
  RidgeRegression r(2.5);
  r.fit(t.at("x").to(at::kDouble), t.at("ridge_target"));
  EXPECT_LT(rel_diff(r.coef(), t.at("ridge_reg_coef")), 1e-5);  // cancer: raw features up to 4e3
  EXPECT_LT(rel_diff(r.intercept(), t.at("ridge_reg_intercept")), 1e-5);
}

TEST_P(Sklearn, CrossValidationEqualsScikitLearnOnTheSameFolds) {
  const TensorMap t = reference(GetParam());
  const at::Tensor train = t.at("split").eq(1);
  const at::Tensor grid = t.at("cv_grid");
  std::vector<double> Cs(grid.data_ptr<double>(), grid.data_ptr<double>() + grid.numel());
  const std::vector<double> acc = cross_validate(
      t.at("x").index({train}), t.at("y").index({train}), t.at("folds"),
      ProbeOptions().set_Cs(Cs).set_tol(1e-7).set_max_iter(3000).set_double_precision(true));
  ASSERT_EQ(acc.size(), Cs.size());
  const at::Tensor want = t.at("cv_accuracy");
  for (size_t i = 0; i < Cs.size(); ++i)
    EXPECT_NEAR(acc[i], want[i].item<double>(), 0.005) << "C = " << Cs[i];
}

TEST_P(Sklearn, ProbeLayersWithTheGivenSplitMatchesScikitLearn) {
  const TensorMap t = reference(GetParam());
  ProbeData data;
  data.labels = t.at("y");
  data.split = t.at("split");
  const nlohmann::json r =
      probe_layers({{"x", t.at("x")}}, data, ProbeOptions().set_C(1.0).set_tol(1e-6));
  const auto& l = r["layers"]["x"];
  EXPECT_NEAR(l["test_accuracy"].get<double>(), scalar(t, "lr_C1_test_acc"), 0.005);
  EXPECT_NEAR(l["train_accuracy"].get<double>(), scalar(t, "lr_C1_train_acc"), 0.005);
  EXPECT_EQ(l["n_test"].get<int64_t>(), t.at("split").eq(0).sum().item<int64_t>());
  EXPECT_EQ(r["split"], "given");
  // Majority baseline by hand.
  const at::Tensor ytr = t.at("y").index({t.at("split").eq(1)});
  const at::Tensor yte = t.at("y").index({t.at("split").eq(0)});
  const int64_t m = at::bincount(ytr).argmax().item<int64_t>();
  EXPECT_NEAR(l["majority_accuracy"].get<double>(), yte.eq(m).to(at::kDouble).mean().item<double>(),
              1e-12);
}

INSTANTIATE_TEST_SUITE_P(Datasets, Sklearn, ::testing::Values("digits", "wine", "cancer"));

TEST(Split, BySampleIsSeededAndSized) {
  const at::Tensor a = split_by_sample(1000, 0.2, 7), b = split_by_sample(1000, 0.2, 7);
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_EQ(a.logical_not().sum().item<int64_t>(), 200);
  EXPECT_FALSE(at::equal(a, split_by_sample(1000, 0.2, 8)));
  EXPECT_THROW(split_by_sample(1, 0.2, 0), Error);
  EXPECT_THROW(split_by_sample(10, 1.0, 0), Error);
}

TEST(Split, ByGroupNeverSplitsAGroup) {
  const at::Tensor groups = at::arange(500, at::kLong).floor_divide(7);  // 72 groups
  const at::Tensor train = split_by_group(groups, 0.25, 3);
  const at::Tensor g_train = groups.index({train}), g_test = groups.index({~train});
  std::set<int64_t> tr(g_train.data_ptr<int64_t>(), g_train.data_ptr<int64_t>() + g_train.numel());
  for (int64_t i = 0; i < g_test.numel(); ++i) EXPECT_EQ(tr.count(g_test[i].item<int64_t>()), 0u);
  const double frac = g_test.numel() / 500.0;
  EXPECT_GE(frac, 0.25);
  EXPECT_LT(frac, 0.25 + 7.0 / 500 + 1e-9);
  EXPECT_THROW(split_by_group(at::zeros({10}, at::kLong), 0.2, 0), Error);
}

TEST(Split, KFoldGroupsStayTogether) {
  const at::Tensor groups = at::arange(100, at::kLong).floor_divide(4);
  const at::Tensor f = kfold(100, groups, 5, 1);
  for (int64_t i = 0; i < 100; i += 4)
    for (int64_t j = 1; j < 4; ++j) EXPECT_EQ(f[i].item<int64_t>(), f[i + j].item<int64_t>());
  const at::Tensor counts = at::bincount(f);
  EXPECT_EQ(counts.numel(), 5);
  EXPECT_EQ(counts.min().item<int64_t>(), 20);
  const at::Tensor plain = kfold(103, at::Tensor(), 5, 1);
  EXPECT_LE(at::bincount(plain).max().item<int64_t>() - at::bincount(plain).min().item<int64_t>(),
            1);
}

TEST(ControlTask, EachTypeGetsOneLabelFromTheEmpiricalDistribution) {
  // 2000 types, 90% of samples labelled 0: about 90% of types should get label 0.
  const at::Tensor types = at::arange(20000, at::kLong).remainder(2000);
  const at::Tensor labels = (at::arange(20000, at::kLong).remainder(10) == 0).to(at::kLong);
  const at::Tensor c = control_labels(types, labels, 5);
  for (int64_t i = 0; i < 2000; ++i)
    ASSERT_EQ(c[i].item<int64_t>(), c[i + 2000 * (1 + i % 9)].item<int64_t>()) << "type " << i;
  const double ones = c.slice(0, 0, 2000).to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(ones, 0.1, 0.03);
  EXPECT_TRUE(at::equal(c, control_labels(types, labels, 5)));
  EXPECT_FALSE(at::equal(c, control_labels(types, labels, 6)));
}

TEST(ControlTask, MajorityBaseline) {
  const at::Tensor y = at::tensor({3, 3, 1, 1, 1, 3, 3, 2}, at::kLong);
  const at::Tensor train = at::tensor({1, 1, 1, 1, 1, 1, 0, 0}, at::kLong).to(at::kBool);
  // train: 3,3,1,1,1,3 -> tie 3 vs 3? counts: 3 -> 3, 1 -> 3; the tie goes to the smaller label.
  EXPECT_EQ(majority_label(y, train), 1);
  EXPECT_DOUBLE_EQ(majority_accuracy(y, train), 0.0);
  const at::Tensor train2 = at::tensor({1, 1, 0, 1, 1, 1, 0, 0}, at::kLong).to(at::kBool);
  EXPECT_EQ(majority_label(y, train2), 3);
  EXPECT_DOUBLE_EQ(majority_accuracy(y, train2), 1.0 / 3.0);
}

// Hewitt & Liang's point: a probe on features that identify the item type can learn any
// type -> label map, so the control task is solved too and selectivity is low; features that
// carry the property but not the type leave the control task at chance, selectivity high.
TEST(ControlTask, SelectivitySeparatesMemorizingFromEncoding) {
  const int64_t n = 3000, types_n = 60, d = 64;
  at::manual_seed(0);
  const at::Tensor types = at::randint(types_n, {n}, at::kLong);
  const at::Tensor label_of_type = at::randint(3, {types_n}, at::kLong);
  const at::Tensor y = label_of_type.index_select(0, types);
  // (a) a random embedding per type: encodes identity, hence the label only through identity.
  const at::Tensor emb = at::randn({types_n, d});
  const at::Tensor xa = emb.index_select(0, types) + 0.05 * at::randn({n, d});
  // (b) the label alone plus noise: no type identity beyond the label.
  const at::Tensor xb = at::one_hot(y, 3).to(at::kFloat).repeat({1, 4}) + 0.3 * at::randn({n, 12});
  ProbeData data;
  data.labels = y;
  data.types = types;
  const ProbeOptions o = ProbeOptions().set_C(1.0).set_control(true).set_num_seeds(3);
  const nlohmann::json r = probe_layers({{"type_identity", xa}, {"label_only", xb}}, data, o);
  const auto& a = r["layers"]["type_identity"];
  const auto& b = r["layers"]["label_only"];
  EXPECT_GT(a["test_accuracy"].get<double>(), 0.95);
  EXPECT_GT(a["control_accuracy"].get<double>(), 0.9);
  EXPECT_LT(a["selectivity"].get<double>(), 0.1);
  EXPECT_GT(b["test_accuracy"].get<double>(), 0.95);
  EXPECT_LT(b["control_accuracy"].get<double>(), 0.6);
  EXPECT_GT(b["selectivity"].get<double>(), 0.35);
  // selectivity = test - control, seed by seed; the mean and std are over the seeds.
  for (const auto* l : {&a, &b}) {
    const auto te = (*l)["per_seed"]["test_accuracy"].get<std::vector<double>>();
    const auto ca = (*l)["per_seed"]["control_accuracy"].get<std::vector<double>>();
    const auto se = (*l)["per_seed"]["selectivity"].get<std::vector<double>>();
    ASSERT_EQ(te.size(), 3u);
    double m = 0;
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_DOUBLE_EQ(se[i], te[i] - ca[i]);
      m += te[i] / 3;
    }
    EXPECT_NEAR((*l)["test_accuracy"].get<double>(), m, 1e-12);
    double v = 0;
    for (double x : te) v += (x - m) * (x - m) / 2;
    EXPECT_NEAR((*l)["test_accuracy_std"].get<double>(), std::sqrt(v), 1e-12);
  }
  EXPECT_EQ(r["seeds"].size(), 3u);
  EXPECT_EQ(r["control_types"], "types");
}

TEST(LayerProbe, CrossValidationPicksAReasonableC) {
  const TensorMap t = reference("digits");
  ProbeData data;
  data.labels = t.at("y");
  const nlohmann::json r = probe_layers({{"x", t.at("x")}}, data,
                                        ProbeOptions().set_cv_folds(3).set_Cs({1e-4, 1e-2, 1}));
  const auto& l = r["layers"]["x"];
  // 1e-4 is far too strong a penalty for digits; CV must not choose it.
  EXPECT_GT(l["C"].get<double>(), 1e-4);
  EXPECT_EQ(l["cv_accuracy"].size(), 3u);
  EXPECT_LT(l["cv_accuracy"][0].get<double>(), l["cv_accuracy"][2].get<double>());
  EXPECT_GT(l["test_accuracy"].get<double>(), 0.9);
  EXPECT_EQ(r["split"], "sample");
}

TEST(LayerProbe, RidgeProbe) {
  const TensorMap t = reference("wine");
  ProbeData data;
  data.labels = t.at("y");
  data.split = t.at("split");
  const nlohmann::json r =
      probe_layers({{"x", t.at("x")}}, data, ProbeOptions().set_kind(ProbeKind::Ridge).set_C(1.0));
  EXPECT_NEAR(r["layers"]["x"]["test_accuracy"].get<double>(), scalar(t, "ridge_C1_test_acc"),
              1e-12);
  EXPECT_EQ(r["probe"], "ridge");
}

// Item 8: each error names the layer and the count.
::testing::AssertionResult throws_mentioning(const std::function<void()>& f,
                                             const std::vector<std::string>& parts) {
  try {
    f();
  } catch (const Error& e) {
    const std::string m = e.what();
    for (const auto& p : parts)
      if (m.find(p) == std::string::npos)
        return ::testing::AssertionFailure() << "message '" << m << "' lacks '" << p << "'";
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "no strata::Error thrown";
}

TEST(LayerProbe, ErrorsNameTheLayerAndTheCount) {
  const at::Tensor x = at::randn({10, 3});
  ProbeData d;
  d.labels = at::tensor({0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1}, at::kLong);
  EXPECT_TRUE(throws_mentioning(
      [&] {
        probe_layers({{"layers.3", x}}, d);
      },
      {"layers.3", "10 samples", "12 entries"}));
  d.labels = at::full({10}, 4, at::kLong);
  EXPECT_TRUE(throws_mentioning(
      [&] {
        probe_layers({{"layers.3", x}}, d);
      },
      {"layers.3", "single class (4)", "10 samples"}));
  d.labels = at::arange(10, at::kLong).remainder(2);
  at::Tensor bad = x.clone();
  bad[2][1] = std::nan("");
  bad[7][0] = INFINITY;
  EXPECT_TRUE(throws_mentioning(
      [&] {
        probe_layers({{"ok", x}, {"blocks.1", bad}}, d);
      },
      {"blocks.1", "2 NaN or Inf", "sample 2, feature 1"}));
  d.split = at::ones({10}, at::kLong);
  EXPECT_TRUE(throws_mentioning(
      [&] {
        probe_layers({{"layers.0", x}}, d);
      },
      {"layers.0", "10 train and 0 test samples"}));
  d.split = at::zeros({10}, at::kLong);
  EXPECT_TRUE(throws_mentioning(
      [&] {
        probe_layers({{"layers.0", x}}, d);
      },
      {"layers.0", "0 train and 10 test"}));
  d.split = at::tensor({1, 1, 0, 1, 0, 1, 0, 1, 0, 1}, at::kLong);  // train = all odd labels?
  d.labels = at::tensor({1, 1, 0, 1, 0, 1, 0, 1, 0, 1}, at::kLong);
  EXPECT_TRUE(throws_mentioning(
      [&] {
        probe_layers({{"layers.0", x}}, d);
      },
      {"layers.0", "single class (1)", "6 samples"}));
  d.split = at::Tensor();
  d.groups = at::zeros({9}, at::kLong);
  EXPECT_TRUE(throws_mentioning(
      [&] {
        probe_layers({{"emb", x}}, d);
      },
      {"emb", "10 samples", "'groups' has 9"}));
}

TEST(LogisticRegression, BinaryAndArbitraryLabelValues) {
  at::manual_seed(3);
  const at::Tensor x = at::randn({400, 5});
  const at::Tensor y = at::where(x.select(1, 0) + 0.5 * x.select(1, 1) > 0,
                                 at::full({400}, 7, at::kLong), at::full({400}, -2, at::kLong));
  LogisticRegression lr;
  lr.fit(x, y);
  EXPECT_EQ(lr.coef().size(0), 1);  // one weight vector, as scikit-learn's binary model
  EXPECT_TRUE(at::equal(lr.classes(), at::tensor({-2, 7}, at::kLong)));
  EXPECT_GT(lr.score(x, y), 0.95);
  EXPECT_TRUE(lr.converged());
  const at::Tensor p = lr.predict_proba(x);
  EXPECT_LT((p.sum(1) - 1).abs().max().item<double>(), 1e-5);
  EXPECT_THROW(LogisticRegression(LogisticOptions().set_C(0)), Error);
  EXPECT_THROW(lr.predict(at::randn({3, 4})), Error);
}

}  // namespace
}  // namespace strata
