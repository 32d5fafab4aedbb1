// strata lrp MODEL.pt --input IN.safetensors --target C --out OUT.safetensors
//            [--composite NAME | --rules GLOB=RULE[,GLOB=RULE...]] [--png HEAT.png] [--json R.json]
// Layer-wise relevance propagation: explains the model's output at class C for arg0 of IN and
// writes `relevance` (same shape as arg0) and `relevance/NAME` at every hook point to OUT, prints
// the conservation table, and optionally draws the heatmap (see docs/analyzers/lrp.md).
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <strata/core/error.h>
#include <strata/lrp/composite.h>
#include <strata/lrp/lrp.h>
#include <strata/lrp/relevance_image.h>
#include <strata/model/model.h>

#include <iostream>

#include "cli_common.h"

namespace strata::cli {

namespace {
struct LrpArgs {
  std::string model, input, out, composite, rules, png, json, device = "cpu";
  int64_t target = -1;
  int64_t scale = 3;
  bool quiet = false;
};
}  // namespace

void add_lrp(CLI::App& app, int& status) {
  auto* cmd = app.add_subcommand("lrp", "layer-wise relevance propagation: explain one class");
  auto a = std::make_shared<LrpArgs>();
  cmd->add_option("model", a->model, "TorchScript file (.pt)")->required();
  cmd->add_option("--input", a->input,
                  "safetensors with arg0 (the input to explain), arg1, ...; "
                  "an optional 'pixels' [N, 3, H, W] (0..255) is drawn next to the heatmap")
      ->required();
  cmd->add_option("--target", a->target, "class index C (last dimension of the output)")
      ->required();
  cmd->add_option("--out", a->out, "safetensors: relevance, relevance/NAME per hook point")
      ->required();
  cmd->add_option("--composite", a->composite,
                  "epsilon_plus_flat, epsilon_gamma_box:LOW:HIGH, epsilon_alpha2_beta1, epsilon");
  cmd->add_option("--rules", a->rules,
                  "GLOB=RULE,...; RULE: epsilon[:eps] zero gamma[:g] alphabeta[:a:b] zplus "
                  "zbox:low:high flat wsquare pass (unmatched linear/conv layers: epsilon)");
  cmd->add_option("--png", a->png, "heatmap of the first input row (image inputs [N, C, H, W])");
  cmd->add_option("--scale", a->scale, "heatmap pixels per input pixel")->check(CLI::Range(1, 16));
  cmd->add_option("--json", a->json,
                  "report: scores, conservation table, merged BatchNorms, rules");
  cmd->add_option("--device", a->device, "cpu or cuda[:N]");
  cmd->add_flag("--quiet", a->quiet, "no table");
  cmd->callback([a, &status] {
    if (!a->composite.empty() && !a->rules.empty())
      throw UsageError("lrp: give --composite or --rules, not both");
    if (a->target < 0) throw UsageError("lrp: --target must be >= 0");
    const c10::Device device = parse_device(a->device);
    const Composite composite = !a->rules.empty()       ? Composite::parse_rules(a->rules)
                                : !a->composite.empty() ? Composite::preset(a->composite)
                                                        : Composite();
    SafetensorsFile in = load_safetensors(a->input);
    std::vector<c10::IValue> args = forward_args(in.tensors, a->input, device);
    const at::Tensor x = args[0].toTensor();
    if (!a->png.empty()) {
      STRATA_CHECK(x.dim() == 4 && (x.size(1) == 1 || x.size(1) == 3),
                   "lrp: --png needs an image "
                   "input arg0 [N, C, H, W] with C = 1 or 3; '",
                   a->input, "' has arg0 of shape ", x.sizes());
    }
    Model model = Model::load(a->model, LoadOptions().set_device(device));
    const LrpResult r = lrp(model, args, a->target, composite);

    TensorMap out;
    out.insert("relevance", r.relevance.cpu());
    for (const auto& key : r.points.names()) out.insert("relevance/" + key, r.points.at(key).cpu());
    save_safetensors(a->out, out,
                     {{"model", a->model},
                      {"target", std::to_string(a->target)},
                      {"composite", r.composite},
                      {"output_score", fmt::format("{:.9g}", r.output_score)}});
    if (!a->png.empty()) {
      RelevanceImageOptions o;
      o.set_scale(a->scale).set_title(
          fmt::format("LRP {} target {} score {:.4g}", r.composite, a->target, r.output_score));
      if (in.tensors.contains("pixels")) {
        const at::Tensor px = in.tensors.at("pixels");
        if (px.dim() == 4 && px.size(0) >= 1 && px.size(1) == 3 && px.size(2) == x.size(2) &&
            px.size(3) == x.size(3))
          o.set_image(px[0]);
      }
      relevance_image(r.relevance[0], o).save_png(a->png);
    }
    if (!a->json.empty()) {
      nlohmann::json j = r.to_json();
      j["model"] = a->model;
      j["input"] = a->input;
      write_text(a->json, j.dump(2) + "\n");
    }
    if (!a->quiet) {
      std::cout << fmt::format(
          "LRP ({}) of {} for target {}: output score {:.6g}, input "
          "relevance sum {:.6g} (ratio {:.4f})\n",
          r.composite, a->model, a->target, r.output_score, r.input_sum,
          r.output_score != 0 ? r.input_sum / r.output_score : 0.0);
      std::cout << fmt::format("{:<32} {:<12} {:<36} {:>12} {:>8}\n", "hook point", "type", "rule",
                               "sum R", "contrib");
      for (const auto& row : r.table)
        std::cout << fmt::format("{:<32} {:<12} {:<36} {:>12.6g} {:>8.4f}\n", row.key, row.type,
                                 row.rule.substr(0, 36), row.sum, row.contribution);
      for (const auto& m : r.merged)
        std::cout << fmt::format("merged {} into {} (max |difference| {:.3g})\n", m.batchnorm,
                                 m.layer, m.max_deviation);
    }
    status = 0;
  });
}

}  // namespace strata::cli
