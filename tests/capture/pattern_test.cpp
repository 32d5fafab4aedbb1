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
  const Which out = Which::Output;
  EXPECT_TRUE(Pattern("lin").selects(first, out));
  EXPECT_TRUE(Pattern("lin").selects(second, out));
  EXPECT_TRUE(Pattern("lin@1").selects(second, out));
  EXPECT_FALSE(Pattern("lin@1").selects(first, out));
  EXPECT_TRUE(Pattern("lin@0").selects(first, out));
  EXPECT_FALSE(Pattern("lin@0").selects(second, out));
  EXPECT_FALSE(Pattern("lin").selects(first, Which::Input));
}

TEST(Pattern, InputPointsOnlyWhenAskedFor) {
  HookPoint in{"blocks.0", HookKind::Input, 0, 0};
  EXPECT_FALSE(Pattern("blocks.*").selects(in, Which::Output));  // the glob also matches the key
  EXPECT_TRUE(Pattern("blocks.*").selects(in, Which::Input));
  EXPECT_TRUE(Pattern("blocks.*").selects(in, Which::Both));
  EXPECT_TRUE(Pattern("blocks.0:in:0").selects(in, Which::Output));
  EXPECT_TRUE(Pattern("*:in:*").selects(in, Which::Output));
}

}  // namespace
}  // namespace strata
