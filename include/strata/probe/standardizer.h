// Feature standardization for probes: z = (x - mean) / scale, learned on the training rows only
// and then applied to every row, exactly as scikit-learn's StandardScaler (population standard
// deviation, ddof = 0; a constant feature gets scale 1 so it maps to 0 instead of NaN).
//
//   strata::Standardizer s = strata::Standardizer::fit(x_train);   // float/double [N, D]
//   at::Tensor z_train = s.transform(x_train), z_test = s.transform(x_test);
#pragma once

#include <ATen/core/Tensor.h>

namespace strata {

/// Per-feature centring and scaling learned from a matrix's rows; see the file comment.
class Standardizer {
 public:
  /// Learns mean and scale from the rows of `x` ([N, D], N >= 1, floating point). Errors
  /// (strata::Error): not 2-D, no rows, not floating point.
  static Standardizer fit(const at::Tensor& x);
  /// Returns (x - mean) / scale in x's dtype; errors when the width differs from the fitted D.
  at::Tensor transform(const at::Tensor& x) const;
  /// The per-feature means, double [D].
  const at::Tensor& mean() const { return mean_; }
  /// The per-feature scales (standard deviation, 1 where it is 0), double [D].
  const at::Tensor& scale() const { return scale_; }

 private:
  at::Tensor mean_, scale_;
};

}  // namespace strata
