// End-to-end tests of the `strata` command: they run the built executable (STRATA_CLI) as a user
// would, capture its exit status, stdout and stderr, and check the files it writes against the
// eager-PyTorch references made by tests/python/make_fixtures.py.
//
//   strata capture MODEL.pt --input IN.safetensors --out OUT.safetensors [--hooks GLOB[,GLOB...]]
//   strata inspect MODEL.pt [--json]
//   strata stats MODEL.pt --input IN.safetensors [--batch-size N] [--json OUT.json]
//
// Exit status: 0 ok, 2 usage error, 1 runtime error; on error exactly one line
// "strata: error: ..." on stderr.
//
// The fixture cases are only known once fixtures.generate has run (after test discovery), so the
// per-case checks iterate the manifest inside a test, with a SCOPED_TRACE naming the case.
// Each test works in its own mkdtemp directory, removed afterwards (kept after a failure when
// STRATA_KEEP_TEST_TMP is set).
#include <ATen/ATen.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <strata/io/safetensors.h>

#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using strata::testing::exactly_equal;
using strata::testing::fixture;
using strata::testing::fixture_tensors;
using strata::testing::manifest;

// ---------------------------------------------------------------------------------------------
// Running the command

struct CliResult {
  int code = -1;  ///< exit status; 128 + signal number when killed by a signal
  std::string out, err;
  std::string command;
};

std::ostream& operator<<(std::ostream& os, const CliResult& r) {
  return os << "$ " << r.command << "\n[exit " << r.code << "]\n[stdout]\n"
            << r.out.substr(0, 4000) << "\n[stderr]\n" << r.err.substr(0, 4000);
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f << bytes;
  ASSERT_TRUE(f.good()) << "cannot write " << p;
}

/// Key sets, for readable failure messages.
std::set<std::string> key_set(const TensorMap& m) { return {m.names().begin(), m.names().end()}; }

std::string join(const std::set<std::string>& s) {
  std::string out;
  for (const auto& k : s) out += (out.empty() ? "" : ", ") + k;
  return out.empty() ? "(none)" : out;
}

