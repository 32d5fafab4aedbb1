// LayerwiseProbe on a tiny TorchScript model (tests/probe/probe_reference.py): the features it
// keeps are exactly the eager activations at the chosen positions, and its report is the probe
// sweep over them; plus `strata probe` (both modes) against scikit-learn.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <strata/analysis/layerwise_probe.h>
#include <strata/analysis/runner.h>
#include <strata/core/error.h>
#include <strata/model/model.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

Report run_probe(const std::string& data_file, LayerwiseProbeOptions o,
                 LayerwiseProbe** keep = nullptr) {
  Model model = Model::load(testing::fixture("probe_tiny.pt"));
  TensorDataset data(testing::fixture_tensors(data_file), 16);
  static std::unique_ptr<LayerwiseProbe> probe;
  probe = std::make_unique<LayerwiseProbe>(std::move(o));
  Runner runner(model, RunnerOptions().set_progress(false));
  runner.add(*probe);
  Report r = runner.run(data)[0];
  if (keep) *keep = probe.get();
  return r;
}

TEST(LayerwiseProbe, KeepsTheChosenPositionsOfEveryLayer) {
  const TensorMap acts = testing::fixture_tensors("probe_tiny_acts.safetensors");
  struct Case {
    ProbePosition pos;
    std::vector<int64_t> idx;
    std::string data;
  };
  for (const Case& c : {Case{ProbePosition::Last, {}, "probe_tiny_last.safetensors"},
                        Case{ProbePosition::Mean, {}, "probe_tiny_last.safetensors"},
                        Case{ProbePosition::Every, {}, "probe_tiny_every.safetensors"}}) {
    LayerwiseProbe* p = nullptr;
    LayerwiseProbeOptions o;
    o.set_layers({"emb", "blocks.?"}).set_position(c.pos).set_indices(c.idx);
    o.probe.set_C(1.0);
    const Report r = run_probe(c.data, o, &p);
    const TensorMap f = p->features();
    ASSERT_EQ(f.names(), (std::vector<std::string>{"emb", "blocks.0", "blocks.1"}));
    for (const auto& k : f.names()) {
      const at::Tensor a = acts.at(k);
      const at::Tensor want = c.pos == ProbePosition::Last   ? a.select(1, -1)
                              : c.pos == ProbePosition::Mean ? a.mean(1)
                                                             : a.reshape({-1, a.size(2)});
      EXPECT_LT((f.at(k) - want).abs().max().item<double>(), 1e-5) << k;
    }
    EXPECT_EQ(r.data["layer_order"].size(), 3u);
    for (const auto& k : f.names()) {
      const double acc = r.data["layers"][k]["test_accuracy"].get<double>();
      EXPECT_GE(acc, 0.0);
      EXPECT_LE(acc, 1.0);
    }
  }
}

TEST(LayerwiseProbe, IndicesAndSkippedLabels) {
  const TensorMap acts = testing::fixture_tensors("probe_tiny_acts.safetensors");
  const TensorMap every = testing::fixture_tensors("probe_tiny_every.safetensors");
  // Labels for positions {0, -1}; the first sequence's are -1 (skipped).
  at::Tensor labels = every.at("labels").index_select(1, at::tensor({0, 5}, at::kLong)).clone();
  labels[0] = -1;
  TensorMap t;
  t.insert("arg0", every.at("arg0"));
  t.insert("labels", labels);
  const std::string path = testing::fixture("probe_tiny_indices.safetensors");
  save_safetensors(path, t);
  LayerwiseProbe* p = nullptr;
  LayerwiseProbeOptions o;
  o.set_layers({"blocks.1"}).set_position(ProbePosition::Indices).set_indices({0, -1});
  o.probe.set_C(1.0).set_control(true);
  const Report r = run_probe("probe_tiny_indices.safetensors", o, &p);
  const at::Tensor want = acts.at("blocks.1")
                              .index_select(1, at::tensor({0, 5}, at::kLong))
                              .reshape({-1, 16})
                              .slice(0, 2);
  EXPECT_LT((p->features().at("blocks.1") - want).abs().max().item<double>(), 1e-5);
  EXPECT_EQ(r.data["skipped_samples"], 2);
  EXPECT_EQ(r.data["num_samples"], 126);
  EXPECT_EQ(r.data["split"], "group");  // tokens of one sequence stay on one side
  EXPECT_EQ(r.data["control_types"], "tokens");
}

// "token >= 10" is a property of the token itself: the embedding layer decodes it perfectly,
// and since the control task's types are the tokens, the control task is decodable too
// (selectivity near 0) — Hewitt & Liang's warning about lexical properties.
TEST(LayerwiseProbe, ATokenPropertyHasLowSelectivity) {
  LayerwiseProbeOptions o;
  o.set_layers({"emb"}).set_position(ProbePosition::Every);
  o.probe.set_C(10.0).set_control(true);
  const Report r = run_probe("probe_tiny_every.safetensors", o);
  const auto& l = r.data["layers"]["emb"];
  EXPECT_GT(l["test_accuracy"].get<double>(), 0.97);
  EXPECT_GT(l["control_accuracy"].get<double>(), 0.9);
  EXPECT_LT(l["selectivity"].get<double>(), 0.1);
}

