#include <strata/analysis/progress.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>

namespace strata {
namespace {

TEST(Progress, LineShowsCountRateAndEta) {
  Progress p("capture", 10, /*enabled=*/false);
  p.step(4);
  EXPECT_THAT(p.line(), ::testing::HasSubstr("capture 4/10 batches"));
  EXPECT_THAT(p.line(), ::testing::HasSubstr("ETA"));
  Progress unknown("stream", -1, false, "tokens");
  unknown.step(3);
  EXPECT_THAT(unknown.line(), ::testing::HasSubstr("stream 3 tokens"));
  EXPECT_THAT(unknown.line(), ::testing::Not(::testing::HasSubstr("ETA")));
}

TEST(Progress, WritesToItsStreamOnlyWhenEnabled) {
  std::FILE* f = std::tmpfile();
  {
    Progress p("x", 2, true, "batches", f);
    p.step(2);
    p.finish();
  }
  std::fseek(f, 0, SEEK_END);
  EXPECT_GT(std::ftell(f), 0);
  std::fclose(f);
  std::FILE* g = std::tmpfile();
  {
    Progress p("x", 2, false, "batches", g);
    p.step(2);
  }
  std::fseek(g, 0, SEEK_END);
  EXPECT_EQ(std::ftell(g), 0);
  std::fclose(g);
}

TEST(Progress, FormatDuration) {
  EXPECT_EQ(format_duration(42), "42s");
  EXPECT_EQ(format_duration(185), "3m05s");
  EXPECT_EQ(format_duration(3720), "1h02m");
  EXPECT_EQ(format_duration(-1), "?");
}

}  // namespace
}  // namespace strata
