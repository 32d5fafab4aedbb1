// Tokenizer reads a llama2.c tokenizer file (tok512.bin, tokenizer.bin) and turns text into
// token ids and back with the rules of llama2.c's run.c: a dummy-prefix space, UTF-8 code points
// looked up whole, unknown bytes as <0xXX> byte tokens, then greedy byte-pair merges by score.
//
//   auto tok = strata::Tokenizer::load("tok512.bin");
//   std::vector<int64_t> ids = tok.encode("Once upon a time");  // {1, 403, 407, 261, 378}
//   std::string text = tok.decode(ids);                          // "Once upon a time"
//
// The file holds an int32 max_token_length, then for each token a float32 merge score, an int32
// byte length and the bytes. Its token count is whatever the file holds. Ids 0, 1, 2 are
// <unk>, BOS and EOS; ids 3..258 are the byte tokens <0x00>..<0xFF>.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace strata {

/// A llama2.c (SentencePiece-derived) BPE tokenizer.
class Tokenizer {
 public:
  /// Reads a llama2.c tokenizer file; errors name the path and what is wrong (missing,
  /// truncated, a token length out of range).
  static Tokenizer load(const std::string& path);

  /// Token ids for `text` (UTF-8 bytes; any byte sequence is accepted): BOS first when `bos`,
  /// the dummy-prefix " " when the text is not empty, EOS last when `eos`.
  std::vector<int64_t> encode(const std::string& text, bool bos = true, bool eos = false) const;

  /// The text of `token` following `prev_token`, as run.c prints it: after BOS the piece's
  /// leading space is dropped; a byte token <0xXX> gives that one raw byte.
  std::string decode(int64_t prev_token, int64_t token) const;
  /// The text of a whole sequence: decode(previous id, id) for each id, BOS and EOS giving no
  /// text. So decode(encode(text)) == text; without BOS the dummy-prefix space stays.
  std::string decode(const std::vector<int64_t>& tokens) const;

  /// Number of tokens in the file.
  int64_t vocab_size() const { return static_cast<int64_t>(pieces_.size()); }
  /// The raw piece of `id` (e.g. " upon", "<0x0A>").
  std::string piece(int64_t id) const;
  /// The merge score of `id` (higher merges first).
  float score(int64_t id) const;
  /// Longest piece in bytes, as the file's header states.
  int64_t max_token_length() const { return max_token_length_; }
  /// Beginning-of-sequence id.
  int64_t bos() const { return 1; }
  /// End-of-sequence id.
  int64_t eos() const { return 2; }

 private:
  Tokenizer() = default;
  void check_id(const char* caller, int64_t id) const;

  std::string path_;
  int64_t max_token_length_ = 0;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int64_t> ids_;  // piece -> lowest id with that piece
};

}  // namespace strata
