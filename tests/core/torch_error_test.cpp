#include <strata/core/torch_error.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(TorchError, CondensesToTheEssentialLine) {
  try {
    at::mm(at::ones({2, 3}), at::ones({4, 5}));
    FAIL();
  } catch (const std::exception& e) {
    std::string m = condense_torch_message(e);
    EXPECT_EQ(m.find('\n'), std::string::npos);
    EXPECT_NE(m.find("2x3"), std::string::npos) << m;
  }
  std::runtime_error script(
      "The following operation failed in the TorchScript interpreter.\nTraceback of TorchScript "
      "(most recent call last):\n  File \"x.py\", line 3\n    return self.fc(x)\n"
      "RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)\n");
  EXPECT_EQ(condense_torch_message(script),
            "RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)");
}

}  // namespace
}  // namespace strata
