// A real language model: llama2.c's stories260K, converted by tools/llama2c/convert.py (ctest's
// llama2c.convert step writes it to the fixture directory), loaded with strata::Model. Greedy
// generation from BOS must give the text llama2.c's own run.c prints at temperature 0.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <strata/core/error.h>
#include <strata/model/model.h>
#include <strata/text/tokenizer.h>
#include "scratch.h"
#include "stories260k.h"
#include "test_process.h"
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

namespace strata {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

const char* const kExpectedStart =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big, red ball.";

std::string stories260k(const std::string& file) { return testing::stories260k_file(file); }

std::string converted_model() { return testing::stories260k_model_path(); }

const Model& model() { return testing::stories260k_model(); }

testing::ProcResult run_converter(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {STRATA_PYTHON,
                                   std::string(STRATA_SOURCE_DIR) + "/tools/llama2c/convert.py"};
  argv.insert(argv.end(), args.begin(), args.end());
  return testing::run_process(argv);
}

std::string temp_path(const std::string& name) { return testing::scratch_path(name); }

at::Tensor logits_of(const std::vector<int64_t>& tokens) {
  at::NoGradGuard no_grad;
  const at::Tensor input =
      at::tensor(tokens, at::kLong).reshape({1, static_cast<int64_t>(tokens.size())});
  return model().forward({input}).toTensor();
}

TEST(Llama2c, ConvertedModelHasTheHookPoints) {
  const std::vector<std::string> names = model().submodule_names();
  std::vector<std::string> expected = {"tok_embeddings", "norm", "output"};
  for (int i = 0; i < 5; ++i) {
    const std::string layer = "layers." + std::to_string(i);
    for (const char* sub : {"", ".attention_norm", ".attention", ".attention.wq", ".attention.wk",
                            ".attention.wv", ".attention.wo", ".ffn_norm", ".feed_forward",
                            ".feed_forward.w1", ".feed_forward.w2", ".feed_forward.w3"}) {
      expected.push_back(layer + sub);
    }
  }
  for (const auto& name : expected) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << "no module " << name;
  }
  EXPECT_EQ(std::count_if(names.begin(), names.end(),
                          [](const std::string& n) { return n.rfind("layers.5", 0) == 0; }),
            0);
  EXPECT_EQ(model().match("layers.?"),
            (std::vector<std::string>{"layers.0", "layers.1", "layers.2", "layers.3", "layers.4"}));

  for (const auto& m : model().modules()) {
    if (m.name == "tok_embeddings") {
      EXPECT_EQ(m.type_name, "Embedding");
      ASSERT_EQ(m.tensors.size(), 1u);
      EXPECT_EQ(m.tensors[0].shape, (std::vector<int64_t>{512, 64}));
    } else if (m.name == "output") {
      EXPECT_EQ(m.type_name, "Linear");
      ASSERT_EQ(m.tensors.size(), 1u);  // no bias
      EXPECT_EQ(m.tensors[0].shape, (std::vector<int64_t>{512, 64}));
    } else if (m.name == "layers.0.attention.wk") {
      EXPECT_EQ(m.tensors.at(0).shape, (std::vector<int64_t>{32, 64}));  // 4 kv heads of 8
    } else if (m.name == "layers.0.feed_forward.w1") {
      EXPECT_EQ(m.tensors.at(0).shape, (std::vector<int64_t>{172, 64}));
    } else if (m.name == "norm") {
      EXPECT_EQ(m.type_name, "RMSNorm");
    }
  }
}

TEST(Llama2c, LogitsAreCausalFloat32) {
  const std::vector<int64_t> prompt =
      Tokenizer::load(stories260k("tok512.bin")).encode("Once upon a time, there was a cat");
  const at::Tensor full = logits_of(prompt);
  ASSERT_EQ(full.sizes(), (at::IntArrayRef{1, static_cast<int64_t>(prompt.size()), 512}));
  EXPECT_EQ(full.scalar_type(), at::kFloat);
  // A prefix sees the same logits as the same positions of the full sequence.
  const std::vector<int64_t> prefix(prompt.begin(), prompt.begin() + 4);
  const at::Tensor part = logits_of(prefix);
  EXPECT_TRUE(at::allclose(part, full.narrow(1, 0, 4), 1e-5, 1e-5));
}

