#include <strata/core/error.h>

#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(Error, CheckThrowsWithConcatenatedMessage) {
  try {
    STRATA_CHECK(1 + 1 == 3, "LinearProbe::fit: ", 12, " labels for ", 10, " samples");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "LinearProbe::fit: 12 labels for 10 samples");
  }
  EXPECT_NO_THROW(STRATA_CHECK(true, "never"));
}

TEST(Error, IsARuntimeError) {
  EXPECT_THROW(throw Error("x"), std::runtime_error);
}

}  // namespace
}  // namespace strata
