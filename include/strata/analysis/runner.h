// Runner streams a Dataset through an instrumented Model and dispatches each activation to every
// analyzer that wants it. It keeps nothing itself: memory does not grow with the number of batches.
//
//   strata::ActivationStats stats;
//   strata::Runner runner(model, strata::RunnerOptions().set_label("stats"));
//   runner.add(stats);
//   std::vector<strata::Report> reports = runner.run(dataset);
#pragma once

#include <strata/analysis/analyzer.h>
#include <strata/analysis/dataset.h>
#include <strata/capture/edit.h>
#include <strata/capture/hook_session.h>

#include <string>
#include <unordered_map>
#include <vector>

namespace strata {

class Model;

/// Options for a Runner.
struct RunnerOptions {
  KeepOptions keep;            ///< what analyzers receive (default: detached, on CPU)
  bool progress = true;        ///< progress line on stderr
  bool no_grad = true;         ///< run without autograd
  int64_t max_batches = -1;    ///< stop after this many batches (-1: all)
  std::string label = "run";   ///< shown in the progress line

  RunnerOptions& set_keep(KeepOptions v) { keep = v; return *this; }
  RunnerOptions& set_progress(bool v) { progress = v; return *this; }
  RunnerOptions& set_no_grad(bool v) { no_grad = v; return *this; }
  RunnerOptions& set_max_batches(int64_t v) { max_batches = v; return *this; }
  RunnerOptions& set_label(std::string v) { label = std::move(v); return *this; }
};

/// Drives analyzers over a dataset; see the file comment.
class Runner {
 public:
  explicit Runner(const Model& model, RunnerOptions options = {});
  /// Adds an analyzer (not owned; must outlive run()).
  Runner& add(Analyzer& analyzer);
  /// Applies an edit during the run (e.g. an ablation sweep's current ablation).
  Runner& edit(const std::string& pattern, Edit edit, Which which = Which::Output);
  /// Runs every batch, then returns each analyzer's report in the order they were added.
  std::vector<Report> run(Dataset& data);

 private:
  const std::vector<Analyzer*>& wanting(const HookPoint& point);

  const Model& model_;
  RunnerOptions options_;
  std::vector<Analyzer*> analyzers_;
  std::vector<std::pair<std::string, std::pair<Edit, Which>>> edits_;
  std::unordered_map<std::string, std::vector<Analyzer*>> wanting_;
};

}  // namespace strata
