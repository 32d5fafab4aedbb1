#include <strata/capture/pattern.h>

#include <strata/capture/hook_point.h>
#include <strata/core/error.h>

namespace strata {

namespace {
// Matches a [...] class starting at pattern[p] (just after '['); sets `end` past the ']'.
bool match_class(const std::string& pat, size_t p, char c, size_t& end) {
  bool negate = false;
  if (p < pat.size() && (pat[p] == '!' || pat[p] == '^')) {
    negate = true;
    ++p;
  }
  bool found = false;
  bool first = true;
  while (p < pat.size() && (first || pat[p] != ']')) {
    first = false;
    char lo = pat[p];
    if (p + 2 < pat.size() && pat[p + 1] == '-' && pat[p + 2] != ']') {
      if (c >= lo && c <= pat[p + 2]) found = true;
      p += 3;
    } else {
      if (c == lo) found = true;
      ++p;
    }
  }
  end = p < pat.size() ? p + 1 : std::string::npos;  // npos: unterminated class
  return found != negate;
}
}  // namespace

bool glob_match(const std::string& pat, const std::string& text) {
  // Iterative matcher with single-star backtracking: linear in practice, never exponential.
  size_t p = 0, t = 0, star_p = std::string::npos, star_t = 0;
  while (t < text.size()) {
    if (p < pat.size() && pat[p] == '*') {
      star_p = p++;
      star_t = t;
      continue;
    }
    if (p < pat.size() && pat[p] == '[') {
      size_t end = 0;
      bool ok = match_class(pat, p + 1, text[t], end);
      if (end == std::string::npos) {  // unterminated: treat '[' literally
        ok = text[t] == '[';
        end = p + 1;
      }
      if (ok) {
        p = end;
        ++t;
        continue;
      }
    } else if (p < pat.size() && (pat[p] == '?' || pat[p] == text[t])) {
      ++p;
      ++t;
      continue;
    }
    if (star_p == std::string::npos) return false;
    p = star_p + 1;
    t = ++star_t;
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

Pattern::Pattern(std::string text) : text_(std::move(text)) {
  STRATA_CHECK(!text_.empty(), "Pattern: empty hook pattern");
  if (text_.rfind("re:", 0) == 0) {
    kind_ = Kind::Regex;
    try {
      regex_ = std::make_shared<std::regex>(text_.substr(3), std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      throw Error(str_cat("Pattern: invalid regular expression '", text_.substr(3), "': ", e.what()));
    }
  } else if (text_.find_first_of("*?[") != std::string::npos) {
    kind_ = Kind::Glob;
  } else {
    kind_ = Kind::Exact;
  }
}

bool Pattern::matches(const std::string& name) const {
  switch (kind_) {
    case Kind::Exact:
      return name == text_;
    case Kind::Glob:
      return glob_match(text_, name);
    case Kind::Regex:
      return std::regex_match(name, *regex_);
  }
  return false;
}

bool Pattern::selects(const HookPoint& point, Which which) const {
  // Call-level names: the module, and "module@K" (also "module@0" for the first call).
  const bool by_call =
      matches(point.module) || matches(point.module + "@" + std::to_string(point.call));
  const bool by_key = matches(point.key()) || matches(point.explicit_key());
  if (point.kind == HookKind::Output) return which != Which::Input && (by_call || by_key);
  if (which != Which::Output && by_call) return true;
  return text_.find(":in:") != std::string::npos && by_key;
}

std::string Pattern::module_part() const {
  if (kind_ == Kind::Regex) return text_;
  const auto cut = text_.find_first_of(":@");
  return cut == std::string::npos ? text_ : text_.substr(0, cut);
}

}  // namespace strata
