// Entropy-based modality uncertainty: known-answer logit sets built here (entropies from the
// closed form of softmax([s, 0, ..., 0]), following decisions drawn from a known logistic law),
// invariants (swapping text and image flips the balance point's sign), degenerate curves, the
// errors, layer-wise oscillation on hand-made lens logits, and — on a tiny toy vision-language
// model trained at test time by examples/modality/modality_toy.py — the three passes run in C++
// against PyTorch's logits, and the `strata modality` command in both modes.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <strata/analysis/modality_uncertainty.h>
#include <strata/core/error.h>
#include <strata/io/safetensors.h>
#include <strata/model/model.h>
#include "test_process.h"
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace strata {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

// Entropy of softmax([s, 0, ..., 0]) over V tokens, in closed form.
double peaked_entropy(double s, int64_t V) {
  const double z = std::exp(s) + static_cast<double>(V - 1);
  const double p = std::exp(s) / z, q = 1.0 / z;
  return -(p * std::log(p) + static_cast<double>(V - 1) * q * std::log(q));
}

// One row of logits [V]: `s` at token `answer`, 0 elsewhere.
std::vector<float> peaked(int64_t V, int64_t answer, double s) {
  std::vector<float> row(V, 0.0f);
  row[answer] = static_cast<float>(s);
  return row;
}

at::Tensor rows_to_tensor(const std::vector<std::vector<float>>& rows) {
  const int64_t N = static_cast<int64_t>(rows.size()), V = static_cast<int64_t>(rows[0].size());
  at::Tensor t = at::empty({N, V}, at::kFloat);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t v = 0; v < V; ++v) t[n][v] = rows[n][v];
  return t;
}

// A known-answer set: text answer 0, image answer 1 (V = 4); sharpness s_t, s_v ~ U(0, 5);
// the joint answer follows text with probability σ(slope · (ΔH_rel − bp)).
struct Synthetic {
  at::Tensor text, image, joint;
  std::vector<double> x;  // ΔH_rel from the closed form
};

Synthetic synthetic(int64_t N, double bp, double slope, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> s(0.0, 5.0), u(0.0, 1.0);
  std::vector<std::vector<float>> T, V, J;
  Synthetic out;
  for (int64_t n = 0; n < N; ++n) {
    const double st = s(rng), sv = s(rng);
    const double ht = peaked_entropy(st, 4), hv = peaked_entropy(sv, 4);
    const double x = 2 * (ht - hv) / (ht + hv);
    const bool text = u(rng) < 1.0 / (1.0 + std::exp(-slope * (x - bp)));
    T.push_back(peaked(4, 0, st));
    V.push_back(peaked(4, 1, sv));
    J.push_back(peaked(4, text ? 0 : 1, 3.0));
    out.x.push_back(x);
  }
  out.text = rows_to_tensor(T);
  out.image = rows_to_tensor(V);
  out.joint = rows_to_tensor(J);
  return out;
}

TEST(ModalityStats, EntropyMatchesTheClosedForm) {
  const at::Tensor x = rows_to_tensor({peaked(5, 2, 0.0), peaked(5, 2, 3.0), peaked(5, 0, -1.5)});
  const std::vector<double> h = answer_entropy(x);
  EXPECT_NEAR(h[0], std::log(5.0), 1e-12);
  EXPECT_NEAR(h[1], peaked_entropy(3.0, 5), 1e-6);
  EXPECT_NEAR(h[2], peaked_entropy(-1.5, 5), 1e-6);
  // Over a candidate set only: two equal logits -> log 2, whatever the rest.
  const at::Tensor y = rows_to_tensor({{9, 0, 1, 1, 0, 0}, {9, 0, 3, 0, 0, 0}});
  const std::vector<double> hc = answer_entropy(y, {2, 3});
  EXPECT_NEAR(hc[0], std::log(2.0), 1e-12);
  EXPECT_NEAR(hc[1], peaked_entropy(3.0, 2), 1e-6);
  // −inf marks an impossible token: it contributes nothing.
  at::Tensor z = at::zeros({1, 3});
  z[0][2] = -std::numeric_limits<float>::infinity();
  EXPECT_NEAR(answer_entropy(z)[0], std::log(2.0), 1e-12);
}

TEST(ModalityStats, RelativeUncertainty) {
  EXPECT_DOUBLE_EQ(relative_uncertainty(1.0, 1.0), 0.0);
  EXPECT_DOUBLE_EQ(relative_uncertainty(0.0, 1.0), -2.0);
  EXPECT_DOUBLE_EQ(relative_uncertainty(1.0, 0.0), 2.0);
  EXPECT_DOUBLE_EQ(relative_uncertainty(0.0, 0.0), 0.0);
  EXPECT_NEAR(relative_uncertainty(0.5, 1.5), 2 * (-1.0) / 2.0, 1e-15);
}

