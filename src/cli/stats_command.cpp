// strata stats MODEL.pt --input IN.safetensors [--batch-size N] [--hooks GLOBS] [--json OUT]
// Streams IN through the model in batches and prints per-hook-point statistics, layer by layer.
#include <iostream>

#include <strata/analysis/activation_stats.h>
#include <strata/analysis/runner.h>
#include <strata/model/model.h>

#include "cli_common.h"

namespace strata::cli {

namespace {
struct StatsArgs {
  std::string model, input, hooks, json, device = "cpu";
  int64_t batch_size = 32;
  bool quiet = false;
};
}  // namespace

void add_stats(CLI::App& app, int& status) {
  auto* cmd = app.add_subcommand("stats", "per-layer activation statistics over a dataset");
  auto a = std::make_shared<StatsArgs>();
  cmd->add_option("model", a->model, "TorchScript file (.pt)")->required();
  cmd->add_option("--input", a->input, "safetensors file with arg0, ... (rows = samples)")->required();
  cmd->add_option("--batch-size", a->batch_size, "rows per forward pass")->check(CLI::PositiveNumber);
  cmd->add_option("--hooks", a->hooks, "comma-separated names or globs (default: every output)");
  cmd->add_option("--json", a->json, "also write the report as JSON to this file");
  cmd->add_option("--device", a->device, "cpu or cuda[:N]");
  cmd->add_flag("--quiet", a->quiet, "no progress line");
  cmd->callback([a, &status] {
    const c10::Device device = parse_device(a->device);
    Model model = Model::load(a->model, LoadOptions().set_device(device));
    const auto patterns = split_list(a->hooks);
    for (const auto& p : patterns) model.match(p);
    SafetensorsFile in = load_safetensors(a->input);
    forward_args(in.tensors, a->input, c10::kCPU);  // checks arg0 exists, with a clear message
    TensorDataset data(in.tensors, a->batch_size);
    ActivationStats stats(patterns);
    Runner runner(model, RunnerOptions().set_progress(!a->quiet).set_label("stats"));
    runner.add(stats);
    Report report = runner.run(data)[0];
    std::cout << ActivationStats::table(report);
    if (!a->json.empty()) write_text(a->json, report.data.dump(2) + "\n");
    status = 0;
  });
}

}  // namespace strata::cli
