// The tuned lens on a real model: llama2.c's stories260K (converted by ctest's llama2c.convert
// step). Untrained translators are exactly the logit lens; a short training run on text sampled
// from the model lowers the held-out KL to the final distribution at every intermediate layer;
// translators survive a save/load round trip; bad inputs are strata::Errors that name the
// problem; `strata lens-train` end to end.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <strata/analysis/logit_lens.h>
#include <strata/analysis/runner.h>
#include <strata/analysis/tuned_lens.h>
#include <strata/core/error.h>
#include <strata/io/safetensors.h>
#include <strata/model/model.h>
#include <strata/text/tokenizer.h>
#include "stories260k.h"
#include "test_process.h"
#include <torch/csrc/jit/api/module.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace strata {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

using testing::ProcResult;
using testing::run_process;
std::string shared_file(const std::string& file) { return testing::stories260k_file(file); }
std::string model_path() { return testing::stories260k_model_path(); }
const Model& model() { return testing::stories260k_model(); }
const Tokenizer& tokenizer() { return testing::stories260k_tokenizer(); }

const LensStructure& structure() {
  static const LensStructure s = find_lens_structure(model(), {at::ones({1, 4}, at::kLong)});
  return s;
}

// A scratch directory for this process, removed at exit.
class Scratch : public ::testing::Environment {
 public:
  static const std::string& dir() {
    static const std::string d = [] {
      char tmpl[] = "/tmp/strata_tuned_lens_test_XXXXXX";
      const char* p = ::mkdtemp(tmpl);
      if (p == nullptr) throw std::runtime_error("mkdtemp failed");
      return std::string(p);
    }();
    return d;
  }
  void TearDown() override {
    std::error_code ec;
    if (std::getenv("STRATA_KEEP_TEST_TMP") == nullptr) fs::remove_all(dir(), ec);
  }
};
[[maybe_unused]] const auto* const kScratch = ::testing::AddGlobalTestEnvironment(new Scratch);

// Held-out text: sampled from the model with a seed that no training run here uses.
const at::Tensor& held_out() {
  static const at::Tensor t =
      sample_sequences(model(), SampleOptions().set_count(16).set_length(64).set_seed(1234));
  return t;
}

std::vector<std::string> intermediate_layers() {
  return {"tok_embeddings", "layers.0", "layers.1", "layers.2", "layers.3"};
}

// ---------------------------------------------------------------------------------------------
// Training text

TEST(TunedLensText, SamplingIsSeededAndStartsWithBos) {
  const at::Tensor a =
      sample_sequences(model(), SampleOptions().set_count(3).set_length(20).set_seed(7));
  const at::Tensor b = sample_sequences(
      model(), SampleOptions().set_count(3).set_length(20).set_seed(7).set_batch_size(2));
  const at::Tensor c =
      sample_sequences(model(), SampleOptions().set_count(3).set_length(20).set_seed(8));
  ASSERT_EQ(a.sizes(), (std::vector<int64_t>{3, 20}));
  EXPECT_EQ(a.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(a.select(1, 0), at::ones({3}, at::kLong)));
  EXPECT_TRUE(at::equal(a, b)) << "the batch size does not change the draws";
  const at::Tensor longer =
      sample_sequences(model(), SampleOptions().set_count(5).set_length(20).set_seed(7));
  EXPECT_TRUE(at::equal(longer.narrow(0, 0, 3), a)) << "row i depends only on the seed and i";
  EXPECT_FALSE(at::equal(a, c));
  EXPECT_GE(a.min().item<int64_t>(), 0);
  EXPECT_LT(a.max().item<int64_t>(), 512);
  // Sampled text is the model's kind of text: it decodes to words.
  const std::string text = tokenizer().decode(
      std::vector<int64_t>(a[0].data_ptr<int64_t>(), a[0].data_ptr<int64_t>() + 20));
  EXPECT_GT(text.size(), 20u) << text;
}

TEST(TunedLensText, SamplingErrors) {
  EXPECT_THROW(sample_sequences(model(), SampleOptions().set_count(0)), Error);
  EXPECT_THROW(sample_sequences(model(), SampleOptions().set_temperature(0)), Error);
  EXPECT_THAT(
      [] {
        sample_sequences(model(), SampleOptions().set_count(1).set_length(3).set_start_token(600));
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("start token 600")));
}