TEST(ModalityStats, WilsonIntervalKnownValues) {
  // Reference values: Wilson (1927) score interval, z = 1.959964 (e.g. statsmodels
  // proportion_confint(method="wilson")).
  auto [a, b] = wilson_interval(5, 10, 0.95);
  EXPECT_NEAR(a, 0.236593, 1e-5);
  EXPECT_NEAR(b, 0.763407, 1e-5);
  std::tie(a, b) = wilson_interval(0, 10, 0.95);
  EXPECT_NEAR(a, 0.0, 1e-12);
  EXPECT_NEAR(b, 0.277533, 1e-5);
  std::tie(a, b) = wilson_interval(10, 10, 0.95);
  EXPECT_NEAR(a, 0.722467, 1e-5);
  EXPECT_NEAR(b, 1.0, 1e-12);
  EXPECT_THROW(wilson_interval(3, 2), Error);
}

TEST(ModalityStats, LogisticFitRecoversAKnownLaw) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> ux(-2, 2), u(0, 1);
  std::vector<double> x;
  std::vector<int> y;
  for (int i = 0; i < 20000; ++i) {
    x.push_back(ux(rng));
    y.push_back(u(rng) < 1.0 / (1.0 + std::exp(-(0.6 - 2.5 * x.back()))) ? 1 : 0);
  }
  const LogisticFit f = fit_logistic(x, y);
  EXPECT_TRUE(f.converged);
  EXPECT_NEAR(f.intercept, 0.6, 0.1);
  EXPECT_NEAR(f.slope, -2.5, 0.15);
  ASSERT_TRUE(f.crossing(-2, 2));
  EXPECT_NEAR(*f.crossing(-2, 2), 0.24, 0.05);
  EXPECT_FALSE(f.crossing(1, 2));  // outside the range: no crossing reported
  // Separated data stays finite, and the crossing lies in the gap.
  const LogisticFit s = fit_logistic({-1, -0.5, 0.5, 1}, {1, 1, 0, 0});
  EXPECT_TRUE(std::isfinite(s.slope));
  EXPECT_LT(s.slope, -1.0);
  ASSERT_TRUE(s.crossing(-1, 1));
  EXPECT_NEAR(*s.crossing(-1, 1), 0.0, 1e-6);
  EXPECT_THROW(fit_logistic({1.0}, {1}), Error);
  EXPECT_THROW(fit_logistic({1.0, 2.0}, {1}), Error);
  EXPECT_THROW(fit_logistic({1.0, 2.0}, {1, 2}), Error);
}

// The same maximum-likelihood fit as scikit-learn's LogisticRegression (lbfgs, C = 1e12, i.e.
// unpenalized), run at test time on the same points.
TEST(ModalityStats, LogisticFitMatchesScikitLearn) {
  std::mt19937_64 rng(21);
  std::uniform_real_distribution<double> ux(-2, 2), u(0, 1);
  std::vector<double> x;
  std::vector<int> y;
  for (int i = 0; i < 3000; ++i) {
    x.push_back(ux(rng));
    y.push_back(u(rng) < 1.0 / (1.0 + std::exp(-(-0.8 - 1.7 * x.back()))) ? 1 : 0);
  }
  const LogisticFit f = fit_logistic(x, y);
  char tmpl[] = "/tmp/strata_modality_sk_XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  TensorMap t;
  t.insert("x", at::tensor(x, at::kDouble));
  t.insert("y", at::tensor(std::vector<int64_t>(y.begin(), y.end()), at::kLong));
  save_safetensors(dir + "/xy.safetensors", t);
  const std::string code =
      "import sys; sys.path.insert(0, sys.argv[1] + '/tests/python'); import stio\n"
      "from sklearn.linear_model import LogisticRegression\n"
      "t, _ = stio.load(sys.argv[2])\n"
      "lr = LogisticRegression(C=1e12, tol=1e-12, max_iter=10000).fit(t['x'][:, None], t['y'])\n"
      "print(repr(lr.intercept_[0]), repr(lr.coef_[0, 0]))\n";
  std::string cmd = std::string(STRATA_PYTHON) + " -c \"" + code + "\" " + STRATA_SOURCE_DIR + " " +
                    dir + "/xy.safetensors";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  double a = NAN, b = NAN;
  ASSERT_EQ(std::fscanf(pipe, "%lf %lf", &a, &b), 2);
  ASSERT_EQ(::pclose(pipe), 0);
  fs::remove_all(dir);
  EXPECT_NEAR(f.intercept, a, 1e-3);
  EXPECT_NEAR(f.slope, b, 1e-3);
  EXPECT_NEAR(-f.intercept / f.slope, -a / b, 1e-3);
}

