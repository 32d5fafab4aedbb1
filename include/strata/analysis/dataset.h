// Where a Runner's batches come from. A Dataset hands out batches one at a time, so a corpus of
// any size streams through in bounded memory.
//
//   auto file = strata::load_safetensors("inputs.safetensors");   // arg0 [N, T], labels [N]
//   strata::TensorDataset data(file.tensors, /*batch_size=*/32);
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <strata/io/safetensors.h>

#include <optional>
#include <vector>

namespace strata {

/// One batch: the positional arguments of forward, and optional labels.
struct Batch {
  std::vector<c10::IValue> inputs;
  at::Tensor labels;  ///< undefined when there are none
};

/// A source of batches.
class Dataset {
 public:
  virtual ~Dataset() = default;
  /// Number of batches, or -1 when unknown.
  virtual int64_t num_batches() const = 0;
  /// The next batch, or nullopt at the end.
  virtual std::optional<Batch> next() = 0;
  /// Starts over from the first batch.
  virtual void reset() = 0;
};

/// Batches sliced along dim 0 from tensors named arg0, arg1, ... (and optionally `labels`).
class TensorDataset final : public Dataset {
 public:
  /// Errors: no arg0, or args/labels whose first dimensions disagree (named with their sizes).
  TensorDataset(const TensorMap& tensors, int64_t batch_size);
  int64_t num_batches() const override;
  std::optional<Batch> next() override;
  void reset() override { position_ = 0; }
  /// Number of samples (rows).
  int64_t size() const { return rows_; }

 private:
  std::vector<at::Tensor> args_;
  at::Tensor labels_;
  int64_t batch_size_;
  int64_t rows_ = 0;
  int64_t position_ = 0;
};

}  // namespace strata