TEST(TunedLensText, CorpusIsSplitIntoDocumentsAndRows) {
  const std::string text =
      "Once upon a time, there was a little girl.\nShe liked to play.\n\n  \n"
      "Tom had a big red ball.\r\n\r\nThe sun was hot.";
  const auto d1 =
      tokenizer().encode("Once upon a time, there was a little girl.\nShe liked to play.");
  const auto d2 = tokenizer().encode("Tom had a big red ball.");
  const auto d3 = tokenizer().encode("The sun was hot.");
  std::vector<int64_t> all = d1;
  all.insert(all.end(), d2.begin(), d2.end());
  all.insert(all.end(), d3.begin(), d3.end());
  const at::Tensor rows = corpus_sequences(tokenizer(), text, 8);
  ASSERT_EQ(rows.size(0), static_cast<int64_t>(all.size()) / 8);
  ASSERT_EQ(rows.size(1), 8);
  all.resize(rows.numel());
  EXPECT_TRUE(at::equal(rows.reshape({-1}), at::tensor(all, at::kLong)));
  EXPECT_EQ(rows[0][0].item<int64_t>(), 1);  // BOS
  EXPECT_THAT([] { corpus_sequences(tokenizer(), "Hi.", 64); },
              ::testing::ThrowsMessage<Error>(HasSubstr("fewer than one sequence of 64")));
  EXPECT_THROW(corpus_sequences(tokenizer(), "Hi.", 1), Error);
}

// ---------------------------------------------------------------------------------------------
// Training and evaluation

TEST(TunedLens, UntrainedTranslatorsAreExactlyTheLogitLens) {
  TunedLensTrainer trainer(model(), structure(), TunedLensOptions().set_steps(0));
  EXPECT_EQ(trainer.layers(), intermediate_layers());
  EXPECT_EQ(trainer.train(held_out()).step, 0);
  const auto translators = trainer.translators();
  ASSERT_EQ(translators.size(), 5u);
  for (const auto& [layer, tr] : translators) {
    EXPECT_EQ(tr.weight.sizes(), (std::vector<int64_t>{64, 64})) << layer;
    EXPECT_EQ(tr.bias.sizes(), (std::vector<int64_t>{64})) << layer;
    EXPECT_EQ(tr.weight.abs().max().item<float>(), 0.0f) << layer;
    EXPECT_EQ(tr.bias.abs().max().item<float>(), 0.0f) << layer;
  }
  const LensComparison c = compare_lenses(model(), structure(), translators, held_out());
  ASSERT_EQ(c.layers.size(), 6u);
  EXPECT_EQ(c.positions, 16 * 64);
  for (size_t l = 0; l < c.layers.size(); ++l) {
    EXPECT_EQ(c.tuned_kl[l], c.logit_kl[l]) << c.layers[l];  // bit for bit
  }
  EXPECT_EQ(c.logit_kl.back(), 0.0);  // the last block decodes to the model's output

  // Per position, too: the identity translators leave every matrix of the report unchanged.
  auto report = [&](const std::map<std::string, Translator>& tr) {
    LogitLens lens(model(), structure(), LogitLensOptions().set_translators(tr));
    TensorMap in;
    in.insert("arg0", held_out().narrow(0, 0, 2));
    TensorDataset data(in, 2);
    Runner runner(model(), RunnerOptions().set_progress(false));
    runner.add(lens);
    return runner.run(data)[0].data;
  };
  const json plain = report({}), tuned = report(translators);
  for (const char* key : {"top1", "top1_prob", "entropy", "kl_to_final", "rank_of_final_top1"})
    EXPECT_EQ(plain.at(key), tuned.at(key)) << key;

  // The trainer's own loss (float32) is the same KL as the lens's (float64).
  const TunedLensStep loss = trainer.loss(held_out());
  ASSERT_EQ(loss.layer_loss.size(), 5u);
  for (size_t l = 0; l < 5; ++l)
    EXPECT_NEAR(loss.layer_loss[l], c.logit_kl[l], 1e-3 * c.logit_kl[l]) << c.layers[l];
}

