// Selecting hook points by name. A pattern is an exact name, a glob, or a regular expression:
//   "blocks.3.attn"        exactly that module (all its calls and tuple elements)
//   "blocks.*.attn"        glob: `*` any run of characters (dots included), `?` one, [abc] a class
//   "re:blocks\.[0-2]\..*" ECMAScript regular expression over the whole name
// A pattern matches a hook point when it matches the module name or the full key
// ("blocks.0.attn:1", "lin@1") or the key with its call spelled out ("lin@0" = only the first
// call), so single tuple elements and single calls can be chosen too.
#pragma once

#include <memory>
#include <regex>
#include <string>

#include <strata/capture/hook_point.h>

namespace strata {

/// True when `text` matches the glob `pattern` (fnmatch-style, `*` also crosses dots).
bool glob_match(const std::string& pattern, const std::string& text);

/// A compiled name pattern (exact, glob, or "re:" regex).
class Pattern {
 public:
  /// Compiles `text`; a bad regex throws strata::Error naming it.
  explicit Pattern(std::string text);
  /// True when the pattern matches `name` as a whole.
  bool matches(const std::string& name) const;
  /// Selection rule used everywhere (captures, edits, analyzers): an output point is selected
  /// when `which` covers outputs and the pattern matches its module name, key or explicit key;
  /// an input point when `which` covers inputs and the pattern matches its module name, or when
  /// the pattern itself names input keys (contains ":in:") and matches the key.
  bool selects(const HookPoint& point, Which which) const;
  /// The part that names modules: the text before the first ':' or '@' ("blocks.*.attn" for
  /// "blocks.*.attn:1"); a regex as a whole.
  std::string module_part() const;
  /// The pattern as written.
  const std::string& text() const { return text_; }
  /// True for a pattern with no glob or regex syntax (an exact name).
  bool is_exact() const { return kind_ == Kind::Exact; }

 private:
  enum class Kind { Exact, Glob, Regex };
  std::string text_;
  Kind kind_;
  std::shared_ptr<std::regex> regex_;
};

}  // namespace strata
