// LRP correctness: every rule on Linear, Conv2d and depthwise Conv2d against an independent
// matrix-form (Jacobian) implementation written in Python at test time
// (tests/lrp/make_lrp_fixtures.py); LRP-0 == gradient x input (PyTorch autograd) on a bias-free
// ReLU net and on the real face-expression model; conservation on a MobileNet-like net with
// BatchNorm, ReLU6 (saturated), depthwise convolutions, residual adds and concatenation;
// hand-computed networks; BatchNorm merging; composites; the errors users meet.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <strata/core/error.h>
#include <strata/io/safetensors.h>
#include <strata/lrp/canonizer.h>
#include <strata/lrp/composite.h>
#include <strata/lrp/lrp.h>
#include <strata/lrp/relevance_image.h>
#include <strata/lrp/rule.h>
#include <strata/model/model.h>

#include <filesystem>
#include <iostream>
#include <string>

namespace strata {
namespace {

using ::testing::HasSubstr;

std::string lrp_fixture(const std::string& name) {
  return std::string(STRATA_LRP_FIXTURE_DIR) + "/" + name;
}

TensorMap tensors(const std::string& name) { return load_safetensors(lrp_fixture(name)).tensors; }

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

// ---- every rule on Linear / Conv2d / depthwise Conv2d == matrix form ----

class RuleMatrix : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(RuleMatrix, EqualsJacobianImplementation) {
  const auto [layer, rule] = GetParam();
  static const TensorMap refs = tensors("rules_ref.safetensors");
  Model model = Model::load(lrp_fixture("rule_" + layer + ".pt"));
  const at::Tensor x = refs.at(layer + "/x");
  const Composite c = Composite::parse_rules("layer=" + rule + ",readout=zero");
  const LrpResult r = lrp(model, {x}, /*target=*/1, c);
  const at::Tensor expected = refs.at(layer + "/" + rule);
  ASSERT_EQ(r.relevance.sizes(), expected.sizes());
  const double scale = 1.0 + expected.abs().max().item<double>();
  EXPECT_LT(max_abs_diff(r.relevance, expected), 2e-5 * scale)
      << layer << " " << rule << "\nstrata:   " << r.relevance.flatten().slice(0, 0, 6)
      << "\nmatrix:   " << expected.flatten().slice(0, 0, 6);
  EXPECT_NEAR(r.output_score, refs.at(layer + "/output_score").item<double>(), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(AllRules, RuleMatrix,
                         ::testing::Combine(::testing::Values("linear", "conv", "depthwise"),
                                            ::testing::Values("zero", "epsilon:0.1", "gamma:0.25",
                                                              "alphabeta:2:1", "zplus", "zbox:-2:3",
                                                              "flat", "wsquare")),
                         [](const auto& info) {
                           std::string s = std::get<0>(info.param) + "_" + std::get<1>(info.param);
                           for (char& ch : s)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return s;
                         });

// ---- LRP-0 on a bias-free ReLU network is gradient x input ----

TEST(Lrp, ZeroRuleOnBiasFreeReluNetIsGradientTimesInput) {
  Model model = Model::load(lrp_fixture("relu_net.pt"));
  const TensorMap t = tensors("relu_net.safetensors");
  const LrpResult r = lrp(model, {t.at("arg0")}, 2, Composite::parse_rules("*=zero"));
  EXPECT_LT(max_abs_diff(r.relevance, t.at("grad_x_input")), 1e-5);
  // ... and conserves the output score (no biases; max pooling is winner-take-all).
  EXPECT_NEAR(r.input_sum, r.output_score, 1e-4 * (1 + std::abs(r.output_score)));
  EXPECT_NEAR(r.output_score, t.at("output").select(1, 2).sum().item<double>(), 1e-5);
}

// ---- conservation on a network strata never saw in its own code ----

class Conservation : public ::testing::TestWithParam<std::string> {};

TEST_P(Conservation, MobileNetLikeWithBatchNormRelu6DepthwiseResidualConcat) {
  Model model = Model::load(lrp_fixture("mobile_net.pt"));
  const TensorMap t = tensors("mobile_net.safetensors");
  ASSERT_GT(t.at("saturated_relu6").item<int64_t>(), 0) << "the fixture should saturate ReLU6";
  const std::string name = GetParam();
  // "epsilon:1e-9" stands for epsilon -> 0.
  const Composite c =
      name == "epsilon_small" ? Composite::parse_rules("*=epsilon:1e-9") : Composite::preset(name);
  const LrpResult r = lrp(model, {t.at("arg0")}, 3, c);
  ASSERT_NE(r.output_score, 0.0);
  EXPECT_NEAR(r.input_sum / r.output_score, 1.0, 1e-3)
      << name << ": input sum " << r.input_sum << " vs output score " << r.output_score;
  // All 8 BatchNorms merged, each reproducing its conv + BN output.
  EXPECT_EQ(r.merged.size(), 8u);
  for (const auto& m : r.merged) EXPECT_LT(m.max_deviation, 1e-3) << m.batchnorm;
  // The conservation table has the block outputs, and relevance is conserved across them too.
  double block1 = NAN, block2 = NAN;
  for (const auto& row : r.table) {
    if (row.key == "block1") block1 = row.sum;
    if (row.key == "block2") block2 = row.sum;
  }
  EXPECT_NEAR(block2 / r.output_score, 1.0, 1e-3);
  EXPECT_NEAR(block1 / r.output_score, 1.0, 1e-3);
  if (HasFailure())
    for (const auto& row : r.table)
      std::cerr << row.key << " " << row.rule << " " << row.sum << "\n";
}

INSTANTIATE_TEST_SUITE_P(Composites, Conservation,
                         ::testing::Values("epsilon_small", "epsilon_gamma_box:-20:20"));

// z+ (and alpha2-beta1) drop the relevance of a neuron whose contributions all have one sign; in
// MobileNet's linear bottlenecks (no ReLU after the projection) such neurons carry relevance, so
// EpsilonPlusFlat does not conserve there, as in Zennit. With every neuron behind a ReLU it does.
TEST(Lrp, EpsilonPlusFlatConservesOnReluNetwork) {
  Model model = Model::load(lrp_fixture("relu_net.pt"));
  const TensorMap t = tensors("relu_net.safetensors");
  const LrpResult r = lrp(model, {t.at("arg0")}, 2, Composite::epsilon_plus_flat());
  EXPECT_NEAR(r.input_sum / r.output_score, 1.0, 1e-3);
}

// torchvision's ResNet pattern: in-place ReLU modules, `out += identity`, downsample branches; the
// merged network is bias-free, so every composite that conserves must give back the score.
TEST(Lrp, ConservesOnResNetWithInPlaceOps) {
  Model model = Model::load(lrp_fixture("resnet.pt"));
  const at::Tensor x = tensors("resnet.safetensors").at("arg0");
  for (const std::string name : {"epsilon", "epsilon_gamma_box:-5:5"}) {
    const LrpResult r = lrp(model, {x}, 3, Composite::preset(name));
    EXPECT_NEAR(r.input_sum / r.output_score, 1.0, 1e-3) << name;
    EXPECT_EQ(r.merged.size(), 8u) << name;  // stem, 2 x 2 in layer1, 2 + downsample in layer2
  }
}

TEST(Lrp, EpsilonIsRightWhenTheModelChangesConvOutputsInPlace) {
  // The epsilon factor z / (z + eps sign z) is read from each conv output in the backward. Here
  // the model overwrites conv outputs in place (ReLU(inplace=True) on conv1, `out += x` on
  // conv2), so the factor must come from the values before that: the same network written out of
  // place gives the reference. A large eps makes a factor from the wrong values visible.
  const at::Tensor x = tensors("inplace_net.safetensors").at("arg0");
  Model reference_model = Model::load(lrp_fixture("outofplace_net.pt"));
  const Composite eps = Composite::parse_rules("*=epsilon:0.01");
  const LrpResult want = lrp(reference_model, {x}, 1, eps);
  Model model = Model::load(lrp_fixture("inplace_net.pt"));
  LrpExplainer ex(model, eps);
  for (int call = 0; call < 2; ++call) {  // the first call finds the in-place ops, the second knows
    const LrpResult got = ex.explain({x}, 1);
    const double scale = want.relevance.abs().max().item<double>();
    EXPECT_NEAR(got.output_score, want.output_score, 1e-6);
    EXPECT_LT(max_abs_diff(got.relevance, want.relevance), 1e-5 * scale) << "call " << call;
    EXPECT_NEAR(got.input_sum, want.input_sum, 1e-5 * std::abs(want.input_sum)) << "call " << call;
  }
  // eps changes the relevance visibly here (else a wrong factor could go unnoticed)
  const LrpResult zero = lrp(reference_model, {x}, 1, Composite::parse_rules("*=zero"));
  EXPECT_GT(max_abs_diff(zero.relevance, want.relevance),
            0.05 * want.relevance.abs().max().item<double>());
  {}
}

TEST(Lrp, ActivationsNeedAnElementWiseRule) {
  // Activations get the pass rule; a weight rule there is refused, naming the module.
  Model model = Model::load(lrp_fixture("mobile_net.pt"));
  const TensorMap t = tensors("mobile_net.safetensors");
  Composite g = Composite::parse_rules("*=epsilon:1e-9");
  g.set_activation(Rule::zero());
  EXPECT_THAT(error_of([&] { lrp(model, {t.at("arg0")}, 3, g); }),
              HasSubstr("module 'stem_act' (ReLU6) has none"));
}

TEST(Lrp, BatchNormBiasesAbsorbRelevanceAsExpected) {
  // With real BatchNorm biases the merged layers have biases: conservation is not exact, but the
  // bias-free part is, so the input sum differs from the score and the run still succeeds.
  Model model = Model::load(lrp_fixture("mobile_net_bias.pt"));
  const TensorMap t = tensors("mobile_net.safetensors");
  const LrpResult r = lrp(model, {t.at("arg0")}, 3, Composite::epsilon_plus_flat());
  EXPECT_EQ(r.merged.size(), 8u);
  EXPECT_TRUE(std::isfinite(r.input_sum));
  EXPECT_EQ(r.relevance.sizes(), t.at("arg0").sizes());
}

// ---- hand-computed network ----
// x = [1, 2]; fc1 = [[1, 2], [-1, 1]] -> h = relu([5, 1]) = [5, 1]; fc2 = [1, 3] -> y = 8.
// Relevance at h (LRP-0 at fc2): [5 * 1, 1 * 3] = [5, 3].

TEST(Lrp, HandComputedZero) {
  // h1: R = 5 split 1:4 over x -> [1, 4]; h2: R = 3 split -1:2 over z = 1 -> [-3, 6].
  Model model = Model::load(lrp_fixture("hand.pt"));
  const LrpResult r =
      lrp(model, {at::tensor({1.0f, 2.0f}).view({1, 2})}, 0, Composite::parse_rules("*=zero"));
  EXPECT_NEAR(r.output_score, 8.0, 1e-6);
  EXPECT_NEAR(r.relevance[0][0].item<double>(), -2.0, 1e-5);
  EXPECT_NEAR(r.relevance[0][1].item<double>(), 10.0, 1e-5);
}

TEST(Lrp, HandComputedZPlus) {
  // z+ at fc1: h1's positive parts 1 and 4 (sum 5) -> [1, 4]; h2's positive part is only
  // x2 * 1 = 2 -> [0, 3]. R = [1, 7], sums to 8.
  Model model = Model::load(lrp_fixture("hand.pt"));
  const LrpResult r = lrp(model, {at::tensor({1.0f, 2.0f}).view({1, 2})}, 0,
                          Composite::parse_rules("fc1=zplus,fc2=zero"));
  EXPECT_NEAR(r.relevance[0][0].item<double>(), 1.0, 1e-5);
  EXPECT_NEAR(r.relevance[0][1].item<double>(), 7.0, 1e-5);
}

TEST(Lrp, HandComputedEpsilon) {
  // epsilon = 1 at fc1: h1: 5 / (5 + 1) of [1, 4] * ... = [1 * 5/6, 4 * 5/6];
  // h2: z = 1 -> 1 + 1 = 2: [-1 * 3/2, 2 * 3/2] = [-1.5, 3]. R = [5/6 - 1.5, 20/6 + 3].
  Model model = Model::load(lrp_fixture("hand.pt"));
  const LrpResult r = lrp(model, {at::tensor({1.0f, 2.0f}).view({1, 2})}, 0,
                          Composite::parse_rules("fc1=epsilon:1,fc2=zero"));
  EXPECT_NEAR(r.relevance[0][0].item<double>(), 5.0 / 6.0 - 1.5, 1e-5);
  EXPECT_NEAR(r.relevance[0][1].item<double>(), 20.0 / 6.0 + 3.0, 1e-5);
}

TEST(Lrp, HandComputedFlatAndAlphaBeta) {
  // flat at fc1: each h spreads its relevance equally over both inputs: h1 5 -> [2.5, 2.5],
  // h2 3 -> [1.5, 1.5]. R = [4, 4].
  Model model = Model::load(lrp_fixture("hand.pt"));
  const at::Tensor x = at::tensor({1.0f, 2.0f}).view({1, 2});
  LrpResult r = lrp(model, {x}, 0, Composite::parse_rules("fc1=flat,fc2=zero"));
  EXPECT_NEAR(r.relevance[0][0].item<double>(), 4.0, 1e-5);
  EXPECT_NEAR(r.relevance[0][1].item<double>(), 4.0, 1e-5);
  // alpha2-beta1 at fc1: h1 has no negative part: 2 * [1, 4] - 0 = [2, 8] (relative to R=5 over
  // z+ = 5: [2, 8]); h2: positive part x2 (2 of 2) -> 2 * [0, 3] = [0, 6]; negative part x1
  // (-1 of -1) -> -1 * [3, 0] = [-3, 0]. R = [2 - 3, 8 + 6] = [-1, 14], sum 13 != 8: alpha-beta
  // only conserves when every neuron has both signs.
  r = lrp(model, {x}, 0, Composite::parse_rules("fc1=alphabeta:2:1,fc2=zero"));
  EXPECT_NEAR(r.relevance[0][0].item<double>(), -1.0, 1e-5);
  EXPECT_NEAR(r.relevance[0][1].item<double>(), 14.0, 1e-5);
}

// ---- the real face-expression model (converted from face-api at test time) ----

std::string faceapi(const std::string& name) {
  return std::string(STRATA_FACEAPI_DIR) + "/" + name;
}

TEST(LrpFaceApi, ZeroRuleIsGradientTimesInputOnRealModel) {
  Model model = Model::load(faceapi("face_expression.pt"));
  const at::Tensor x = load_safetensors(faceapi("faces.safetensors")).tensors.at("arg0");
  const TensorMap ref = tensors("face_gradxinput.safetensors");
  const at::Tensor top = ref.at("top");
  for (int64_t i = 0; i < x.size(0); ++i) {
    const LrpResult r = lrp(model, {x.slice(0, i, i + 1)}, top[i].item<int64_t>(),
                            Composite::parse_rules("*=zero"));
    const at::Tensor expected = ref.at("grad_x_input").slice(0, i, i + 1);
    EXPECT_LT(max_abs_diff(r.relevance, expected), 1e-4 * (1 + expected.abs().max().item<double>()))
        << "face " << i;
  }
}

TEST(LrpFaceApi, BatchRowsEqualSingleExplanations) {
  // Rows of a batch are explained independently (the 1x1 convolutions' input gradient is a
  // batched matrix product for several rows, one for a single row).
  Model model = Model::load(faceapi("face_expression.pt"));
  const at::Tensor x =
      load_safetensors(faceapi("faces.safetensors")).tensors.at("arg0").slice(0, 0, 3);
  for (const std::string name : {"epsilon", "epsilon_plus_flat"}) {
    LrpExplainer ex(model, Composite::preset(name), LrpOptions().set_keep_points(false));
    const at::Tensor batch = ex.explain({x}, 1).relevance;
    for (int64_t i = 0; i < x.size(0); ++i) {
      const at::Tensor one = ex.explain({x.slice(0, i, i + 1)}, 1).relevance;
      EXPECT_LT(max_abs_diff(batch.slice(0, i, i + 1), one),
                1e-5 * (1 + one.abs().max().item<double>()))
          << name << " row " << i;
    }
  }
}

// Zennit's three composites on the real network against tests/lrp/face_lrp_reference.py: relevance
// propagated the way Zennit does it (per-layer BasicHooks with autograd, Norm on every sum, Pass
// on activations) over the network's known structure, sharing no code with strata.
TEST(LrpFaceApi, PresetsEqualZennitStyleReference) {
  // float64 copies of the model and faces (alpha2-beta1 multiplies relevance ~10^6-fold here).
  Model model = Model::load(lrp_fixture("face_expression_f64.pt"));
  const TensorMap ref = tensors("face_gradxinput.safetensors");
  const at::Tensor x = ref.at("arg0_f64");
  const at::Tensor top = ref.at("top");
  const std::vector<std::pair<std::string, Composite>> presets = {
      {"gamma_box", Composite::epsilon_gamma_box(-0.49, 0.6)},
      {"plus_flat", Composite::epsilon_plus_flat()},
      {"alpha2_beta1", Composite::epsilon_alpha2_beta1()}};
  for (const auto& [name, composite] : presets) {
    const at::Tensor expected = ref.at("zennit_style/" + name);
    ASSERT_EQ(expected.scalar_type(), at::kDouble);
    for (int64_t i = 0; i < expected.size(0); ++i) {
      const LrpResult r = lrp(model, {x.slice(0, i, i + 1)}, top[i].item<int64_t>(), composite);
      const at::Tensor e = expected.slice(0, i, i + 1);
      EXPECT_LT(max_abs_diff(r.relevance, e), 2e-3 * e.abs().max().item<double>())
          << name << " face " << i << ": sums " << r.relevance.sum().item<double>() << " vs "
          << e.sum().item<double>();
    }
  }
}

TEST(LrpFaceApi, PresetsGiveFiniteRelevanceAndATable) {
  Model model = Model::load(faceapi("face_expression.pt"));
  const at::Tensor x =
      load_safetensors(faceapi("faces.safetensors")).tensors.at("arg0").slice(0, 0, 1);
  for (const std::string name :
       {"epsilon_plus_flat", "epsilon_alpha2_beta1", "epsilon_gamma_box:-0.5:0.6"}) {
    const LrpResult r = lrp(model, {x}, 1, Composite::preset(name));
    EXPECT_TRUE(at::isfinite(r.relevance).all().item<bool>()) << name;
    EXPECT_EQ(r.relevance.sizes(), x.sizes());
    EXPECT_FALSE(r.table.empty());
    double total = 0;
    for (const auto& row : r.table) total += row.contribution;
    EXPECT_NEAR(total, 1.0, 1e-6);
    EXPECT_TRUE(r.points.contains("dense0.conv0.conv"));
    EXPECT_EQ(r.rules.front().first.rfind("dense0", 0), 0u);
  }
}

// ---- BatchNorm merging ----

TEST(Canonizer, MergedConvEqualsConvThenBatchNorm) {
  at::manual_seed(1);
  const at::Tensor w = at::randn({5, 3, 3, 3}), b = at::randn({5}), x = at::randn({2, 3, 7, 7});
  BatchNormParams bn;
  bn.weight = at::rand({5}) + 0.5;
  bn.bias = at::randn({5});
  bn.running_mean = at::randn({5});
  bn.running_var = at::rand({5}) + 0.1;
  bn.eps = 1e-3;
  const MergedLayer m = merge_batchnorm(w, b, bn);
  const at::Tensor ref = at::batch_norm(at::conv2d(x, w, b), bn.weight, bn.bias, bn.running_mean,
                                        bn.running_var, false, 0.1, bn.eps, false);
  EXPECT_LT(max_abs_diff(at::conv2d(x, m.weight, m.bias), ref), 1e-5);
  // Without a bias in the layer.
  const MergedLayer n = merge_batchnorm(w, at::Tensor(), bn);
  const at::Tensor ref2 = at::batch_norm(at::conv2d(x, w), bn.weight, bn.bias, bn.running_mean,
                                         bn.running_var, false, 0.1, bn.eps, false);
  EXPECT_LT(max_abs_diff(at::conv2d(x, n.weight, n.bias), ref2), 1e-5);
  bn.running_mean = at::randn({4});
  EXPECT_THAT(error_of([&] { merge_batchnorm(w, b, bn); }), HasSubstr("4 channels"));
}

// ---- rules and composites ----

TEST(Rule, ParseAndDescribe) {
  EXPECT_EQ(Rule::parse("epsilon").describe(), "epsilon:1e-06");
  EXPECT_EQ(Rule::parse("gamma").describe(), "gamma:0.25");
  EXPECT_EQ(Rule::parse("alphabeta").describe(), "alphabeta:2:1");
  EXPECT_EQ(Rule::parse("alphabeta:1:0").describe(), "alphabeta:1:0");
  EXPECT_EQ(Rule::parse("zbox:-1:2").describe(), "zbox:-1:2");
  EXPECT_THAT(error_of([] { Rule::parse("alphabeta:2:2"); }),
              HasSubstr("alpha - beta must equal 1"));
  EXPECT_THAT(error_of([] { Rule::parse("zbox:1"); }), HasSubstr("2 parameter"));
  EXPECT_THAT(error_of([] { Rule::parse("zbox:3:1"); }), HasSubstr("low"));
  EXPECT_THAT(error_of([] { Rule::parse("gamma:x"); }), HasSubstr("not a number"));
  EXPECT_THAT(error_of([] { Rule::parse("lrp"); }), HasSubstr("unknown LRP rule 'lrp'"));
}

TEST(Composite, PresetsAreZennits) {
  Model model = Model::load(lrp_fixture("mobile_net.pt"));
  auto rule_of = [&](const Composite& c, const std::string& name) {
    const auto plan = c.resolve(model.modules());
    for (size_t i = 0; i < plan.size(); ++i)
      if (model.modules()[i].name == name) return plan[i].rule ? plan[i].rule->describe() : "-";
    return std::string("?");
  };
  const Composite f = Composite::epsilon_plus_flat();
  EXPECT_EQ(rule_of(f, "stem"), "flat");
  EXPECT_EQ(rule_of(f, "block1.dw"), "zplus");
  EXPECT_EQ(rule_of(f, "fc"), "epsilon:1e-06");
  EXPECT_EQ(rule_of(f, "stem_act"), "pass");
  EXPECT_EQ(rule_of(f, "pool"), "-");
  const Composite g = Composite::preset("EpsilonGammaBox:-2:2");
  EXPECT_EQ(rule_of(g, "stem"), "zbox:-2:2");
  EXPECT_EQ(rule_of(g, "block2.project"), "gamma:0.25");
  EXPECT_EQ(rule_of(g, "fc"), "epsilon:1e-06");
  const Composite a = Composite::epsilon_alpha2_beta1();
  EXPECT_EQ(rule_of(a, "stem"), "alphabeta:2:1");
  EXPECT_EQ(rule_of(a, "fc"), "epsilon:1e-06");
  // Name rules win over type rules; unmatched convs/linear default to epsilon.
  const Composite n = Composite::parse_rules("block*.dw=gamma:0.1,fc=zero");
  EXPECT_EQ(rule_of(n, "block2.dw"), "gamma:0.1");
  EXPECT_EQ(rule_of(n, "stem"), "epsilon:1e-06");
  EXPECT_EQ(rule_of(n, "fc"), "zero");
  EXPECT_THAT(error_of([] { Composite::preset("epsilon_gamma_box"); }), HasSubstr("LOW:HIGH"));
  EXPECT_THAT(error_of([] { Composite::preset("lrp"); }), HasSubstr("epsilon_plus_flat"));
}

// ---- errors ----

TEST(LrpErrors, TargetOutOfRange) {
  Model model = Model::load(lrp_fixture("hand.pt"));
  const at::Tensor x = at::tensor({1.0f, 2.0f}).view({1, 2});
  EXPECT_THAT(error_of([&] { lrp(model, {x}, 3); }),
              HasSubstr("target 3 is out of range: the model's output has shape [1, 1]"));
  EXPECT_THAT(error_of([&] { lrp(model, {x}, -1); }), HasSubstr("out of range"));
}

TEST(LrpErrors, UncoveredLayerIsNamedWithHowToMapIt) {
  Model model = Model::load(lrp_fixture("layernorm_net.pt"));
  const std::string e = error_of([&] { lrp(model, {at::randn({1, 4})}, 0); });
  EXPECT_THAT(e, HasSubstr("module 'norm' of type 'LayerNorm' has no LRP rule"));
  EXPECT_THAT(e, HasSubstr("--rules 'norm=pass'"));
  // Mapped, it runs.
  const LrpResult r = lrp(model, {at::randn({1, 4})}, 0, Composite::parse_rules("norm=pass"));
  EXPECT_EQ(r.relevance.sizes(), (std::vector<int64_t>{1, 4}));
}

TEST(LrpErrors, WrongInputShape) {
  Model model = Model::load(lrp_fixture("relu_net.pt"));
  const std::string e = error_of([&] { lrp(model, {at::randn({1, 5, 8, 8})}, 0); });
  EXPECT_THAT(e, HasSubstr("conv1"));
  EXPECT_THAT(e, HasSubstr("[1, 5, 8, 8]"));
  EXPECT_THAT(error_of([&] {
                lrp(model, {at::ones({1, 3, 8, 8}, at::kLong)}, 0);
              }),
              HasSubstr("floating-point"));
}

TEST(LrpErrors, BatchNormWithoutLayerBefore) {
  Model model = Model::load(lrp_fixture("lonely_bn.pt"));
  const std::string e = error_of([&] { lrp(model, {at::randn({2, 4})}, 0); });
  EXPECT_THAT(e, HasSubstr("BatchNorm 'bn' does not directly follow"));
  EXPECT_THAT(e, HasSubstr("--rules 'bn=pass'"));
  EXPECT_NO_THROW(lrp(model, {at::randn({2, 4})}, 0, Composite::parse_rules("bn=pass")));
}

TEST(LrpErrors, RulePatternMatchingNothing) {
  Model model = Model::load(lrp_fixture("hand.pt"));
  EXPECT_THAT(error_of([&] {
                lrp(model, {at::ones({1, 2})}, 0, Composite::parse_rules("conv*=gamma"));
              }),
              HasSubstr("'conv*' matches no module"));
  EXPECT_THAT(error_of([&] {
                lrp(model, {at::ones({1, 2})}, 0, Composite::parse_rules("relu=epsilon"));
              }),
              HasSubstr("has none"));
}

// ---- heatmap ----

TEST(RelevanceImage, RedPositiveBlueNegativeWhiteZero) {
  at::Tensor r = at::zeros({3, 4, 4});
  r[0][0][0] = 2.0;
  r[1][3][3] = -2.0;
  const Image img = relevance_image(r, RelevanceImageOptions().set_scale(2));
  EXPECT_EQ(img.width(), 8);
  const Rgb pos = img.at(0, 0), neg = img.at(7, 7), zero = img.at(4, 4);
  EXPECT_GT(pos.r, 150);
  EXPECT_LT(pos.b, 80);
  EXPECT_GT(neg.b, 150);
  EXPECT_LT(neg.r, 80);
  EXPECT_EQ(zero.r, 255);
  EXPECT_EQ(zero.g, 255);
  EXPECT_THAT(error_of([] { relevance_image(at::zeros({2, 2, 2, 2})); }), HasSubstr("[C, H, W]"));
}

}  // namespace
}  // namespace strata
