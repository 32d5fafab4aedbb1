#include <strata/capture/instrument.h>
#include <strata/core/error.h>
#include <strata/model/model.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/script.h>

#include "test_support.h"

namespace strata {
namespace {

using strata::testing::fixture;

int64_t count_hook_nodes(torch::jit::Block* b) {
  int64_t n = 0;
  for (auto* node : b->nodes()) {
    if (node->kind().toQualString() == std::string("strata::hook")) ++n;
    for (auto* sub : node->blocks()) n += count_hook_nodes(sub);
  }
  return n;
}

TEST(Instrument, HooksEveryCallAndIsIdempotent) {
  auto module = torch::jit::load(fixture("mlp_scripted.pt"));
  auto stats = instrument(module);
  EXPECT_EQ(stats.call_sites, 5);  // Sequential of 5 modules
  EXPECT_EQ(stats.output_hooks, 5);
  EXPECT_EQ(stats.input_hooks, 5);
  auto again = instrument(module);
  EXPECT_EQ(again.call_sites, 0);
  EXPECT_EQ(count_hook_nodes(module.get_method("forward").graph()->block()), 10);
}

TEST(Instrument, TupleOutputsAreHookedElementwise) {
  auto module = torch::jit::load(fixture("gpt_scripted.pt"));
  auto stats = instrument(module);
  EXPECT_GT(stats.output_hooks, stats.call_sites);  // attn and blocks return 2 tensors
}

TEST(Instrument, FrozenModelHasNoCallsAndModelSaysSo) {
  Model m = Model::load(fixture(testing::manifest().at("frozen")));
  EXPECT_EQ(m.instrument_stats().call_sites, 0);
  try {
    m.require_hook_points();
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("frozen"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("frozen_mlp.pt"));
  }
}

TEST(Instrument, LoadingTwiceGivesIndependentModels) {
  auto original = torch::jit::load(fixture("mlp_scripted.pt"));
  Model a = Model::from_module(original, "a");
  EXPECT_EQ(count_hook_nodes(original.get_method("forward").graph()->block()), 0)
      << "the caller's module must stay uninstrumented";
  Model b = Model::from_module(original, "b");
  EXPECT_EQ(b.instrument_stats().call_sites, 5);
}

}  // namespace
}  // namespace strata
