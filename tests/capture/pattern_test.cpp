#include <strata/capture/hook_point.h>
#include <strata/capture/pattern.h>
#include <strata/core/error.h>

#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(GlobMatch, StarQuestionAndClasses) {
  EXPECT_TRUE(glob_match("blocks.*.attn", "blocks.3.attn"));
  EXPECT_TRUE(glob_match("blocks.*.attn", "blocks.3.sub.attn"));  // '*' crosses dots
  EXPECT_FALSE(glob_match("blocks.*.attn", "blocks.3.attn.q"));
  EXPECT_TRUE(glob_match("blocks.?", "blocks.7"));
  EXPECT_FALSE(glob_match("blocks.?", "blocks.12"));
  EXPECT_TRUE(glob_match("blocks.[0-2]", "blocks.1"));
  EXPECT_FALSE(glob_match("blocks.[0-2]", "blocks.5"));
  EXPECT_TRUE(glob_match("blocks.[!0-2]", "blocks.5"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("a[", "a["));  // unterminated class is literal
  EXPECT_FALSE(glob_match("", "x"));
}

TEST(GlobMatch, PathologicalPatternStaysFast) {
  std::string text(2000, 'a');
  EXPECT_FALSE(glob_match("*a*a*a*a*a*a*a*a*b", text));
}

TEST(Pattern, ExactGlobRegex) {
  EXPECT_TRUE(Pattern("mlp").is_exact());
  EXPECT_TRUE(Pattern("mlp").matches("mlp"));
  EXPECT_FALSE(Pattern("mlp").matches("mlp.0"));
  EXPECT_TRUE(Pattern("re:blocks\\.[0-1]\\.attn").matches("blocks.1.attn"));
  EXPECT_FALSE(Pattern("re:blocks\\.[0-1]\\.attn").matches("blocks.2.attn"));
  EXPECT_THROW(Pattern("re:(unclosed"), Error);
  EXPECT_THROW(Pattern(""), Error);
}

TEST(Pattern, MatchesModuleKeyOrExplicitKey) {
  HookPoint first{"lin", HookKind::Output, 0, -1};
  HookPoint second{"lin", HookKind::Output, 1, -1};
  EXPECT_TRUE(Pattern("lin").matches(first));
  EXPECT_TRUE(Pattern("lin").matches(second));
  EXPECT_TRUE(Pattern("lin@1").matches(second));
  EXPECT_FALSE(Pattern("lin@1").matches(first));
  EXPECT_TRUE(Pattern("lin@0").matches(first));
  EXPECT_FALSE(Pattern("lin@0").matches(second));
}

}  // namespace
}  // namespace strata
