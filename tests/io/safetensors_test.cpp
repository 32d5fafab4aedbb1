// Tests of strata's safetensors reader and writer: round trips, the exact bytes written, every
// malformed input the reader must reject, a seeded fuzz test, and cross-checks against the
// independent Python implementation in tests/python/stio.py (via tests/io/write_samples.py).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <strata/core/error.h>
#include <strata/io/safetensors.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

using strata::from_safetensors_bytes;
using strata::SafetensorsFile;
using strata::TensorMap;
using strata::to_safetensors_bytes;

constexpr const char* kSource = "sample.st";

// ---------------------------------------------------------------------------------------------
// Helpers

std::string le64(uint64_t n) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return out;
}

// A file with the given header text (unpadded) and data bytes.
std::string make_file(const std::string& header, const std::string& data = "") {
  return le64(header.size()) + header + data;
}

// The message of the strata::Error that `f` throws; a test failure if it throws nothing or
// anything else.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const strata::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected strata::Error, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected strata::Error, nothing was thrown";
  return "";
}

std::string bytes_of(const at::Tensor& t) {
  at::Tensor c = t.cpu().contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()),
                     static_cast<size_t>(c.numel()) * c.element_size());
}

// Same dtype, same shape, same bytes (so NaN, -0.0 and bf16 bit patterns count).
::testing::AssertionResult same_tensor(const at::Tensor& got, const at::Tensor& want) {
  if (got.scalar_type() != want.scalar_type()) {
    return ::testing::AssertionFailure()
           << "dtype " << got.scalar_type() << " != " << want.scalar_type();
  }
  if (got.sizes() != want.sizes()) {
    return ::testing::AssertionFailure() << "shape " << got.sizes() << " != " << want.sizes();
  }
  if (bytes_of(got) != bytes_of(want)) {
    return ::testing::AssertionFailure() << "values differ:\n" << got << "\nvs\n" << want;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult same_map(const TensorMap& got, const TensorMap& want) {
  if (got.names() != want.names()) {
    std::string g, w;
    for (const auto& n : got.names()) g += n + " ";
    for (const auto& n : want.names()) w += n + " ";
    return ::testing::AssertionFailure() << "names [" << g << "] != [" << w << "]";
  }
  for (const auto& name : want.names()) {
    auto r = same_tensor(got.at(name), want.at(name));
    if (!r) return ::testing::AssertionFailure() << "tensor \"" << name << "\": " << r.message();
  }
  return ::testing::AssertionSuccess();
}

const std::vector<at::ScalarType>& all_dtypes() {
  static const std::vector<at::ScalarType> types = {
      at::kFloat, at::kHalf,  at::kBFloat16, at::kDouble, at::kLong,
      at::kInt,   at::kShort, at::kChar,     at::kByte,   at::kBool};
  return types;
}

// Deterministic, dtype-exact values: small integers (halved for floats) with alternating signs.
at::Tensor pattern(at::ScalarType type, at::IntArrayRef shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  at::Tensor base = at::arange(n, at::kDouble);
  if (type == at::kBool) return (base.remainder(3) == 0).reshape(shape);
  if (type == at::kByte) return base.remainder(251).to(type).reshape(shape);
  at::Tensor v = (base - n / 2).remainder(120) - 60;
  if (at::isFloatingType(type)) v = v * 0.5;
  return v.to(type).reshape(shape);
}

at::Tensor from_doubles(const std::vector<double>& values, at::ScalarType type,
                        at::IntArrayRef shape) {
  return at::tensor(values, at::kDouble).to(type).reshape(shape);
}

at::Tensor from_int64s(const std::vector<int64_t>& values, at::ScalarType type,
                       at::IntArrayRef shape) {
  return at::tensor(values, at::kLong).to(type).reshape(shape);
}

// The values tests/io/write_samples.py writes (samples() there), computed independently here.
TensorMap expected_samples() {
  auto doubles = [](int64_t n, auto f) {
    std::vector<double> v;
    for (int64_t i = 0; i < n; ++i) v.push_back(f(static_cast<double>(i)));
    return v;
  };
  auto ints = [](int64_t n, auto f) {
    std::vector<int64_t> v;
    for (int64_t i = 0; i < n; ++i) v.push_back(f(i));
    return v;
  };
  TensorMap m;
  m.insert("f32", from_doubles(doubles(24, [](double i) { return (i - 11.5) * 0.25; }), at::kFloat,
                               {2, 3, 4}));
  m.insert("f16",
           from_doubles(doubles(15, [](double i) { return (i - 7) * 0.5; }), at::kHalf, {5, 3}));
  m.insert("bf16", from_doubles(doubles(16, [](double i) { return (i - 8) * 0.125 + i / 128; }),
                                at::kBFloat16, {4, 4}));
  m.insert("f64",
           from_doubles(doubles(6, [](double i) { return (i - 1) / 3.0; }), at::kDouble, {2, 3}));
  m.insert("i64", from_int64s(ints(6, [](int64_t i) { return (i - 3) * 1000000000007LL; }),
                              at::kLong, {6}));
  m.insert("i32", from_int64s(ints(8, [](int64_t i) { return (i - 4) * 100000007LL; }), at::kInt,
                              {2, 2, 2}));
  m.insert("i16", from_int64s(ints(7, [](int64_t i) { return (i - 3) * 10007; }), at::kShort, {7}));
  m.insert("i8", from_int64s(ints(9, [](int64_t i) { return (i - 4) * 31; }), at::kChar, {9}));
  m.insert("u8", from_int64s(ints(10, [](int64_t i) { return i * 25 + 5; }), at::kByte, {10}));
  m.insert("bool", from_int64s(ints(9, [](int64_t i) { return i % 3 == 0; }), at::kBool, {3, 3}));
  m.insert("empty", at::zeros({0, 3}, at::kInt));
  const float inf = std::numeric_limits<float>::infinity();
  m.insert("f32_special",
           at::tensor(std::vector<float>{inf, -inf, -0.0f, std::numeric_limits<float>::quiet_NaN(),
                                         std::numeric_limits<float>::denorm_min(),
                                         std::numeric_limits<float>::max()},
                      at::kFloat));
  return m;
}

const std::map<std::string, std::string> kSampleMetadata = {{"format", "pt"},
                                                            {"producer", "strata-tests"}};
const char* const kUnicodeName = "gr\u00f6\u00dfe.\u00e9\U0001D11E";

// A fresh directory under /tmp, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string templ = "/tmp/strata_io_test_XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (fs::path(path_) / name).string(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// ---------------------------------------------------------------------------------------------
// TensorMap

TEST(TensorMap, KeepsInsertionOrderAndReplacesInPlace) {
  TensorMap m;
  EXPECT_TRUE(m.empty());
  m.insert("z", at::ones({1}));
  m.insert("a", at::ones({2}));
  m.insert("m", at::ones({3}));
  m.insert("z", at::zeros({4}));
  EXPECT_EQ(m.names(), (std::vector<std::string>{"z", "a", "m"}));
  EXPECT_EQ(m.size(), 3);
  EXPECT_FALSE(m.empty());
  EXPECT_TRUE(m.contains("a"));
  EXPECT_FALSE(m.contains("b"));
  EXPECT_EQ(m.at("z").sizes(), at::IntArrayRef({4}));
}

TEST(TensorMap, AtMissingKeyNamesKeyAndPresentKeys) {
  TensorMap m;
  m.insert("alpha", at::ones({1}));
  m.insert("beta", at::ones({1}));
  std::string msg = error_of([&] { m.at("gamma"); });
  EXPECT_NE(msg.find("TensorMap::at"), std::string::npos) << msg;
  EXPECT_NE(msg.find("gamma"), std::string::npos) << msg;
  EXPECT_NE(msg.find("alpha"), std::string::npos) << msg;
  EXPECT_NE(msg.find("beta"), std::string::npos) << msg;

  TensorMap empty;
  msg = error_of([&] { empty.at("x"); });
  EXPECT_NE(msg.find("0 present"), std::string::npos) << msg;
}

TEST(TensorMap, AtMissingKeyListsAtMostTenKeys) {
  TensorMap m;
  for (int i = 0; i < 25; ++i) m.insert("key" + std::to_string(i), at::ones({1}));
  std::string msg = error_of([&] { m.at("nope"); });
  EXPECT_NE(msg.find("\"key9\""), std::string::npos) << msg;
  EXPECT_EQ(msg.find("\"key10\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("15 more"), std::string::npos) << msg;
}

TEST(TensorMap, RejectsUndefinedTensor) {
  TensorMap m;
  std::string msg = error_of([&] { m.insert("u", at::Tensor()); });
  EXPECT_NE(msg.find("undefined"), std::string::npos) << msg;
  EXPECT_TRUE(m.empty());
}

// ---------------------------------------------------------------------------------------------
// Round trips

TEST(RoundTrip, EveryDtype) {
  TensorMap m;
  for (at::ScalarType type : all_dtypes()) {
    m.insert(std::string(c10::toString(type)), pattern(type, {3, 5}));
  }
  SafetensorsFile f = from_safetensors_bytes(to_safetensors_bytes(m), kSource);
  EXPECT_TRUE(same_map(f.tensors, m));
  EXPECT_TRUE(f.metadata.empty());
}

TEST(RoundTrip, EveryDtypeAloneAndInEveryShape) {
  const std::vector<std::vector<int64_t>> shapes = {{}, {0}, {1}, {7}, {2, 0, 3}, {2, 3, 1, 2}};
  for (at::ScalarType type : all_dtypes()) {
    for (const auto& shape : shapes) {
      SCOPED_TRACE(::testing::Message() << type << " " << at::IntArrayRef(shape));
      TensorMap m;
      m.insert("t", pattern(type, shape));
      SafetensorsFile f = from_safetensors_bytes(to_safetensors_bytes(m), kSource);
      EXPECT_TRUE(same_map(f.tensors, m));
    }
  }
}

TEST(RoundTrip, NonContiguousTensorsAreWrittenAsTheirValues) {
  at::Tensor base = pattern(at::kFloat, {4, 6, 5});
  TensorMap views;
  views.insert("transposed", base.transpose(0, 2));
  views.insert("strided", base.slice(1, 1, 6, 2));
  views.insert("offset", base[2][3]);
  views.insert("expanded", at::arange(3, at::kInt).unsqueeze(1).expand({3, 4}));
  views.insert("scalar_view", base[1][2][3]);
  views.insert("bf16_permuted", pattern(at::kBFloat16, {2, 3, 4}).permute({2, 0, 1}));
  views.insert("bool_strided", pattern(at::kBool, {10}).slice(0, 0, 10, 3));
  for (const auto& name : views.names()) {
    const at::Tensor& v = views.at(name);
    ASSERT_TRUE(!v.is_contiguous() || v.storage_offset() > 0) << name;
  }

  TensorMap contiguous;
  for (const auto& name : views.names()) contiguous.insert(name, views.at(name).contiguous());
  const std::string bytes = to_safetensors_bytes(views);
  EXPECT_EQ(bytes, to_safetensors_bytes(contiguous));
  EXPECT_TRUE(same_map(from_safetensors_bytes(bytes, kSource).tensors, contiguous));
}

TEST(RoundTrip, ZeroDimAndEmptyTensors) {
  TensorMap m;
  m.insert("scalar_f32", at::scalar_tensor(2.5, at::kFloat));
  m.insert("scalar_bool", at::scalar_tensor(true, at::kBool));
  m.insert("empty", at::empty({0}, at::kFloat));
  m.insert("empty_2d", at::empty({3, 0}, at::kLong));
  m.insert("scalar_i64", at::scalar_tensor(-7, at::kLong));
  SafetensorsFile f = from_safetensors_bytes(to_safetensors_bytes(m), kSource);
  ASSERT_TRUE(same_map(f.tensors, m));
  EXPECT_EQ(f.tensors.at("scalar_f32").dim(), 0);
  EXPECT_EQ(f.tensors.at("empty_2d").sizes(), at::IntArrayRef({3, 0}));
}

TEST(RoundTrip, EmptyMap) {
  std::string bytes = to_safetensors_bytes(TensorMap());
  EXPECT_EQ(bytes, le64(8) + "{}      ");
  SafetensorsFile f = from_safetensors_bytes(bytes, kSource);
  EXPECT_TRUE(f.tensors.empty());
  EXPECT_TRUE(f.metadata.empty());
}

TEST(RoundTrip, Metadata) {
  TensorMap m;
  m.insert("x", pattern(at::kHalf, {2}));
  const std::map<std::string, std::string> meta = {{"model", "gpt.pt"},
                                                   {"empty", ""},
                                                   {"quote\"and\\slash", "line\nbreak\ttab"},
                                                   {"unicode \u00e9", "\u2603 \U0001D11E"},
                                                   {"json", "{\"not\": \"parsed\"}"}};
  SafetensorsFile f = from_safetensors_bytes(to_safetensors_bytes(m, meta), kSource);
  EXPECT_EQ(f.metadata, meta);
  EXPECT_TRUE(same_map(f.tensors, m));
}

TEST(RoundTrip, UnusualNames) {
  TensorMap m;
  m.insert("", pattern(at::kInt, {1}));
  m.insert("blocks.0.attn.hook_z", pattern(at::kInt, {2}));
  m.insert("with \"quotes\" and \\", pattern(at::kInt, {3}));
  m.insert(kUnicodeName, pattern(at::kInt, {4}));
  m.insert("__metadata", pattern(at::kInt, {5}));
  EXPECT_TRUE(same_map(from_safetensors_bytes(to_safetensors_bytes(m), kSource).tensors, m));
}

TEST(RoundTrip, LoadedTensorsOwnTheirMemory) {
  TensorMap m;
  m.insert("a", pattern(at::kFloat, {16}));
  m.insert("b", pattern(at::kLong, {3}));
  std::string bytes = to_safetensors_bytes(m);
  SafetensorsFile f = from_safetensors_bytes(bytes, kSource);
  std::fill(bytes.begin(), bytes.end(), '\x7f');
  bytes.clear();
  bytes.shrink_to_fit();
  EXPECT_TRUE(same_map(f.tensors, m));
  // Writable, resizable tensors of their own.
  f.tensors.at("a").mul_(2);
  EXPECT_TRUE(same_tensor(f.tensors.at("a"), m.at("a") * 2));
}

TEST(RoundTrip, TensorsOnAnotherDevice) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  TensorMap m;
  m.insert("gpu", pattern(at::kFloat, {4, 4}).to(at::kCUDA).t());
  SafetensorsFile f = from_safetensors_bytes(to_safetensors_bytes(m), kSource);
  EXPECT_TRUE(same_tensor(f.tensors.at("gpu"), m.at("gpu").cpu()));
}

TEST(RoundTrip, TensorsRequiringGrad) {
  TensorMap m;
  m.insert("w", pattern(at::kFloat, {3}).set_requires_grad(true));
  SafetensorsFile f = from_safetensors_bytes(to_safetensors_bytes(m), kSource);
  EXPECT_TRUE(same_tensor(f.tensors.at("w"), m.at("w").detach()));
}

// ---------------------------------------------------------------------------------------------
// The bytes written

TEST(Format, ExactBytesOfASmallFile) {
  TensorMap m;
  m.insert("a", at::tensor(std::vector<float>{1.0f, -2.0f}));
  // 79 bytes of JSON padded with one space to 80 (0x50); F32 1.0 = 00 00 80 3f, -2.0 =
  // 00 00 00 c0.
  const std::string expected = std::string("\x50\0\0\0\0\0\0\0", 8) +
                               "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":"
                               "[2],\"data_offsets\":[0,8]}} " +
                               std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8);
  EXPECT_EQ(to_safetensors_bytes(m, {{"k", "v"}}), expected);
}

TEST(Format, ExactBytesOfAScalarWithoutMetadata) {
  TensorMap m;
  m.insert("b", at::scalar_tensor(0x0102, at::kShort));
  // 53 bytes of JSON padded with three spaces to 56 (0x38); no "__metadata__" when empty.
  const std::string expected =
      std::string("\x38\0\0\0\0\0\0\0", 8) +
      "{\"b\":{\"dtype\":\"I16\",\"shape\":[],\"data_offsets\":[0,2]}}   " + "\x02\x01";
  EXPECT_EQ(to_safetensors_bytes(m), expected);
}

TEST(Format, HeaderIsPaddedWithSpacesToAMultipleOf8) {
  for (int len = 0; len < 16; ++len) {
    TensorMap m;
    m.insert(std::string(static_cast<size_t>(len), 'n'), at::ones({1}, at::kByte));
    const std::string bytes = to_safetensors_bytes(m);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
    EXPECT_EQ(n % 8, 0u) << len;
    ASSERT_EQ(bytes.size(), 8 + n + 1) << len;
    const std::string header = bytes.substr(8, n);
    const size_t close = header.rfind('}');
    EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos) << len;
    EXPECT_LT(n - (close + 1), 8u) << len;
  }
}

TEST(Format, OffsetsAreContiguousInInsertionOrder) {
  TensorMap m;
  m.insert("third", pattern(at::kDouble, {3}));
  m.insert("first", pattern(at::kByte, {5}));
  m.insert("second", pattern(at::kHalf, {2, 2}));
  m.insert("empty", at::empty({0}, at::kInt));
  const std::string bytes = to_safetensors_bytes(m);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  const auto header = nlohmann::ordered_json::parse(bytes.substr(8, n));
  std::vector<std::string> order;
  uint64_t offset = 0;
  for (const auto& [name, info] : header.items()) {
    order.push_back(name);
    EXPECT_EQ(info["data_offsets"][0].get<uint64_t>(), offset) << name;
    offset = info["data_offsets"][1].get<uint64_t>();
  }
  EXPECT_EQ(order, m.names());
  EXPECT_EQ(8 + n + offset, bytes.size());
}

// ---------------------------------------------------------------------------------------------
// Writer errors

TEST(WriteErrors, UnsupportedDtypeIsNamed) {
  TensorMap m;
  m.insert("c", at::zeros({2}, at::kComplexFloat));
  std::string msg = error_of([&] { to_safetensors_bytes(m); });
  EXPECT_NE(msg.find("to_safetensors_bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"c\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("ComplexFloat"), std::string::npos) << msg;
}

TEST(WriteErrors, SparseTensor) {
  TensorMap m;
  m.insert("s", at::eye(3).to_sparse());
  std::string msg = error_of([&] { to_safetensors_bytes(m); });
  EXPECT_NE(msg.find("layout"), std::string::npos) << msg;
}

TEST(WriteErrors, ReservedName) {
  TensorMap m;
  m.insert("__metadata__", at::ones({1}));
  std::string msg = error_of([&] { to_safetensors_bytes(m); });
  EXPECT_NE(msg.find("reserved"), std::string::npos) << msg;
}

TEST(WriteErrors, InvalidUtf8NameOrMetadata) {
  TensorMap m;
  m.insert("bad\xff", at::ones({1}));
  EXPECT_NE(error_of([&] { to_safetensors_bytes(m); }).find("UTF-8"), std::string::npos);
  TensorMap ok;
  ok.insert("ok", at::ones({1}));
  EXPECT_NE(error_of([&] {
              to_safetensors_bytes(ok, {{"k", "\xc3"}});
            }).find("UTF-8"),
            std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Files

TEST(Files, SaveThenLoad) {
  TempDir dir;
  TensorMap m;
  m.insert("x", pattern(at::kFloat, {2, 3}).t());
  m.insert("y", pattern(at::kBool, {4}));
  const std::string path = dir.file("acts.safetensors");
  strata::save_safetensors(path, m, {{"model", "gpt.pt"}});
  SafetensorsFile f = strata::load_safetensors(path);
  EXPECT_TRUE(same_map(f.tensors, m));
  EXPECT_EQ(f.metadata.at("model"), "gpt.pt");
  EXPECT_EQ(read_file(path), to_safetensors_bytes(m, {{"model", "gpt.pt"}}));
}

TEST(Files, SaveOverwritesAndLeavesNoTemporaries) {
  TempDir dir;
  const std::string path = dir.file("out.safetensors");
  write_file(path, "old contents");
  TensorMap m;
  m.insert("v", pattern(at::kLong, {5}));
  strata::save_safetensors(path, m);
  strata::save_safetensors(path, m);
  EXPECT_TRUE(same_map(strata::load_safetensors(path).tensors, m));
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    ++files;
    EXPECT_EQ(entry.path().filename(), "out.safetensors");
  }
  EXPECT_EQ(files, 1);
}

TEST(Files, SaveIntoMissingDirectoryNamesThePath) {
  TempDir dir;
  const std::string path = dir.file("no/such/dir/out.safetensors");
  TensorMap m;
  m.insert("v", at::ones({1}));
  std::string msg = error_of([&] { strata::save_safetensors(path, m); });
  EXPECT_NE(msg.find("save_safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
}

TEST(Files, SaveOntoADirectoryFailsAndCleansUp) {
  TempDir dir;
  const std::string path = dir.file("taken");
  fs::create_directory(path);
  TensorMap m;
  m.insert("v", at::ones({1}));
  std::string msg = error_of([&] { strata::save_safetensors(path, m); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1);  // only the directory itself; the temporary was removed
}

TEST(Files, LoadMissingFileNamesThePath) {
  TempDir dir;
  const std::string path = dir.file("missing.safetensors");
  std::string msg = error_of([&] { strata::load_safetensors(path); });
  EXPECT_NE(msg.find("load_safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;
}

TEST(Files, LoadDirectory) {
  TempDir dir;
  std::string msg = error_of([&] { strata::load_safetensors(dir.path()); });
  EXPECT_NE(msg.find("not a regular file"), std::string::npos) << msg;
}

TEST(Files, LoadUnreadableFile) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads files regardless of permissions";
  TempDir dir;
  const std::string path = dir.file("locked.safetensors");
  write_file(path, to_safetensors_bytes(TensorMap()));
  ::chmod(path.c_str(), 0);
  std::string msg = error_of([&] { strata::load_safetensors(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
}

TEST(Files, LoadTruncatedFileNamesThePath) {
  TempDir dir;
  TensorMap m;
  m.insert("v", pattern(at::kFloat, {8}));
  const std::string bytes = to_safetensors_bytes(m);
  const std::string path = dir.file("cut.safetensors");
  write_file(path, bytes.substr(0, bytes.size() - 3));
  std::string msg = error_of([&] { strata::load_safetensors(path); });
  EXPECT_NE(msg.find("load_safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("beyond"), std::string::npos) << msg;

  write_file(path, "abc");
  msg = error_of([&] { strata::load_safetensors(path); });
  EXPECT_NE(msg.find("shorter"), std::string::npos) << msg;
}

// ---------------------------------------------------------------------------------------------
// Malformed input: each case must throw strata::Error naming the source and the problem.

struct Malformed {
  std::string name;
  std::string bytes;
  std::string word;  // must appear in the message
};

// One well-formed F32 entry, for building bad files around it.
std::string entry(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return "{\"dtype\":" + dtype + ",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

// A file holding one F32 [2] tensor needs these.
const std::string kF32x2 = entry("\"F32\"", "[2]", "[0,8]");
const std::string kData8(8, '\0');

std::vector<Malformed> length_prefix_cases() {
  return {
      {"Empty", "", "shorter"},
      {"SevenBytes", "1234567", "shorter"},
      {"HeaderLongerThanFile", le64(100) + "{}", "larger than the file"},
      {"HeaderOneByteLonger", le64(3) + "{}", "larger than the file"},
      {"HeaderAbsurd", le64(100'000'001) + "{}", "absurd"},
      {"HeaderMaxU64", le64(UINT64_MAX) + "{}", "absurd"},
  };
}

std::vector<Malformed> json_cases() {
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "[";
  for (int i = 0; i < 200; ++i) deep += "]";
  return {
      {"NotJson", make_file("{not json}"), "JSON"},
      {"EmptyHeader", make_file(""), "JSON"},
      {"TruncatedJson", make_file("{\"a\":"), "JSON"},
      {"TrailingGarbage", make_file("{} x"), "JSON"},
      {"NulPadding", make_file(std::string("{}\0\0", 4)), "NUL"},
      {"NulThenGarbage", make_file(std::string("{}\0{\"a\":1}", 10)), "NUL"},
      {"ByteOrderMark", make_file("\xEF\xBB\xBF{}"), "byte order mark"},
      {"InvalidUtf8InKey", make_file("{\"a\xff\":" + kF32x2 + "}", kData8), "UTF-8"},
      {"InvalidUtf8InValue", make_file("{\"__metadata__\":{\"k\":\"\xc3\x28\"}}"), "UTF-8"},
      {"LoneSurrogate", make_file("{\"__metadata__\":{\"k\":\"\\ud800\"}}"), "JSON"},
      {"HeaderIsArray", make_file("[]"), "not a JSON object"},
      {"HeaderIsString", make_file("\"hello\""), "not a JSON object"},
      {"HeaderIsNull", make_file("null"), "not a JSON object"},
      {"DeepNesting", make_file("{\"a\":{\"x\":" + deep + "}}"), "deeper"},
      {"DuplicateTensor", make_file("{\"a\":" + kF32x2 + ",\"a\":" + kF32x2 + "}", kData8),
       "duplicate key \"a\""},
      {"DuplicateField",
       make_file("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"
                 "[0,8]}}",
                 kData8),
       "duplicate key \"dtype\""},
      {"DuplicateMetadataKey", make_file("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}"),
       "duplicate key \"k\""},
  };
}

std::vector<Malformed> entry_cases() {
  std::string wide_shape = "[";
  for (int i = 0; i < 1000; ++i) wide_shape += i ? ",1" : "1";
  wide_shape += "]";
  return {
      {"EntryIsNumber", make_file("{\"a\":5}"), "not an object"},
      {"EntryIsArray", make_file("{\"a\":[\"F32\",[2],[0,8]]}", kData8), "not an object"},
      {"MissingDtype", make_file("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", kData8),
       "missing \"dtype\""},
      {"DtypeNotString", make_file("{\"a\":" + entry("4", "[2]", "[0,8]") + "}", kData8), "dtype"},
      {"UnknownDtype", make_file("{\"a\":" + entry("\"F8_E4M3\"", "[2]", "[0,2]") + "}", "12"),
       "unknown dtype \"F8_E4M3\""},
      {"LowercaseDtype", make_file("{\"a\":" + entry("\"f32\"", "[2]", "[0,8]") + "}", kData8),
       "unknown dtype \"f32\""},
      {"MissingShape", make_file("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", kData8),
       "missing \"shape\""},
      {"ShapeNotArray", make_file("{\"a\":" + entry("\"F32\"", "2", "[0,8]") + "}", kData8),
       "shape"},
      {"NegativeDim", make_file("{\"a\":" + entry("\"F32\"", "[-2]", "[0,8]") + "}", kData8),
       "non-negative integer"},
      {"FractionalDim", make_file("{\"a\":" + entry("\"F32\"", "[2.5]", "[0,8]") + "}", kData8),
       "non-negative integer"},
      {"FloatDim", make_file("{\"a\":" + entry("\"F32\"", "[2.0]", "[0,8]") + "}", kData8),
       "non-negative integer"},
      {"StringDim", make_file("{\"a\":" + entry("\"F32\"", "[\"2\"]", "[0,8]") + "}", kData8),
       "non-negative integer"},
      {"NullDim", make_file("{\"a\":" + entry("\"F32\"", "[null]", "[0,8]") + "}", kData8),
       "non-negative integer"},
      {"DimBeyondInt64",
       make_file("{\"a\":" + entry("\"U8\"", "[9223372036854775808]", "[0,8]") + "}", kData8),
       "non-negative integer"},
      {"HugeShapeTinyData",
       make_file("{\"a\":" + entry("\"F32\"", "[1099511627776]", "[0,8]") + "}", kData8),
       "mismatch"},
      {"ShapeProductOverflows",
       make_file("{\"a\":" + entry("\"U8\"", "[4294967296,4294967296]", "[0,8]") + "}", kData8),
       "overflow"},
      {"ShapeProductOverflowsDespiteZero",
       make_file("{\"a\":" + entry("\"U8\"", "[0,4294967296,4294967296]", "[0,0]") + "}"),
       "overflow"},
      {"ByteSizeOverflows",
       make_file("{\"a\":" + entry("\"F32\"", "[4611686018427387904]", "[0,8]") + "}", kData8),
       "overflow"},
      {"TooManyDims", make_file("{\"a\":" + entry("\"U8\"", wide_shape, "[0,1]") + "}", "x"),
       "dimensions"},
      {"MissingOffsets", make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", kData8),
       "missing \"data_offsets\""},
      {"OffsetsNotArray", make_file("{\"a\":" + entry("\"F32\"", "[2]", "8") + "}", kData8),
       "data_offsets"},
      {"OneOffset", make_file("{\"a\":" + entry("\"F32\"", "[2]", "[8]") + "}", kData8),
       "data_offsets"},
      {"ThreeOffsets", make_file("{\"a\":" + entry("\"F32\"", "[2]", "[0,8,8]") + "}", kData8),
       "data_offsets"},
      {"NegativeOffset", make_file("{\"a\":" + entry("\"F32\"", "[2]", "[-8,0]") + "}", kData8),
       "data_offsets"},
      {"FloatOffset", make_file("{\"a\":" + entry("\"F32\"", "[2]", "[0,8.0]") + "}", kData8),
       "data_offsets"},
      {"OffsetBeyondU64",
       make_file("{\"a\":" + entry("\"F32\"", "[2]", "[0,18446744073709551624]") + "}", kData8),
       "data_offsets"},
      {"BeginAfterEnd", make_file("{\"a\":" + entry("\"F32\"", "[0]", "[8,0]") + "}", kData8),
       "begin > end"},
      {"EndBeyondData", make_file("{\"a\":" + kF32x2 + "}", "1234"), "beyond"},
      {"HugeEnd",
       make_file(
           "{\"a\":" + entry("\"F32\"", "[2]", "[18446744073709551608,18446744073709551615]") + "}",
           kData8),
       "beyond"},
      {"ByteSizeMismatch", make_file("{\"a\":" + entry("\"F32\"", "[3]", "[0,8]") + "}", kData8),
       "mismatch"},
      {"BoolByteNotZeroOrOne",
       make_file("{\"a\":" + entry("\"BOOL\"", "[3]", "[0,3]") + "}",
                 std::string("\x01\x00\x02", 3)),
       "BOOL"},
  };
}

std::vector<Malformed> layout_cases() {
  return {
      {"Overlap",
       make_file("{\"a\":" + kF32x2 + ",\"b\":" + entry("\"F32\"", "[2]", "[4,12]") + "}",
                 std::string(12, '\0')),
       "overlap"},
      {"SameRegionTwice", make_file("{\"a\":" + kF32x2 + ",\"b\":" + kF32x2 + "}", kData8),
       "overlap"},
      {"Gap",
       make_file("{\"a\":" + entry("\"F32\"", "[1]", "[0,4]") +
                     ",\"b\":" + entry("\"F32\"", "[1]", "[8,12]") + "}",
                 std::string(12, '\0')),
       "gap"},
      {"GapAtStart", make_file("{\"a\":" + entry("\"F32\"", "[1]", "[4,8]") + "}", kData8), "gap"},
      {"TrailingBytes", make_file("{\"a\":" + entry("\"F32\"", "[1]", "[0,4]") + "}", kData8),
       "trailing"},
      {"DataWithoutTensors", make_file("{}", "x"), "trailing"},
  };
}

std::vector<Malformed> metadata_cases() {
  return {
      {"MetadataIsArray", make_file("{\"__metadata__\":[\"a\"]}"), "__metadata__"},
      {"MetadataIsString", make_file("{\"__metadata__\":\"a\"}"), "__metadata__"},
      {"MetadataValueIsNumber", make_file("{\"__metadata__\":{\"k\":1}}"), "__metadata__"},
      {"MetadataValueIsObject", make_file("{\"__metadata__\":{\"k\":{}}}"), "__metadata__"},
      {"MetadataValueIsNull", make_file("{\"__metadata__\":{\"k\":null}}"), "__metadata__"},
  };
}

void expect_all_rejected(const std::vector<Malformed>& cases) {
  for (const Malformed& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string msg = error_of([&] { from_safetensors_bytes(c.bytes, kSource); });
    EXPECT_NE(msg.find("from_safetensors_bytes"), std::string::npos) << msg;
    EXPECT_NE(msg.find(kSource), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.word), std::string::npos) << "wanted \"" << c.word << "\" in: " << msg;
  }
}

// One ctest entry per group rather than per case: each entry is a process that loads libtorch.
TEST(Malformed, LengthPrefix) { expect_all_rejected(length_prefix_cases()); }
TEST(Malformed, Json) { expect_all_rejected(json_cases()); }
TEST(Malformed, Entries) { expect_all_rejected(entry_cases()); }
TEST(Malformed, Layout) { expect_all_rejected(layout_cases()); }
TEST(Malformed, Metadata) { expect_all_rejected(metadata_cases()); }

// What the reader accepts that a stricter reading might not: extra entry fields are ignored and
// a null "__metadata__" means none, as in the reference implementation.
TEST(Reader, AcceptsExtraFieldsAndNullMetadataAndPaddingAndOutOfOrderHeader) {
  const std::string header = "{\"__metadata__\":null,\"b\":" + entry("\"U8\"", "[2]", "[1,3]") +
                             ",\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],"
                             "\"extra\":{\"nested\":[1,2,3]}}}    ";
  SafetensorsFile f = from_safetensors_bytes(make_file(header, "xyz"), kSource);
  EXPECT_TRUE(f.metadata.empty());
  // File order is data order.
  EXPECT_EQ(f.tensors.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(bytes_of(f.tensors.at("a")), "x");
  EXPECT_EQ(bytes_of(f.tensors.at("b")), "yz");
}

TEST(Reader, AcceptsZeroSizedTensorsAnywhere) {
  const std::string header = "{\"e1\":" + entry("\"F32\"", "[0,5]", "[0,0]") +
                             ",\"a\":" + entry("\"U8\"", "[2]", "[0,2]") +
                             ",\"e2\":" + entry("\"I64\"", "[3,0]", "[2,2]") + "}";
  SafetensorsFile f = from_safetensors_bytes(make_file(header, "ab"), kSource);
  EXPECT_EQ(f.tensors.size(), 3);
  EXPECT_EQ(f.tensors.at("e2").sizes(), at::IntArrayRef({3, 0}));
}

TEST(Reader, DecodesJsonEscapesInNames) {
  const std::string header =
      "{\"gr\\u00f6\\u00dfe.\\u00e9\\ud834\\udd1e\":" + entry("\"U8\"", "[1]", "[0,1]") + "}";
  SafetensorsFile f = from_safetensors_bytes(make_file(header, "q"), kSource);
  EXPECT_TRUE(f.tensors.contains(kUnicodeName));
}

// ---------------------------------------------------------------------------------------------
// Fuzz: whatever the bytes, from_safetensors_bytes returns or throws strata::Error.

class Fuzzer {
 public:
  explicit Fuzzer(uint32_t seed) : rng_(seed) {
    for (int k = 0; k < 6; ++k) {
      TensorMap m;
      const int count = pick(0, 4);
      for (int i = 0; i < count; ++i) {
        const auto type = all_dtypes()[static_cast<size_t>(pick(0, 9))];
        std::vector<int64_t> shape;
        for (int d = pick(0, 3); d > 0; --d) shape.push_back(pick(0, 4));
        m.insert("t" + std::to_string(i), pattern(type, shape));
      }
      std::map<std::string, std::string> meta;
      if (pick(0, 1)) meta["k" + std::to_string(k)] = "value";
      seeds_.push_back(to_safetensors_bytes(m, meta));
    }
  }

  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  // One input, and a word on how it was made.
  std::pair<std::string, const char*> next() {
    std::string s = seeds_[static_cast<size_t>(pick(0, static_cast<int>(seeds_.size()) - 1))];
    switch (pick(0, 8)) {
      case 0: {
        for (int n = pick(1, 8); n > 0 && !s.empty(); --n)
          s[pos(s)] = static_cast<char>(pick(0, 255));
        return {s, "flip bytes"};
      }
      case 1:
        return {s.substr(0, pos(s)), "truncate"};
      case 2: {
        const std::string& other =
            seeds_[static_cast<size_t>(pick(0, static_cast<int>(seeds_.size()) - 1))];
        return {s.substr(0, pos(s)) + other.substr(pos(other)), "splice"};
      }
      case 3: {
        std::string junk;
        for (int n = pick(1, 16); n > 0; --n) junk.push_back(static_cast<char>(pick(0, 255)));
        s.insert(s.empty() ? 0 : pos(s), junk);
        return {s, "insert bytes"};
      }
      case 4: {
        // Nudge the length prefix.
        uint64_t n = 0;
        for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(s[i]);
        n = pick(0, 3) == 0 ? (uint64_t{1} << pick(0, 63)) : n + pick(-9, 9);
        return {le64(n) + s.substr(8), "length prefix"};
      }
      case 5: {
        // Replace one digit of the header: keeps the JSON valid, moves shapes and offsets.
        uint64_t n = 0;
        for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(s[i]);
        for (int tries = 0; tries < 20; ++tries) {
          const size_t i = 8 + static_cast<size_t>(pick(0, static_cast<int>(n) - 1));
          if (std::isdigit(static_cast<unsigned char>(s[i]))) {
            s[i] = static_cast<char>('0' + pick(0, 9));
            break;
          }
        }
        return {s, "header digit"};
      }
      case 6:
        return {mutate_header(s), "header value"};
      case 7:
        return {random_file(), "random header"};
      default: {
        std::string junk;
        for (int n = pick(0, 40); n > 0; --n) junk.push_back(static_cast<char>(pick(0, 255)));
        return {junk, "random bytes"};
      }
    }
  }

 private:
  size_t pos(const std::string& s) {
    return s.empty() ? 0 : static_cast<size_t>(pick(0, static_cast<int>(s.size()) - 1));
  }

  nlohmann::json random_int() {
    static const std::vector<int64_t> interesting = {0,
                                                     1,
                                                     2,
                                                     3,
                                                     4,
                                                     7,
                                                     8,
                                                     12,
                                                     16,
                                                     -1,
                                                     -8,
                                                     255,
                                                     65536,
                                                     1LL << 31,
                                                     1LL << 32,
                                                     1LL << 40,
                                                     1LL << 53,
                                                     1LL << 62,
                                                     std::numeric_limits<int64_t>::max(),
                                                     std::numeric_limits<int64_t>::min()};
    switch (pick(0, 3)) {
      case 0:
        return std::numeric_limits<uint64_t>::max() - static_cast<uint64_t>(pick(0, 8));
      case 1:
        return pick(0, 64);
      default:
        return interesting[static_cast<size_t>(pick(0, static_cast<int>(interesting.size()) - 1))];
    }
  }

  std::string random_string() {
    static const std::vector<std::string> words = {
        "F32",          "F16",          "BF16", "F64",      "I64", "I32",   "I16",
        "I8",           "U8",           "BOOL", "F8_E5M2",  "",    "dtype", "shape",
        "data_offsets", "__metadata__", "a",    "\xc3\xa9", "t0",  "t1"};
    return words[static_cast<size_t>(pick(0, static_cast<int>(words.size()) - 1))];
  }

  nlohmann::json random_value(int depth) {
    switch (pick(0, depth > 3 ? 4 : 7)) {
      case 0:
        return nullptr;
      case 1:
        return pick(0, 1) == 1;
      case 2:
      case 3:
        return random_int();
      case 4:
        return pick(0, 1) ? 0.5 : -1e300;
      case 5:
        return random_string();
      case 6: {
        auto a = nlohmann::json::array();
        for (int n = pick(0, 4); n > 0; --n) a.push_back(random_value(depth + 1));
        return a;
      }
      default: {
        auto o = nlohmann::json::object();
        for (int n = pick(0, 4); n > 0; --n) o[random_string()] = random_value(depth + 1);
        return o;
      }
    }
  }

  // A mostly well-formed entry with random defects.
  nlohmann::json random_entry() {
    nlohmann::json e = nlohmann::json::object();
    if (pick(0, 9)) e["dtype"] = pick(0, 5) ? nlohmann::json(random_string()) : random_value(2);
    if (pick(0, 9)) {
      auto shape = nlohmann::json::array();
      for (int d = pick(0, 3); d > 0; --d)
        shape.push_back(pick(0, 3) ? nlohmann::json(pick(0, 4)) : random_int());
      e["shape"] = pick(0, 9) ? shape : random_value(2);
    }
    if (pick(0, 9)) {
      const int begin = pick(0, 16);
      e["data_offsets"] =
          pick(0, 5) ? nlohmann::json::array({begin, begin + pick(0, 16)}) : random_value(2);
    }
    if (pick(0, 5) == 0) e[random_string()] = random_value(2);
    return e;
  }

  std::string random_file() {
    nlohmann::json header = nlohmann::json::object();
    for (int n = pick(0, 4); n > 0; --n) {
      header["t" + std::to_string(pick(0, 5))] = pick(0, 4) ? random_entry() : random_value(1);
    }
    if (pick(0, 3) == 0) header["__metadata__"] = random_value(1);
    if (pick(0, 9) == 0) header = random_value(0);
    std::string text = header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    text.append(static_cast<size_t>(pick(0, 7)), ' ');
    std::string data;
    for (int n = pick(0, 40); n > 0; --n) data.push_back(static_cast<char>(pick(0, 2)));
    return make_file(text, data);
  }

  // Replaces, adds or removes one value somewhere in a valid header.
  std::string mutate_header(const std::string& s) {
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(s[i]);
    auto header = nlohmann::ordered_json::parse(s.substr(8, n));
    std::vector<std::string> names;
    for (const auto& [name, info] : header.items()) names.push_back(name);
    const std::string data = s.substr(8 + n);
    if (names.empty()) {
      header["x"] = random_entry();
    } else {
      const std::string& name =
          names[static_cast<size_t>(pick(0, static_cast<int>(names.size()) - 1))];
      auto& target = header[name];
      if (target.is_object() && !target.empty() && pick(0, 3)) {
        std::vector<std::string> fields;
        for (const auto& [field, v] : target.items()) fields.push_back(field);
        const std::string& field =
            fields[static_cast<size_t>(pick(0, static_cast<int>(fields.size()) - 1))];
        if (pick(0, 4) == 0) {
          target.erase(field);
        } else {
          target[field] = random_value(2);
        }
      } else {
        target = random_value(1);
      }
    }
    std::string text = header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    text.append((8 - text.size() % 8) % 8, ' ');
    return make_file(text, data);
  }

  std::mt19937 rng_;
  std::vector<std::string> seeds_;
};

TEST(Fuzz, ReaderOnlyEverThrowsStrataError) {
  Fuzzer fuzzer(20240607);
  int accepted = 0;
  int rejected = 0;
  for (int iteration = 0; iteration < 20000; ++iteration) {
    auto [bytes, how] = fuzzer.next();
    try {
      SafetensorsFile f = from_safetensors_bytes(bytes, "fuzz");
      ++accepted;
      // Whatever was accepted writes back and reads again to the same bytes.
      const std::string again = to_safetensors_bytes(f.tensors, f.metadata);
      SafetensorsFile g = from_safetensors_bytes(again, "fuzz rewrite");
      ASSERT_EQ(to_safetensors_bytes(g.tensors, g.metadata), again) << how << " #" << iteration;
    } catch (const strata::Error& e) {
      ++rejected;
      ASSERT_NE(std::string(e.what()).find("fuzz"), std::string::npos) << e.what();
    } catch (const std::exception& e) {
      FAIL() << how << " #" << iteration << ": not a strata::Error: " << e.what();
    } catch (...) {
      FAIL() << how << " #" << iteration << ": unknown exception";
    }
  }
  // Both outcomes must actually occur, or the fuzzer is not reaching the interesting paths.
  EXPECT_GT(accepted, 400);
  EXPECT_GT(rejected, 4000);
}

// ---------------------------------------------------------------------------------------------
// Cross-checks with the independent Python implementation (tests/python/stio.py).

constexpr const char* kPython = "/usr/bin/python3";
// write_samples.py exits with this when numpy or torch is missing; the shell says 127 when
// /usr/bin/python3 itself is.
constexpr int kNoPython = 77;
constexpr int kNoInterpreter = 127;

int run(const std::string& command) {
  const int status = std::system(command.c_str());
  return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int run_script(const std::string& mode, const std::string& arg, const std::string& redirect = "") {
  const std::string script = std::string(STRATA_SOURCE_DIR) + "/tests/io/write_samples.py";
  return run(std::string(kPython) + " '" + script + "' " + mode + " '" + arg + "'" + redirect);
}

// Python writes its samples once for the whole suite (starting Python with torch takes seconds).
class Python : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    write_status_ = run_script("write", dir_->path());
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (write_status_ == kNoPython || write_status_ == kNoInterpreter) {
      GTEST_SKIP() << kPython << " with numpy and torch is needed for this cross-check";
    }
    ASSERT_EQ(write_status_, 0) << "write_samples.py write failed";
  }
  static std::string sample(const std::string& name) { return dir_->file(name); }

  static TempDir* dir_;
  static int write_status_;
};

TempDir* Python::dir_ = nullptr;
int Python::write_status_ = -1;

TEST_F(Python, CppReadsWhatStioWrote) {
  SafetensorsFile f = strata::load_safetensors(sample("samples.safetensors"));
  EXPECT_TRUE(same_map(f.tensors, expected_samples()));
  EXPECT_EQ(f.metadata, kSampleMetadata);

  SafetensorsFile u = strata::load_safetensors(sample("unicode.safetensors"));
  ASSERT_TRUE(u.tensors.contains(kUnicodeName));
  EXPECT_TRUE(same_tensor(u.tensors.at(kUnicodeName), from_int64s({1, 2, 3}, at::kByte, {3})));
  const std::map<std::string, std::string> meta = {{"note", "na\u00efve \u2603 \U0001D11E"},
                                                   {"plain", "x"}};
  EXPECT_EQ(u.metadata, meta);
}

TEST_F(Python, CppWritesTheSameBytesAsStio) {
  EXPECT_EQ(to_safetensors_bytes(expected_samples(), kSampleMetadata),
            read_file(sample("samples.safetensors")));
}

TEST_F(Python, StioAndNumpyReadWhatCppWrote) {
  TempDir dir;
  TensorMap m = expected_samples();
  m.insert("f32_t", m.at("f32").transpose(0, 2));  // written from a non-contiguous view
  m.insert("scalar", at::scalar_tensor(3.5, at::kFloat));
  const std::string path = dir.file("from_cpp.safetensors");
  strata::save_safetensors(path, m, kSampleMetadata);
  EXPECT_EQ(run_script("check", path), 0);

  // And the check does fail on a wrong value, so a pass above means something.
  TensorMap wrong = expected_samples();
  wrong.insert("i8", from_int64s({-124, -93, -62, -31, 0, 31, 62, 93, 123}, at::kChar, {9}));
  wrong.insert("f32_t", m.at("f32_t"));
  wrong.insert("scalar", m.at("scalar"));
  strata::save_safetensors(path, wrong, kSampleMetadata);
  EXPECT_EQ(run_script("check", path, " 2>/dev/null"), 1);
}

}  // namespace
