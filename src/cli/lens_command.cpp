// strata lens MODEL.pt (--prompt TEXT --tokenizer TOK | --tokens IN.safetensors)
//             [--tuned LENS.safetensors] [--target TOKEN] --out REPORT.json [--png HEAT.png]
// The logit lens: decodes every layer's hidden state with the model's final norm and
// unembedding, and writes per layer and position the top-1 token, its probability, the entropy,
// KL(final || layer) and the rank of the final top-1 token (see docs/analyzers/logit_lens.md).
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <strata/analysis/logit_lens.h>
#include <strata/analysis/runner.h>
#include <strata/core/dtype.h>
#include <strata/core/error.h>
#include <strata/model/model.h>
#include <strata/text/tokenizer.h>

#include <cstdio>
#include <iostream>

#include "cli_common.h"

namespace strata::cli {

namespace {

struct LensArgs {
  std::string model, prompt, tokenizer, tokens, tuned, target, out, png, color = "prob";
  std::string norm, unembed, layers, device = "cpu";
  int64_t top_k = 5, batch_size = 8;
  bool prompt_given = false, quiet = false;
};

bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// --target: a numeric id, or a token's text (exactly one piece of the vocabulary, or text that
// the tokenizer encodes as exactly one token).
int64_t resolve_target(const std::string& text, const Tokenizer* tok) {
  if (all_digits(text)) {
    try {
      return std::stoll(text);
    } catch (const std::exception&) {
      throw UsageError("--target " + text + ": not a valid token id");
    }
  }
  if (tok == nullptr) {
    throw UsageError("--target '" + text +
                     "': a token's text needs --tokenizer (or give the token's numeric id)");
  }
  for (int64_t id = 0; id < tok->vocab_size(); ++id)
    if (tok->piece(id) == text) return id;
  const std::vector<int64_t> ids = tok->encode(text, /*bos=*/false);
  if (ids.size() == 1) return ids.front();
  std::string pieces;
  for (int64_t id : ids) pieces += (pieces.empty() ? "" : " ") + ("'" + tok->piece(id) + "'");
  throw Error(str_cat("--target '", text, "' is not a token of the tokenizer: it encodes to ",
                      ids.size(), " tokens (", pieces,
                      "); give one token's text (with its leading space, e.g. ' Lily') or its id"));
}

std::string token_text(const Tokenizer* tok, int64_t id) {
  if (tok == nullptr || id < 0 || id >= tok->vocab_size()) return "#" + std::to_string(id);
  return tok->piece(id);
}

}  // namespace

void add_lens(CLI::App& app, int& status) {
  auto* cmd = app.add_subcommand(
      "lens", "logit lens: decode every layer with the final norm and unembedding");
  auto a = std::make_shared<LensArgs>();
  cmd->add_option("model", a->model, "TorchScript language model (.pt)")->required();
  cmd->add_option("--prompt", a->prompt, "text to run (needs --tokenizer)");
  cmd->add_option("--tokenizer", a->tokenizer, "llama2.c tokenizer file (tok512.bin, ...)");
  cmd->add_option("--tokens", a->tokens,
                  "safetensors file with 'tokens', int64 [N, T] (matrices for row 0; "
                  "aggregates over all rows)");
  cmd->add_option(
      "--tuned", a->tuned,
      "tuned-lens translators: safetensors with <layer>.weight [d, d], <layer>.bias [d]");
  cmd->add_option("--target", a->target,
                  "a token (text or id) whose probability and rank to report");
  cmd->add_option("--out", a->out, "report (JSON)")->required();
  cmd->add_option("--png", a->png, "heatmap picture (PNG)");
  cmd->add_option("--color", a->color, "what colours the picture: prob (default) or entropy")
      ->check(CLI::IsMember({"prob", "entropy"}));
  cmd->add_option("--norm", a->norm, "final norm module (default: found; 'none': no norm)");
  cmd->add_option("--unembed", a->unembed, "unembedding module (default: found)");
  cmd->add_option("--layers", a->layers,
                  "comma-separated hook-point patterns to decode (default: embedding + blocks)");
  cmd->add_option("--top-k", a->top_k, "tokens listed per layer and position")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch-size", a->batch_size, "rows of --tokens per forward pass")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--device", a->device, "cpu or cuda[:N]");
  cmd->add_flag("--quiet", a->quiet, "no progress line and no table");
  cmd->callback([a, cmd, &status] {
    a->prompt_given = cmd->count("--prompt") > 0;
    const bool from_file = !a->tokens.empty();
    if (a->prompt_given == from_file)
      throw UsageError("lens: give either --prompt (with --tokenizer) or --tokens");
    if (a->prompt_given && a->tokenizer.empty())
      throw UsageError("lens: --prompt needs --tokenizer to turn the text into tokens");
    if (a->prompt_given && a->prompt.empty())
      throw UsageError("lens: --prompt is empty; give some text to decode");
    const c10::Device device = parse_device(a->device);

    std::optional<Tokenizer> tok;
    if (!a->tokenizer.empty()) tok = Tokenizer::load(a->tokenizer);
    const Tokenizer* tp = tok ? &*tok : nullptr;

    at::Tensor tokens;
    if (a->prompt_given) {
      tokens = at::tensor(tok->encode(a->prompt, /*bos=*/true), at::kLong).unsqueeze(0);
    } else {
      SafetensorsFile in = load_safetensors(a->tokens);
      if (!in.tensors.contains("tokens")) {
        std::string keys;
        for (const auto& n : in.tensors.names()) keys += (keys.empty() ? "" : ", ") + n;
        throw Error(str_cat("'", a->tokens, "' has no tensor 'tokens' (int64 [1, T]); it holds: ",
                            keys.empty() ? "nothing" : keys));
      }
      tokens = in.tensors.at("tokens");
      STRATA_CHECK(
          !tokens.is_floating_point() && !tokens.is_complex() && tokens.scalar_type() != at::kBool,
          "'", a->tokens, "': 'tokens' is ", dtype_name(tokens.scalar_type()),
          ", expected integer token ids (int64)");
      if (tokens.dim() == 1) tokens = tokens.unsqueeze(0);
      STRATA_CHECK(tokens.dim() == 2, "'", a->tokens, "': 'tokens' has shape ", tokens.sizes(),
                   ", expected [1, T] (or [N, T])");
      tokens = tokens.to(at::kLong);
    }
    STRATA_CHECK(tokens.size(0) > 0 && tokens.size(1) > 0, "lens: no tokens to run (shape ",
                 tokens.sizes(), ")");

    Model model = Model::load(a->model, LoadOptions().set_device(device));
    LogitLensOptions opts;
    opts.set_layers(split_list(a->layers))
        .set_norm(a->norm)
        .set_unembed(a->unembed)
        .set_top_k(a->top_k);
    // Find the structure on a harmless input of the same shape (token 0 everywhere), so that an
    // out-of-range id below gets a clear error instead of an embedding failure.
    const at::Tensor probe = at::zeros({1, tokens.size(1)}, at::kLong).to(device);
    const LensStructure s = find_lens_structure(model, {probe}, opts);
    const int64_t V = s.vocab_size;
    {
      const at::Tensor bad = ((tokens < 0) | (tokens >= V)).nonzero();
      if (bad.size(0) > 0) {
        const int64_t row = bad[0][0].item<int64_t>(), pos = bad[0][1].item<int64_t>();
        throw Error(str_cat("lens: token id ", tokens[row][pos].item<int64_t>(), " at position ",
                            pos, tokens.size(0) > 1 ? str_cat(" of row ", row) : std::string(),
                            " is out of range: the model's vocabulary has ", V, " tokens (ids 0..",
                            V - 1, ")"));
      }
    }
    if (tp && tp->vocab_size() != V && !a->quiet) {
      std::fprintf(stderr,
                   "strata: warning: the tokenizer has %lld tokens, the model's logits %lld\n",
                   static_cast<long long>(tp->vocab_size()), static_cast<long long>(V));
    }
    if (!a->target.empty()) opts.set_target(resolve_target(a->target, tp));
    if (!a->tuned.empty()) opts.set_translators(load_translators(a->tuned));

    LogitLens lens(model, s, opts);
    TensorMap data_tensors;
    data_tensors.insert("arg0", tokens);
    TensorDataset data(data_tensors, a->batch_size);
    Runner runner(
        model, RunnerOptions().set_progress(!a->quiet && data.num_batches() > 1).set_label("lens"));
    runner.add(lens);
    Report report = runner.run(data)[0];

    nlohmann::json& d = report.data;
    d["model"] = a->model;
    if (tp) {
      d["tokenizer"] = a->tokenizer;
      std::vector<std::string> texts;
      for (int64_t id : d.at("tokens").get<std::vector<int64_t>>()) texts.push_back(tp->piece(id));
      d["token_text"] = texts;
    }
    if (a->prompt_given) d["prompt"] = a->prompt;
    if (opts.target) d["target_text"] = token_text(tp, *opts.target);
    if (!a->tuned.empty()) d["tuned"] = a->tuned;
    write_text(a->out, d.dump(1) + "\n");

    if (!a->png.empty()) {
      std::string name = a->model;
      const auto slash = name.find_last_of('/');
      if (slash != std::string::npos) name = name.substr(slash + 1);
      Heatmap h = logit_lens_heatmap(
          report, [tp](int64_t id) { return token_text(tp, id); },
          a->color == "entropy" ? LensColor::Entropy : LensColor::Probability, name);
      h.render().save_png(a->png);
    }

    if (!a->quiet) {
      // The last position's prediction, layer by layer.
      const auto layers = d.at("layers").get<std::vector<std::string>>();
      const int64_t T = static_cast<int64_t>(d.at("tokens").size());
      std::cout << fmt::format(
          "next token after position {} ({}), layer by layer:\n", T - 1,
          lens_token_label(token_text(tp, d.at("tokens")[T - 1].get<int64_t>())));
      std::cout << fmt::format("{:<20} {:<14} {:>8} {:>10} {:>10} {:>10}\n", "layer", "top-1", "p",
                               "entropy", "KL", "rank");
      for (size_t l = 0; l < layers.size(); ++l) {
        const int64_t id = d.at("top1")[l][T - 1].get<int64_t>();
        std::cout << fmt::format(
            "{:<20} {:<14} {:>8.4f} {:>10.4f} {:>10.4f} {:>10}\n", layers[l],
            lens_token_label(token_text(tp, id)), d.at("top1_prob")[l][T - 1].get<double>(),
            d.at("entropy")[l][T - 1].get<double>(), d.at("kl_to_final")[l][T - 1].get<double>(),
            d.at("rank_of_final_top1")[l][T - 1].get<int64_t>());
      }
      std::cout << "wrote " << a->out << (a->png.empty() ? "" : " and " + a->png) << "\n";
    }
    status = 0;
  });
}

}  // namespace strata::cli