/// Both directions of a key-set comparison, with the differences named.
::testing::AssertionResult same_keys(const std::set<std::string>& expected,
                                     const std::set<std::string>& actual) {
  std::set<std::string> missing, extra;
  std::set_difference(expected.begin(), expected.end(), actual.begin(), actual.end(),
                      std::inserter(missing, missing.end()));
  std::set_difference(actual.begin(), actual.end(), expected.begin(), expected.end(),
                      std::inserter(extra, extra.end()));
  if (missing.empty() && extra.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "missing keys: " << join(missing)
                                       << "; unexpected keys: " << join(extra);
}

bool is_input_key(const std::string& k) { return k.find(":in:") != std::string::npos; }
bool is_output_key(const std::string& k) { return k == "output" || k.rfind("output:", 0) == 0; }

/// The manifest case named `name`.
const nlohmann::json& case_named(const std::string& name) {
  for (const auto& c : manifest()["cases"]) {
    if (c["name"] == name) return c;
  }
  throw std::runtime_error("no fixture case " + name);
}

// A safetensors file from raw parts: 8-byte little-endian header length, header, data.
std::string safetensors_bytes(const std::string& header, const std::string& data,
                              uint64_t header_len_field) {
  std::string out;
  for (int i = 0; i < 8; ++i) out += static_cast<char>((header_len_field >> (8 * i)) & 0xff);
  return out + header + data;
}
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  return safetensors_bytes(header, data, header.size());
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(std::string(STRATA_CLI), "") << "the strata_cli target is not part of this build";
    ASSERT_TRUE(fs::exists(STRATA_CLI)) << STRATA_CLI;
    ASSERT_NO_THROW(manifest()) << "fixtures missing: run ctest's fixtures.generate first";
    std::string tmpl = (fs::path(::testing::TempDir()) / "strata_cli_test.XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    ASSERT_NE(::mkdtemp(buf.data()), nullptr) << "mkdtemp " << tmpl;
    dir_ = buf.data();
  }

  void TearDown() override {
    if (dir_.empty()) return;
    if (HasFailure() && std::getenv("STRATA_KEEP_TEST_TMP") != nullptr) {
      std::cerr << "(keeping " << dir_ << " for inspection)\n";
    } else {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }

  /// A path inside this test's private temporary directory.
  std::string tmp(const std::string& name) const { return (dir_ / name).string(); }

  /// Runs `strata ARGS...` with stdin from /dev/null.
  CliResult run(const std::vector<std::string>& args) {
    const int n = calls_++;
    const fs::path out = dir_ / ("call" + std::to_string(n) + ".stdout");
    const fs::path err = dir_ / ("call" + std::to_string(n) + ".stderr");
    CliResult r;
    r.command = shell_quote(STRATA_CLI);
    for (const auto& a : args) r.command += " " + shell_quote(a);
    const std::string cmd = r.command + " </dev/null >" + shell_quote(out.string()) + " 2>" +
                            shell_quote(err.string());
    const int status = std::system(cmd.c_str());
    if (status == -1) {
      r.code = -1;
    } else if (WIFEXITED(status)) {
      r.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      r.code = 128 + WTERMSIG(status);
    }
    r.out = read_file(out);
    r.err = read_file(err);
    return r;
  }

  /// `strata capture MODEL --input IN --out OUT EXTRA...` (fixture-relative MODEL and IN).
  CliResult capture(const std::string& model, const std::string& input, const std::string& out,
                    const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"capture", model, "--input", input, "--out", out};
    args.insert(args.end(), extra.begin(), extra.end());
    return run(args);
  }

  /// Exit status `code`, stderr exactly one line starting "strata: error:" that contains each of
  /// `mentions`.
  static ::testing::AssertionResult fails_with(const CliResult& r, int code,
                                               const std::vector<std::string>& mentions) {
    auto fail = [&r]() { return std::move(::testing::AssertionFailure() << r << "\n=> "); };
    if (r.code != code) return fail() << "exit status " << r.code << ", expected " << code;
    if (r.err.rfind("strata: error:", 0) != 0) return fail() << "stderr does not start with 'strata: error:'";
    const auto newlines = std::count(r.err.begin(), r.err.end(), '\n');
    if (newlines != 1 || r.err.back() != '\n') {
      return fail() << "stderr is not exactly one line (" << newlines << " newlines)";
    }
    for (const auto& m : mentions) {
      if (r.err.find(m) == std::string::npos) return fail() << "stderr does not mention '" << m << "'";
    }
    return ::testing::AssertionSuccess();
  }

  static ::testing::AssertionResult succeeds(const CliResult& r) {
    if (r.code == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << r;
  }

  /// Loads OUT, failing the test (and returning an empty map) when it cannot be read.
  static TensorMap load_out(const std::string& path) {
    try {
      return load_safetensors(path).tensors;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "cannot read " << path << ": " << e.what();
      return {};
    }
  }

  /// Checks that every key of `out` has the reference tensor of `ref` under the same key.
  static void expect_equal_to_reference(const TensorMap& ref, const TensorMap& out) {
    for (const auto& k : out.names()) {
      if (!ref.contains(k)) continue;  // reported by the key-set comparison
      EXPECT_TRUE(exactly_equal(ref.at(k), out.at(k), k));
    }
  }

  fs::path dir_;
  int calls_ = 0;
};

// ---------------------------------------------------------------------------------------------
// 1. capture, every fixture case, default hooks

TEST_F(CliTest, ManifestHasAllCases) {
  std::set<std::string> names;
  for (const auto& c : manifest()["cases"]) names.insert(c["name"].get<std::string>());
  EXPECT_TRUE(same_keys({"mlp_scripted", "mlp_traced", "cnn_scripted", "cnn_traced", "gpt_scripted",
                         "gpt_traced", "dict_if_scripted", "dict_if_traced", "dict_if_scripted_neg",
                         "twice_scripted", "twice_traced"},
                        names));
}

TEST_F(CliTest, CaptureWithInputsMatchesEveryReferenceHookPointOfEveryCase) {
  int checked = 0;
  for (const auto& c : manifest()["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE("case " + name);
    const TensorMap ref = fixture_tensors(c["hooks"]);
    const std::string out = tmp(name + ".all.safetensors");
    const CliResult r = capture(fixture(c["model"]), fixture(c["input"]), out, {"--inputs"});
    ASSERT_TRUE(succeeds(r));
    const TensorMap got = load_out(out);
    // Every reference key (outputs, ":in:" keys, output/output:I) and nothing else.
    EXPECT_TRUE(same_keys(key_set(ref), key_set(got)));
    expect_equal_to_reference(ref, got);
    for (const auto& k : c["output_keys"]) EXPECT_TRUE(got.contains(k)) << k;
    ++checked;
  }
  EXPECT_EQ(checked, 11);
}

TEST_F(CliTest, CaptureDefaultHooksHoldsEveryOutputHookPointAndNoInputs) {
  for (const auto& c : manifest()["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE("case " + name);
    const TensorMap ref = fixture_tensors(c["hooks"]);
    std::set<std::string> expected;
    for (const auto& k : ref.names()) {
      if (!is_input_key(k)) expected.insert(k);
    }
    const std::string out = tmp(name + ".out.safetensors");
    const CliResult r = capture(fixture(c["model"]), fixture(c["input"]), out, {"--quiet"});
    ASSERT_TRUE(succeeds(r));
    EXPECT_EQ(r.err, "") << "--quiet printed on stderr";
    const TensorMap got = load_out(out);
    EXPECT_TRUE(same_keys(expected, key_set(got)));
    expect_equal_to_reference(ref, got);
  }
}

TEST_F(CliTest, CaptureKeepsDtypeAndShape) {
  const auto& c = case_named("gpt_scripted");
  const std::string out = tmp("gpt.safetensors");
  ASSERT_TRUE(succeeds(capture(fixture(c["model"]), fixture(c["input"]), out, {"--inputs"})));
  const TensorMap got = load_out(out);
  const TensorMap in = fixture_tensors(c["input"]);
  ASSERT_TRUE(got.contains("tok_emb:in:0"));
  EXPECT_EQ(got.at("tok_emb:in:0").scalar_type(), at::kLong);
  EXPECT_TRUE(exactly_equal(in.at("arg0"), got.at("tok_emb:in:0"), "tok_emb:in:0 == arg0"));
  ASSERT_TRUE(got.contains("tok_emb"));
  EXPECT_EQ(got.at("tok_emb").scalar_type(), at::kFloat);
  EXPECT_EQ(got.at("tok_emb").sizes(), (std::vector<int64_t>{2, 8, 32}));
  ASSERT_TRUE(got.contains("blocks.0.attn:1"));
  EXPECT_EQ(got.at("blocks.0.attn:1").sizes(), (std::vector<int64_t>{2, 4, 8, 8}));
  ASSERT_TRUE(got.contains("output:1"));
  EXPECT_EQ(got.at("output:1").sizes(), (std::vector<int64_t>{2, 2, 4, 8, 8}));
}

TEST_F(CliTest, CaptureReportsOnStderrUnlessQuietAndPrintsNothingOnStdout) {
  const auto& c = case_named("mlp_scripted");
  const std::string out = tmp("mlp.safetensors");
  const CliResult r = capture(fixture(c["model"]), fixture(c["input"]), out);
  ASSERT_TRUE(succeeds(r));
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr(out));
  const CliResult q = capture(fixture(c["model"]), fixture(c["input"]), out, {"--quiet"});
  ASSERT_TRUE(succeeds(q));
  EXPECT_EQ(q.out, "");
  EXPECT_EQ(q.err, "");
}

TEST_F(CliTest, CaptureDtypeConvertsCapturedFloatTensors) {
  const auto& c = case_named("mlp_scripted");
  const TensorMap ref = fixture_tensors(c["hooks"]);
  const std::string out = tmp("mlp.f16.safetensors");
  ASSERT_TRUE(succeeds(capture(fixture(c["model"]), fixture(c["input"]), out, {"--dtype", "float16"})));
  const TensorMap got = load_out(out);
  for (const auto& k : {"0", "1", "2", "3", "4"}) {
    ASSERT_TRUE(got.contains(k)) << k;
    EXPECT_TRUE(exactly_equal(ref.at(k).to(at::kHalf), got.at(k), k));
  }
}

// ---------------------------------------------------------------------------------------------
// 2. --hooks

TEST_F(CliTest, HooksGlobSelectsExactlyTheMatchingHookPoints) {
  for (const std::string name : {"gpt_scripted", "gpt_traced"}) {
    SCOPED_TRACE("case " + name);
    const auto& c = case_named(name);
    const TensorMap ref = fixture_tensors(c["hooks"]);
    const std::string out = tmp(name + ".attn.safetensors");
    ASSERT_TRUE(succeeds(capture(fixture(c["model"]), fixture(c["input"]), out,
                                 {"--hooks", "blocks.*.attn,head"})));
    const TensorMap got = load_out(out);
    EXPECT_TRUE(same_keys({"blocks.0.attn:0", "blocks.0.attn:1", "blocks.1.attn:0", "blocks.1.attn:1",
                           "head", "output:0", "output:1"},
                          key_set(got)));
    expect_equal_to_reference(ref, got);
  }
}

TEST_F(CliTest, HooksSelectSingleCallsElementsAndInputs) {
  struct Case {
    std::string model, hooks;
    std::vector<std::string> extra;
    std::set<std::string> keys;
  };
  const std::vector<Case> cases = {
      {"twice", "lin@1", {}, {"lin@1", "output"}},
      {"twice", "lin", {}, {"lin", "lin@1", "output"}},  // exact: not inner.lin
      {"twice", "pair:1", {}, {"pair:1", "output"}},
      {"twice", "re:pair\\.[ab]", {}, {"pair.a", "pair.b", "pair.a@1", "pair.b@1", "output"}},
      {"twice", "head", {"--inputs"}, {"head", "head:in:0", "output"}},
      // A module name selects its inputs too; a call key needs its ":in:" key spelled out.
      {"twice", "lin@1,lin@1:in:0,inner", {"--inputs"},
       {"lin@1", "lin@1:in:0", "inner", "inner:in:0", "output"}},
      {"gpt", "*.mlp.?", {}, {"blocks.0.mlp.0", "blocks.0.mlp.1", "blocks.0.mlp.2", "blocks.1.mlp.0",
                              "blocks.1.mlp.1", "blocks.1.mlp.2", "output:0", "output:1"}},
      {"cnn", "features.conv*,fc", {}, {"features.conv1", "features.conv2", "fc", "output"}},
      {"dict_if", "d.*", {}, {"d.a", "output"}},
  };
  for (const auto& tc : cases) {
    for (const std::string mode : {"scripted", "traced"}) {
      const std::string name = tc.model + "_" + mode;
      SCOPED_TRACE("case " + name + " --hooks " + tc.hooks);
      const auto& c = case_named(name);
      const TensorMap ref = fixture_tensors(c["hooks"]);
      const std::string out = tmp(name + ".sel.safetensors");
      std::vector<std::string> extra{"--hooks", tc.hooks};
      extra.insert(extra.end(), tc.extra.begin(), tc.extra.end());
      ASSERT_TRUE(succeeds(capture(fixture(c["model"]), fixture(c["input"]), out, extra)));
      const TensorMap got = load_out(out);
      EXPECT_TRUE(same_keys(tc.keys, key_set(got)));
      expect_equal_to_reference(ref, got);
    }
  }
}

// pattern.h: a pattern also matches the full key and the key with its call spelled out
// ("lin@0" = only the first call), and globs apply to keys too.
TEST_F(CliTest, HooksExplicitFirstCallAndGlobsOverKeys) {
  struct Case {
    std::string model, hooks;
    std::set<std::string> keys;
  };
  const std::vector<Case> cases = {
      {"twice", "lin@0", {"lin", "output"}},
      {"twice", "pair@0:1", {"pair:1", "output"}},
      {"twice", "pair@1:*", {"pair@1:0", "pair@1:1", "output"}},
      {"gpt", "blocks.*.attn:1", {"blocks.0.attn:1", "blocks.1.attn:1", "output:0", "output:1"}},
  };
  for (const auto& tc : cases) {
    for (const std::string mode : {"scripted", "traced"}) {
      const std::string name = tc.model + "_" + mode;
      SCOPED_TRACE("case " + name + " --hooks " + tc.hooks);
      const auto& c = case_named(name);
      const TensorMap ref = fixture_tensors(c["hooks"]);
      const std::string out = tmp(name + ".sel.safetensors");
      const CliResult r = capture(fixture(c["model"]), fixture(c["input"]), out, {"--hooks", tc.hooks});
      EXPECT_TRUE(succeeds(r));
      if (r.code != 0) continue;
      const TensorMap got = load_out(out);
      EXPECT_TRUE(same_keys(tc.keys, key_set(got)));
      expect_equal_to_reference(ref, got);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 3. Errors: status 2 for usage, 1 for runtime; one "strata: error:" line naming the problem;
//    no OUT file left behind.

TEST_F(CliTest, MissingModelFile) {
  const std::string model = tmp("no_such_model.pt");
  const std::string out = tmp("out.safetensors");
  EXPECT_TRUE(fails_with(capture(model, fixture("mlp.input.safetensors"), out), 1, {model}));
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(CliTest, NotATorchScriptArchive) {
  const std::string model = fixture(manifest()["not_a_model"]);
  const std::string out = tmp("out.safetensors");
  EXPECT_TRUE(fails_with(capture(model, fixture("mlp.input.safetensors"), out), 1, {model, "TorchScript"}));
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(fails_with(run({"inspect", model}), 1, {model}));
}

TEST_F(CliTest, FrozenModel) {
  const std::string model = fixture(manifest()["frozen"]);
  const std::string out = tmp("out.safetensors");
  EXPECT_TRUE(fails_with(capture(model, fixture("mlp.input.safetensors"), out), 1, {model, "frozen"}));
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(fails_with(capture(model, fixture("mlp.input.safetensors"), out, {"--hooks", "0"}), 1,
                         {"frozen"}));
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(CliTest, GlobMatchingNoHookPoint) {
  const auto& c = case_named("gpt_scripted");
  const std::string out = tmp("out.safetensors");
  EXPECT_TRUE(fails_with(capture(fixture(c["model"]), fixture(c["input"]), out,
                                 {"--hooks", "blocks.*.nothing"}),
                         1, {"blocks.*.nothing"}));
  EXPECT_FALSE(fs::exists(out));
  // One bad pattern among good ones is still an error, naming the bad one.
  EXPECT_TRUE(fails_with(capture(fixture(c["model"]), fixture(c["input"]), out, {"--hooks", "head,zzz*"}),
                         1, {"zzz*"}));
  EXPECT_FALSE(fs::exists(out));
  // A module that exists but is not called in this forward pass (dict_if: input takes d["a"]).
  for (const std::string name : {"dict_if_scripted", "dict_if_traced"}) {
    SCOPED_TRACE(name);
    const auto& d = case_named(name);
    EXPECT_TRUE(fails_with(capture(fixture(d["model"]), fixture(d["input"]), out, {"--hooks", "d.b"}), 1,
                           {"d.b"}));
    EXPECT_FALSE(fs::exists(out));
  }
  // A call that does not happen (lin is called twice: lin, lin@1).
  const auto& t = case_named("twice_scripted");
  EXPECT_TRUE(fails_with(capture(fixture(t["model"]), fixture(t["input"]), out, {"--hooks", "lin@2"}), 1,
                         {"lin@2"}));
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(CliTest, InputOfTheWrongShape) {
  const std::string in = tmp("bad_shape.safetensors");
  TensorMap t;
  t.insert("arg0", at::zeros({5, 7}));  // mlp expects [N, 16]
  save_safetensors(in, t);
  const std::string out = tmp("out.safetensors");
  for (const std::string name : {"mlp_scripted", "mlp_traced"}) {
    SCOPED_TRACE(name);
    // LibTorch's message, the failing module and the argument.
    EXPECT_TRUE(fails_with(capture(fixture(case_named(name)["model"]), in, out), 1,
                           {"mat1 and mat2 shapes cannot be multiplied", "'0'", "arg0", "[5, 7]"}));
    EXPECT_FALSE(fs::exists(out));
  }
}

TEST_F(CliTest, InputOfTheWrongDtype) {
  const std::string in = tmp("bad_dtype.safetensors");
  TensorMap t;
  t.insert("arg0", at::zeros({2, 8}));  // gpt expects int64 token ids
  save_safetensors(in, t);
  const std::string out = tmp("out.safetensors");
  for (const std::string name : {"gpt_scripted", "gpt_traced"}) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(fails_with(capture(fixture(case_named(name)["model"]), in, out), 1,
                           {"Expected tensor for argument #1 'indices'", "tok_emb", "arg0", "float32"}));
    EXPECT_FALSE(fs::exists(out));
  }
}

TEST_F(CliTest, ErrorRaisedInsideTorchScriptCodeIsOneLine) {
  // T = 20 > max_len 16: fails in GPT.forward itself (pos_emb[:T] broadcast), where TorchScript
  // would print a multi-line traceback.
  const std::string in = tmp("too_long.safetensors");
  TensorMap t;
  t.insert("arg0", at::zeros({1, 20}, at::kLong));
  save_safetensors(in, t);
  const std::string out = tmp("out.safetensors");
  for (const std::string name : {"gpt_scripted", "gpt_traced"}) {
    SCOPED_TRACE(name);
    const CliResult r = capture(fixture(case_named(name)["model"]), in, out);
    EXPECT_TRUE(fails_with(r, 1, {"The size of tensor a (20) must match", "arg0"}));
    EXPECT_THAT(r.err, ::testing::Not(HasSubstr("Traceback")));
    EXPECT_FALSE(fs::exists(out));
  }
}

TEST_F(CliTest, TooManyArguments) {
  const std::string in = tmp("two_args.safetensors");
  TensorMap t;
  t.insert("arg0", at::zeros({5, 16}));
  t.insert("arg1", at::zeros({5, 16}));
  save_safetensors(in, t);
  EXPECT_TRUE(fails_with(capture(fixture("mlp_scripted.pt"), in, tmp("out.safetensors")), 1, {"2"}));
}

TEST_F(CliTest, InputWithoutArg0) {
  const std::string in = tmp("no_arg0.safetensors");
  TensorMap t;
  t.insert("x", at::zeros({5, 16}));
  t.insert("arg1", at::zeros({5, 16}));
  save_safetensors(in, t);
  const std::string out = tmp("out.safetensors");
  EXPECT_TRUE(fails_with(capture(fixture("mlp_scripted.pt"), in, out), 1, {"arg0", in}));
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(fails_with(run({"stats", fixture("mlp_scripted.pt"), "--input", in}), 1, {"arg0", in}));
}

TEST_F(CliTest, MissingInputFile) {
  const std::string in = tmp("no_such_input.safetensors");
  const std::string out = tmp("out.safetensors");
  EXPECT_TRUE(fails_with(capture(fixture("mlp_scripted.pt"), in, out), 1, {in}));
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(CliTest, CorruptSafetensorsInputs) {
  struct Bad {
    std::string what;
    std::string bytes;
    std::vector<std::string> mentions;
  };
  const std::string good = read_file(fixture("mlp.input.safetensors"));
  ASSERT_GT(good.size(), 40u);
  const std::string f32_header = R"({"arg0":{"dtype":"F32","shape":[2,16],"data_offsets":[0,128]}})";
  const std::vector<Bad> bads = {
      {"empty", "", {}},
      {"shorter than the length field", std::string("\x05\x00\x00", 3), {}},
      {"header length 10^12", safetensors_bytes("{}", "", 1000000000000ull), {"header length", "1000000000000"}},
      {"header length beyond the file", safetensors_bytes(f32_header, std::string(128, '\0'), 4096),
       {"header length", "4096"}},
      {"offsets beyond the data", safetensors_bytes(f32_header, std::string(64, '\0')), {"arg0", "128"}},
      {"offsets inconsistent with shape",
       safetensors_bytes(R"({"arg0":{"dtype":"F32","shape":[2,16],"data_offsets":[0,64]}})",
                         std::string(64, '\0')),
       {"arg0"}},
      {"unknown dtype F8",
       safetensors_bytes(R"({"arg0":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}})", std::string(2, '\0')),
       {"F8"}},
      {"header not JSON", safetensors_bytes("{\"arg0\": [", std::string(8, '\0')), {"JSON"}},
      {"truncated file", good.substr(0, good.size() - 17), {}},
  };
  for (const auto& b : bads) {
    SCOPED_TRACE(b.what);
    const std::string in = tmp("bad.safetensors");
    write_file(in, b.bytes);
    const std::string out = tmp("out.safetensors");
    std::vector<std::string> mentions = b.mentions;
    mentions.push_back(in);
    EXPECT_TRUE(fails_with(capture(fixture("mlp_scripted.pt"), in, out), 1, mentions));
    EXPECT_FALSE(fs::exists(out));
    EXPECT_TRUE(fails_with(run({"stats", fixture("mlp_scripted.pt"), "--input", in, "--quiet"}), 1, mentions));
  }
}

TEST_F(CliTest, UnwritableOutput) {
  const std::string out = tmp("no_such_dir/out.safetensors");
  EXPECT_TRUE(fails_with(capture(fixture("mlp_scripted.pt"), fixture("mlp.input.safetensors"), out), 1, {out}));
}

TEST_F(CliTest, UsageErrorsExitWithTwo) {
  const std::string model = fixture("mlp_scripted.pt");
  const std::string in = fixture("mlp.input.safetensors");
  const std::string out = tmp("out.safetensors");
  EXPECT_TRUE(fails_with(capture(model, in, out, {"--bogus"}), 2, {"--bogus"}));
  EXPECT_TRUE(fails_with(run({"capture", model, "--input", in}), 2, {"--out"}));
  EXPECT_TRUE(fails_with(run({"capture", model, "--out", out}), 2, {"--input"}));
  EXPECT_TRUE(fails_with(run({"capture", "--input", in, "--out", out}), 2, {"model"}));
  EXPECT_TRUE(fails_with(capture(model, in, out, {"--device", "gpu7"}), 2, {"gpu7"}));
  EXPECT_TRUE(fails_with(capture(model, in, out, {"--dtype", "fp99"}), 2, {"fp99"}));
  EXPECT_TRUE(fails_with(run({"stats", model, "--input", in, "--batch-size", "0"}), 2, {"--batch-size"}));
  EXPECT_TRUE(fails_with(run({"inspect"}), 2, {"model"}));
  EXPECT_TRUE(fails_with(run({"--threads", "0", "inspect", model}), 2, {"--threads"}));
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(CliTest, UnknownSubcommandIsNamed) {
  EXPECT_TRUE(fails_with(run({"frobnicate"}), 2, {"frobnicate"}));
}

TEST_F(CliTest, CudaDeviceWithoutCuda) {
  if (at::hasCUDA()) GTEST_SKIP() << "CUDA is available here";
  const CliResult r = capture(fixture("mlp_scripted.pt"), fixture("mlp.input.safetensors"),
                              tmp("out.safetensors"), {"--device", "cuda"});
  // A one-line error naming the device (1 or 2: cli_common.h calls it a usage error, the
  // code a runtime one).
  EXPECT_TRUE(fails_with(r, r.code == 2 ? 2 : 1, {"cuda"}));
}

// ---------------------------------------------------------------------------------------------
// 4. inspect

TEST_F(CliTest, InspectJson) {
  for (const std::string name : {"gpt_scripted", "gpt_traced"}) {
    SCOPED_TRACE(name);
    const CliResult r = run({"inspect", fixture(case_named(name)["model"]), "--json"});
    ASSERT_TRUE(succeeds(r));
    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(r.out)) << r;
    ASSERT_TRUE(j.contains("modules") && j["modules"].is_array()) << r;
    std::set<std::string> names;
    bool found_q = false;
    for (const auto& m : j["modules"]) {
      names.insert(m.at("name").get<std::string>());
      if (m["name"] != "blocks.0.attn.q") continue;
      found_q = true;
      EXPECT_EQ(m.at("type"), "Linear");
      bool weight = false, bias = false;
      for (const auto& t : m.at("tensors")) {
        if (t.at("name") == "weight") {
          weight = true;
          EXPECT_EQ(t.at("shape"), nlohmann::json({32, 32}));
          EXPECT_EQ(t.at("dtype"), "float32");
        }
        if (t.at("name") == "bias") {
          bias = true;
          EXPECT_EQ(t.at("shape"), nlohmann::json({32}));
        }
      }
      EXPECT_TRUE(weight && bias);
    }
    EXPECT_TRUE(found_q);
    for (const auto& n : {"", "tok_emb", "blocks", "blocks.0", "blocks.1.attn", "blocks.1.mlp.2", "ln_f", "head"}) {
      EXPECT_TRUE(names.count(n)) << "module '" << n << "' missing";
    }
  }
}

TEST_F(CliTest, InspectTable) {
  const CliResult r = run({"inspect", fixture("gpt_scripted.pt")});
  ASSERT_TRUE(succeeds(r));
  EXPECT_EQ(r.err, "");
  bool q_line = false;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("blocks.0.attn.q ") == std::string::npos) continue;
    q_line = true;
    EXPECT_THAT(line, HasSubstr("Linear"));
    EXPECT_THAT(line, HasSubstr("[32, 32]"));
  }
  EXPECT_TRUE(q_line) << r;
  for (const auto& n : {"tok_emb", "blocks.1.attn.proj", "blocks.0.mlp.1", "ln_f", "head", "Embedding", "LayerNorm"}) {
    EXPECT_THAT(r.out, HasSubstr(n));
  }
}

// ---------------------------------------------------------------------------------------------
// 5. stats

TEST_F(CliTest, StatsTableAndJson) {
  for (const std::string name : {"gpt_scripted", "mlp_traced"}) {
    SCOPED_TRACE(name);
    const auto& c = case_named(name);
    const TensorMap ref = fixture_tensors(c["hooks"]);
    const std::string json_path = tmp(name + ".stats.json");
    const CliResult r = run({"stats", fixture(c["model"]), "--input", fixture(c["input"]), "--batch-size", "2",
                             "--quiet", "--json", json_path});
    ASSERT_TRUE(succeeds(r));
    EXPECT_EQ(r.err, "") << "--quiet";
    std::set<std::string> ref_points;
    for (const auto& k : ref.names()) {
      if (!is_input_key(k) && !is_output_key(k)) ref_points.insert(k);
    }
    for (const auto& k : ref_points) EXPECT_THAT(r.out, HasSubstr(k)) << "table lacks " << k;

    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(read_file(json_path)));
    ASSERT_TRUE(j.contains("points") && j["points"].is_array()) << j.dump().substr(0, 500);
    std::set<std::string> keys;
    for (const auto& p : j["points"]) {
      const std::string k = p.at("key");
      keys.insert(k);
      EXPECT_FALSE(is_input_key(k)) << k;
      EXPECT_TRUE(ref.contains(k)) << "not a hook point: " << k;
      if (!ref.contains(k) || !p.contains("count")) continue;
      // Streamed over batches of 2, the statistics cover the whole input.
      const at::Tensor t = ref.at(k).to(at::kDouble);
      EXPECT_EQ(p["count"].get<int64_t>(), t.numel()) << k;
      EXPECT_NEAR(p.at("mean").get<double>(), t.mean().item<double>(), 1e-5) << k;
      EXPECT_NEAR(p.at("min").get<double>(), t.min().item<double>(), 1e-5) << k;
      EXPECT_NEAR(p.at("max").get<double>(), t.max().item<double>(), 1e-5) << k;
    }
    for (const auto& k : ref_points) EXPECT_TRUE(keys.count(k)) << "points lacks " << k;
  }
}

TEST_F(CliTest, StatsErrors) {
  const std::string in = fixture("mlp.input.safetensors");
  EXPECT_TRUE(fails_with(run({"stats", fixture("mlp_scripted.pt"), "--input", in, "--hooks", "zz*", "--quiet"}),
                         1, {"zz*"}));
  EXPECT_TRUE(fails_with(run({"stats", fixture(manifest()["frozen"]), "--input", in, "--quiet"}), 1, {"frozen"}));
  EXPECT_TRUE(fails_with(run({"stats", tmp("missing.pt"), "--input", in}), 1, {tmp("missing.pt")}));
  EXPECT_TRUE(fails_with(run({"stats", fixture("mlp_scripted.pt")}), 2, {"--input"}));
}

// ---------------------------------------------------------------------------------------------
// 6. top level

TEST_F(CliTest, HelpAndVersion) {
  const CliResult h = run({"--help"});
  ASSERT_TRUE(succeeds(h));
  for (const auto& s : {"inspect", "capture", "stats"}) EXPECT_THAT(h.out, HasSubstr(s));
  const CliResult ch = run({"capture", "--help"});
  ASSERT_TRUE(succeeds(ch));
  for (const auto& s : {"--input", "--out", "--hooks", "--inputs"}) EXPECT_THAT(ch.out, HasSubstr(s));
  const CliResult v = run({"--version"});
  ASSERT_TRUE(succeeds(v));
  EXPECT_THAT(v.out, HasSubstr("strata"));
}

TEST_F(CliTest, NoSubcommand) {
  EXPECT_TRUE(fails_with(run({}), 2, {}));
}

}  // namespace
}  // namespace strata
