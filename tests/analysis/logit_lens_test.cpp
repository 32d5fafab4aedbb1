// The logit lens on a real model: llama2.c's stories260K (converted by ctest's llama2c.convert
// step), checked against an independent eager-PyTorch computation
// (tests/analysis/logit_lens_reference.py: forward hooks on the eager module, model.norm and
// model.output applied to each hidden state), plus structure discovery, the norm pitfall,
// streaming aggregates, tuned-lens translators, errors, and the `strata lens` command.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <strata/analysis/logit_lens.h>
#include <strata/analysis/runner.h>
#include <strata/capture/hook_session.h>
#include <strata/core/error.h>
#include <strata/io/safetensors.h>
#include <strata/model/model.h>
#include <strata/text/tokenizer.h>
#include "stories260k.h"
#include "test_process.h"
#include <torch/csrc/jit/api/module.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace strata {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const char* const kPrompt = "Once upon a time, there was a little girl named Lily";

using testing::ProcResult;
using testing::run_process;
std::string shared_file(const std::string& file) { return testing::stories260k_file(file); }
std::string model_path() { return testing::stories260k_model_path(); }
const Model& model() { return testing::stories260k_model(); }
const Tokenizer& tokenizer() { return testing::stories260k_tokenizer(); }

at::Tensor prompt_tokens() {
  return at::tensor(tokenizer().encode(kPrompt), at::kLong).unsqueeze(0);
}

ProcResult run(const std::vector<std::string>& argv) { return run_process(argv); }

std::string script() {
  return std::string(STRATA_SOURCE_DIR) + "/tests/analysis/logit_lens_reference.py";
}

// A scratch directory for this test process, with the small structure-test models in it;
// removed at exit (kept when STRATA_KEEP_TEST_TMP is set).
std::string& scratch_dir() {
  static std::string dir;
  return dir;
}

class RemoveScratch : public ::testing::Environment {
 public:
  void TearDown() override {
    if (!scratch_dir().empty() && std::getenv("STRATA_KEEP_TEST_TMP") == nullptr) {
      std::error_code ec;
      fs::remove_all(scratch_dir(), ec);
    }
  }
};
[[maybe_unused]] const auto* const kRemoveScratch =
    ::testing::AddGlobalTestEnvironment(new RemoveScratch);

const std::string& scratch() {
  std::string& dir = scratch_dir();
  if (dir.empty()) {
    char tmpl[] = "/tmp/strata_lens_test_XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    if (d == nullptr) throw std::runtime_error("mkdtemp failed");
    dir = d;
    const ProcResult r = run({STRATA_PYTHON, script(), "models", dir});
    if (r.code != 0) throw std::runtime_error("logit_lens_reference.py models failed: " + r.out);
  }
  return dir;
}

json load_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read " + path);
  return json::parse(f);
}

json python_reference(const at::Tensor& tokens, std::optional<int64_t> target, int64_t k,
                      const std::string& translators = "") {
  std::string ids;
  for (int64_t i = 0; i < tokens.size(1); ++i)
    ids += (i ? "," : "") + std::to_string(tokens[0][i].item<int64_t>());
  const std::string out = scratch() + "/reference_" + std::to_string(::getpid()) + ".json";
  std::vector<std::string> argv = {
      STRATA_PYTHON, script(), "reference", shared_file("stories260K.bin"),
      "--tokens",    ids,      "--top-k",   std::to_string(k),
      "--out",       out};
  if (target) {
    argv.push_back("--target");
    argv.push_back(std::to_string(*target));
  }
  if (!translators.empty()) {
    argv.push_back("--translators");
    argv.push_back(translators);
  }
  const ProcResult r = run(argv);
  if (r.code != 0) throw std::runtime_error("logit_lens_reference.py failed: " + r.out);
  return load_json(out);
}

