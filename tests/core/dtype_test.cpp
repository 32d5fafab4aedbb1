#include <strata/core/dtype.h>
#include <strata/core/error.h>

#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(Dtype, NamesRoundTrip) {
  for (auto t : {c10::kFloat, c10::kHalf, c10::kBFloat16, c10::kDouble, c10::kLong, c10::kInt,
                 c10::kShort, c10::kChar, c10::kByte, c10::kBool}) {
    EXPECT_EQ(parse_dtype(dtype_name(t)), t);
  }
  EXPECT_EQ(dtype_name(c10::kFloat), "float32");
  EXPECT_EQ(parse_dtype("bf16"), c10::kBFloat16);
  EXPECT_THROW(parse_dtype("float8"), Error);
}

}  // namespace
}  // namespace strata
