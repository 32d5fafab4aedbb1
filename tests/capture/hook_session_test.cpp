// The hook layer against PyTorch: for every fixture model (scripted and traced), captures equal
// what register_forward_hook / register_forward_pre_hook recorded, every edit equals the same
// edit done by a Python forward hook, and gradients at hook points equal Python's.
#include <strata/capture/hook_session.h>
#include <strata/core/error.h>
#include <strata/model/model.h>

#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>

#include <set>

#include "test_support.h"

namespace strata {
namespace {

using strata::testing::exactly_equal;
using strata::testing::fixture;
using strata::testing::fixture_tensors;
using strata::testing::manifest;

const nlohmann::json& find_case(const std::string& name) {
  for (const auto& c : manifest().at("cases"))
    if (c.at("name") == name) return c;
  throw std::runtime_error("no fixture case " + name);
}

std::vector<c10::IValue> inputs_of(const std::string& file) {
  TensorMap t = fixture_tensors(file);
  std::vector<c10::IValue> in;
  for (int i = 0; t.contains("arg" + std::to_string(i)); ++i) in.emplace_back(t.at("arg" + std::to_string(i)));
  return in;
}

TensorMap outputs_of(const c10::IValue& out) {
  TensorMap m;
  auto keys = flattened_keys(out, "output");
  auto tensors = flatten_tensors(out);
  for (size_t i = 0; i < keys.size(); ++i) m.insert(keys[i], tensors[i]);
  return m;
}

class FixtureCase : public ::testing::TestWithParam<std::string> {
 protected:
  const nlohmann::json& c() const { return find_case(GetParam()); }
  Model model() const { return Model::load(fixture(c().at("model"))); }
};

TEST_P(FixtureCase, NoSessionMatchesOriginalExactly) {
  Model m = model();
  auto ref = fixture_tensors(c().at("hooks"));
  auto in = inputs_of(c().at("input"));
  auto got = outputs_of(m.forward(in));
  torch::jit::Module original = torch::jit::load(fixture(c().at("model")));
  auto plain = outputs_of(original.forward(inputs_of(c().at("input"))));
  ASSERT_EQ(got.size(), plain.size());
  for (const auto& k : got.names()) {
    EXPECT_TRUE(exactly_equal(ref.at(k), got.at(k), k));
    EXPECT_TRUE(exactly_equal(plain.at(k), got.at(k), k + " vs uninstrumented"));
  }
}

TEST_P(FixtureCase, CapturesEqualPythonForwardHooks) {
  Model m = model();
  auto ref = fixture_tensors(c().at("hooks"));
  HookSession s;
  s.capture_all(Which::Both);
  auto out = outputs_of(m.forward(inputs_of(c().at("input"))));
  const TensorMap& got = s.activations();
  std::set<std::string> want, have(got.names().begin(), got.names().end());
  for (const auto& k : ref.names()) {
    if (k.rfind("output", 0) == 0) {
      EXPECT_TRUE(exactly_equal(ref.at(k), out.at(k), k));
      continue;
    }
    want.insert(k);
    ASSERT_TRUE(got.contains(k)) << "hook point " << k << " was not captured";
    EXPECT_TRUE(exactly_equal(ref.at(k), got.at(k), k));
  }
  EXPECT_EQ(want, have) << "captured hook points differ from Python's";
  // Same order as Python's hooks fired.
  std::vector<std::string> ref_order;
  for (const auto& k : ref.names())
    if (k.rfind("output", 0) != 0) ref_order.push_back(k);
  EXPECT_EQ(ref_order, got.names());
}

TEST_P(FixtureCase, EditsEqualPythonHookEdits) {
  Model m = model();
  for (const auto& e : c().at("edits")) {
    SCOPED_TRACE(e.at("name").get<std::string>());
    const std::string kind = e.at("kind");
    std::string target = e.at("module").get<std::string>() + "@" + std::to_string(e.at("call").get<int>());
    if (!e.at("element").is_null()) target += ":" + std::to_string(e.at("element").get<int>());
    Edit edit = Edit::zero();
    if (kind == "zero") {
      edit = Edit::zero();
    } else if (kind == "mean") {
      edit = Edit::mean();
    } else if (kind == "patch") {
      HookSession clean;
      clean.capture_all();
      m.forward(inputs_of(e.at("patch_input")));
      edit = Edit::patch(clean.activations());
    } else if (kind == "add") {
      edit = Edit::add(fixture_tensors(e.at("data")).at("vector"), e.at("scale").get<double>());
    } else if (kind == "skip") {
      edit = Edit::skip();
    } else if (kind == "scale2") {
      edit = Edit::callback([](const HookPoint&, const at::Tensor& x) { return x * 2; });
    } else {
      FAIL() << "unknown edit kind " << kind;
    }
    if (!e.at("dim").is_null()) {
      edit.at(e.at("dim").get<int64_t>(), e.at("indices").get<std::vector<int64_t>>());
    }
    HookSession s;
    s.edit(target, edit);
    auto out = outputs_of(m.forward(inputs_of(c().at("input"))));
    EXPECT_EQ(s.edits_applied(target), 1) << "the edit at " << target << " fired "
                                          << s.edits_applied(target) << " times";
    auto expected = fixture_tensors(e.at("expected"));
    for (const auto& k : expected.names()) EXPECT_TRUE(exactly_equal(expected.at(k), out.at(k), k));
  }
}

TEST_P(FixtureCase, GradientsEqualPythonRetainGrad) {
  Model m = model();
  auto ref = fixture_tensors(c().at("grads"));
  HookSession s;
  s.capture_all().retain_grad();
  auto out_value = m.forward(inputs_of(c().at("input")));
  auto outs = outputs_of(out_value);
  std::vector<at::Tensor> roots, grads;
  for (const auto& k : outs.names()) {
    const std::string gk = "grad_in" + k.substr(6);
    if (!ref.contains(gk)) continue;
    roots.push_back(outs.at(k));
    grads.push_back(ref.at(gk));
  }
  ASSERT_FALSE(roots.empty());
  torch::autograd::backward(roots, grads);
  TensorMap got = s.gradients();
  int compared = 0;
  for (const auto& k : c().at("grad_keys")) {
    const std::string key = k;
    if (key.rfind("output", 0) == 0) continue;
    ASSERT_TRUE(got.contains(key)) << "no gradient at " << key;
    EXPECT_TRUE(exactly_equal(ref.at(key), got.at(key), "grad " + key));
    ++compared;
  }
  EXPECT_GT(compared, 0);
}

INSTANTIATE_TEST_SUITE_P(Models, FixtureCase,
                         ::testing::Values("mlp_scripted", "mlp_traced", "cnn_scripted",
                                           "cnn_traced", "gpt_scripted", "gpt_traced",
                                           "dict_if_scripted", "dict_if_scripted_neg",
                                           "dict_if_traced", "twice_scripted", "twice_traced"));

TEST(HookSession, NestedSessionsRestoreThePreviousOne) {
  EXPECT_EQ(HookSession::current(), nullptr);
  {
    HookSession outer;
    EXPECT_EQ(HookSession::current(), &outer);
    {
      HookSession inner;
      EXPECT_EQ(HookSession::current(), &inner);
    }
    EXPECT_EQ(HookSession::current(), &outer);
  }
  EXPECT_EQ(HookSession::current(), nullptr);
}

TEST(HookSession, GlobSelectsOnlyMatchingPointsAndKeepsDtype) {
  Model m = Model::load(fixture("gpt_scripted.pt"));
  HookSession s;
  s.capture("blocks.*.attn").keep(KeepOptions().set_dtype(at::kHalf));
  m.forward(inputs_of("gpt.input.safetensors"));
  std::vector<std::string> want = {"blocks.0.attn:0", "blocks.0.attn:1", "blocks.1.attn:0",
                                   "blocks.1.attn:1"};
  EXPECT_EQ(s.activations().names(), want);
  EXPECT_EQ(s.activations().at("blocks.0.attn:0").scalar_type(), at::kHalf);
}

TEST(HookSession, SkipWithShapeMismatchNamesTheModule) {
  Model m = Model::load(fixture("mlp_scripted.pt"));
  HookSession s;
  s.edit("0", Edit::skip());  // Linear(16, 32): input and output shapes differ
  try {
    m.forward(inputs_of("mlp.input.safetensors"));
    FAIL() << "expected strata::Error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("cannot skip module '0'"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("[5, 16]"));
  }
}

TEST(HookSession, PatchFromCacheWithWrongShapeIsAClearError) {
  Model m = Model::load(fixture("mlp_scripted.pt"));
  TensorMap cache;
  cache.insert("2", at::zeros({3, 32}));
  HookSession s;
  s.edit("2", Edit::patch(cache));
  try {
    m.forward(inputs_of("mlp.input.safetensors"));
    FAIL() << "expected strata::Error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("'2'"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("[3, 32]"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("[5, 32]"));
  }
}

TEST(HookSession, InPlaceModificationAfterCaptureIsDetected) {
  Model m = Model::load(fixture("mlp_scripted.pt"));
  HookSession s;
  s.capture("0").keep(KeepOptions().set_clone(false));
  m.forward(inputs_of("mlp.input.safetensors"));
  s.activations();  // fine so far
  const_cast<at::Tensor&>(s.activations().at("0")).add_(1);
  EXPECT_THROW(s.activations(), Error);
}

}  // namespace
}  // namespace strata