Report run_lens(const Model& m, const at::Tensor& tokens, LogitLensOptions options = {},
                int64_t batch_size = 8) {
  const LensStructure s = find_lens_structure(m, {tokens.narrow(0, 0, 1)}, options);
  LogitLens lens(m, s, options);
  TensorMap t;
  t.insert("arg0", tokens);
  TensorDataset data(t, batch_size);
  Runner runner(m, RunnerOptions().set_progress(false));
  runner.add(lens);
  return runner.run(data)[0];
}

std::vector<std::string> expected_layers() {
  return {"tok_embeddings", "layers.0", "layers.1", "layers.2", "layers.3", "layers.4"};
}

// Compares two L x T (or L x T x k) JSON matrices to |a - b| <= tol * (1 + |b|).
void expect_close(const json& actual, const json& expected, double tol, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < expected.size(); ++i) {
    if (expected[i].is_array()) {
      expect_close(actual[i], expected[i], tol, what + "[" + std::to_string(i) + "]");
      continue;
    }
    const double a = actual[i].get<double>(), b = expected[i].get<double>();
    EXPECT_LE(std::abs(a - b), tol * (1.0 + std::abs(b)))
        << what << "[" << i << "]: " << a << " vs " << b;
  }
}

// ---------------------------------------------------------------------------------------------
// Structure discovery

TEST(LensStructure, FindsEmbeddingBlocksNormAndUnembedding) {
  const LensStructure s = find_lens_structure(model(), {prompt_tokens()});
  EXPECT_EQ(s.layers, expected_layers());
  EXPECT_EQ(s.norm, "norm");
  EXPECT_EQ(s.unembed, "output");
  EXPECT_EQ(s.embedding, "tok_embeddings");
  EXPECT_EQ(s.hidden_size, 64);
  EXPECT_EQ(s.vocab_size, 512);
  EXPECT_EQ(s.output_index, 0);
}

TEST(LensStructure, NamedPartsAreUsedAsGiven) {
  const LensStructure s = find_lens_structure(
      model(), {prompt_tokens()},
      LogitLensOptions().set_norm("norm").set_unembed("output").set_layers({"re:layers\\.[0-9]+"}));
  EXPECT_THAT(s.layers, ElementsAre("layers.0", "layers.1", "layers.2", "layers.3", "layers.4"));
  EXPECT_EQ(s.norm, "norm");
  EXPECT_EQ(s.unembed, "output");
  EXPECT_EQ(s.embedding, "");
}

TEST(LensStructure, TupleBlocksAndInlineEmbedding) {
  // Blocks return (hidden, attention); token + position embeddings are added inline, so the
  // first row is the first block's input point.
  const Model m = Model::load(scratch() + "/tuple_gpt.pt");
  const at::Tensor tokens = at::arange(6, at::kLong).unsqueeze(0);
  const LensStructure s = find_lens_structure(m, {tokens});
  EXPECT_THAT(s.layers, ElementsAre("blocks.0:in:0", "blocks.0:0", "blocks.1:0"));
  EXPECT_EQ(s.embedding, "blocks.0:in:0");
  EXPECT_EQ(s.norm, "ln_f");
  EXPECT_EQ(s.unembed, "head");
  const Report r = run_lens(m, tokens);
  // The last block decoded through the recomputed LayerNorm is the model's own computation.
  for (double kl : r.data.at("kl_to_final")[2]) EXPECT_EQ(kl, 0.0);
  EXPECT_EQ(r.data.at("top1")[2], r.data.at("top1")[3]);
}

