// Ridge regression in closed form, multi-output, with an unpenalized intercept, as
// scikit-learn's Ridge(alpha, fit_intercept=True): minimize ||Y - X W^T - b||_F^2 + alpha
// ||W||_F^2, solved as (Xc^T Xc + alpha I) W^T = Xc^T Yc on centred data (Cholesky / LDLT in
// double). RidgeClassifier is the probe built on it: targets +1 for the true class and -1 elsewhere
// (one column for two classes), prediction = argmax (binary: sign), as scikit-learn's
// RidgeClassifier.
//
//   strata::RidgeRegression r(/*alpha=*/1.0);
//   r.fit(x, y);                           // x [N, D], y [N] or [N, K]
//   at::Tensor yhat = r.predict(x_new);    // double [M, K] ([M] when y was 1-D)
#pragma once

#include <ATen/core/Tensor.h>

namespace strata {

/// Closed-form multi-output ridge regression; see the file comment.
class RidgeRegression {
 public:
  /// Errors: alpha < 0 or not finite.
  explicit RidgeRegression(double alpha = 1.0);
  /// Fits x (floating point [N, D]) to y ([N] or [N, K]); errors name shapes and counts.
  RidgeRegression& fit(const at::Tensor& x, const at::Tensor& y);
  /// Predictions, double [M, K] ([M] when fitted on a 1-D y).
  at::Tensor predict(const at::Tensor& x) const;
  /// Weights, double [K, D].
  const at::Tensor& coef() const { return coef_; }
  /// Intercepts, double [K].
  const at::Tensor& intercept() const { return intercept_; }
  /// The penalty (changeable between fits).
  double& alpha() { return alpha_; }

 private:
  double alpha_;
  bool vector_target_ = false;
  at::Tensor coef_, intercept_;
};

/// A classifier from ridge regression on +-1 targets; see the file comment.
class RidgeClassifier {
 public:
  /// Errors: alpha < 0 or not finite.
  explicit RidgeClassifier(double alpha = 1.0);
  /// Fits on x (floating point [N, D]) and integer labels y [N] (at least two classes).
  RidgeClassifier& fit(const at::Tensor& x, const at::Tensor& y);
  /// Scores, double [M, K] (binary: [M, 1]).
  at::Tensor decision_function(const at::Tensor& x) const;
  /// Predicted labels, int64 [M].
  at::Tensor predict(const at::Tensor& x) const;
  /// Fraction of rows whose prediction equals y.
  double score(const at::Tensor& x, const at::Tensor& y) const;
  /// The sorted distinct training labels, int64 [K].
  const at::Tensor& classes() const { return classes_; }
  /// The underlying regression (coef() is [K, D], binary [1, D]).
  const RidgeRegression& regression() const { return ridge_; }
  /// The penalty (changeable between fits).
  double& alpha() { return ridge_.alpha(); }

 private:
  RidgeRegression ridge_;
  at::Tensor classes_;
};

}  // namespace strata
