#include <strata/analysis/runner.h>

#include <ATen/core/grad_mode.h>

#include <strata/analysis/progress.h>
#include <strata/core/error.h>
#include <strata/model/model.h>

#include <memory>

namespace strata {

Runner::Runner(const Model& model, RunnerOptions options)
    : model_(model), options_(std::move(options)) {}

Runner& Runner::add(Analyzer& analyzer) {
  analyzers_.push_back(&analyzer);
  return *this;
}

Runner& Runner::edit(const std::string& pattern, Edit edit, Which which) {
  edits_.push_back({pattern, {std::move(edit), which}});
  return *this;
}

const std::vector<Analyzer*>& Runner::wanting(const HookPoint& point) {
  const std::string key = point.key();
  auto it = wanting_.find(key);
  if (it != wanting_.end()) return it->second;
  std::vector<Analyzer*> list;
  for (Analyzer* a : analyzers_)
    if (a->wants(point)) list.push_back(a);
  return wanting_.emplace(key, std::move(list)).first->second;
}

std::vector<Report> Runner::run(Dataset& data) {
  STRATA_CHECK(!analyzers_.empty(), "Runner::run: no analyzers were added");
  model_.require_hook_points();
  int64_t total = data.num_batches();
  if (options_.max_batches >= 0 && (total < 0 || total > options_.max_batches)) {
    total = options_.max_batches;
  }
  RunContext ctx;
  ctx.model = &model_;
  ctx.device = model_.device();
  ctx.num_batches = total;
  for (Analyzer* a : analyzers_) a->begin(ctx);

  int64_t batch_index = 0;
  HookSession session;
  session.store(false).keep(options_.keep);
  for (auto& [pattern, e] : edits_) session.edit(pattern, e.first, e.second);
  session.capture_if([this](const HookPoint& p) { return !wanting(p).empty(); });
  session.observe([this, &batch_index](const HookPoint& p, const at::Tensor& t) {
    Activation act{p, t, batch_index};
    for (Analyzer* a : wanting(p)) a->visit(act);
  });

  Progress progress(options_.label, total, options_.progress);
  data.reset();
  while (options_.max_batches < 0 || batch_index < options_.max_batches) {
    std::optional<Batch> batch = data.next();
    if (!batch) break;
    std::vector<c10::IValue> inputs = batch->inputs;
    for (auto& v : inputs) {
      if (v.isTensor()) v = v.toTensor().to(model_.device());
    }
    c10::IValue output;
    {
      std::unique_ptr<at::NoGradGuard> no_grad;
      if (options_.no_grad) no_grad = std::make_unique<at::NoGradGuard>();
      output = model_.forward(inputs);
    }
    BatchContext bc{batch_index, batch->inputs, output, batch->labels};
    for (Analyzer* a : analyzers_) a->end_batch(bc);
    ++batch_index;
    progress.step();
  }
  progress.finish();

  std::vector<Report> reports;
  for (Analyzer* a : analyzers_) {
    Report r = a->finish();
    if (r.analyzer.empty()) r.analyzer = std::string(a->name());
    reports.push_back(std::move(r));
  }
  return reports;
}

}  // namespace strata