// The metrics from logits with -inf entries (masked tokens) and with logits far above 80 (where
// exp(x) would overflow float32), against log_softmax in float64 on the same decodings.
TEST(LogitLens, MaskedTokensAndLargeLogits) {
  for (const char* name : {"masked_gpt.pt", "hot_gpt.pt"}) {
    SCOPED_TRACE(name);
    const Model m = Model::load(scratch() + "/" + name);
    const at::Tensor tokens = at::arange(6, at::kLong).unsqueeze(0);
    const LensStructure s = find_lens_structure(m, {tokens});
    const Report r = run_lens(m, tokens, LogitLensOptions().set_target(5));
    // The same decodings, the metrics computed directly.
    std::vector<at::Tensor> logits;
    at::Tensor final_logits;
    {
      HookSession session;
      for (const auto& l : s.layers) session.capture(l);
      at::NoGradGuard g;
      final_logits = m.forward({tokens}).toTensor();
      for (const auto& l : s.layers) {
        const at::Tensor h = session.activations().at(l);
        SuspendHooks suspend;
        const at::Tensor x = m.submodule(s.norm).forward({h}).toTensor();
        logits.push_back(m.submodule(s.unembed).forward({x}).toTensor());
      }
    }
    logits.push_back(final_logits);
    const double max_abs = final_logits.masked_fill(final_logits.isinf(), 0).abs().max().item<double>();
    EXPECT_GT(max_abs, std::string(name) == "hot_gpt.pt" ? 80.0 : 0.0);
    // The lens decodes all layers in one call, which may round the float32 logits differently
    // from these one-layer calls: allow a few units in the last place of the largest logit.
    const double tol = 1e-9 + 5e-7 * max_abs;
    const at::Tensor flp = final_logits[0].to(at::kDouble).log_softmax(-1);
    const at::Tensor fp = flp.exp();
    for (size_t l = 0; l < logits.size(); ++l) {
      const at::Tensor lp = logits[l][0].to(at::kDouble).log_softmax(-1);
      const at::Tensor p = lp.exp();
      const at::Tensor entropy = -at::where(p > 0, p * lp, at::zeros_like(p)).sum(-1);
      const at::Tensor kl = at::where(fp > 0, fp * (flp - lp), at::zeros_like(p)).sum(-1);
      for (int64_t t = 0; t < tokens.size(1); ++t) {
        const double h = r.data["entropy"][l][t], k = r.data["kl_to_final"][l][t];
        EXPECT_NEAR(h, entropy[t].item<double>(), tol) << l << "," << t;
        EXPECT_NEAR(k, kl[t].item<double>(), tol) << l << "," << t;
        EXPECT_EQ(r.data["top1"][l][t].get<int64_t>(), lp[t].argmax().item<int64_t>());
        EXPECT_NEAR(r.data["top1_prob"][l][t].get<double>(), p[t].max().item<double>(), 1e-6);
        EXPECT_NEAR(r.data["target_prob"][l][t].get<double>(), p[t][5].item<double>(), 1e-6);
        for (const auto& id : r.data["topk_tokens"][l][t]) {
          EXPECT_NE(id.get<int64_t>(), 3);
          EXPECT_NE(id.get<int64_t>(), 7);
        }
      }
    }
  }
}

TEST(LensStructure, NoNormFoundSaysHowToNameTheParts) {
  const Model m = Model::load(scratch() + "/nonorm.pt");
  const at::Tensor tokens = at::arange(5, at::kLong).unsqueeze(0);
  try {
    find_lens_structure(m, {tokens});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("no final norm found"));
    EXPECT_THAT(e.what(), HasSubstr("'act' (ReLU)"));
    EXPECT_THAT(e.what(), HasSubstr("--norm NAME"));
    EXPECT_THAT(e.what(), HasSubstr("--unembed NAME"));
    EXPECT_THAT(e.what(), HasSubstr("--layers GLOB"));
  }
  // Naming them (no norm) works.
  const LensStructure s = find_lens_structure(m, {tokens}, LogitLensOptions().set_norm("none"));
  EXPECT_EQ(s.norm, "");
  EXPECT_EQ(s.unembed, "head");
}

TEST(LensStructure, BadNamesAndPatternsAreErrors) {
  EXPECT_THAT(
      [] {
        find_lens_structure(model(), {prompt_tokens()}, LogitLensOptions().set_norm("final_norm"));
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("has no module 'final_norm'")));
  EXPECT_THAT(
      [] {
        find_lens_structure(model(), {prompt_tokens()},
                            LogitLensOptions().set_layers({"blocks.*"}));
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("'blocks.*' matches no hook point")));
  EXPECT_THAT(
      [] {
        find_lens_structure(model(), {prompt_tokens()},
                            LogitLensOptions().set_layers({"layers.*"}));
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("is not a hidden state of size 64")));
}

