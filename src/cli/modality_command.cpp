// strata modality --text T.safetensors --image V.safetensors --joint J.safetensors
//                 --out REPORT.json [--png CURVE.png] [--layers LAYERS.safetensors]
// strata modality MODEL.pt --text T_IN --image V_IN --joint J_IN --out REPORT.json [--png ...]
// Entropy-based modality uncertainty (docs/analyzers/modality_uncertainty.md): which modality a
// multimodal model follows when image and text conflict, as a function of the relative
// uncertainty ΔH_rel of the two unimodal runs; the balance point; layer-wise oscillation.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <strata/analysis/modality_uncertainty.h>
#include <strata/core/dtype.h>
#include <strata/core/error.h>
#include <strata/io/safetensors.h>
#include <strata/model/model.h>

#include <filesystem>
#include <iostream>

#include "cli_common.h"

namespace strata::cli {

namespace {

struct ModalityArgs {
  std::string model, text, image, joint, out, png, layers, candidates, save_logits, device = "cpu";
  std::string norm, unembed, lens_layers;
  int64_t bins = 16, bootstrap = 1000, position = -1, batch_size = 64;
  uint64_t seed = 0;
  double confidence = 0.95, window = 0.5;
  bool no_lens = false, quiet = false;
};

// The tensor `key` of a logits file, with a clear error when it is missing.
at::Tensor read_tensor(const std::string& path, const std::string& key, const char* shape) {
  SafetensorsFile f = load_safetensors(path);
  if (!f.tensors.contains(key)) {
    std::string keys;
    for (const auto& n : f.tensors.names()) keys += (keys.empty() ? "" : ", ") + n;
    throw Error(str_cat("'", path, "' has no tensor '", key, "' (", shape,
                        "); it holds: ", keys.empty() ? "nothing" : keys));
  }
  const at::Tensor t = f.tensors.at(key);
  STRATA_CHECK(t.is_floating_point(), "'", path, "': '", key, "' is ", dtype_name(t.scalar_type()),
               ", expected floating-point logits ", shape);
  return t;
}

std::vector<at::Tensor> read_args(const std::string& path, c10::Device device) {
  SafetensorsFile f = load_safetensors(path);
  std::vector<at::Tensor> out;
  for (const auto& v : forward_args(f.tensors, path, device)) out.push_back(v.toTensor());
  return out;
}

std::vector<int64_t> parse_ids(const std::string& text) {
  std::vector<int64_t> ids;
  for (const auto& part : split_list(text)) {
    try {
      size_t used = 0;
      ids.push_back(std::stoll(part, &used));
      if (used != part.size()) throw std::invalid_argument(part);
    } catch (const std::exception&) {
      throw UsageError("--candidates: '" + part + "' is not a token id (give e.g. 5,6,7)");
    }
  }
  return ids;
}

std::string fmt_opt(const std::optional<double>& v) {
  return v ? fmt::format("{:.3f}", *v) : std::string("none");
}

}  // namespace

void add_modality(CLI::App& app, int& status) {
  auto* cmd = app.add_subcommand(
      "modality", "entropy-based modality uncertainty: which modality wins when they conflict");
  auto a = std::make_shared<ModalityArgs>();
  cmd->add_option("model", a->model,
                  "TorchScript model (.pt): run the three passes (and the logit lens) here; "
                  "--text/--image/--joint then hold forward's arguments arg0, arg1, ...");
  cmd->add_option("--text", a->text,
                  "text-only run: safetensors with 'logits' [N, V] (with MODEL: its inputs)")
      ->required();
  cmd->add_option("--image", a->image, "image-only run: 'logits' [N, V] (with MODEL: its inputs)")
      ->required();
  cmd->add_option("--joint", a->joint, "joint run: 'logits' [N, V] (with MODEL: its inputs)")
      ->required();
  cmd->add_option("--out", a->out, "report (JSON)")->required();
  cmd->add_option("--png", a->png, "following curve with the balance point (PNG)");
  cmd->add_option("--layers", a->layers,
                  "the joint run's lens logits: safetensors with 'layer_logits' [N, L, V] "
                  "(without MODEL)");
  cmd->add_option("--candidates", a->candidates,
                  "comma-separated answer token ids (default: the full vocabulary)");
  cmd->add_option("--bins", a->bins, "equal-width bins of delta_h_rel over [-2, 2]")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--bootstrap", a->bootstrap, "bootstrap resamples for the balance point's CI")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", a->seed, "bootstrap seed");
  cmd->add_option("--confidence", a->confidence, "level of the intervals")
      ->check(CLI::Range(0.5, 0.999));
  cmd->add_option("--window", a->window,
                  "half-width of the ambiguous region around the balance "
                  "point")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--position", a->position,
                  "with MODEL: the answer's position in logits [B, T, V] (default -1: the last)");
  cmd->add_option("--batch-size", a->batch_size, "with MODEL: rows per forward pass")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--no-lens", a->no_lens, "with MODEL: skip the logit lens (no oscillation)");
  cmd->add_option("--norm", a->norm, "with MODEL: the final norm module (default: found)");
  cmd->add_option("--unembed", a->unembed, "with MODEL: the unembedding module (default: found)");
  cmd->add_option("--lens-layers", a->lens_layers,
                  "with MODEL: comma-separated hook-point patterns to decode (default: found)");
  cmd->add_option("--save-logits", a->save_logits,
                  "with MODEL: write DIR/{text,image,joint,layers}.safetensors (the file-mode "
                  "inputs)");
  cmd->add_option("--device", a->device, "with MODEL: cpu or cuda[:N]");
  cmd->add_flag("--quiet", a->quiet, "no summary on stdout");
  cmd->callback([a, &status] {
    const bool with_model = !a->model.empty();
    if (!with_model) {
      for (const auto& [flag, given] :
           {std::pair<const char*, bool>{"--position", a->position != -1},
            {"--no-lens", a->no_lens},
            {"--save-logits", !a->save_logits.empty()},
            {"--norm", !a->norm.empty()},
            {"--unembed", !a->unembed.empty()},
            {"--lens-layers", !a->lens_layers.empty()}}) {
        if (given)
          throw UsageError(std::string("modality: ") + flag +
                           " needs a MODEL.pt (it is about running the passes)");
      }
    } else if (!a->layers.empty()) {
      throw UsageError(
          "modality: --layers reads lens logits from a file; with MODEL.pt the lens runs here "
          "(use --no-lens to skip it)");
    }
    ModalityOptions opts;
    opts.set_candidates(parse_ids(a->candidates))
        .set_bins(a->bins)
        .set_bootstrap(a->bootstrap)
        .set_seed(a->seed)
        .set_confidence(a->confidence)
        .set_window(a->window);
    ModalityUncertainty mu(opts);

    at::Tensor text, image, joint, layers;
    std::vector<std::string> layer_names;
    if (with_model) {
      const c10::Device device = parse_device(a->device);
      Model model = Model::load(a->model, LoadOptions().set_device(device));
      ModalityPassOptions po;
      po.set_position(a->position).set_batch_size(a->batch_size).set_layers(!a->no_lens);
      po.set_norm(a->norm).set_unembed(a->unembed).set_lens_layers(split_list(a->lens_layers));
      ModalityRuns runs =
          run_modality_passes(model, read_args(a->text, device), read_args(a->image, device),
                              read_args(a->joint, device), po);
      text = runs.text;
      image = runs.image;
      joint = runs.joint;
      layers = runs.layer_logits;
      layer_names = runs.layers;
      if (!a->save_logits.empty()) {
        std::filesystem::create_directories(a->save_logits);
        const std::string d = a->save_logits + "/";
        for (const auto& [name, t] : {std::pair<const char*, at::Tensor>{"text", text},
                                      {"image", image},
                                      {"joint", joint}}) {
          TensorMap m;
          m.insert("logits", t);
          save_safetensors(d + name + ".safetensors", m, {{"model", a->model}});
        }
        if (layers.defined()) {
          TensorMap m;
          m.insert("layer_logits", layers);
          std::string names;
          for (const auto& l : layer_names) names += (names.empty() ? "" : ",") + l;
          save_safetensors(d + "layers.safetensors", m, {{"model", a->model}, {"layers", names}});
        }
      }
    } else {
      text = read_tensor(a->text, "logits", "[N, V]");
      image = read_tensor(a->image, "logits", "[N, V]");
      joint = read_tensor(a->joint, "logits", "[N, V]");
      if (!a->layers.empty()) layers = read_tensor(a->layers, "layer_logits", "[N, L, V]");
    }
    // Name the files in shape errors (the analyzer speaks of runs).
    try {
      ModalityResult r = mu.analyze(text, image, joint, layers);
      Report rep = modality_report(r);
      nlohmann::json& d = rep.data;
      d["inputs"] = {{"text", a->text}, {"image", a->image}, {"joint", a->joint}};
      if (with_model) d["model"] = a->model;
      if (!a->layers.empty()) d["inputs"]["layers"] = a->layers;
      if (!layer_names.empty()) d["lens_layers"] = layer_names;
      write_text(a->out, d.dump(1) + "\n");
      if (!a->png.empty()) {
        std::string name = with_model ? a->model : a->joint;
        const auto slash = name.find_last_of('/');
        if (slash != std::string::npos) name = name.substr(slash + 1);
        modality_curve_image(r, "P(follows text) vs delta H_rel: " + name).save_png(a->png);
      }
      if (r.n_other + r.n_both > 0) {
        std::fprintf(stderr,
                     "strata: note: %lld of %lld items excluded: %lld where the joint answer is "
                     "neither unimodal answer, %lld where both unimodal answers agree\n",
                     static_cast<long long>(r.n_other + r.n_both),
                     static_cast<long long>(r.items.size()), static_cast<long long>(r.n_other),
                     static_cast<long long>(r.n_both));
      }
      if (!a->quiet) {
        std::cout << fmt::format(
            "items {}: follows text {}, image {}; excluded: other {}, both {}\n", r.items.size(),
            r.n_text, r.n_image, r.n_other, r.n_both);
        std::cout << fmt::format("{:>14} {:>6} {:>8}  {}\n", "delta_h_rel", "n", "p_text",
                                 fmt::format("{:g}% Wilson", a->confidence * 100));
        for (const auto& c : r.curve)
          std::cout << fmt::format("[{:+.2f},{:+.2f}) {:>6} {:>8.3f}  [{:.3f}, {:.3f}]\n", c.lo,
                                   c.hi, c.n, c.p_text, c.ci_lo, c.ci_hi);
        if (r.fit)
          std::cout << fmt::format("logistic fit: p_text = sigmoid({:.4f} + {:.4f} * dH)\n",
                                   r.fit->intercept, r.fit->slope);
        const auto& rises = rep.data.at("significant_rises");
        std::cout << fmt::format(
            "bins where p_text rises with disjoint intervals (against the monotonic law): {}\n",
            rises.size());
        if (r.balance_point) {
          std::cout << fmt::format("balance point: {:.4f}", *r.balance_point);
          if (r.balance_point_ci)
            std::cout << fmt::format("  ({:g}% bootstrap CI [{:.4f}, {:.4f}], {} resamples)",
                                     a->confidence * 100, r.balance_point_ci->first,
                                     r.balance_point_ci->second, a->bootstrap);
          std::cout << "\n";
        } else {
          std::cout << "balance point: none\n";
        }
        if (!r.note.empty()) std::cout << "note: " << r.note << "\n";
        if (r.oscillation) {
          const Oscillation& o = *r.oscillation;
          std::cout << fmt::format(
              "oscillation over {} layers (mean switches per item): ambiguous {} (n={}), "
              "clear {} (n={}), all {}\n",
              o.layers, fmt_opt(o.ambiguous), o.n_ambiguous, fmt_opt(o.clear), o.n_clear,
              fmt_opt(o.all));
          std::cout << "logit difference z_text - z_image per layer (all items):";
          for (double v : o.diff_all) std::cout << fmt::format(" {:.3f}", v);
          std::cout << "\n";
        }
        std::cout << "wrote " << a->out << (a->png.empty() ? "" : " and " + a->png) << "\n";
      }
    } catch (const Error& e) {
      if (with_model) throw;
      throw Error(str_cat(e.what(), " [files: --text ", a->text, ", --image ", a->image,
                          ", --joint ", a->joint,
                          a->layers.empty() ? std::string() : ", --layers " + a->layers, "]"));
    }
    status = 0;
  });
}

}  // namespace strata::cli
