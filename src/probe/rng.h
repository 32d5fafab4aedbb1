// Private: the seeded shuffles behind splits, folds and control labels. Our own Fisher-Yates and
// bounded draws on std::mt19937_64 (whose output is fixed by the standard), so the same seed
// gives the same split with any standard library.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace strata::detail {

/// A uniform integer in [0, n) (n >= 1), by rejection so there is no modulo bias.
inline uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t r;
  do r = rng();
  while (r >= limit);
  return r % n;
}

/// Shuffles v in place.
template <typename T>
void shuffle(std::vector<T>& v, std::mt19937_64& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[uniform_below(rng, i)]);
}

}  // namespace strata::detail