// ---------------------------------------------------------------------------------------------
// Metrics

TEST(LogitLens, MatchesIndependentPythonComputation) {
  const at::Tensor tokens = prompt_tokens();
  const int64_t lily = tokenizer().encode("Lily", false).at(0);  // " Lily"
  const Report r = run_lens(model(), tokens, LogitLensOptions().set_target(lily).set_top_k(5));
  const json ref = python_reference(tokens, lily, 5);
  const json& d = r.data;
  std::vector<std::string> layers = expected_layers();
  layers.push_back("output");
  EXPECT_EQ(d.at("layers").get<std::vector<std::string>>(), layers);
  EXPECT_EQ(d.at("tokens"), ref.at("tokens"));
  // Token ids and ranks exactly; probabilities, entropies and KLs to ~1e-5 relative (the eager
  // and the scripted forward round float32 differently).
  for (const char* key : {"top1", "rank_of_final_top1", "target_rank", "topk_tokens"})
    EXPECT_EQ(d.at(key), ref.at(key)) << key;
  for (const char* key : {"top1_prob", "entropy", "kl_to_final", "target_prob", "topk_probs"})
    expect_close(d.at(key), ref.at(key), 2e-5, key);
}

TEST(LogitLens, Invariants) {
  const Report r = run_lens(model(), prompt_tokens(), LogitLensOptions().set_target(317));
  const json& d = r.data;
  const int64_t L = 7, T = prompt_tokens().size(1);
  for (const char* key : {"top1", "top1_prob", "entropy", "kl_to_final", "rank_of_final_top1",
                          "target_prob", "target_rank"}) {
    ASSERT_EQ(static_cast<int64_t>(d.at(key).size()), L) << key;
    for (const auto& row : d.at(key)) ASSERT_EQ(static_cast<int64_t>(row.size()), T) << key;
  }
  for (int64_t t = 0; t < T; ++t) {
    // The last block through norm + unembedding IS the model's output computation: exactly.
    for (int64_t l : {L - 2, L - 1}) {
      EXPECT_EQ(d["kl_to_final"][l][t].get<double>(), 0.0) << "layer " << l << " position " << t;
      EXPECT_EQ(d["rank_of_final_top1"][l][t].get<int64_t>(), 1);
      EXPECT_EQ(d["top1"][l][t], d["top1"][L - 1][t]);
      EXPECT_EQ(d["top1_prob"][l][t], d["top1_prob"][L - 1][t]);
    }
    for (int64_t l = 0; l < L; ++l) {
      const double p = d["top1_prob"][l][t], h = d["entropy"][l][t], kl = d["kl_to_final"][l][t];
      const double tp = d["target_prob"][l][t];
      EXPECT_GE(p, 1.0 / 512 - 1e-12);
      EXPECT_LE(p, 1.0);
      EXPECT_GE(tp, 0.0);
      EXPECT_LE(tp, p + 1e-15);
      EXPECT_GE(h, 0.0);
      EXPECT_LE(h, std::log(512.0) + 1e-9);
      EXPECT_GE(kl, 0.0);
      const auto& probs = d["topk_probs"][l][t];
      for (size_t i = 1; i < probs.size(); ++i) EXPECT_LE(probs[i], probs[i - 1]);
      EXPECT_EQ(d["topk_tokens"][l][t][0], d["top1"][l][t]);
      const int64_t rank = d["target_rank"][l][t];
      EXPECT_EQ(rank == 1, d["top1"][l][t].get<int64_t>() == 317);
    }
  }
}

