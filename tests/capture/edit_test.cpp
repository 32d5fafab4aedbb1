// Edits on plain tensors, with values worked out by hand.
#include <strata/capture/edit.h>
#include <strata/core/error.h>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace strata {
namespace {

const HookPoint kPoint{"blocks.0", HookKind::Output, 0, -1};

at::Tensor t23() { return at::arange(6, at::kFloat).reshape({2, 3}); }  // [[0,1,2],[3,4,5]]

TEST(Edit, ZeroWholeAndAtIndices) {
  EXPECT_TRUE(at::equal(Edit::zero().apply(kPoint, t23(), {}), at::zeros({2, 3})));
  auto r = Edit::zero().at(1, {0, 2}).apply(kPoint, t23(), {});
  EXPECT_TRUE(at::equal(r, at::tensor({0.f, 1.f, 0.f, 0.f, 4.f, 0.f}).reshape({2, 3})));
  auto neg = Edit::zero().at(-1, {-1}).apply(kPoint, t23(), {});
  EXPECT_TRUE(at::equal(neg, at::tensor({0.f, 1.f, 0.f, 3.f, 4.f, 0.f}).reshape({2, 3})));
}

TEST(Edit, MeanOverBatch) {
  auto r = Edit::mean().apply(kPoint, t23(), {});
  EXPECT_TRUE(at::equal(r, at::tensor({1.5f, 2.5f, 3.5f, 1.5f, 2.5f, 3.5f}).reshape({2, 3})));
  auto part = Edit::mean().at(1, {1}).apply(kPoint, t23(), {});
  EXPECT_TRUE(at::equal(part, at::tensor({0.f, 2.5f, 2.f, 3.f, 2.5f, 5.f}).reshape({2, 3})));
  auto given = Edit::mean_of(at::full({3}, 7.f)).apply(kPoint, t23(), {});
  EXPECT_TRUE(at::equal(given, at::full({2, 3}, 7.f)));
}

TEST(Edit, AddSteeringVector) {
  auto v = at::tensor({1.f, 0.f, -1.f});
  auto r = Edit::add(v, 2.0).apply(kPoint, t23(), {});
  EXPECT_TRUE(at::equal(r, at::tensor({2.f, 1.f, 0.f, 5.f, 4.f, 3.f}).reshape({2, 3})));
  auto row = Edit::add(v, 1.0).at(0, {1}).apply(kPoint, t23(), {});
  EXPECT_TRUE(at::equal(row, at::tensor({0.f, 1.f, 2.f, 4.f, 4.f, 4.f}).reshape({2, 3})));
}

TEST(Edit, PatchFromCache) {
  TensorMap cache;
  cache.insert("blocks.0", at::full({2, 3}, 9.f));
  EXPECT_TRUE(at::equal(Edit::patch(cache).apply(kPoint, t23(), {}), at::full({2, 3}, 9.f)));
  auto part = Edit::patch(cache).at(0, {0}).apply(kPoint, t23(), {});
  EXPECT_TRUE(at::equal(part, at::tensor({9.f, 9.f, 9.f, 3.f, 4.f, 5.f}).reshape({2, 3})));
  TensorMap other;
  other.insert("blocks.1", at::zeros({2, 3}));
  EXPECT_THROW(Edit::patch(other).apply(kPoint, t23(), {}), Error);
}

TEST(Edit, SkipAndCallback) {
  auto in = at::full({2, 3}, 4.f);
  EXPECT_TRUE(Edit::skip().apply(kPoint, t23(), in).is_same(in));
  EXPECT_THROW(Edit::skip().apply(kPoint, t23(), at::zeros({3, 2})), Error);
  EXPECT_THROW(Edit::skip().apply(kPoint, t23(), at::Tensor()), Error);
  auto cb = Edit::callback([](const HookPoint& p, const at::Tensor& x) { return x + 1; });
  EXPECT_TRUE(at::equal(cb.apply(kPoint, t23(), {}), t23() + 1));
}

TEST(Edit, BadIndicesAndShapesAreClearErrors) {
  try {
    Edit::zero().at(1, {3}).apply(kPoint, t23(), {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("index 3 is out of range for dim 1 of size 3"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("blocks.0"));
  }
  EXPECT_THROW(Edit::zero().at(2, {0}).apply(kPoint, t23(), {}), Error);
  EXPECT_THROW(Edit::add(at::ones({4})).apply(kPoint, t23(), {}), Error);
  EXPECT_THROW(Edit::zero().at(0, {}), Error);
}

}  // namespace
}  // namespace strata