// The claim of Belrose et al., checked on held-out text: after a short training run on text the
// model wrote itself, the tuned lens is closer to the final distribution than the logit lens at
// every intermediate layer.
TEST(TunedLens, TrainingLowersHeldOutKlAtEveryIntermediateLayer) {
  const auto start = std::chrono::steady_clock::now();
  const at::Tensor train =
      sample_sequences(model(), SampleOptions().set_count(64).set_length(64).set_seed(0));
  ASSERT_FALSE(at::equal(train.narrow(0, 0, 16), held_out()));
  TunedLensTrainer trainer(model(), structure(),
                           TunedLensOptions().set_steps(200).set_batch_size(8));
  std::vector<double> losses;
  const TunedLensStep last =
      trainer.train(train, [&losses](const TunedLensStep& s) { losses.push_back(s.loss); });
  ASSERT_EQ(losses.size(), 200u);
  EXPECT_EQ(last.step, 200);
  EXPECT_EQ(trainer.steps_done(), 200);
  EXPECT_LT(last.loss, 0.5 * losses.front());

  const LensComparison c = compare_lenses(model(), structure(), trainer.translators(), held_out());
  ASSERT_EQ(c.layers.size(), 6u);
  for (size_t l = 0; l + 1 < c.layers.size(); ++l) {
    EXPECT_LT(c.tuned_kl[l], c.logit_kl[l]) << c.layers[l];
    std::printf("  %-16s logit lens %8.4f  tuned lens %8.4f nats\n", c.layers[l].c_str(),
                c.logit_kl[l], c.tuned_kl[l]);
  }
  EXPECT_EQ(c.logit_kl.back(), 0.0);
  EXPECT_EQ(c.tuned_kl.back(), 0.0);  // no translator for the last block
  // About 20 s on one thread; not asserted, as the machine may be shared.
  std::printf("  sampling, training and evaluation took %.1f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

TEST(TunedLens, ModelStaysFrozen) {
  torch::jit::Module& m = model().module();
  std::vector<at::Tensor> before;
  std::vector<bool>
  requires;
  for (const at::Tensor& p : m.parameters()) {
    before.push_back(p.detach().clone());
    requires.push_back(p.requires_grad());
  }
  const at::Tensor out_before = model().forward({held_out().narrow(0, 0, 2)}).toTensor();
  TunedLensTrainer trainer(model(), structure(), TunedLensOptions().set_steps(3));
  trainer.train(held_out());
  size_t i = 0;
  for (const at::Tensor& p : m.parameters()) {
    EXPECT_TRUE(at::equal(p.detach(), before[i])) << "parameter " << i << " changed";
    EXPECT_EQ(p.requires_grad(), requires[i]) << "parameter " << i;
    // (Model::load's clone currently makes every parameter a non-leaf, which has no .grad.)
    if (p.is_leaf()) EXPECT_FALSE(p.grad().defined()) << "parameter " << i << " got a gradient";
    ++i;
  }
  EXPECT_TRUE(at::equal(model().forward({held_out().narrow(0, 0, 2)}).toTensor(), out_before));
  // The translators did move.
  EXPECT_GT(trainer.translators().at("layers.2").weight.abs().max().item<float>(), 0.0f);
}

TEST(TunedLens, NesterovSgdAlsoTrains) {
  TunedLensTrainer trainer(model(), structure(),
                           TunedLensOptions()
                               .set_optimizer(TunedLensOptimizer::SgdNesterov)
                               .set_learning_rate(0.05)
                               .set_steps(30)
                               .set_layers({"layers.2"}));
  EXPECT_EQ(trainer.layers(), std::vector<std::string>{"layers.2"});
  const double before = trainer.loss(held_out()).loss;
  trainer.train(held_out());
  EXPECT_LT(trainer.loss(held_out()).loss, before);
  EXPECT_EQ(trainer.translators().size(), 1u);
}

TEST(TunedLens, SaveLoadRoundTrip) {
  TunedLensTrainer trainer(model(), structure(), TunedLensOptions().set_steps(5));
  const TunedLensStep last = trainer.train(held_out());
  const auto saved = trainer.translators();
  const std::string path = Scratch::dir() + "/lens.safetensors";
  save_translators(
      path, saved,
      {{"model", "stories260K.pt"}, {"steps", "5"}, {"final_loss", std::to_string(last.loss)}});

  const auto loaded = load_translators(path);
  ASSERT_EQ(loaded.size(), saved.size());
  for (const auto& [layer, tr] : saved) {
    ASSERT_TRUE(loaded.count(layer)) << layer;
    EXPECT_TRUE(at::equal(loaded.at(layer).weight, tr.weight)) << layer;
    EXPECT_TRUE(at::equal(loaded.at(layer).bias, tr.bias)) << layer;
  }
  const SafetensorsFile file = load_safetensors(path);
  EXPECT_EQ(file.metadata.at("model"), "stories260K.pt");
  EXPECT_EQ(file.metadata.at("steps"), "5");
  EXPECT_EQ(file.metadata.at("format"), "strata.tuned_lens");
  EXPECT_EQ(file.tensors.names().front(), "layers.0.weight");  // layer order of std::map
  EXPECT_TRUE(file.tensors.contains("tok_embeddings.bias"));

  // The loaded lens decodes exactly like the trained one, and training can resume from it.
  const LensComparison a = compare_lenses(model(), structure(), saved, held_out());
  const LensComparison b = compare_lenses(model(), structure(), loaded, held_out());
  EXPECT_EQ(a.tuned_kl, b.tuned_kl);
  TunedLensTrainer resumed(model(), structure(), TunedLensOptions().set_steps(0).set_init(loaded));
  EXPECT_TRUE(at::equal(resumed.translators().at("layers.3").weight, saved.at("layers.3").weight));
}

// ---------------------------------------------------------------------------------------------
// Errors

void write_file(const std::string& path, const TensorMap& t) { save_safetensors(path, t); }

TEST(TunedLens, BadInputsAreErrors) {
  EXPECT_THAT([] { load_translators(Scratch::dir() + "/missing.safetensors"); },
              ::testing::ThrowsMessage<Error>(HasSubstr("missing.safetensors")));

  // A translator for layers.2 made for a model with d = 32.
  const std::string small = Scratch::dir() + "/small.safetensors";
  TensorMap t;
  t.insert("layers.2.weight", at::zeros({32, 32}));
  t.insert("layers.2.bias", at::zeros({32}));
  write_file(small, t);
  const auto tr = load_translators(small);
  auto mentions = [](const std::string& text) {
    return ::testing::ThrowsMessage<Error>(::testing::AllOf(
        HasSubstr(text), HasSubstr("'layers.2'"), HasSubstr("[32, 32]"), HasSubstr("[64, 64]")));
  };
  EXPECT_THAT([&] { compare_lenses(model(), structure(), tr, held_out()); },
              mentions("compare_lenses"));
  EXPECT_THAT([&] { TunedLensTrainer(model(), structure(), TunedLensOptions().set_init(tr)); },
              mentions("TunedLensTrainer"));

  // A non-square weight is rejected when read, naming the key and its shape.
  const std::string ragged = Scratch::dir() + "/ragged.safetensors";
  TensorMap r;
  r.insert("layers.1.weight", at::zeros({64, 32}));
  write_file(ragged, r);
  EXPECT_THAT([&] { load_translators(ragged); },
              ::testing::ThrowsMessage<Error>(
                  ::testing::AllOf(HasSubstr("layers.1.weight"), HasSubstr("[64, 32]"))));

  // A translator for a layer the lens does not decode.
  std::map<std::string, Translator> unknown{{"layers.9", Translator{at::zeros({64, 64}), {}}}};
  EXPECT_THAT(
      [&] { compare_lenses(model(), structure(), unknown, held_out()); },
      ::testing::ThrowsMessage<Error>(HasSubstr("'layers.9', which is not a decoded layer")));

  // Options and data.
  EXPECT_THAT(
      [] { TunedLensTrainer(model(), structure(), TunedLensOptions().set_layers({"layers.7"})); },
      ::testing::ThrowsMessage<Error>(HasSubstr("'layers.7' is not one of the decoded layers")));
  EXPECT_THROW(TunedLensTrainer(model(), structure(), TunedLensOptions().set_steps(-1)), Error);
  EXPECT_THROW(TunedLensTrainer(model(), structure(), TunedLensOptions().set_learning_rate(0)),
               Error);
  EXPECT_THROW(TunedLensTrainer(model(), structure(), TunedLensOptions().set_batch_size(0)), Error);
  TunedLensTrainer trainer(model(), structure(), TunedLensOptions().set_steps(1));
  EXPECT_THAT(
      [&] {
        trainer.train(at::zeros({2, 8}));
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("float32, expected integer token ids")));
  EXPECT_THAT([&] { trainer.train(at::zeros({8}, at::kLong)); },
              ::testing::ThrowsMessage<Error>(HasSubstr("expected [N, T]")));
  EXPECT_THROW(save_translators(Scratch::dir() + "/none.safetensors", {}), Error);
}

// ---------------------------------------------------------------------------------------------
// strata lens-train

ProcResult run(const std::vector<std::string>& argv) { return run_process(argv); }

class LensTrainCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string(STRATA_CLI).empty()) GTEST_SKIP() << "the strata command is not built";
  }
};