// The norm pitfall: decoding h_l with the final layer's RMS (the statistics the final norm
// computed in the forward pass) is NOT the logit lens. The lens must equal RMSNorm recomputed on
// h_l, and differ from the cached-statistics version.
TEST(LogitLens, RecomputesTheNormOnEachHiddenState) {
  const at::Tensor tokens = prompt_tokens();
  const Report r = run_lens(model(), tokens);
  TensorMap hidden;
  {
    HookSession s;
    s.capture("tok_embeddings").capture("re:layers\\.[0-9]+");
    at::NoGradGuard g;
    model().forward({tokens});
    hidden = s.activations();
  }
  const auto& root = model().module();
  const at::Tensor w_norm = root.attr("norm").toModule().attr("weight").toTensor().detach();
  const at::Tensor w_out = root.attr("output").toModule().attr("weight").toTensor().detach();
  const double eps = 1e-5;
  auto rms_inv = [eps](const at::Tensor& h) {
    return at::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps);
  };
  const at::Tensor cached = rms_inv(hidden.at("layers.4"));  // the final norm's statistics
  double max_recomputed = 0, max_cached = 0;
  const auto layers = expected_layers();
  for (size_t l = 0; l + 1 < layers.size(); ++l) {
    const at::Tensor h = hidden.at(layers[l]);
    const at::Tensor own =
        at::matmul(h * rms_inv(h) * w_norm, w_out.t()).to(at::kDouble).log_softmax(-1);
    const at::Tensor stale =
        at::matmul(h * cached * w_norm, w_out.t()).to(at::kDouble).log_softmax(-1);
    const at::Tensor lens_p =
        at::tensor(r.data["top1_prob"][l].get<std::vector<double>>(), at::kDouble);
    max_recomputed =
        std::max(max_recomputed, (own[0].exp().amax(-1) - lens_p).abs().max().item<double>());
    max_cached =
        std::max(max_cached, (stale[0].exp().amax(-1) - lens_p).abs().max().item<double>());
  }
  EXPECT_LT(max_recomputed, 1e-5);
  EXPECT_GT(max_cached, 0.05) << "the cached-statistics decoding should visibly differ";
}

TEST(LogitLens, StreamsAggregatesOverADataset) {
  // 6 sequences in batches of 4 (4 + 2); per-position matrices for the first 3 only.
  at::manual_seed(7);
  at::Tensor tokens = at::randint(3, 512, {6, 10}, at::TensorOptions().dtype(at::kLong));
  tokens.select(1, 0).fill_(1);
  const Report all =
      run_lens(model(), tokens, LogitLensOptions().set_keep_sequences(3).set_target(5),
               /*batch_size=*/4);
  const json& agg = all.data.at("aggregate");
  EXPECT_EQ(agg.at("sequences"), 6);
  ASSERT_EQ(all.data.at("sequences").size(), 3u);
  EXPECT_EQ(all.data.at("sequences")[0].at("top1"), all.data.at("top1"));

  // The means equal those of six separate single-sequence runs.
  std::vector<json> singles;
  for (int64_t i = 0; i < 6; ++i)
    singles.push_back(
        run_lens(model(), tokens.narrow(0, i, 1), LogitLensOptions().set_target(5)).data);
  for (size_t l = 0; l < 7; ++l) {
    double entropy = 0, kl = 0, agree = 0, rank = 0, target = 0;
    for (const auto& s : singles) {
      for (size_t t = 0; t < 10; ++t) {
        entropy += s["entropy"][l][t].get<double>();
        kl += s["kl_to_final"][l][t].get<double>();
        agree += s["top1"][l][t] == s["top1"][6][t];
        rank += s["rank_of_final_top1"][l][t].get<double>();
        target += s["target_prob"][l][t].get<double>();
      }
    }
    const json& a = agg.at("layers")[l];
    EXPECT_EQ(a.at("positions"), 60);
    // A batch of 4 rounds the float32 forward slightly differently from a batch of 1.
    EXPECT_NEAR(a.at("mean_entropy").get<double>(), entropy / 60, 1e-5 * (1 + entropy / 60));
    EXPECT_NEAR(a.at("mean_kl_to_final").get<double>(), kl / 60, 1e-5 * (1 + kl / 60));
    EXPECT_NEAR(a.at("top1_agreement").get<double>(), agree / 60, 1e-12);
    EXPECT_NEAR(a.at("mean_rank_of_final_top1").get<double>(), rank / 60, 1e-12);
    EXPECT_NEAR(a.at("mean_target_prob").get<double>(), target / 60, 1e-7);
    // Batched and single runs agree position by position for the kept sequences.
    for (size_t i = 0; i < 3; ++i)
      EXPECT_EQ(all.data["sequences"][i]["top1"][l], singles[i]["top1"][l]);
  }
  EXPECT_EQ(agg.at("layers")[5].at("mean_kl_to_final"), 0.0);
  EXPECT_EQ(agg.at("layers")[5].at("top1_agreement"), 1.0);
}

