#include <strata/analysis/dataset.h>

#include <ATen/ATen.h>

#include <strata/core/error.h>

namespace strata {

TensorDataset::TensorDataset(const TensorMap& tensors, int64_t batch_size)
    : batch_size_(batch_size) {
  STRATA_CHECK(batch_size > 0, "TensorDataset: batch size must be positive, got ", batch_size);
  STRATA_CHECK(tensors.contains("arg0"), "TensorDataset: no tensor named 'arg0' (the first "
               "argument of forward) among ", tensors.size(), " tensors");
  for (int64_t i = 0; tensors.contains("arg" + std::to_string(i)); ++i) {
    const at::Tensor& t = tensors.at("arg" + std::to_string(i));
    STRATA_CHECK(t.dim() >= 1, "TensorDataset: 'arg", i, "' is 0-dimensional; batches are "
                 "sliced along dim 0");
    args_.push_back(t);
  }
  rows_ = args_[0].size(0);
  for (size_t i = 1; i < args_.size(); ++i) {
    STRATA_CHECK(args_[i].size(0) == rows_, "TensorDataset: 'arg", i, "' has ", args_[i].size(0),
                 " rows but 'arg0' has ", rows_);
  }
  if (tensors.contains("labels")) {
    labels_ = tensors.at("labels");
    STRATA_CHECK(labels_.dim() >= 1 && labels_.size(0) == rows_, "TensorDataset: 'labels' has ",
                 labels_.dim() ? labels_.size(0) : 0, " rows but 'arg0' has ", rows_);
  }
}

int64_t TensorDataset::num_batches() const { return (rows_ + batch_size_ - 1) / batch_size_; }

std::optional<Batch> TensorDataset::next() {
  if (position_ >= rows_) return std::nullopt;
  const int64_t end = std::min(rows_, position_ + batch_size_);
  Batch b;
  for (const auto& a : args_) b.inputs.emplace_back(a.slice(0, position_, end));
  if (labels_.defined()) b.labels = labels_.slice(0, position_, end);
  position_ = end;
  return b;
}

}  // namespace strata
