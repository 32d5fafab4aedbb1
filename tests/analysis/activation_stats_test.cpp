#include <strata/analysis/activation_stats.h>
#include <strata/analysis/runner.h>
#include <strata/capture/hook_session.h>
#include <strata/model/model.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "test_support.h"

namespace strata {
namespace {

TEST(ActivationStats, StreamingMatchesWholeTensorStatistics) {
  Model m = Model::load(testing::fixture("mlp_scripted.pt"));
  TensorMap t;
  t.insert("arg0", at::randn({9, 16}));
  TensorDataset data(t, 4);
  ActivationStats stats({"1", "4"});
  Runner runner(m, RunnerOptions().set_progress(false));
  runner.add(stats);
  Report r = runner.run(data)[0];
  HookSession s;
  s.capture("1").capture("4");
  m.forward({t.at("arg0")});
  const auto& points = r.data.at("points");
  ASSERT_EQ(points.size(), 2u);
  for (const auto& p : points) {
    at::Tensor full = s.activations().at(p.at("key")).to(at::kDouble);
    EXPECT_EQ(p.at("count").get<int64_t>(), full.numel());
    EXPECT_NEAR(p.at("mean").get<double>(), full.mean().item<double>(), 1e-9);
    EXPECT_NEAR(p.at("std").get<double>(), full.std(/*unbiased=*/false).item<double>(), 1e-7);
    EXPECT_DOUBLE_EQ(p.at("max").get<double>(), full.max().item<double>());
    EXPECT_DOUBLE_EQ(p.at("min").get<double>(), full.min().item<double>());
    EXPECT_NEAR(p.at("mean_norm").get<double>(), full.norm(2, {1}).mean().item<double>(), 1e-9);
    EXPECT_NEAR(p.at("zero_fraction").get<double>(), (full == 0).to(at::kDouble).mean().item<double>(), 1e-12);
  }
  EXPECT_GT(points[0].at("zero_fraction").get<double>(), 0.1);  // a ReLU output
  std::string table = ActivationStats::table(r);
  EXPECT_NE(table.find("hook point"), std::string::npos);
}

}  // namespace
}  // namespace strata