TEST(LogitLens, TunedLensTranslators) {
  const at::Tensor tokens = prompt_tokens();
  // Zero translators are the identity: the plain logit lens.
  std::map<std::string, Translator> zero;
  zero["layers.1"] = Translator{at::zeros({64, 64}), at::zeros({64})};
  const Report plain = run_lens(model(), tokens);
  const Report identity = run_lens(model(), tokens, LogitLensOptions().set_translators(zero));
  EXPECT_EQ(identity.data.at("top1_prob"), plain.data.at("top1_prob"));
  EXPECT_EQ(identity.data.at("translated_layers"), json({"layers.1"}));

  // Random translators, written to a file, read back, and checked against Python applying them.
  at::manual_seed(3);
  TensorMap file;
  file.insert("layers.0.weight", 0.1 * at::randn({64, 64}));
  file.insert("layers.0.bias", 0.1 * at::randn({64}));
  file.insert("tok_embeddings.bias", 0.5 * at::randn({64}));
  const std::string path = scratch() + "/translators.safetensors";
  save_safetensors(path, file);
  const auto translators = load_translators(path);
  ASSERT_EQ(translators.size(), 2u);
  EXPECT_FALSE(translators.at("tok_embeddings").weight.defined());
  const Report tuned = run_lens(model(), tokens, LogitLensOptions().set_translators(translators));
  const json ref = python_reference(tokens, std::nullopt, 5, path);
  EXPECT_EQ(tuned.data.at("top1"), ref.at("top1"));
  expect_close(tuned.data.at("kl_to_final"), ref.at("kl_to_final"), 2e-5, "kl_to_final");
  EXPECT_NE(tuned.data.at("top1_prob")[1], plain.data.at("top1_prob")[1]);
  EXPECT_EQ(tuned.data.at("top1_prob")[3], plain.data.at("top1_prob")[3]);  // untranslated layer

  const LensStructure s = find_lens_structure(model(), {tokens});
  std::map<std::string, Translator> unknown;
  unknown["norm"] = Translator{at::Tensor(), at::zeros({64})};
  EXPECT_THAT([&] { LogitLens(model(), s, LogitLensOptions().set_translators(unknown)); },
              ::testing::ThrowsMessage<Error>(HasSubstr("not a decoded layer")));
  std::map<std::string, Translator> wrong;
  wrong["layers.0"] = Translator{at::zeros({32, 32}), at::Tensor()};
  EXPECT_THAT([&] { LogitLens(model(), s, LogitLensOptions().set_translators(wrong)); },
              ::testing::ThrowsMessage<Error>(HasSubstr("expected [64, 64]")));
  TensorMap bad;
  bad.insert("layers.0.scale", at::zeros({64}));
  save_safetensors(scratch() + "/bad.safetensors", bad);
  EXPECT_THAT([&] { load_translators(scratch() + "/bad.safetensors"); },
              ::testing::ThrowsMessage<Error>(HasSubstr("'layers.0.scale'")));
}

