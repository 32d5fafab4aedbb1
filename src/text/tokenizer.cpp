// llama2.c tokenizer: file reading, encode and decode with run.c's rules.
//
// run.c merges by rescanning every adjacent pair after each merge (quadratic in the text
// length). We get the same result from a heap of candidate pairs ordered by (score descending,
// position ascending) over a linked list of tokens: that is exactly run.c's choice at each step
// (the best score, the leftmost pair on ties), and long texts stay fast.
#include <strata/core/error.h>
#include <strata/text/tokenizer.h>
#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <queue>

namespace strata {
namespace {

// run.c starts its search for the best merge at this score and only takes strictly better
// ones, so pieces scored at or below it never merge.
constexpr float kNoMergeScore = -1e10f;

std::string read_file(const std::string& path) {
  struct stat st {};
  STRATA_CHECK(::stat(path.c_str(), &st) == 0, "Tokenizer::load: no such file: '", path, "'");
  STRATA_CHECK(!S_ISDIR(st.st_mode), "Tokenizer::load: '", path,
               "' is a directory, expected a llama2.c tokenizer file");
  std::ifstream in(path, std::ios::binary);
  STRATA_CHECK(in, "Tokenizer::load: cannot open '", path, "': ", std::strerror(errno));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Little-endian (the format's and every platform LibTorch supports) fixed-size reads.
int32_t read_i32(const std::string& data, size_t offset) {
  int32_t v;
  std::memcpy(&v, data.data() + offset, sizeof v);
  return v;
}

float read_f32(const std::string& data, size_t offset) {
  float v;
  std::memcpy(&v, data.data() + offset, sizeof v);
  return v;
}

// The byte a piece "<0xXX>" stands for, or -1.
int byte_of_piece(const std::string& piece) {
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return -1;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  int hi = hex(piece[3]), lo = hex(piece[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

bool is_continuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

}  // namespace

Tokenizer Tokenizer::load(const std::string& path) {
  const std::string data = read_file(path);
  Tokenizer t;
  t.path_ = path;
  STRATA_CHECK(data.size() >= 4, "Tokenizer::load: '", path, "' is truncated: ", data.size(),
               " bytes, too short for the 4-byte max_token_length header");
  t.max_token_length_ = read_i32(data, 0);
  STRATA_CHECK(t.max_token_length_ > 0, "Tokenizer::load: '", path,
               "' is not a llama2.c tokenizer file: max_token_length is ", t.max_token_length_);

  size_t pos = 4;
  while (pos < data.size()) {
    const int64_t id = static_cast<int64_t>(t.pieces_.size());
    STRATA_CHECK(data.size() - pos >= 8, "Tokenizer::load: '", path, "' is truncated: token ", id,
                 " at byte ", pos, " needs an 8-byte score and length, only ", data.size() - pos,
                 " bytes left");
    const float score = read_f32(data, pos);
    const int64_t len = read_i32(data, pos + 4);
    pos += 8;
    STRATA_CHECK(len >= 0 && len <= t.max_token_length_, "Tokenizer::load: '", path, "': token ",
                 id, " has length ", len, ", outside 0..", t.max_token_length_,
                 " (the file's max_token_length)");
    STRATA_CHECK(data.size() - pos >= static_cast<size_t>(len), "Tokenizer::load: '", path,
                 "' is truncated: token ", id, " needs ", len, " bytes at byte ", pos, ", only ",
                 data.size() - pos, " left");
    t.pieces_.emplace_back(data, pos, static_cast<size_t>(len));
    t.scores_.push_back(score);
    t.ids_.emplace(t.pieces_.back(), id);  // keeps the first id of a repeated piece
    pos += static_cast<size_t>(len);
  }
  STRATA_CHECK(t.pieces_.size() >= 3, "Tokenizer::load: '", path, "' holds ", t.pieces_.size(),
               " tokens; a llama2.c tokenizer needs at least <unk>, BOS and EOS");
  return t;
}

void Tokenizer::check_id(const char* caller, int64_t id) const {
  STRATA_CHECK(id >= 0 && id < vocab_size(), "Tokenizer::", caller, ": token id ", id,
               " is out of range for a vocabulary of ", vocab_size(), " tokens");
}

std::string Tokenizer::piece(int64_t id) const {
  check_id("piece", id);
  return pieces_[static_cast<size_t>(id)];
}

float Tokenizer::score(int64_t id) const {
  check_id("score", id);
  return scores_[static_cast<size_t>(id)];
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool bos, bool eos) const {
  auto lookup = [this](const std::string& s) -> int64_t {
    auto it = ids_.find(s);
    return it == ids_.end() ? -1 : it->second;
  };

  std::vector<int64_t> ids;
  ids.reserve(text.size() + 3);
  if (bos) ids.push_back(this->bos());
  if (!text.empty()) {
    const int64_t space = lookup(" ");
    STRATA_CHECK(space >= 0, "Tokenizer::encode: '", path_,
                 "' has no \" \" piece for the dummy prefix");
    ids.push_back(space);
  }

  // Whole code points (a byte plus up to three continuation bytes) when the vocabulary has
  // them, else one byte token each.
  for (size_t i = 0; i < text.size();) {
    size_t n = 1;
    while (n < 4 && i + n < text.size() && is_continuation(text[i + n])) ++n;
    const std::string unit = text.substr(i, n);
    const int64_t id = lookup(unit);
    if (id >= 0) {
      ids.push_back(id);
    } else {
      for (unsigned char byte : unit) {
        const int64_t byte_id = static_cast<int64_t>(byte) + 3;
        STRATA_CHECK(byte_id < vocab_size(), "Tokenizer::encode: byte 0x", std::hex,
                     static_cast<int>(byte), std::dec, " needs byte token ", byte_id, " but '",
                     path_, "' has only ", vocab_size(), " tokens");
        ids.push_back(byte_id);
      }
    }
    i += n;
  }

  // Greedy merges over a doubly linked list; node k keeps its position k, so comparing node
  // indices compares positions.
  const int n = static_cast<int>(ids.size());
  std::vector<int> prev(n), next(n), version(n, 0);
  std::vector<bool> alive(n, true);
  for (int k = 0; k < n; ++k) {
    prev[k] = k - 1;
    next[k] = k + 1 < n ? k + 1 : -1;
  }
  struct Candidate {
    float score;
    int left, right;
    int left_version, right_version;
    int64_t merged;
  };
  auto worse = [](const Candidate& a, const Candidate& b) {
    if (a.score != b.score) return a.score < b.score;
    return a.left > b.left;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)> heap(worse);
  auto consider = [&](int left) {
    if (left < 0) return;
    const int right = next[left];
    if (right < 0) return;
    const int64_t merged = lookup(pieces_[ids[left]] + pieces_[ids[right]]);
    if (merged < 0 || !(scores_[merged] > kNoMergeScore)) return;
    heap.push({scores_[merged], left, right, version[left], version[right], merged});
  };
  for (int k = 0; k + 1 < n; ++k) consider(k);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    if (!alive[c.left] || !alive[c.right] || next[c.left] != c.right ||
        version[c.left] != c.left_version || version[c.right] != c.right_version) {
      continue;  // stale: one side has merged since
    }
    ids[c.left] = c.merged;
    ++version[c.left];
    alive[c.right] = false;
    next[c.left] = next[c.right];
    if (next[c.left] >= 0) prev[next[c.left]] = c.left;
    consider(prev[c.left]);
    consider(c.left);
  }

  std::vector<int64_t> out;
  out.reserve(ids.size() + 1);
  for (int k = n > 0 ? 0 : -1; k >= 0; k = next[k]) out.push_back(ids[k]);
  if (eos) out.push_back(this->eos());
  return out;
}

std::string Tokenizer::decode(int64_t prev_token, int64_t token) const {
  check_id("decode", token);
  const std::string& p = pieces_[static_cast<size_t>(token)];
  const size_t skip = prev_token == bos() && !p.empty() && p[0] == ' ' ? 1 : 0;
  const int byte = byte_of_piece(p.substr(skip));
  if (byte >= 0) return std::string(1, static_cast<char>(byte));
  return p.substr(skip);
}

std::string Tokenizer::decode(const std::vector<int64_t>& tokens) const {
  std::string text;
  int64_t prev = -1;
  for (int64_t token : tokens) {
    check_id("decode", token);
    if (token != bos() && token != eos()) text += decode(prev, token);
    prev = token;
  }
  return text;
}

}  // namespace strata