TEST_F(LensTrainCli, TrainsOnSamplesAndWritesLensAndReport) {
  const std::string out = Scratch::dir() + "/cli_lens.safetensors";
  const std::string report = Scratch::dir() + "/cli_report.json";
  const ProcResult r = run({STRATA_CLI, "--threads", "1", "lens-train", model_path(), "--tokenizer",
                            shared_file("tok512.bin"), "--out", out, "--samples", "16", "--eval",
                            "4", "--seq-len", "32", "--steps", "20", "--json", report});
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("logit lens"));
  EXPECT_THAT(r.out, HasSubstr("tuned lens"));
  EXPECT_THAT(r.out, HasSubstr("layers.4"));
  EXPECT_THAT(r.out, HasSubstr("(identity)"));
  const auto tr = load_translators(out);
  EXPECT_EQ(tr.size(), 5u);
  EXPECT_EQ(load_safetensors(out).metadata.at("steps"), "20");
  std::ifstream f(report);
  const json j = json::parse(f);
  EXPECT_EQ(j.at("data").at("train_sequences"), 16);
  EXPECT_EQ(j.at("data").at("eval_sequences"), 4);
  EXPECT_EQ(j.at("training").at("loss_history").size(), 20u);
  EXPECT_EQ(j.at("eval").at("positions"), 4 * 32);
  ASSERT_EQ(j.at("eval").at("layers").size(), 6u);
  EXPECT_EQ(j.at("eval").at("layers")[5].at("trained"), false);

  // `strata lens --tuned` reads what `lens-train` wrote.
  const std::string lens_out = Scratch::dir() + "/cli_tuned.json";
  const ProcResult l =
      run({STRATA_CLI, "lens", model_path(), "--tokenizer", shared_file("tok512.bin"), "--prompt",
           "Once upon a time", "--tuned", out, "--out", lens_out, "--quiet"});
  ASSERT_EQ(l.code, 0) << l.out;
}

