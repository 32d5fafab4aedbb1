#include <strata/core/error.h>
#include <strata/model/model.h>

#include <ATen/ATen.h>
#include <torch/script.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_support.h"

namespace strata {
namespace {

using ::testing::HasSubstr;
using strata::testing::fixture;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no strata::Error>";
}

TEST(Model, ListsTheModuleTreeWithTypesAndShapes) {
  Model m = Model::load(fixture("gpt_scripted.pt"));
  const auto& mods = m.modules();
  ASSERT_FALSE(mods.empty());
  EXPECT_EQ(mods[0].name, "");
  auto find = [&](const std::string& n) -> const ModuleInfo& {
    for (const auto& x : mods)
      if (x.name == n) return x;
    throw std::runtime_error("missing " + n);
  };
  EXPECT_EQ(find("blocks.0.attn.q").type_name, "Linear");
  EXPECT_EQ(find("blocks.0.attn.q").depth, 4);
  const auto& q = find("blocks.0.attn.q").tensors;
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(q[0].name, "weight");
  EXPECT_EQ(q[0].shape, (std::vector<int64_t>{32, 32}));
  EXPECT_EQ(q[0].dtype, "float32");
  EXPECT_EQ(m.match("blocks.*.attn"), (std::vector<std::string>{"blocks.0.attn", "blocks.1.attn"}));
  EXPECT_EQ(m.match("blocks.0.attn:1"), (std::vector<std::string>{"blocks.0.attn"}));
}

TEST(Model, ParametersAreLeavesIndependentOfTheLoadedModule) {
  auto original = torch::jit::load(fixture("mlp_scripted.pt"));
  Model m = Model::from_module(original, "mlp");
  for (const auto& p : m.module().named_parameters(/*recurse=*/true)) {
    EXPECT_TRUE(p.value.is_leaf()) << p.name;
    EXPECT_TRUE(p.value.requires_grad()) << p.name;
  }
  auto out = m.forward({at::ones({2, 16})}).toTensor();
  out.sum().backward();
  for (const auto& p : original.named_parameters(/*recurse=*/true)) {
    EXPECT_FALSE(p.value.grad().defined()) << "gradient leaked into the caller's module: " << p.name;
  }
  for (const auto& p : m.module().named_parameters(/*recurse=*/true)) {
    EXPECT_TRUE(p.value.grad().defined()) << p.name;
  }
}

TEST(Model, BadFilesGiveClearErrors) {
  EXPECT_THAT(error_of([] { Model::load("/nonexistent/model.pt"); }),
              HasSubstr("no such file: '/nonexistent/model.pt'"));
  EXPECT_THAT(error_of([] { Model::load(fixture("not_a_model.pt")); }),
              HasSubstr("is not a TorchScript archive"));
  EXPECT_THAT(error_of([] { Model::load(STRATA_FIXTURE_DIR); }), HasSubstr("is a directory"));
  // A zip file that is not a TorchScript archive.
  std::string zip = fixture("fake.zip.pt");
  {
    std::ofstream f(zip, std::ios::binary);
    f << "PK\x03\x04" << std::string(100, 'x');
  }
  EXPECT_THAT(error_of([&] { Model::load(zip); }), HasSubstr("not a readable TorchScript archive"));
}

TEST(Model, GlobMatchingNothingNamesThePattern) {
  Model m = Model::load(fixture("mlp_scripted.pt"));
  std::string e = error_of([&] { m.match("blocks.*"); });
  EXPECT_THAT(e, HasSubstr("'blocks.*' matches no module"));
  EXPECT_THAT(e, HasSubstr("mlp_scripted.pt"));
}

TEST(Model, WrongInputsNameTheArgumentAndTheModule) {
  Model m = Model::load(fixture("mlp_scripted.pt"));
  std::string shape = error_of([&] { m.forward({at::ones({5, 7})}); });
  EXPECT_THAT(shape, HasSubstr("in module '0'"));
  EXPECT_THAT(shape, HasSubstr("arg0"));
  EXPECT_THAT(shape, HasSubstr("float32[5, 7]"));
  EXPECT_EQ(shape.find('\n'), std::string::npos) << shape;
  std::string dtype = error_of([&] { m.forward({at::ones({5, 16}, at::kLong)}); });
  EXPECT_THAT(dtype, HasSubstr("int64[5, 16]"));
  std::string count = error_of([&] { m.forward({at::ones({5, 16}), at::ones({1})}); });
  EXPECT_THAT(count, HasSubstr("takes 1 argument(s)"));
  std::string type = error_of([&] { m.forward({c10::IValue(int64_t{3})}); });
  EXPECT_THAT(type, HasSubstr("arg0"));
}

TEST(Model, GptInModuleErrorNamesTheInnermostModule) {
  Model m = Model::load(fixture("gpt_scripted.pt"));
  // Token ids beyond the vocabulary fail inside the embedding.
  std::string e = error_of([&] { m.forward({at::full({1, 4}, 999, at::kLong)}); });
  EXPECT_THAT(e, HasSubstr("in module 'tok_emb'"));
}

}  // namespace
}  // namespace strata
