// Baselines that say what a probe's accuracy means (Hewitt & Liang, 2019, "Designing and
// Interpreting Probes with Control Tasks"). A control task gives each item type (a word, a token
// id, an item) one fixed random label, drawn from the task's empirical label distribution; a
// probe can only solve it by memorizing types. Selectivity = task accuracy - control accuracy:
// high selectivity means the representation, not the probe, holds the property. The majority
// baseline is the accuracy of always answering the training split's most frequent label.
//
//   at::Tensor control = strata::control_labels(types, labels, /*seed=*/0);   // int64 [N]
//   double base = strata::majority_accuracy(labels, train_mask);
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace strata {

/// Control-task labels: every distinct value of `types` (int64 [N]) gets one label drawn (with
/// the seed) from the empirical distribution of `labels` (int64 [N]); returns int64 [N]. Errors:
/// size mismatch or empty input.
at::Tensor control_labels(const at::Tensor& types, const at::Tensor& labels, uint64_t seed);

/// The most frequent label among labels[train] (ties: the smallest label).
int64_t majority_label(const at::Tensor& labels, const at::Tensor& train);

/// The test accuracy (rows where train is false) of always predicting majority_label(). Errors:
/// empty train or test side.
double majority_accuracy(const at::Tensor& labels, const at::Tensor& train);

}  // namespace strata
