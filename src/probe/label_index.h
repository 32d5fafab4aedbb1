// Private: maps arbitrary integer labels to class indices 0..K-1 (sorted distinct values, as
// scikit-learn's classes_).
#pragma once

#include <ATen/ATen.h>
#include <strata/core/error.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace strata::detail {

struct LabelIndex {
  std::vector<int64_t> classes;  // sorted distinct labels
  std::vector<int32_t> index;    // per sample, 0..K-1
};

inline std::vector<int64_t> label_vector(const at::Tensor& y, const char* caller) {
  STRATA_CHECK(y.defined() && y.dim() == 1, caller, ": labels must be 1-D [N], got ",
               y.defined() ? str_cat("shape ", y.sizes()) : std::string("none"));
  STRATA_CHECK(!y.is_floating_point() && !y.is_complex(), caller,
               ": labels must be integers (int64), got ", y.scalar_type());
  at::Tensor c = y.to(at::kLong).contiguous().cpu();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

inline LabelIndex index_labels(const at::Tensor& y, const char* caller) {
  LabelIndex li;
  const std::vector<int64_t> v = label_vector(y, caller);
  li.classes = v;
  std::sort(li.classes.begin(), li.classes.end());
  li.classes.erase(std::unique(li.classes.begin(), li.classes.end()), li.classes.end());
  li.index.resize(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    li.index[i] = static_cast<int32_t>(
        std::lower_bound(li.classes.begin(), li.classes.end(), v[i]) - li.classes.begin());
  return li;
}

inline at::Tensor classes_tensor(const std::vector<int64_t>& classes) {
  return at::tensor(classes, at::kLong);
}

}  // namespace strata::detail