TEST(Llama2c, GreedyGenerationFromBosTellsTheStory) {
  const Tokenizer tokenizer = Tokenizer::load(stories260k("tok512.bin"));
  std::vector<int64_t> tokens = {tokenizer.bos()};
  // Temperature 0: take the argmax of the last position, rerun the whole (tiny) sequence.
  while (tokens.size() < 80) {
    const at::Tensor logits = logits_of(tokens);
    const int64_t next = logits[0][-1].argmax().item<int64_t>();
    if (next == tokenizer.bos()) break;  // run.c stops at BOS, which starts a new story
    tokens.push_back(next);
  }
  const std::string text = tokenizer.decode(tokens);
  std::cout << "greedy generation (" << tokens.size() << " tokens): " << text << "\n";
  EXPECT_THAT(text, StartsWith(kExpectedStart));
}

TEST(Llama2c, ConverterCheckComparesScriptedEagerAndReference) {
  const std::string out = temp_path("checked.pt");
  const testing::ProcResult r = run_converter({stories260k("stories260K.bin"), out, "--check"});
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("wrote " + out));
  EXPECT_THAT(r.out, HasSubstr("check T=33: max|eager-scripted| "));
  EXPECT_THAT(r.out, HasSubstr("max|eager-run.c reference|"));
  EXPECT_THAT(r.out, Not(HasSubstr("MISMATCH")));
  EXPECT_TRUE(fs::exists(out));
}

TEST(Llama2c, ConverterHandlesAnUnsharedClassifierWithoutGroupedHeads) {
  // A random legacy checkpoint: negative vocab_size (its own wcls), n_kv_heads == n_heads.
  const int32_t dim = 16, hidden = 24, layers = 2, heads = 4, kv_heads = 4, vocab = 40, seq = 16;
  const int64_t head = dim / heads, kv = kv_heads * head;
  const int64_t floats = vocab * dim + layers * dim + layers * dim * dim + 2 * layers * kv * dim +
                         layers * dim * dim + layers * dim + 3 * layers * hidden * dim + dim +
                         seq * head + vocab * dim;
  std::string bytes;
  for (int32_t v : {dim, hidden, layers, heads, kv_heads, -vocab, seq}) {
    bytes.append(reinterpret_cast<const char*>(&v), 4);
  }
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  for (int64_t i = 0; i < floats; ++i) {
    const float f = normal(rng);
    bytes.append(reinterpret_cast<const char*>(&f), 4);
  }
  const std::string in = temp_path("unshared.bin"), out = temp_path("unshared.pt");
  std::ofstream(in, std::ios::binary) << bytes;
  const testing::ProcResult r = run_converter({in, out, "--check"});
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("vocab 40, seq_len 16, separate classifier"));
  EXPECT_THAT(r.out, Not(HasSubstr("MISMATCH")));

  const Model m = Model::load(out);
  at::NoGradGuard no_grad;
  const at::Tensor logits = m.forward({at::zeros({2, 5}, at::kLong)}).toTensor();
  EXPECT_EQ(logits.sizes(), (at::IntArrayRef{2, 5, vocab}));
  EXPECT_EQ(m.match("layers.*.attention.w?").size(), 8u);
}

TEST(Llama2c, ConverterRejectsBadFilesInOneLine) {
  const testing::ProcResult missing = run_converter({"/nonexistent/model.bin", temp_path("x.pt")});
  EXPECT_EQ(missing.code, 1);
  EXPECT_EQ(missing.out,
            "convert.py: /nonexistent/model.bin: no such file (llama2.c "
            "checkpoints: https://huggingface.co/karpathy/tinyllamas)\n");

  // One float short of what the header promises.
  std::ifstream in(stories260k("stories260K.bin"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string cut = temp_path("cut.bin");
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() - 4);
  const testing::ProcResult short_file = run_converter({cut, temp_path("cut.pt")});
  EXPECT_EQ(short_file.code, 1);
  EXPECT_EQ(std::count(short_file.out.begin(), short_file.out.end(), '\n'), 1)
      << short_file.out;
  EXPECT_THAT(short_file.out, HasSubstr(cut + ": 1056536 bytes, but its header (dim 64, "));
  EXPECT_THAT(short_file.out, HasSubstr("needs 1056540"));
  EXPECT_FALSE(fs::exists(temp_path("cut.pt")));

  const std::string tiny = temp_path("tiny.bin");
  std::ofstream(tiny, std::ios::binary) << "abc";
  const testing::ProcResult tiny_run = run_converter({tiny, temp_path("tiny.pt")});
  EXPECT_EQ(tiny_run.code, 1);
  EXPECT_THAT(tiny_run.out, HasSubstr("too short for the 28-byte llama2.c header"));
}

}  // namespace
}  // namespace strata
