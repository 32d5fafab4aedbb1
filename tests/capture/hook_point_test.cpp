#include <strata/capture/hook_point.h>

#include <ATen/ATen.h>
#include <ATen/core/ivalue.h>
#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(HookPoint, KeysFollowTheCaptureContract) {
  EXPECT_EQ((HookPoint{"blocks.3.attn", HookKind::Output, 0, -1}.key()), "blocks.3.attn");
  EXPECT_EQ((HookPoint{"blocks.3.attn", HookKind::Output, 0, 1}.key()), "blocks.3.attn:1");
  EXPECT_EQ((HookPoint{"blocks.3.attn", HookKind::Output, 2, -1}.key()), "blocks.3.attn@2");
  EXPECT_EQ((HookPoint{"blocks.3.attn", HookKind::Output, 2, 0}.key()), "blocks.3.attn@2:0");
  EXPECT_EQ((HookPoint{"mlp", HookKind::Input, 0, 0}.key()), "mlp:in:0");
  EXPECT_EQ((HookPoint{"mlp", HookKind::Input, 1, 2}.key()), "mlp@1:in:2");
  EXPECT_EQ((HookPoint{"mlp", HookKind::Output, 0, -1}.explicit_key()), "mlp@0");
  EXPECT_EQ((HookPoint{"mlp", HookKind::Output, 0, 1}.explicit_key()), "mlp@0:1");
}

TEST(HookPoint, FlattenNestedTuplesSkippingNonTensors) {
  auto a = at::ones({1}), b = at::zeros({2}), c = at::ones({3});
  auto inner = c10::ivalue::Tuple::create({c10::IValue(b), c10::IValue(int64_t{4}), c10::IValue(c)});
  c10::IValue v = c10::ivalue::Tuple::create({c10::IValue(a), c10::IValue(inner)});
  auto flat = flatten_tensors(v);
  ASSERT_EQ(flat.size(), 3u);
  EXPECT_TRUE(flat[1].is_same(b));
  EXPECT_EQ(flattened_keys(v, "output"), (std::vector<std::string>{"output:0", "output:1", "output:2"}));
  EXPECT_EQ(flattened_keys(c10::IValue(a), "output"), (std::vector<std::string>{"output"}));
}

}  // namespace
}  // namespace strata
