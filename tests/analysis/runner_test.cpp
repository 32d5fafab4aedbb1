// The Runner dispatches only wanted points, visits every batch, and keeps nothing itself.
#include <strata/analysis/runner.h>
#include <strata/capture/hook_session.h>
#include <strata/core/error.h>
#include <strata/model/model.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>

#include "test_support.h"

namespace strata {
namespace {

using strata::testing::fixture;

class Recorder final : public Analyzer {
 public:
  explicit Recorder(std::string only) : only_(std::move(only)) {}
  std::string_view name() const override { return "recorder"; }
  bool wants(const HookPoint& p) const override {
    ++asked;
    return p.module == only_ && p.kind == HookKind::Output;
  }
  void begin(const RunContext& ctx) override { batches_expected = ctx.num_batches; }
  void visit(const Activation& a) override {
    seen.push_back(a.point.key());
    values.push_back(a.value.clone());
  }
  void end_batch(const BatchContext& b) override { ++batches; }
  Report finish() override {
    Report r;
    r.data["visits"] = seen.size();
    return r;
  }
  std::string only_;
  mutable int asked = 0;
  int64_t batches_expected = 0;
  int batches = 0;
  std::vector<std::string> seen;
  std::vector<at::Tensor> values;
};

TensorMap mlp_data(int64_t rows) {
  TensorMap t;
  t.insert("arg0", at::randn({rows, 16}, at::TensorOptions().dtype(at::kFloat)));
  return t;
}

TEST(Runner, DispatchesWantedPointsPerBatch) {
  Model m = Model::load(fixture("mlp_scripted.pt"));
  auto data_tensors = mlp_data(10);
  TensorDataset data(data_tensors, 4);
  Recorder r("2");
  Runner runner(m, RunnerOptions().set_progress(false));
  runner.add(r);
  auto reports = runner.run(data);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].analyzer, "recorder");
  EXPECT_EQ(r.batches_expected, 3);
  EXPECT_EQ(r.batches, 3);
  EXPECT_EQ(r.seen, (std::vector<std::string>{"2", "2", "2"}));
  // Asked once per distinct point (outputs and inputs of 5 modules), not once per batch.
  EXPECT_EQ(r.asked, 10);
  // Same values as a direct capture of the batch.
  HookSession s;
  s.capture("2");
  m.forward({data_tensors.at("arg0").slice(0, 8, 10)});
  EXPECT_TRUE(at::equal(r.values[2], s.activations().at("2")));
}

TEST(Runner, AppliesEditsDuringTheRun) {
  Model m = Model::load(fixture("mlp_scripted.pt"));
  auto t = mlp_data(3);
  TensorDataset data(t, 3);
  Recorder r("2");
  Runner runner(m, RunnerOptions().set_progress(false));
  runner.add(r).edit("0", Edit::zero());
  runner.run(data);
  // Linear(0) output is zero, ReLU keeps zero, so layer 2 outputs its bias on every row.
  auto first_row = r.values[0][0];
  EXPECT_TRUE(at::equal(r.values[0], first_row.expand_as(r.values[0])));
}

int64_t rss_kb() {
  std::ifstream f("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * 4;
}

class Counter final : public Analyzer {
 public:
  std::string_view name() const override { return "counter"; }
  void visit(const Activation& a) override { n += a.value.numel(); }
  Report finish() override { return Report{}; }
  int64_t n = 0;
};

TEST(Runner, MemoryDoesNotGrowWithTheNumberOfBatches) {
  Model m = Model::load(fixture("gpt_scripted.pt"));
  auto make = [](int64_t rows) {
    TensorMap t;
    t.insert("arg0", at::randint(0, 50, {rows, 8}, at::TensorOptions().dtype(at::kLong)));
    return t;
  };
  Counter c;
  Runner runner(m, RunnerOptions().set_progress(false));
  runner.add(c);
  auto small = make(40);
  TensorDataset warm(small, 2);
  runner.run(warm);
  const int64_t before = rss_kb();
  auto big = make(2000);
  TensorDataset many(big, 2);  // 1000 batches; every point's activations are visited
  runner.run(many);
  const int64_t grown = rss_kb() - before;
  // 1000 batches of ~50 points x ~2 KB each would be ~100 MB if anything were retained.
  EXPECT_LT(grown, 20 * 1024) << "RSS grew by " << grown << " KB over 1000 batches";
  EXPECT_GT(c.n, 0);
}

TEST(Runner, RefusesFrozenModelsAndEmptyRuns) {
  Model frozen = Model::load(fixture("frozen_mlp.pt"));
  auto t = mlp_data(2);
  TensorDataset data(t, 2);
  Counter c;
  Runner runner(frozen, RunnerOptions().set_progress(false));
  EXPECT_THROW(runner.run(data), Error);  // no analyzers
  runner.add(c);
  EXPECT_THROW(runner.run(data), Error);  // frozen
}

}  // namespace
}  // namespace strata