TEST(ModalityUncertainty, FollowingDecisions) {
  // Text answer 0, image answer 1 in rows 0-2; the joint answer is 0, 1, 2. Row 3: both unimodal
  // answers are 2 (no conflict).
  const at::Tensor T =
      rows_to_tensor({peaked(4, 0, 2), peaked(4, 0, 2), peaked(4, 0, 2), peaked(4, 2, 2)});
  const at::Tensor V =
      rows_to_tensor({peaked(4, 1, 1), peaked(4, 1, 1), peaked(4, 1, 1), peaked(4, 2, 1)});
  const at::Tensor J =
      rows_to_tensor({peaked(4, 0, 1), peaked(4, 1, 1), peaked(4, 2, 1), peaked(4, 2, 1)});
  const ModalityResult r = ModalityUncertainty(ModalityOptions().set_bootstrap(0)).analyze(T, V, J);
  ASSERT_EQ(r.items.size(), 4u);
  EXPECT_EQ(r.items[0].follows, Follows::Text);
  EXPECT_EQ(r.items[1].follows, Follows::Image);
  EXPECT_EQ(r.items[2].follows, Follows::Other);
  EXPECT_EQ(r.items[3].follows, Follows::Both);
  EXPECT_EQ(r.n_text, 1);
  EXPECT_EQ(r.n_image, 1);
  EXPECT_EQ(r.n_other, 1);
  EXPECT_EQ(r.n_both, 1);
  EXPECT_NEAR(r.items[0].h_text, peaked_entropy(2, 4), 1e-6);
  EXPECT_NEAR(r.items[0].h_image, peaked_entropy(1, 4), 1e-6);
  const double x = 2 * (peaked_entropy(2, 4) - peaked_entropy(1, 4)) /
                   (peaked_entropy(2, 4) + peaked_entropy(1, 4));
  EXPECT_NEAR(r.items[1].delta_h_rel, x, 1e-6);
  EXPECT_LT(x, 0);  // text sharper -> negative
  // The report says what was excluded, in input order.
  const json d = modality_report(r).data;
  EXPECT_EQ(d["excluded"]["other"], 1);
  EXPECT_EQ(d["excluded"]["both"], 1);
  EXPECT_EQ(d["items"][2]["follows"], "other");
  EXPECT_EQ(d["items"][3]["follows"], "both");
  int64_t in_curve = 0;
  for (const auto& b : d["curve"]) in_curve += b["n"].get<int64_t>();
  EXPECT_EQ(in_curve, 2);
}

TEST(ModalityUncertainty, ReportsRisesAgainstTheLaw) {
  // 30 items near ΔH_rel = −1.9 all follow the image, 30 near −1.0 all follow text: a rise with
  // disjoint Wilson intervals; 30 more near +1.5 follow the image.
  std::vector<std::vector<float>> T, V, J;
  auto add = [&](double st, double sv, bool text, int count) {
    for (int i = 0; i < count; ++i) {
      T.push_back(peaked(4, 0, st));
      V.push_back(peaked(4, 1, sv));
      J.push_back(peaked(4, text ? 0 : 1, 1));
    }
  };
  add(8, 0.05, false, 30);
  add(3, 0.5, true, 30);
  add(0.05, 8, false, 30);
  const ModalityResult r = ModalityUncertainty(ModalityOptions().set_bootstrap(0))
                               .analyze(rows_to_tensor(T), rows_to_tensor(V), rows_to_tensor(J));
  const json d = modality_report(r).data;
  ASSERT_EQ(r.curve.size(), 3u);
  ASSERT_EQ(d["significant_rises"].size(), 1u);
  EXPECT_EQ(d["significant_rises"][0]["p_text"][0], 0.0);
  EXPECT_EQ(d["significant_rises"][0]["p_text"][1], 1.0);
}

TEST(ModalityUncertainty, CandidateSetRestrictsAnswersAndEntropies) {
  // Token 0 has the largest logit everywhere but is not a candidate.
  const at::Tensor T = rows_to_tensor({{9, 0, 2, 0, 0}, {9, 0, 2, 0, 0}});
  const at::Tensor V = rows_to_tensor({{9, 0, 0, 1, 0}, {9, 0, 0, 1, 0}});
  const at::Tensor J = rows_to_tensor({{9, 0, 3, 0, 0}, {9, 0, 0, 3, 0}});
  const ModalityResult r =
      ModalityUncertainty(ModalityOptions().set_candidates({2, 3, 4}).set_bootstrap(0))
          .analyze(T, V, J);
  EXPECT_EQ(r.items[0].text_answer, 2);
  EXPECT_EQ(r.items[0].image_answer, 3);
  EXPECT_EQ(r.items[0].follows, Follows::Text);
  EXPECT_EQ(r.items[1].follows, Follows::Image);
  EXPECT_NEAR(r.items[0].h_text, peaked_entropy(2, 3), 1e-6);
  EXPECT_NEAR(r.items[0].h_image, peaked_entropy(1, 3), 1e-6);
}