TEST(LayerwiseProbe, Errors) {
  EXPECT_THROW(LayerwiseProbe p{LayerwiseProbeOptions{}}, Error);
  LayerwiseProbeOptions o;
  o.set_layers({"emb"}).set_position(ProbePosition::Every);
  // labels [N] where every needs [N, T]
  try {
    run_probe("probe_tiny_last.safetensors", o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs labels [B, T]"), std::string::npos) << e.what();
  }
  o.set_layers({"nothing.here"});
  try {
    run_probe("probe_tiny_every.safetensors", o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no hook point matched"), std::string::npos) << e.what();
  }
  std::vector<int64_t> idx;
  EXPECT_EQ(parse_probe_position("0,5,-1", idx), ProbePosition::Indices);
  EXPECT_EQ(idx, (std::vector<int64_t>{0, 5, -1}));
  EXPECT_THROW(parse_probe_position("first", idx), Error);
}

// --- the command line ------------------------------------------------------------------------

struct Cli {
  int code = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

Cli strata_cli(const std::string& args) {
  const fs::path dir =
      fs::temp_directory_path() / ("strata_probe_cli_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string cmd = std::string(STRATA_CLI) + " " + args + " </dev/null >" +
                          (dir / "out").string() + " 2>" + (dir / "err").string();
  const int st = std::system(cmd.c_str());
  Cli r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = slurp(dir / "out");
  r.err = slurp(dir / "err");
  return r;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

TEST(ProbeCli, FeaturesModeMatchesScikitLearn) {
  const nlohmann::json ref = read_json(testing::fixture("probe_reference.json"));
  for (const std::string name : {"digits", "wine", "cancer"}) {
    const TensorMap t = testing::fixture_tensors("probe_" + name + ".safetensors");
    const std::string out = testing::fixture("probe_cli_" + name + ".json");
    const std::string png = testing::fixture("probe_cli_" + name + ".png");
    const Cli r = strata_cli(
        "probe --features " + testing::fixture("probe_" + name + "_features.safetensors") +
        " --labels " + testing::fixture("probe_" + name + "_labels.safetensors") +
        " --C 1 --control --out " + out + " --png " + png);
    ASSERT_EQ(r.code, 0) << r.err;
    const nlohmann::json j = read_json(out);
    EXPECT_NEAR(j["layers"]["full"]["test_accuracy"].get<double>(),
                t.at("lr_C1_test_acc").item<double>(), 0.005)
        << name;
    EXPECT_NEAR(j["layers"]["half"]["test_accuracy"].get<double>(),
                ref[name]["half_C1_test_acc"].get<double>(), 0.005)
        << name;
    for (const std::string k :
         {"train_accuracy", "test_accuracy", "control_accuracy", "selectivity"})
      EXPECT_TRUE(j["layers"]["full"].contains(k)) << k;
    EXPECT_EQ(j["layer_order"], (std::vector<std::string>{"full", "half"}));
    EXPECT_GT(fs::file_size(png), 1000u);
    EXPECT_NE(r.out.find("selectivity"), std::string::npos);
  }
}

TEST(ProbeCli, ModelModeAndErrors) {
  const std::string out = testing::fixture("probe_cli_model.json");
  Cli r = strata_cli("probe " + testing::fixture("probe_tiny.pt") + " --input " +
                     testing::fixture("probe_tiny_every.safetensors") +
                     " --layers 'emb,blocks.?' --position every --cv 3 --quiet --out " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = read_json(out);
  EXPECT_EQ(j["layer_order"], (std::vector<std::string>{"emb", "blocks.0", "blocks.1"}));
  EXPECT_GT(j["layers"]["emb"]["test_accuracy"].get<double>(), 0.8);
  EXPECT_EQ(j["cv"], 3);

  // --C and --cv exclude each other: a usage error.
  r = strata_cli("probe --features a --labels b --out c --C 1 --cv 3");
  EXPECT_EQ(r.code, 2) << r.err;
  // A label count mismatch: a runtime error naming the layer and the counts.
  r = strata_cli("probe --features " + testing::fixture("probe_wine_features.safetensors") +
                 " --labels " + testing::fixture("probe_digits_labels.safetensors") + " --out " +
                 testing::fixture("probe_cli_bad.json"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("strata: error: probe: layer 'full' has 178 samples (feature rows) but the "
                       "labels have 1797 entries"),
            std::string::npos)
      << r.err;
  r = strata_cli("probe --features x.safetensors --out y.json");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--labels"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace strata