TEST(LogitLens, OptionErrors) {
  const LensStructure s = find_lens_structure(model(), {prompt_tokens()});
  EXPECT_THAT([&] { LogitLens(model(), s, LogitLensOptions().set_target(512)); },
              ::testing::ThrowsMessage<Error>(HasSubstr("target token id 512 is out of range")));
  EXPECT_THAT([&] { LogitLens(model(), s, LogitLensOptions().set_target(-1)); },
              ::testing::ThrowsMessage<Error>(HasSubstr("out of range")));
  EXPECT_THAT([&] { LogitLens(model(), s, LogitLensOptions().set_top_k(0)); },
              ::testing::ThrowsMessage<Error>(HasSubstr("top_k 0")));
}

TEST(SuspendHooks, InstrumentedCallsBypassTheActiveSession) {
  HookSession s;
  s.capture_all();
  at::NoGradGuard g;
  {
    SuspendHooks suspend;
    EXPECT_EQ(HookSession::current(), nullptr);
    model().forward({prompt_tokens()});
  }
  EXPECT_TRUE(s.activations().empty());
  EXPECT_EQ(HookSession::current(), &s);
  model().forward({prompt_tokens()});
  EXPECT_TRUE(s.activations().contains("layers.4"));
}

TEST(LensHeatmap, CellsShowTopTokensReadably) {
  EXPECT_EQ(lens_token_label(" upon"), "_upon");
  EXPECT_EQ(lens_token_label("\n<s>\n"), "<s>");
  EXPECT_EQ(lens_token_label("<0x0A>"), "\\n");
  EXPECT_EQ(lens_token_label("<0xE2>"), "\\xE2");
  EXPECT_EQ(lens_token_label("caf\xc3\xa9"), "caf\\xC3\\xA9");
  const Report r = run_lens(model(), prompt_tokens());
  const Heatmap h = logit_lens_heatmap(
      r, [](int64_t id) { return tokenizer().piece(id); }, LensColor::Probability,
      "stories260K.pt");
  EXPECT_EQ(h.rows, 7);
  EXPECT_EQ(h.cols, prompt_tokens().size(1));
  EXPECT_EQ(h.row_labels.front(), "tok_embeddings");
  EXPECT_EQ(h.row_labels.back(), "output");
  EXPECT_EQ(h.col_labels[1], "_Once");
  EXPECT_EQ(h.cell_text[6 * h.cols + 1], "_upon");  // after " Once" the model says " upon"
  EXPECT_GT(h.render().width(), 0);
}

// ---------------------------------------------------------------------------------------------
// strata lens

class LensCli : public ::testing::Test {
 protected:
  static std::string cli() {
    const std::string path = STRATA_CLI;
    if (path.empty()) throw std::runtime_error("this build has no strata command");
    return path;
  }
  ProcResult lens(std::vector<std::string> args) {
    args.insert(args.begin(), {cli(), "lens"});
    return run(args);
  }
  std::string out(const std::string& name) { return scratch() + "/" + name; }
};

TEST_F(LensCli, PromptWritesReportAndPicture) {
  const ProcResult r =
      lens({model_path(), "--prompt", kPrompt, "--tokenizer", shared_file("tok512.bin"), "--target",
            " Lily", "--out", out("cli.json"), "--png", out("cli.png")});
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("layers.4"));
  const json d = load_json(out("cli.json"));
  std::vector<std::string> layers = expected_layers();
  layers.push_back("output");
  EXPECT_EQ(d.at("layers").get<std::vector<std::string>>(), layers);
  const auto tokens = d.at("tokens").get<std::vector<int64_t>>();
  EXPECT_EQ(tokens, tokenizer().encode(kPrompt));
  const size_t T = tokens.size();
  for (const char* key : {"top1", "top1_prob", "entropy", "kl_to_final", "rank_of_final_top1",
                          "target_prob", "target_rank"}) {
    ASSERT_TRUE(d.contains(key)) << key;
    ASSERT_EQ(d.at(key).size(), layers.size()) << key;
    for (const auto& row : d.at(key)) EXPECT_EQ(row.size(), T) << key;
  }
  EXPECT_EQ(d.at("target"), tokenizer().encode("Lily", false).at(0));

  std::ifstream png(out("cli.png"), std::ios::binary);
  std::string magic(8, '\0');
  png.read(&magic[0], 8);
  EXPECT_EQ(magic, std::string("\x89PNG\r\n\x1a\n", 8));

  // The same tokens from a file give the same matrices.
  TensorMap t;
  t.insert("tokens", at::tensor(tokens, at::kLong).unsqueeze(0));
  save_safetensors(out("tokens.safetensors"), t);
  const ProcResult r2 = lens({model_path(), "--tokens", out("tokens.safetensors"), "--target",
                              "317", "--out", out("cli2.json"), "--quiet"});
  ASSERT_EQ(r2.code, 0) << r2.out;
  EXPECT_EQ(r2.out, "");
  const json d2 = load_json(out("cli2.json"));
  for (const char* key : {"top1", "top1_prob", "kl_to_final", "target_prob"})
    EXPECT_EQ(d2.at(key), d.at(key)) << key;
}