TEST(ModalityUncertainty, RecoversAKnownBalancePoint) {
  const double bp = 0.4, slope = -3.0;
  const Synthetic s = synthetic(3000, bp, slope, 11);
  const ModalityResult r = ModalityUncertainty(ModalityOptions().set_bootstrap(300).set_seed(3))
                               .analyze(s.text, s.image, s.joint);
  for (size_t i = 0; i < s.x.size(); ++i) ASSERT_NEAR(r.items[i].delta_h_rel, s.x[i], 1e-5) << i;
  ASSERT_TRUE(r.fit);
  EXPECT_NEAR(r.fit->slope, slope, 0.5);
  ASSERT_TRUE(r.balance_point);
  EXPECT_NEAR(*r.balance_point, bp, 0.1);
  ASSERT_TRUE(r.balance_point_ci);
  EXPECT_LE(r.balance_point_ci->first, *r.balance_point);
  EXPECT_GE(r.balance_point_ci->second, *r.balance_point);
  EXPECT_LE(r.balance_point_ci->first, bp);
  EXPECT_GE(r.balance_point_ci->second, bp);
  EXPECT_LT(r.balance_point_ci->second - r.balance_point_ci->first, 0.4);
  EXPECT_EQ(r.bootstrap_crossing, 300);
  // The binned curve falls: first non-empty bin above 0.5, last below, Wilson bounds hold p.
  ASSERT_GE(r.curve.size(), 4u);
  EXPECT_GT(r.curve.front().p_text, 0.8);
  EXPECT_LT(r.curve.back().p_text, 0.2);
  for (const auto& b : r.curve) {
    EXPECT_LE(b.ci_lo, b.p_text);
    EXPECT_GE(b.ci_hi, b.p_text);
    EXPECT_GE(b.mean_delta_h_rel, b.lo);
    EXPECT_LE(b.mean_delta_h_rel, b.hi);
  }
  // The same seed gives the same interval; another seed a different one.
  const ModalityResult again = ModalityUncertainty(ModalityOptions().set_bootstrap(300).set_seed(3))
                                   .analyze(s.text, s.image, s.joint);
  EXPECT_EQ(again.balance_point_ci->first, r.balance_point_ci->first);
  const ModalityResult other = ModalityUncertainty(ModalityOptions().set_bootstrap(300).set_seed(4))
                                   .analyze(s.text, s.image, s.joint);
  EXPECT_NE(other.balance_point_ci->first, r.balance_point_ci->first);
}

TEST(ModalityUncertainty, SwappingTextAndImageFlipsTheBalancePoint) {
  const Synthetic s = synthetic(1500, -0.7, -2.0, 5);
  const ModalityUncertainty mu(ModalityOptions().set_bootstrap(200).set_seed(9));
  const ModalityResult a = mu.analyze(s.text, s.image, s.joint);
  const ModalityResult b = mu.analyze(s.image, s.text, s.joint);
  ASSERT_TRUE(a.balance_point && b.balance_point);
  EXPECT_NEAR(*a.balance_point, -0.7, 0.15);
  EXPECT_NEAR(*b.balance_point, -*a.balance_point, 1e-6);
  ASSERT_TRUE(a.balance_point_ci && b.balance_point_ci);
  EXPECT_NEAR(b.balance_point_ci->first, -a.balance_point_ci->second, 1e-6);
  EXPECT_NEAR(b.balance_point_ci->second, -a.balance_point_ci->first, 1e-6);
  EXPECT_EQ(a.n_text, b.n_image);
  EXPECT_EQ(a.n_image, b.n_text);
  for (size_t i = 0; i < a.items.size(); ++i) {
    EXPECT_NEAR(b.items[i].delta_h_rel, -a.items[i].delta_h_rel, 1e-12);
    if (a.items[i].follows == Follows::Text) EXPECT_EQ(b.items[i].follows, Follows::Image);
  }
  EXPECT_NEAR(b.fit->intercept, -a.fit->intercept, 1e-6);
  EXPECT_NEAR(b.fit->slope, a.fit->slope, 1e-6);
}

