// ActivationStats summarizes, layer by layer, what flows through a model: per hook point the
// element count, mean, standard deviation, min, max, fraction of exact zeros, and the mean L2 norm
// of the vectors along the last dimension (e.g. the residual-stream norm per token). Streaming:
// sums are accumulated in double precision, nothing is retained per batch.
//
//   strata::ActivationStats stats({"blocks.*"});
//   runner.add(stats);
//   auto report = runner.run(data)[0];   // report.data["points"][i]["mean"], ...
//   std::cout << strata::ActivationStats::table(report);
#pragma once

#include <strata/analysis/analyzer.h>
#include <strata/capture/pattern.h>

#include <map>
#include <string>
#include <vector>

namespace strata {

/// Per-hook-point summary statistics; see the file comment.
class ActivationStats final : public Analyzer {
 public:
  /// Only points matching one of `patterns` (all output points when empty).
  explicit ActivationStats(std::vector<std::string> patterns = {});
  std::string_view name() const override { return "activation_stats"; }
  bool wants(const HookPoint& point) const override;
  void visit(const Activation& activation) override;
  Report finish() override;

  /// A fixed-width text table of a report from this analyzer.
  static std::string table(const Report& report);

 private:
  struct Acc {
    int64_t order = 0;
    std::string dtype;
    std::vector<int64_t> shape;
    int64_t count = 0, zeros = 0, vectors = 0;
    double sum = 0, sum_sq = 0, norm_sum = 0;
    double min = 0, max = 0;
  };
  std::vector<Pattern> patterns_;
  std::map<std::string, Acc> acc_;
  int64_t next_order_ = 0;
};

}  // namespace strata
