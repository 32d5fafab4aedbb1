// Train/test splits and cross-validation folds for probes, seeded and reproducible (a 64-bit
// Mersenne Twister with our own Fisher-Yates shuffle, so the same seed gives the same split on
// every platform). Splitting by group keeps every member of a group (the same word, the same
// sentence, the same item) on one side, so a probe cannot pass by memorizing items.
//
//   at::Tensor train = strata::split_by_sample(1000, 0.2, /*seed=*/0);   // bool [1000], 800 true
//   at::Tensor train = strata::split_by_group(groups, 0.2, 0);            // groups int64 [N]
//   at::Tensor fold  = strata::kfold(train_groups, /*k=*/5, 0);           // int64 [n], 0..4
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace strata {

/// A random split of n samples: bool [n], true = train; round(test_fraction * n) samples go to
/// test. Errors: n < 2, test_fraction outside (0, 1), or a side that would be empty.
at::Tensor split_by_sample(int64_t n, double test_fraction, uint64_t seed);

/// A random split by group: whole groups (int64 [N]) go to test, in shuffled order, until at
/// least test_fraction of the samples are there; bool [N], true = train. Errors: fewer than two
/// distinct groups, or a side that would be empty.
at::Tensor split_by_group(const at::Tensor& groups, double test_fraction, uint64_t seed);

/// Fold ids (int64 [n], values 0..k-1) for k-fold cross-validation. With `groups` (int64 [n])
/// whole groups are dealt to folds (shuffled, each to the fold with fewest samples so far);
/// without (undefined tensor) samples are shuffled and dealt round-robin. Errors: k < 2, fewer
/// samples (or groups) than k.
at::Tensor kfold(int64_t n, const at::Tensor& groups, int64_t k, uint64_t seed);

}  // namespace strata