TEST(ModalityUncertainty, NoMadeUpBalancePointWhenTheCurveNeverCrosses) {
  // Everyone follows text.
  Synthetic s = synthetic(200, 0.0, -2.0, 1);
  at::Tensor all_text = s.text.clone();
  ModalityResult r = ModalityUncertainty().analyze(s.text, s.image, all_text);
  EXPECT_FALSE(r.balance_point);
  EXPECT_FALSE(r.balance_point_ci);
  EXPECT_FALSE(r.fit);
  EXPECT_THAT(r.note, HasSubstr("never crosses 0.5"));
  json d = modality_report(r).data;
  EXPECT_TRUE(d["balance_point"].is_null());
  EXPECT_TRUE(d["balance_point_ci"].is_null());
  // A falling curve that stays above 0.5: P(text) = σ(4 − x) ≥ 0.88 on [−2, 2].
  s = synthetic(1500, 4.0, -1.0, 2);
  r = ModalityUncertainty(ModalityOptions().set_bootstrap(50)).analyze(s.text, s.image, s.joint);
  ASSERT_TRUE(r.fit);
  EXPECT_LT(r.fit->slope, 0);
  EXPECT_FALSE(r.balance_point);
  EXPECT_FALSE(r.balance_point_ci);
  EXPECT_THAT(r.note, HasSubstr("does not cross 0.5"));
  EXPECT_THAT(r.note, HasSubstr("follows text"));
  d = modality_report(r).data;
  EXPECT_TRUE(d["balance_point"].is_null());
  // Every bin above 0.5 (52% text in four clusters, 60% in the last) while the nearly flat fit
  // crosses 0.5 inside the range (near −1.16): the data never reach 0.5, so no balance point.
  {
    std::vector<std::vector<float>> T, V, J;
    auto add = [&](double st, double sv, int n_text, int n) {
      for (int i = 0; i < n; ++i) {
        T.push_back(peaked(4, 0, st));
        V.push_back(peaked(4, 1, sv));
        J.push_back(peaked(4, i < n_text ? 0 : 1, 1));
      }
    };
    add(8, 0.05, 26, 50);    // ΔH_rel ≈ −1.97
    add(3, 0.5, 156, 300);   // ≈ −0.88
    add(2, 2, 156, 300);     // 0
    add(0.5, 3, 156, 300);   // ≈ +0.88
    add(0.05, 8, 360, 600);  // ≈ +1.97
    const ModalityResult e = ModalityUncertainty(ModalityOptions().set_bootstrap(20))
                                 .analyze(rows_to_tensor(T), rows_to_tensor(V), rows_to_tensor(J));
    ASSERT_TRUE(e.fit);
    ASSERT_TRUE(e.fit->crossing(e.x_min, e.x_max)) << "the case needs a fit crossing in range";
    for (const auto& b : e.curve) EXPECT_GT(b.p_text, 0.5);
    EXPECT_FALSE(e.balance_point);
    EXPECT_FALSE(e.balance_point_ci);
    EXPECT_THAT(e.note, HasSubstr("every bin of the curve has p_text above 0.5"));
  }
  // The picture says so too, and renders.
  const Image img = modality_curve_image(r);
  EXPECT_GT(img.width(), 100);
}

