// strata::Error is the one exception type the library throws for bad input and failed runs.
// Messages name the caller and the offending values ("LinearProbe::fit: 12 labels for 10 samples").
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace strata {

/// The exception strata throws; derived from std::runtime_error so callers can catch either.
class Error : public std::runtime_error {
 public:
  /// Builds an error from a complete message.
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
inline void append_all(std::ostringstream&) {}
template <typename T, typename... Rest>
void append_all(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append_all(os, rest...);
}
}  // namespace detail

/// Concatenates the arguments with operator<< into one string.
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  detail::append_all(os, args...);
  return os.str();
}

}  // namespace strata

/// Throws strata::Error built from the remaining arguments when `cond` is false.
#define STRATA_CHECK(cond, ...)                           \
  do {                                                    \
    if (!(cond)) throw ::strata::Error(::strata::str_cat(__VA_ARGS__)); \
  } while (0)