TEST_F(LensCli, TunedTranslatorsAndEntropyPicture) {
  TensorMap file;
  file.insert("layers.2.bias", at::zeros({64}));
  save_safetensors(out("zero_tuned.safetensors"), file);
  const ProcResult r =
      lens({model_path(), "--prompt", "Once upon", "--tokenizer", shared_file("tok512.bin"),
            "--tuned", out("zero_tuned.safetensors"), "--out", out("tuned.json"), "--png",
            out("tuned.png"), "--color", "entropy", "--quiet"});
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(load_json(out("tuned.json")).at("translated_layers"), json({"layers.2"}));
  EXPECT_TRUE(fs::exists(out("tuned.png")));
}

TEST_F(LensCli, ClearErrors) {
  const std::string tok = shared_file("tok512.bin");
  ProcResult r = lens({model_path(), "--prompt", "", "--tokenizer", tok, "--out", out("e.json")});
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("strata: error: lens: --prompt is empty"));

  r = lens({model_path(), "--prompt", "Hi", "--out", out("e.json")});
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("--prompt needs --tokenizer"));

  r = lens({model_path(), "--prompt", "Hi", "--tokenizer", tok, "--target", "Lilyqqq", "--out",
            out("e.json")});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("--target 'Lilyqqq' is not a token of the tokenizer"));

  r = lens({model_path(), "--prompt", "Hi", "--tokenizer", tok, "--target", "4096", "--out",
            out("e.json")});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("target token id 4096 is out of range"));

  TensorMap t;
  t.insert("tokens", at::tensor(std::vector<int64_t>{1, 403, 512, 7}, at::kLong).unsqueeze(0));
  save_safetensors(out("bad_tokens.safetensors"), t);
  r = lens({model_path(), "--tokens", out("bad_tokens.safetensors"), "--out", out("e.json")});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("token id 512 at position 2 is out of range: the model's vocabulary "
                               "has 512 tokens"));

  TensorMap empty;
  empty.insert("tokens", at::zeros({1, 0}, at::kLong));
  save_safetensors(out("empty_tokens.safetensors"), empty);
  r = lens({model_path(), "--tokens", out("empty_tokens.safetensors"), "--out", out("e.json")});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("no tokens"));

  TensorMap wrong;
  wrong.insert("arg0", at::zeros({1, 3}, at::kLong));
  save_safetensors(out("no_tokens_key.safetensors"), wrong);
  r = lens({model_path(), "--tokens", out("no_tokens_key.safetensors"), "--out", out("e.json")});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("has no tensor 'tokens'"));

  TensorMap small;
  small.insert("tokens", at::tensor(std::vector<int64_t>{1, 2, 3}, at::kLong).unsqueeze(0));
  save_safetensors(out("small.safetensors"), small);
  r = lens(
      {scratch() + "/nonorm.pt", "--tokens", out("small.safetensors"), "--out", out("e.json")});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("--norm NAME --unembed NAME --layers GLOB"));
  EXPECT_FALSE(fs::exists(out("e.json")));
}

}  // namespace
}  // namespace strata
