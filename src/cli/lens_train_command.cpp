// strata lens-train MODEL.pt --out LENS.safetensors [--corpus FILE.txt --tokenizer TOK |
//                   --samples N] [--seq-len T] [--steps S] [--lr LR] [--seed S] [--eval N]
//                   [--json REPORT.json] [--quiet]
// Trains a tuned lens (one affine translator per layer, see docs/analyzers/logit_lens.md) on text
// sampled from the model itself or read from a corpus, writes the translators (for
// `strata lens --tuned`), and prints per layer the held-out KL to the final distribution of the
// logit lens and of the tuned lens.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <strata/analysis/logit_lens.h>
#include <strata/analysis/progress.h>
#include <strata/analysis/tuned_lens.h>
#include <strata/core/error.h>
#include <strata/model/model.h>
#include <strata/text/tokenizer.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli_common.h"

namespace strata::cli {

namespace {

struct LensTrainArgs {
  std::string model, tokenizer, out, corpus, json, optimizer = "adam";
  std::string norm, unembed, layers, device = "cpu";
  int64_t samples = 256, seq_len = 64, steps = 300, eval = 32, batch_size = 8;
  double lr = 3e-3, temperature = 1.0, weight_decay = 0.0;
  uint64_t seed = 0;
  bool quiet = false;
};

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  STRATA_CHECK(f.good(), "lens-train: cannot read the corpus '", path, "'");
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace

void add_lens_train(CLI::App& app, int& status) {
  auto* cmd = app.add_subcommand(
      "lens-train", "tuned lens: train per-layer translators, compare with the logit lens");
  auto a = std::make_shared<LensTrainArgs>();
  cmd->add_option("model", a->model, "TorchScript language model (.pt): tokens [B, T] -> logits")
      ->required();
  cmd->add_option("--out", a->out, "translators to write (safetensors, for `strata lens --tuned`)")
      ->required();
  cmd->add_option("--tokenizer", a->tokenizer,
                  "llama2.c tokenizer (tok512.bin, ...); needed with --corpus");
  auto* corpus = cmd->add_option("--corpus", a->corpus,
                                 "train on this text file (documents separated by blank lines; "
                                 "the last --eval sequences are held out)");
  auto* samples = cmd->add_option("--samples", a->samples,
                                  "train on N sequences sampled from the model (default 256; "
                                  "--eval more are sampled and held out)")
                      ->check(CLI::PositiveNumber);
  corpus->excludes(samples);
  cmd->add_option("--seq-len", a->seq_len, "tokens per sequence (default 64)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
  cmd->add_option("--steps", a->steps, "optimizer steps (default 300)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--lr", a->lr, "initial learning rate, decayed linearly to 0 (default 3e-3)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--optimizer", a->optimizer, "adam (default) or sgd (Nesterov momentum 0.9)")
      ->check(CLI::IsMember({"adam", "sgd"}));
  cmd->add_option("--weight-decay", a->weight_decay, "L2 penalty on the translators (default 0)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch-size", a->batch_size, "sequences per step (default 8)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", a->temperature, "sampling temperature (default 1.0)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a->seed, "seed of the sampling and the batch order (default 0)");
  cmd->add_option("--eval", a->eval, "held-out sequences for the comparison (default 32)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--json", a->json, "also write a report (training and held-out KL) as JSON");
  cmd->add_option("--norm", a->norm, "final norm module (default: found; 'none': no norm)");
  cmd->add_option("--unembed", a->unembed, "unembedding module (default: found)");
  cmd->add_option("--layers", a->layers,
                  "comma-separated hook-point patterns of the layers (default: embedding + "
                  "blocks); all but the last get a translator");
  cmd->add_option("--device", a->device, "cpu or cuda[:N]");
  cmd->add_flag("--quiet", a->quiet, "no progress lines and no table");
  cmd->callback([a, cmd, &status] {
    const bool from_corpus = cmd->count("--corpus") > 0;
    if (from_corpus && a->tokenizer.empty())
      throw UsageError("lens-train: --corpus needs --tokenizer to turn the text into tokens");
    const c10::Device device = parse_device(a->device);
    std::optional<Tokenizer> tok;
    if (!a->tokenizer.empty()) tok = Tokenizer::load(a->tokenizer);

    Model model = Model::load(a->model, LoadOptions().set_device(device));
    LogitLensOptions lens_opts;
    lens_opts.set_layers(split_list(a->layers)).set_norm(a->norm).set_unembed(a->unembed);
    const int64_t bos = tok ? tok->bos() : 1;
    const at::Tensor probe = at::full({1, std::min<int64_t>(a->seq_len, 8)}, bos, at::kLong);
    const LensStructure s = find_lens_structure(model, {probe.to(device)}, lens_opts);
    if (tok && tok->vocab_size() != s.vocab_size && !a->quiet) {
      std::fprintf(stderr,
                   "strata: warning: the tokenizer has %lld tokens, the model's logits %lld\n",
                   static_cast<long long>(tok->vocab_size()), static_cast<long long>(s.vocab_size));
    }

    // --- the text: training rows, then `eval` held-out rows
    at::Tensor train, held_out;
    nlohmann::json data_json;
    if (from_corpus) {
      const at::Tensor rows = corpus_sequences(*tok, read_file(a->corpus), a->seq_len);
      const int64_t n = rows.size(0);
      STRATA_CHECK(n > a->eval, "lens-train: the corpus '", a->corpus, "' gives ", n,
                   " sequences of ", a->seq_len, " tokens; --eval ", a->eval,
                   " of them are held out, which leaves none to train on (lower --eval or "
                   "--seq-len, or give more text)");
      train = rows.narrow(0, 0, n - a->eval);
      held_out = rows.narrow(0, n - a->eval, a->eval);
      data_json = {{"source", "corpus"}, {"corpus", a->corpus}};
    } else {
      const int64_t total = a->samples + a->eval;
      Progress bar("sample", total * (a->seq_len - 1), !a->quiet, "tokens");
      const at::Tensor rows =
          sample_sequences(model,
                           SampleOptions()
                               .set_count(total)
                               .set_length(a->seq_len)
                               .set_temperature(a->temperature)
                               .set_seed(a->seed)
                               .set_start_token(bos),
                           s.output_index, [&bar](int64_t done) { bar.step(done - bar.done()); });
      bar.finish();
      train = rows.narrow(0, 0, a->samples);
      held_out = rows.narrow(0, a->samples, a->eval);
      data_json = {{"source", "samples"}, {"temperature", a->temperature}};
      if (tok && !a->quiet) {
        std::vector<int64_t> ids(train[0].data_ptr<int64_t>(),
                                 train[0].data_ptr<int64_t>() + std::min<int64_t>(a->seq_len, 48));
        std::string text = tok->decode(ids);
        for (auto& c : text)
          if (c == '\n') c = ' ';
        std::cerr << "sample 0: " << text << " ...\n";
      }
    }
    data_json["train_sequences"] = train.size(0);
    data_json["eval_sequences"] = held_out.size(0);
    data_json["seq_len"] = a->seq_len;
    data_json["seed"] = a->seed;

    // --- training
    TunedLensOptions opts;
    opts.set_steps(a->steps)
        .set_learning_rate(a->lr)
        .set_batch_size(a->batch_size)
        .set_seed(a->seed)
        .set_weight_decay(a->weight_decay)
        .set_optimizer(a->optimizer == "sgd" ? TunedLensOptimizer::SgdNesterov
                                             : TunedLensOptimizer::Adam);
    TunedLensTrainer trainer(model, s, opts);
    const double first_loss = trainer.loss(held_out, a->batch_size).loss;
    std::vector<double> history;
    Progress bar("train", a->steps, !a->quiet, "steps");
    const int64_t report_every = std::max<int64_t>(1, a->steps / 10);
    TunedLensStep last = trainer.train(train, [&](const TunedLensStep& st) {
      history.push_back(st.loss);
      bar.step();
      if (!a->quiet && (st.step % report_every == 0 || st.step == a->steps)) {
        std::fprintf(stderr, "\r\033[Kstep %lld/%lld: training loss %.4f nats (mean over layers)\n",
                     static_cast<long long>(st.step), static_cast<long long>(a->steps), st.loss);
      }
    });
    bar.finish();

    std::map<std::string, std::string> meta = {
        {"model", a->model},
        {"steps", std::to_string(trainer.steps_done())},
        {"final_loss", fmt::format("{:.6f}", last.loss)},
        {"learning_rate", fmt::format("{}", a->lr)},
        {"optimizer", a->optimizer},
        {"batch_size", std::to_string(a->batch_size)},
        {"seq_len", std::to_string(a->seq_len)},
        {"train_sequences", std::to_string(train.size(0))},
        {"source", from_corpus ? "corpus " + a->corpus : "samples"},
        {"seed", std::to_string(a->seed)}};
    save_translators(a->out, trainer.translators(), meta);

    // --- held-out comparison
    const LensComparison c =
        compare_lenses(model, s, trainer.translators(), held_out, a->batch_size);
    nlohmann::json rows = nlohmann::json::array();
    for (size_t l = 0; l < c.layers.size(); ++l) {
      const bool trained = std::find(trainer.layers().begin(), trainer.layers().end(),
                                     c.layers[l]) != trainer.layers().end();
      rows.push_back({{"layer", c.layers[l]},
                      {"trained", trained},
                      {"logit_lens_kl", c.logit_kl[l]},
                      {"tuned_lens_kl", c.tuned_kl[l]}});
    }
    if (!a->json.empty()) {
      nlohmann::json r = {
          {"model", a->model},
          {"out", a->out},
          {"data", data_json},
          {"training",
           {{"steps", trainer.steps_done()},
            {"learning_rate", a->lr},
            {"optimizer", a->optimizer},
            {"batch_size", a->batch_size},
            {"weight_decay", a->weight_decay},
            {"layers", trainer.layers()},
            {"held_out_loss_before", first_loss},
            {"final_loss", last.loss},
            {"final_layer_loss", last.layer_loss},
            {"loss_history", history}}},
          {"eval", {{"sequences", c.sequences}, {"positions", c.positions}, {"layers", rows}}}};
      if (tok) r["tokenizer"] = a->tokenizer;
      write_text(a->json, r.dump(1) + "\n");
    }
    if (!a->quiet) {
      std::cout << fmt::format(
          "held-out KL(final || layer) in nats, mean over {} positions ({} "
          "sequences x {} tokens):\n",
          c.positions, c.sequences, held_out.size(1));
      std::cout << fmt::format("{:<20} {:>12} {:>12}\n", "layer", "logit lens", "tuned lens");
      for (const auto& r : rows) {
        std::cout << fmt::format("{:<20} {:>12.4f} {:>12.4f}{}\n", r["layer"].get<std::string>(),
                                 r["logit_lens_kl"].get<double>(), r["tuned_lens_kl"].get<double>(),
                                 r["trained"].get<bool>() ? "" : "  (identity)");
      }
      std::cout << "wrote " << a->out << (a->json.empty() ? "" : " and " + a->json) << "\n";
    }
    status = 0;
  });
}

}  // namespace strata::cli
