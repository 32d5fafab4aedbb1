// Tokenizer on llama2.c's tok512.bin (../shared/models/stories260K): encodings checked against
// an independent Python implementation (tests/text/llama2c_tokenizer.py), round trips, and
// errors for bad files and ids.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <strata/core/error.h>
#include <strata/text/tokenizer.h>
#include "scratch.h"
#include "stories260k.h"
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace strata {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string stories260k(const std::string& file) { return testing::stories260k_file(file); }

const Tokenizer& tok512() {
  static const Tokenizer t = Tokenizer::load(stories260k("tok512.bin"));
  return t;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no strata::Error>";
}

std::string temp_path(const std::string& name) { return testing::scratch_path(name); }

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string to_hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

// Runs the Python reference encoder on `texts` and returns its ids (BOS, no EOS).
std::vector<std::vector<int64_t>> python_encode(const std::vector<std::string>& texts) {
  nlohmann::json hex = nlohmann::json::array();
  for (const auto& t : texts) hex.push_back(to_hex(t));
  const std::string input = temp_path("texts.json");
  write_file(input, hex.dump());
  const std::string cmd = std::string(STRATA_PYTHON) + " " + STRATA_SOURCE_DIR +
                          "/tests/text/llama2c_tokenizer.py " + stories260k("tok512.bin") + " " +
                          input;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run " + cmd);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int status = ::pclose(pipe);
  if (status != 0)
    throw std::runtime_error("failed (status " + std::to_string(status) + "): " + cmd);
  return nlohmann::json::parse(out).get<std::vector<std::vector<int64_t>>>();
}

// Texts whose encodings the Python reference must agree with.
std::vector<std::string> sample_texts() {
  std::vector<std::string> texts = {
      "",
      "Once upon a time",
      "Once upon a time, there was a little girl named Lily.",
      "Hello, world!",
      "  two leading spaces",
      "trailing spaces   ",
      "tab\there\nnew line\n\nand a blank one",
      "Lily's mom said, \"Let's go to the park.\"",
      "1234567890 + 42 = 1234567932",
      "caf\xc3\xa9 na\xc3\xafve r\xc3\xa9sum\xc3\xa9",  // é ï: 2-byte code points
      "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",           // 日本語: 3 bytes each
      "smile \xf0\x9f\x99\x82 thumbs \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd",  // 4-byte emoji
      std::string("nul\0byte", 8),
      "\x80stray continuation",
      "lead without continuation \xc3",
      "\xe2\x82",                                           // truncated 3-byte sequence
      "\xf0\x9f\x99\x82\x80\x80 extra continuation bytes",  // 4 + 2 continuations
      "\xff\xfe invalid bytes",
      "xlllx zooox yppp",  // equal-score merges ("ll", "oo", "pp"): the leftmost pair goes first
  };
  // Random texts: words, punctuation and a few multi-byte characters, deterministic.
  std::mt19937 rng(20240607);
  const std::string ascii = "aeioutnhsrldmby   ,.!\nTOL'";
  const std::vector<std::string> wide = {"\xc3\xa9", "\xe2\x80\x94", "\xf0\x9f\x98\x80"};
  for (int k = 0; k < 30; ++k) {
    std::string t;
    const int len = 1 + static_cast<int>(rng() % 120);
    for (int i = 0; i < len; ++i) {
      const size_t pick = rng() % (ascii.size() + wide.size());
      t += pick < ascii.size() ? std::string(1, ascii[pick]) : wide[pick - ascii.size()];
    }
    texts.push_back(t);
  }
  // A longer real-looking text, so that many merges compete.
  std::string story;
  for (int i = 0; i < 4; ++i) {
    story +=
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
        "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high. ";
  }
  texts.push_back(story);
  return texts;
}

TEST(Tokenizer, LoadsTok512) {
  const Tokenizer& t = tok512();
  EXPECT_EQ(t.vocab_size(), 512);
  EXPECT_EQ(t.max_token_length(), 7);
  EXPECT_EQ(t.bos(), 1);
  EXPECT_EQ(t.eos(), 2);
  EXPECT_EQ(t.piece(0), "<unk>");
  EXPECT_EQ(t.piece(1), "\n<s>\n");
  EXPECT_EQ(t.piece(2), "\n</s>\n");
  EXPECT_EQ(t.piece(3), "<0x00>");
  EXPECT_EQ(t.piece(258), "<0xFF>");
  EXPECT_EQ(t.piece(259), " t");
  EXPECT_EQ(t.score(260), -1.0f);
}

TEST(Tokenizer, EncodesLikeTheReferenceImplementation) {
  const std::vector<std::string> texts = sample_texts();
  const auto expected = python_encode(texts);
  ASSERT_EQ(expected.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    SCOPED_TRACE("text #" + std::to_string(i) + " (hex " + to_hex(texts[i]).substr(0, 80) + ")");
    EXPECT_EQ(tok512().encode(texts[i]), expected[i]);
  }
}

TEST(Tokenizer, KnownEncoding) {
  // Fixed here as well, so that a change of both implementations cannot go unnoticed.
  EXPECT_EQ(tok512().encode("Once upon a time"), (std::vector<int64_t>{1, 403, 407, 261, 378}));
  EXPECT_EQ(tok512().encode(""), (std::vector<int64_t>{1}));
  EXPECT_EQ(tok512().encode("", false, false), (std::vector<int64_t>{}));
  EXPECT_EQ(tok512().encode("", true, true), (std::vector<int64_t>{1, 2}));
}

TEST(Tokenizer, BosAndEosFlags) {
  const Tokenizer& t = tok512();
  for (const std::string text : {"Once upon a time", "a big, red ball"}) {
    std::vector<int64_t> with_bos = t.encode(text);
    ASSERT_EQ(with_bos.front(), 1);
    std::vector<int64_t> plain(with_bos.begin() + 1, with_bos.end());
    EXPECT_EQ(t.encode(text, false, false), plain);
    plain.push_back(2);
    EXPECT_EQ(t.encode(text, false, true), plain);
  }
}

TEST(Tokenizer, ByteFallbackForUnknownCharacters) {
  // 日 (e6 97 a5) is not among the 512 pieces: three byte tokens, id = byte + 3.
  const std::vector<int64_t> ids = tok512().encode("\xe6\x97\xa5");
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_EQ(tok512().piece(ids[1]), " ");
  EXPECT_EQ(ids[2], 0xe6 + 3);
  EXPECT_EQ(ids[3], 0x97 + 3);
  EXPECT_EQ(ids[4], 0xa5 + 3);
  EXPECT_EQ(tok512().piece(ids[2]), "<0xE6>");
}

TEST(Tokenizer, RoundTripsAsciiAndNonAsciiText) {
  const Tokenizer& t = tok512();
  for (const std::string& text : sample_texts()) {
    SCOPED_TRACE("text (hex " + to_hex(text).substr(0, 80) + ")");
    EXPECT_EQ(t.decode(t.encode(text)), text);
    EXPECT_EQ(t.decode(t.encode(text, true, true)), text);
    // Without BOS the dummy-prefix space is not dropped, as in run.c.
    if (!text.empty()) EXPECT_EQ(t.decode(t.encode(text, false, false)), " " + text);
  }
}

TEST(Tokenizer, DecodeFollowsRunC) {
  const Tokenizer& t = tok512();
  EXPECT_EQ(t.decode(1, 259), "t");  // " t" after BOS loses its space
  EXPECT_EQ(t.decode(300, 259), " t");
  EXPECT_EQ(t.decode(-1, 259), " t");      // prev is only compared with BOS
  EXPECT_EQ(t.decode(1, 0x0A + 3), "\n");  // <0x0A>
  EXPECT_EQ(t.decode(1, 0x20 + 3), " ");   // a byte token keeps its space after BOS
  EXPECT_EQ(t.decode(1, 3), std::string(1, '\0'));
  EXPECT_EQ(t.decode(1, 1), "\n<s>\n");  // a lone pair shows the raw piece
  EXPECT_EQ(t.decode(std::vector<int64_t>{1, 403, 407, 261, 378, 2}), "Once upon a time");
  EXPECT_EQ(t.decode(std::vector<int64_t>{}), "");
}

TEST(Tokenizer, BadIdsNameTheIdAndVocabularySize) {
  const Tokenizer& t = tok512();
  EXPECT_THAT(error_of([&] { t.piece(512); }),
              HasSubstr("Tokenizer::piece: token id 512 is out of range for a vocabulary of 512"));
  EXPECT_THAT(error_of([&] { t.piece(-1); }), HasSubstr("token id -1 is out of range"));
  EXPECT_THAT(error_of([&] { t.score(9999); }), HasSubstr("token id 9999"));
  EXPECT_THAT(error_of([&] { t.decode(1, 600); }),
              HasSubstr("Tokenizer::decode: token id 600 is out of range for a vocabulary of 512"));
  EXPECT_THAT(error_of([&] {
                t.decode(std::vector<int64_t>{1, 5, 512});
              }),
              HasSubstr("token id 512"));
}

TEST(Tokenizer, MissingAndTruncatedFilesGiveClearErrors) {
  EXPECT_THAT(error_of([] { Tokenizer::load("/nonexistent/tok.bin"); }),
              HasSubstr("Tokenizer::load: no such file: '/nonexistent/tok.bin'"));
  EXPECT_THAT(error_of([] { Tokenizer::load(fs::temp_directory_path().string()); }),
              HasSubstr("is a directory"));

  const std::string good = read_file(stories260k("tok512.bin"));
  const std::string empty = temp_path("empty.bin");
  write_file(empty, "");
  EXPECT_THAT(error_of([&] { Tokenizer::load(empty); }),
              HasSubstr("'" + empty + "' is truncated: 0 bytes"));

  // Cut inside token 0's score/length, and inside token 511's bytes.
  const std::string cut_header = temp_path("cut_header.bin");
  write_file(cut_header, good.substr(0, 4 + 5));
  EXPECT_THAT(error_of([&] { Tokenizer::load(cut_header); }),
              HasSubstr("'" + cut_header + "' is truncated: token 0 at byte 4 needs an 8-byte"));
  const std::string cut_piece = temp_path("cut_piece.bin");
  write_file(cut_piece, good.substr(0, good.size() - 1));
  EXPECT_THAT(error_of([&] { Tokenizer::load(cut_piece); }),
              HasSubstr("'" + cut_piece + "' is truncated: token 511 needs"));
}

TEST(Tokenizer, LengthsOutOfRangeAreRejected) {
  auto i32 = [](int32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); };
  auto f32 = [](float v) { return std::string(reinterpret_cast<const char*>(&v), 4); };
  const std::string three =
      f32(0) + i32(5) + "<unk>" + f32(0) + i32(3) + "<s>" + f32(0) + i32(4) + "</s>";

  const std::string ok = temp_path("ok.bin");
  write_file(ok, i32(5) + three);
  const Tokenizer t = Tokenizer::load(ok);
  EXPECT_EQ(t.vocab_size(), 3);
  // No " " piece: encoding text cannot add the dummy prefix.
  EXPECT_THAT(error_of([&] { t.encode("x"); }), HasSubstr("no \" \" piece"));

  const std::string too_long = temp_path("too_long.bin");
  write_file(too_long, i32(4) + three);
  EXPECT_THAT(error_of([&] { Tokenizer::load(too_long); }),
              HasSubstr("'" + too_long + "': token 0 has length 5, outside 0..4"));
  const std::string negative = temp_path("negative.bin");
  write_file(negative, i32(5) + f32(0) + i32(-3) + "abc");
  EXPECT_THAT(error_of([&] { Tokenizer::load(negative); }),
              HasSubstr("token 0 has length -3, outside 0..5"));
  const std::string zero_max = temp_path("zero_max.bin");
  write_file(zero_max, i32(0) + three);
  EXPECT_THAT(error_of([&] { Tokenizer::load(zero_max); }), HasSubstr("max_token_length is 0"));
  const std::string two = temp_path("two.bin");
  write_file(two, i32(5) + f32(0) + i32(1) + "a" + f32(0) + i32(1) + "b");
  EXPECT_THAT(error_of([&] { Tokenizer::load(two); }), HasSubstr("holds 2 tokens"));
}

}  // namespace
}  // namespace strata