// Four items symmetric about ΔH_rel = 0 (so the fit's balance point is 0): C and D are clear
// (|ΔH_rel| ≈ 1.6), A and B ambiguous (|ΔH_rel| ≈ 0.05). Layer tops are hand-made.
TEST(ModalityUncertainty, OscillationAcrossLayers) {
  const at::Tensor T =
      rows_to_tensor({peaked(4, 0, 2.0), peaked(4, 0, 2.1), peaked(4, 0, 6), peaked(4, 0, 1)});
  const at::Tensor V =
      rows_to_tensor({peaked(4, 1, 2.1), peaked(4, 1, 2.0), peaked(4, 1, 1), peaked(4, 1, 6)});
  const at::Tensor J =
      rows_to_tensor({peaked(4, 0, 1), peaked(4, 1, 1), peaked(4, 0, 1), peaked(4, 1, 1)});
  const std::vector<float> t{3, 1, 0, 0}, v{1, 3, 0, 0}, o{0, 0, 5, 0};  // top: text/image/none
  const std::vector<std::vector<std::vector<float>>> layers = {
      {t, v, t, v},  // A: 3 switches
      {t, v, v, v},  // B: 1
      {t, t, t, t},  // C: 0
      {o, v, v, v},  // D: 0 (a layer whose top is neither answer is skipped)
  };
  at::Tensor Lg = at::empty({4, 4, 4});
  for (int n = 0; n < 4; ++n)
    for (int l = 0; l < 4; ++l)
      for (int k = 0; k < 4; ++k) Lg[n][l][k] = layers[n][l][k];
  const ModalityResult r =
      ModalityUncertainty(ModalityOptions().set_bootstrap(0)).analyze(T, V, J, Lg);
  ASSERT_TRUE(r.balance_point);
  EXPECT_NEAR(*r.balance_point, 0.0, 1e-6);
  EXPECT_GT(r.items[0].delta_h_rel, 0);
  EXPECT_LT(std::abs(r.items[0].delta_h_rel), 0.5);
  EXPECT_GT(std::abs(r.items[2].delta_h_rel), 0.5);
  EXPECT_EQ(*r.items[0].switches, 3);
  EXPECT_EQ(*r.items[1].switches, 1);
  EXPECT_EQ(*r.items[2].switches, 0);
  EXPECT_EQ(*r.items[3].switches, 0);
  ASSERT_TRUE(r.oscillation);
  const Oscillation& osc = *r.oscillation;
  EXPECT_EQ(osc.n_ambiguous, 2);
  EXPECT_EQ(osc.n_clear, 2);
  EXPECT_DOUBLE_EQ(*osc.ambiguous, 2.0);
  EXPECT_DOUBLE_EQ(*osc.clear, 0.0);
  EXPECT_DOUBLE_EQ(*osc.all, 1.0);
  EXPECT_THAT(osc.diff_all, ::testing::ElementsAre(1.5, -1.0, 0.0, -1.0));
  EXPECT_THAT(osc.diff_ambiguous, ::testing::ElementsAre(2.0, -2.0, 0.0, -2.0));
  EXPECT_THAT(osc.diff_follows_text, ::testing::ElementsAre(2.0, 0.0, 2.0, 0.0));
  const json d = modality_report(r).data;
  EXPECT_EQ(d["oscillation"]["ambiguous"], 2.0);
  EXPECT_EQ(d["oscillation"]["clear"], 0.0);
  EXPECT_EQ(d["items"][0]["switches"], 3);
  // A narrower window leaves the ambiguous region empty: no made-up mean.
  const ModalityResult narrow =
      ModalityUncertainty(ModalityOptions().set_bootstrap(0).set_window(0.001))
          .analyze(T, V, J, Lg);
  EXPECT_FALSE(narrow.oscillation->ambiguous);
  EXPECT_TRUE(modality_report(narrow).data["oscillation"]["ambiguous"].is_null());
}

TEST(ModalityUncertainty, CurveImageMarksTheBalancePoint) {
  const Synthetic s = synthetic(800, 0.0, -3.0, 4);
  const ModalityResult r =
      ModalityUncertainty(ModalityOptions().set_bootstrap(50)).analyze(s.text, s.image, s.joint);
  ASSERT_TRUE(r.balance_point);
  const Image img = modality_curve_image(r, "test");
  // The red balance-point line crosses the middle of the plot at x = px(bp).
  const int64_t left = 70, pw = img.width() - 70 - 30;
  const int64_t X = left + std::lround((*r.balance_point + 2.0) / 4.0 * pw);
  const Rgb c = img.at(X, img.height() / 2);
  EXPECT_EQ(c.r, 214);
  EXPECT_EQ(c.g, 39);
  EXPECT_EQ(c.b, 40);
}

