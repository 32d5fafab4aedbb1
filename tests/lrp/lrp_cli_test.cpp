// `strata lrp` end to end: runs the built executable (STRATA_CLI) on the hand-computed network and
// on the real face-expression model, and checks exit codes, the files it writes and its errors.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <strata/io/safetensors.h>
#include <sys/wait.h>
#include <unistd.h>

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
using ::testing::HasSubstr;

struct Result {
  int code = -1;
  std::string out, err;
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class LrpCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(STRATA_CLI)) << "the strata executable is not built: " << STRATA_CLI;
    dir_ = fs::temp_directory_path() / ("strata_lrp_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    TensorMap in;
    in.insert("arg0", at::tensor({1.0f, 2.0f}).view({1, 2}));
    save_safetensors((dir_ / "hand_in.safetensors").string(), in);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result run(const std::vector<std::string>& args) {
    std::string cmd = quote(STRATA_CLI);
    for (const auto& a : args) cmd += " " + quote(a);
    cmd += " >" + quote((dir_ / "o.txt").string()) + " 2>" + quote((dir_ / "e.txt").string());
    const int status = std::system(cmd.c_str());
    Result r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(dir_ / "o.txt");
    r.err = slurp(dir_ / "e.txt");
    return r;
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  static std::string fixture(const std::string& name) {
    return std::string(STRATA_LRP_FIXTURE_DIR) + "/" + name;
  }

  fs::path dir_;
};

TEST_F(LrpCli, WritesRelevanceAtEveryPointAndTheConservationReport) {
  const Result r = run({"lrp", fixture("hand.pt"), "--input", path("hand_in.safetensors"),
                        "--target", "0", "--out", path("out.safetensors"), "--rules",
                        "fc1=zplus,fc2=zero", "--json", path("r.json")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("output score 8, input relevance sum 8 (ratio 1.0000)"));
  const TensorMap t = load_safetensors(path("out.safetensors")).tensors;
  const at::Tensor rel = t.at("relevance");
  EXPECT_NEAR(rel[0][0].item<double>(), 1.0, 1e-5);  // worked out in lrp_test.cpp
  EXPECT_NEAR(rel[0][1].item<double>(), 7.0, 1e-5);
  EXPECT_TRUE(t.contains("relevance/fc1"));
  EXPECT_TRUE(t.contains("relevance/relu"));
  EXPECT_NEAR(t.at("relevance/fc2").sum().item<double>(), 8.0, 1e-5);
  const nlohmann::json j = nlohmann::json::parse(slurp(path("r.json")));
  EXPECT_NEAR(j["output_score"].get<double>(), 8.0, 1e-5);
  EXPECT_NEAR(j["conservation_ratio"].get<double>(), 1.0, 1e-6);
  EXPECT_EQ(j["rules"]["fc1"], "zplus");
  EXPECT_EQ(j["layers"].size(), 3u);
}

TEST_F(LrpCli, HeatmapOfARealFace) {
  const std::string faces = std::string(STRATA_FACEAPI_DIR) + "/faces.safetensors";
  TensorMap in;
  const TensorMap all = load_safetensors(faces).tensors;
  in.insert("arg0", all.at("arg0").slice(0, 0, 1));
  in.insert("pixels", all.at("pixels").slice(0, 0, 1));
  save_safetensors(path("face.safetensors"), in);
  const Result r =
      run({"lrp", std::string(STRATA_FACEAPI_DIR) + "/face_expression.pt", "--input",
           path("face.safetensors"), "--target", "1", "--out", path("face_out.safetensors"),
           "--composite", "epsilon_gamma_box:-0.49:0.6", "--png", path("heat.png"), "--quiet"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(fs::exists(path("heat.png")));
  EXPECT_GT(fs::file_size(path("heat.png")), 1000u);
  const TensorMap t = load_safetensors(path("face_out.safetensors")).tensors;
  EXPECT_EQ(t.at("relevance").sizes(), (std::vector<int64_t>{1, 3, 112, 112}));
  EXPECT_TRUE(t.contains("relevance/dense3.relu3"));
}

TEST_F(LrpCli, Errors) {
  const std::string model = fixture("hand.pt"), in = path("hand_in.safetensors");
  Result r = run({"lrp", model, "--input", in, "--target", "0", "--out", path("o.safetensors"),
                  "--composite", "epsilon", "--rules", "fc1=zero"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--composite or --rules, not both"));
  r = run({"lrp", model, "--input", in, "--target", "5", "--out", path("o.safetensors")});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("strata: error: LRP: target 5 is out of range"));
  r = run({"lrp", model, "--input", in, "--target", "0", "--out", path("o.safetensors"), "--png",
           path("h.png")});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("--png needs an image input"));
  r = run({"lrp", model, "--input", in, "--target", "0", "--out", path("o.safetensors"), "--rules",
           "fc1=gamma:x"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("'x' is not a number"));
  r = run({"lrp", fixture("layernorm_net.pt"), "--input", in, "--target", "0", "--out",
           path("o.safetensors")});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("module 'norm' of type 'LayerNorm' has no LRP rule"));
}

}  // namespace
}  // namespace strata