TEST_F(LensTrainCli, TrainsOnACorpus) {
  const std::string corpus = Scratch::dir() + "/corpus.txt";
  {
    std::ofstream f(corpus);
    for (int i = 0; i < 12; ++i) {
      f << "Once upon a time, there was a little girl named Lily. She loved to play outside in "
           "the park with her big red ball.\n\nOne day, Tom went to the store with his mom.\n\n";
    }
  }
  const std::string out = Scratch::dir() + "/corpus_lens.safetensors";
  const ProcResult r = run({STRATA_CLI, "--threads", "1", "lens-train", model_path(), "--tokenizer",
                            shared_file("tok512.bin"), "--corpus", corpus, "--out", out,
                            "--seq-len", "32", "--eval", "2", "--steps", "5", "--quiet"});
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(load_safetensors(out).metadata.at("source"), "corpus " + corpus);
}

TEST_F(LensTrainCli, ClearErrors) {
  const std::string out = Scratch::dir() + "/err.safetensors";
  ProcResult r = run({STRATA_CLI, "lens-train", model_path(), "--out", out, "--corpus", "x.txt"});
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("--corpus needs --tokenizer"));
  r = run({STRATA_CLI, "lens-train", model_path(), "--out", out, "--tokenizer",
           shared_file("tok512.bin"), "--corpus", Scratch::dir() + "/nope.txt"});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("cannot read the corpus"));
  r = run({STRATA_CLI, "lens-train", model_path(), "--out", out, "--samples", "0"});
  EXPECT_EQ(r.code, 2) << r.out;
  r = run({STRATA_CLI, "lens-train", Scratch::dir() + "/missing.pt", "--out", out});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("missing.pt"));
  r = run({STRATA_CLI, "lens-trian", model_path()});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.out, HasSubstr("lens-train"));
}

}  // namespace
}  // namespace strata