TEST(ModalityUncertainty, Errors) {
  const Synthetic s = synthetic(10, 0.0, -2.0, 1);
  const ModalityUncertainty mu(ModalityOptions().set_bootstrap(0));
  auto message = [&](const at::Tensor& t, const at::Tensor& v, const at::Tensor& j,
                     const at::Tensor& l = {}) {
    try {
      mu.analyze(t, v, j, l);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(message(s.text, s.image.slice(0, 0, 7), s.joint),
              HasSubstr("the text-only logits have 10 items but the image-only logits 7"));
  EXPECT_THAT(message(s.text, s.image, s.joint.slice(1, 0, 3)),
              HasSubstr("vocabulary of 4 but the joint logits 3"));
  EXPECT_THAT(message(s.text, s.image, s.joint, at::zeros({9, 3, 4})),
              HasSubstr("layer logits have 9 items but the answer logits 10"));
  EXPECT_THAT(message(s.text, s.image, s.joint, at::zeros({10, 3, 5})),
              HasSubstr("layer logits have a vocabulary of 5"));
  EXPECT_THAT(message(s.text, s.image, s.joint, at::zeros({10, 4})), HasSubstr("[N, L, V]"));
  EXPECT_THAT(message(s.text[0], s.image, s.joint), HasSubstr("expected floating-point [N, V]"));
  EXPECT_THAT(message(s.text.to(at::kLong), s.image, s.joint), HasSubstr("text-only logits are"));
  at::Tensor bad = s.image.clone();
  bad[3][2] = std::nanf("");
  EXPECT_THAT(message(s.text, bad, s.joint), HasSubstr("image-only logits of item 3"));
  // Every item excluded: an error that says why.
  EXPECT_THAT(message(s.text, s.text, s.joint), HasSubstr("the text-only and image-only answers "
                                                          "are the same token"));
  const at::Tensor other = rows_to_tensor(std::vector<std::vector<float>>(10, peaked(4, 3, 5)));
  EXPECT_THAT(message(s.text, s.image, other), HasSubstr("in 10 the joint answer is neither"));
  // Options.
  EXPECT_THROW(ModalityUncertainty(ModalityOptions().set_candidates({1, 1})), Error);
  EXPECT_THROW(ModalityUncertainty(ModalityOptions().set_candidates({-1, 2})), Error);
  EXPECT_THROW(ModalityUncertainty(ModalityOptions().set_candidates({1})), Error);
  EXPECT_THROW(ModalityUncertainty(ModalityOptions().set_bins(0)), Error);
  EXPECT_THROW(ModalityUncertainty(ModalityOptions().set_confidence(1.0)), Error);
  EXPECT_THROW(ModalityUncertainty(ModalityOptions().set_window(0)), Error);
  try {
    ModalityUncertainty(ModalityOptions().set_candidates({1, 7})).analyze(s.text, s.image, s.joint);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("candidate token id 7 is outside the vocabulary [0, 4)"));
  }
}

// ---------------------------------------------------------------------------------------------
// The tiny toy vision-language model (trained here, a few seconds) and the command.

using testing::ProcResult;
ProcResult run(const std::vector<std::string>& argv) { return testing::run_process(argv); }

std::string& scratch_dir() {
  static std::string dir;
  return dir;
}

class RemoveScratch : public ::testing::Environment {
 public:
  void TearDown() override {
    if (!scratch_dir().empty() && std::getenv("STRATA_KEEP_TEST_TMP") == nullptr) {
      std::error_code ec;
      fs::remove_all(scratch_dir(), ec);
    }
  }
};
[[maybe_unused]] const auto* const kRemoveScratch =
    ::testing::AddGlobalTestEnvironment(new RemoveScratch);

// The tiny model, 200 conflicting items and PyTorch's logits for them (modality_toy.py fixture).
const std::string& toy() {
  std::string& dir = scratch_dir();
  if (dir.empty()) {
    char tmpl[] = "/tmp/strata_modality_test_XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    if (d == nullptr) throw std::runtime_error("mkdtemp failed");
    dir = d;
    const ProcResult r =
        run({STRATA_PYTHON, std::string(STRATA_SOURCE_DIR) + "/examples/modality/modality_toy.py",
             "fixture", dir});
    if (r.code != 0) throw std::runtime_error("modality_toy.py fixture failed: " + r.out);
  }
  return dir;
}

std::vector<at::Tensor> args_of(const std::string& path) {
  SafetensorsFile f = load_safetensors(path);
  return {f.tensors.at("arg0"), f.tensors.at("arg1")};
}

at::Tensor logits_of(const std::string& path) {
  return load_safetensors(path).tensors.at("logits");
}

json load_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read " + path);
  return json::parse(f);
}

TEST(ModalityToyModel, ThreePassesMatchPyTorch) {
  const std::string dir = toy();
  const Model model = Model::load(dir + "/tiny.pt");
  const ModalityRuns runs = run_modality_passes(
      model, args_of(dir + "/text_inputs.safetensors"), args_of(dir + "/image_inputs.safetensors"),
      args_of(dir + "/joint_inputs.safetensors"), ModalityPassOptions().set_batch_size(48));
  EXPECT_TRUE(at::allclose(runs.text, logits_of(dir + "/text.safetensors"), 1e-4, 1e-4));
  EXPECT_TRUE(at::allclose(runs.image, logits_of(dir + "/image.safetensors"), 1e-4, 1e-4));
  EXPECT_TRUE(at::allclose(runs.joint, logits_of(dir + "/joint.safetensors"), 1e-4, 1e-4));
  // The lens: the embedding (the first block's input, computed inline) and both blocks; the last
  // block decoded through norm + unembed is the model's own output.
  EXPECT_THAT(runs.layers, ::testing::ElementsAre("blocks.0:in:0", "blocks.0", "blocks.1"));
  ASSERT_EQ(runs.layer_logits.dim(), 3);
  EXPECT_EQ(runs.layer_logits.size(0), 200);
  EXPECT_EQ(runs.layer_logits.size(1), 3);
  EXPECT_TRUE(at::allclose(runs.layer_logits.select(1, 2), runs.joint, 1e-4, 1e-4));
  EXPECT_FALSE(at::allclose(runs.layer_logits.select(1, 0), runs.joint, 1e-2, 1e-2));
  // Errors name the run.
  std::vector<at::Tensor> short_text = args_of(dir + "/text_inputs.safetensors");
  for (auto& t : short_text) t = t.slice(0, 0, 10);
  try {
    run_modality_passes(model, short_text, args_of(dir + "/image_inputs.safetensors"),
                        args_of(dir + "/joint_inputs.safetensors"));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("text-only 10, image-only 200, joint 200"));
  }
  try {
    run_modality_passes(model, args_of(dir + "/text_inputs.safetensors"),
                        args_of(dir + "/image_inputs.safetensors"),
                        args_of(dir + "/joint_inputs.safetensors"),
                        ModalityPassOptions().set_position(40));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("answer position 40 is outside the 19 positions"));
  }
}

