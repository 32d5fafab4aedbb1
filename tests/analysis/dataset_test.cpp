#include <strata/analysis/dataset.h>
#include <strata/core/error.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(TensorDataset, SlicesBatchesAlongDimZero) {
  TensorMap t;
  t.insert("arg0", at::arange(10).reshape({5, 2}));
  t.insert("arg1", at::arange(5));
  t.insert("labels", at::arange(5));
  TensorDataset d(t, 2);
  EXPECT_EQ(d.num_batches(), 3);
  auto b0 = d.next();
  ASSERT_TRUE(b0);
  EXPECT_EQ(b0->inputs.size(), 2u);
  EXPECT_TRUE(at::equal(b0->inputs[0].toTensor(), at::arange(4).reshape({2, 2})));
  d.next();
  auto b2 = d.next();
  EXPECT_EQ(b2->inputs[0].toTensor().size(0), 1);
  EXPECT_TRUE(at::equal(b2->labels, at::tensor({4}, at::kLong)));
  EXPECT_FALSE(d.next());
  d.reset();
  EXPECT_TRUE(d.next());
}

TEST(TensorDataset, MismatchedRowsAreNamed) {
  TensorMap t;
  t.insert("arg0", at::zeros({5, 2}));
  t.insert("arg1", at::zeros({4}));
  EXPECT_THROW(TensorDataset(t, 2), Error);
  TensorMap none;
  none.insert("x", at::zeros({3}));
  EXPECT_THROW(TensorDataset(none, 2), Error);
  TensorMap ok;
  ok.insert("arg0", at::zeros({3}));
  EXPECT_THROW(TensorDataset(ok, 0), Error);
}

}  // namespace
}  // namespace strata
