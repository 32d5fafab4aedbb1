#include <strata/core/memory.h>

#include <cstddef>

#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(Memory, RetainFreedMemoryTakesEffectOnGlibc) {
#if defined(__GLIBC__)
  EXPECT_TRUE(retain_freed_memory());
#else
  EXPECT_FALSE(retain_freed_memory());
#endif
}

}  // namespace
}  // namespace strata