TEST(ModalityCommand, ModelModeAgreesWithFileMode) {
  const std::string dir = toy();
  const std::string cli = STRATA_CLI;
  ProcResult r = run({cli, "modality", dir + "/tiny.pt", "--text", dir + "/text_inputs.safetensors",
                      "--image", dir + "/image_inputs.safetensors", "--joint",
                      dir + "/joint_inputs.safetensors", "--out", dir + "/model.json", "--png",
                      dir + "/curve.png", "--save-logits", dir + "/saved", "--bootstrap", "100"});
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("wrote " + dir + "/model.json"));
  const json m = load_json(dir + "/model.json");
  ASSERT_EQ(m["items"].size(), 200u);
  for (const char* key : {"balance_point", "balance_point_ci", "curve", "items", "oscillation"})
    EXPECT_TRUE(m.contains(key)) << key;
  EXPECT_TRUE(m["oscillation"].contains("ambiguous"));
  EXPECT_TRUE(m["oscillation"].contains("clear"));
  EXPECT_TRUE(fs::file_size(dir + "/curve.png") > 1000);
  // The same analysis from PyTorch's logits (file mode) gives the same decisions.
  r = run({cli, "modality", "--text", dir + "/text.safetensors", "--image",
           dir + "/image.safetensors", "--joint", dir + "/joint.safetensors", "--layers",
           dir + "/saved/layers.safetensors", "--out", dir + "/files.json", "--bootstrap", "100",
           "--quiet"});
  ASSERT_EQ(r.code, 0) << r.out;
  const json f = load_json(dir + "/files.json");
  for (size_t i = 0; i < 200; ++i) {
    EXPECT_EQ(f["items"][i]["follows"], m["items"][i]["follows"]) << i;
    EXPECT_NEAR(f["items"][i]["delta_h_rel"].get<double>(),
                m["items"][i]["delta_h_rel"].get<double>(), 1e-4)
        << i;
  }
  EXPECT_EQ(f["balance_point"].is_null(), m["balance_point"].is_null());
  if (!m["balance_point"].is_null())
    EXPECT_NEAR(f["balance_point"].get<double>(), m["balance_point"].get<double>(), 1e-3);
  EXPECT_EQ(f["oscillation"]["n_ambiguous"], m["oscillation"]["n_ambiguous"]);
}

TEST(ModalityCommand, Errors) {
  const std::string dir = toy();
  const std::string cli = STRATA_CLI;
  // Mismatched N across files: exit 1, one line naming the files.
  {
    TensorMap t;
    t.insert("logits", at::zeros({5, 11}));
    save_safetensors(dir + "/five.safetensors", t);
  }
  ProcResult r = run({cli, "modality", "--text", dir + "/text.safetensors", "--image",
                      dir + "/five.safetensors", "--joint", dir + "/joint.safetensors", "--out",
                      dir + "/x.json"});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("strata: error: ModalityUncertainty: the text-only logits have 200 "
                               "items but the image-only logits 5"));
  EXPECT_THAT(r.out, HasSubstr("--image " + dir + "/five.safetensors"));
  // A file without 'logits'.
  r = run({cli, "modality", "--text", dir + "/text_inputs.safetensors", "--image",
           dir + "/image.safetensors", "--joint", dir + "/joint.safetensors", "--out",
           dir + "/x.json"});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("has no tensor 'logits' ([N, V]); it holds: arg0, arg1"));
  // Usage errors: exit 2.
  r = run({cli, "modality", "--text", dir + "/text.safetensors", "--image",
           dir + "/image.safetensors", "--joint", dir + "/joint.safetensors", "--out",
           dir + "/x.json", "--position", "3"});
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("--position needs a MODEL.pt"));
  r = run({cli, "modality", "--text", dir + "/text.safetensors", "--out", dir + "/x.json"});
  EXPECT_EQ(r.code, 2) << r.out;
  r = run({cli, "modality", "--text", dir + "/text.safetensors", "--image",
           dir + "/image.safetensors", "--joint", dir + "/joint.safetensors", "--out",
           dir + "/x.json", "--candidates", "5,x"});
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("'x' is not a token id"));
}

}  // namespace
}  // namespace strata
