// strata probe --features F.safetensors --labels L.safetensors --out REPORT.json [--png CURVE.png]
//              [--probe logistic|ridge] [--C 1.0 | --cv 5] [--seed S] [--seeds N] [--control]
// strata probe MODEL.pt --input DATA.safetensors --layers PATTERNS [--position last|mean|every|I,J]
//              --out REPORT.json [...the same probe options]
// Layer-wise linear probes: one probe per layer (a tensor of F, or a hook point of the model),
// with a held-out split, C by cross-validation on the training split, the majority baseline and,
// with --control, the control task and selectivity (see docs/analyzers/probes.md).
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <strata/analysis/layerwise_probe.h>
#include <strata/analysis/runner.h>
#include <strata/core/error.h>
#include <strata/model/model.h>
#include <strata/probe/layer_probe.h>

#include <iostream>

#include "cli_common.h"

namespace strata::cli {

namespace {

struct ProbeArgs {
  std::string model, features, labels, input, layers, position = "last", out, png,
                                                      probe = "logistic";
  std::string device = "cpu", save_features, title;
  double C = 1.0, test_fraction = 0.2;
  int64_t cv = 5, seeds = 1, batch_size = 32, max_iter = 1000;
  uint64_t seed = 0;
  bool control = false, no_standardize = false, quiet = false;
};

void print_table(const nlohmann::json& r) {
  const bool control = r.value("control", false);
  std::cout << fmt::format("{:<24} {:>7} {:>15} {:>9}", "layer", "train", "test", "majority");
  if (control) std::cout << fmt::format(" {:>9} {:>11}", "control", "selectivity");
  std::cout << fmt::format(" {:>9}\n", "C");
  for (const auto& name : r.at("layer_order")) {
    const auto& l = r.at("layers").at(name.get<std::string>());
    std::cout << fmt::format(
        "{:<24} {:>7.4f} {:>8.4f}±{:<6.4f} {:>9.4f}", name.get<std::string>(),
        l.at("train_accuracy").get<double>(), l.at("test_accuracy").get<double>(),
        l.at("test_accuracy_std").get<double>(), l.at("majority_accuracy").get<double>());
    if (control)
      std::cout << fmt::format(" {:>9.4f} {:>11.4f}", l.at("control_accuracy").get<double>(),
                               l.at("selectivity").get<double>());
    std::cout << fmt::format(" {:>9.3g}\n", l.at("C").get<double>());
  }
}

}  // namespace

void add_probe(CLI::App& app, int& status) {
  auto* cmd = app.add_subcommand(
      "probe", "layer-wise linear probes: held-out accuracy per layer, control task, baselines");
  auto a = std::make_shared<ProbeArgs>();
  cmd->add_option("model", a->model,
                  "TorchScript model (.pt): capture the features with --input and --layers");
  cmd->add_option("--features", a->features,
                  "safetensors file: one float [N, D] tensor per layer (key = layer name)");
  cmd->add_option("--labels", a->labels,
                  "safetensors file: labels int64 [N]; optional split [N] (1 train, 0 test), "
                  "groups [N], types [N] (control-task item types)");
  cmd->add_option("--input", a->input,
                  "with MODEL: safetensors with arg0, ... and labels ([N] for last/mean, [N, T] "
                  "for every, [N, len] for indices; negative labels are skipped)");
  cmd->add_option("--layers", a->layers, "with MODEL: comma-separated hook-point patterns");
  cmd->add_option("--position", a->position,
                  "with MODEL: last (default), mean, every, or token indices like 0,5,-1");
  cmd->add_option("--out", a->out, "report (JSON)")->required();
  cmd->add_option("--png", a->png, "accuracy-vs-layer curve (PNG)");
  cmd->add_option("--title", a->title, "title of the curve");
  cmd->add_option("--probe", a->probe, "logistic (default) or ridge")
      ->check(CLI::IsMember({"logistic", "ridge"}));
  auto* c_opt = cmd->add_option(
      "--C", a->C,
      "fixed inverse L2 strength on the summed loss (scikit-learn's C; ridge: alpha = 1/C)");
  auto* cv_opt =
      cmd->add_option("--cv", a->cv, "choose C by k-fold CV on the train split (default 5)");
  c_opt->excludes(cv_opt);
  cmd->add_option("--seed", a->seed, "seed of the split, CV folds and control labels (default 0)");
  cmd->add_option("--seeds", a->seeds, "repeat over this many seeds; report mean and std")
      ->check(CLI::Range(int64_t{1}, int64_t{1000}));
  cmd->add_option("--test-fraction", a->test_fraction, "held-out share without a given split")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--max-iter", a->max_iter, "L-BFGS iterations at most")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--control", a->control, "also fit the control task; report selectivity");
  cmd->add_flag("--no-standardize", a->no_standardize, "keep the raw features");
  cmd->add_option("--batch-size", a->batch_size, "with MODEL: rows per forward pass")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--device", a->device, "with MODEL: cpu or cuda[:N]");
  cmd->add_option("--save-features", a->save_features,
                  "with MODEL: also write the captured features (and labels) as safetensors");
  cmd->add_flag("--quiet", a->quiet, "no progress line and no table");
  cmd->callback([a, cmd, &status] {
    const bool from_model = !a->model.empty();
    if (from_model) {
      if (a->input.empty() || a->layers.empty())
        throw UsageError(
            "probe: with a model, give --input DATA.safetensors and --layers PATTERNS");
      if (!a->features.empty() || !a->labels.empty())
        throw UsageError("probe: give either a model (with --input) or --features and --labels");
    } else {
      if (a->features.empty() || a->labels.empty())
        throw UsageError(
            "probe: give --features F.safetensors and --labels L.safetensors "
            "(or a model with --input and --layers)");
      if (!a->input.empty() || !a->layers.empty() || cmd->count("--position") > 0)
        throw UsageError("probe: --input, --layers and --position need a model");
    }
    if (cmd->count("--C") > 0 && !(a->C > 0))
      throw UsageError(str_cat("probe: --C ", a->C, " must be positive"));
    if (cmd->count("--cv") > 0 && a->cv < 2)
      throw UsageError(str_cat("probe: --cv ", a->cv, " needs at least 2 folds"));
    if (!(a->test_fraction > 0 && a->test_fraction < 1))
      throw UsageError(str_cat("probe: --test-fraction ", a->test_fraction, " is not in (0, 1)"));

    ProbeOptions o;
    o.set_kind(a->probe == "ridge" ? ProbeKind::Ridge : ProbeKind::Logistic)
        .set_cv_folds(a->cv)
        .set_seed(a->seed)
        .set_num_seeds(a->seeds)
        .set_test_fraction(a->test_fraction)
        .set_control(a->control)
        .set_standardize(!a->no_standardize)
        .set_max_iter(a->max_iter);
    if (cmd->count("--C") > 0) o.set_C(a->C);

    nlohmann::json report;
    if (from_model) {
      LayerwiseProbeOptions lo;
      std::vector<int64_t> idx;
      ProbePosition pos;
      try {
        pos = parse_probe_position(a->position, idx);
      } catch (const Error& e) {
        throw UsageError(str_cat("probe: --position: ", e.what()));
      }
      lo.set_layers(split_list(a->layers)).set_position(pos).set_indices(idx).set_probe(o);
      const c10::Device device = parse_device(a->device);
      Model model = Model::load(a->model, LoadOptions().set_device(device));
      SafetensorsFile in = load_safetensors(a->input);
      forward_args(in.tensors, a->input, c10::kCPU);  // checks arg0, with a clear message
      STRATA_CHECK(in.tensors.contains("labels"), "'", a->input,
                   "' has no tensor 'labels' (the property to probe for)");
      TensorMap moved;
      for (const auto& n : in.tensors.names()) moved.insert(n, in.tensors.at(n).to(device));
      TensorDataset data(moved, a->batch_size);
      LayerwiseProbe probe(lo);
      Runner runner(
          model,
          RunnerOptions().set_progress(!a->quiet && data.num_batches() > 1).set_label("probe"));
      runner.add(probe);
      report = runner.run(data)[0].data;
      report["model"] = a->model;
      report["input"] = a->input;
      if (!a->save_features.empty()) {
        TensorMap all = probe.features();
        const TensorMap lab = probe.labels();
        save_safetensors(a->save_features, all);
        std::string lpath = a->save_features;
        const auto dot = lpath.rfind(".safetensors");
        lpath = (dot == std::string::npos ? lpath : lpath.substr(0, dot)) + ".labels.safetensors";
        save_safetensors(lpath, lab);
        report["saved_features"] = a->save_features;
        report["saved_labels"] = lpath;
      }
    } else {
      const SafetensorsFile f = load_safetensors(a->features);
      const SafetensorsFile l = load_safetensors(a->labels);
      STRATA_CHECK(!f.tensors.empty(), "'", a->features,
                   "' holds no tensors (one [N, D] per layer)");
      STRATA_CHECK(l.tensors.contains("labels"), "'", a->labels,
                   "' has no tensor 'labels' (int64 [N])");
      ProbeData data;
      data.labels = l.tensors.at("labels");
      if (l.tensors.contains("split")) data.split = l.tensors.at("split");
      if (l.tensors.contains("groups")) data.groups = l.tensors.at("groups");
      if (l.tensors.contains("types")) data.types = l.tensors.at("types");
      std::vector<std::pair<std::string, at::Tensor>> layers;
      for (const auto& n : f.tensors.names()) layers.emplace_back(n, f.tensors.at(n));
      report = probe_layers(layers, data, o);
      report["features"] = a->features;
      report["labels"] = a->labels;
    }
    write_text(a->out, report.dump(1) + "\n");
    if (!a->png.empty()) probe_curve(report, a->title).render().save_png(a->png);
    if (!a->quiet) {
      print_table(report);
      std::cout << "wrote " << a->out << (a->png.empty() ? "" : " and " + a->png) << "\n";
    }
    status = 0;
  });
}

}  // namespace strata::cli
