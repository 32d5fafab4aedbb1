// Multinomial logistic regression with an L2 penalty, the standard linear probe. It minimizes
// the same objective as scikit-learn's LogisticRegression(C=C, penalty="l2", solver="lbfgs"):
//
//   C * sum_i CE(softmax(W x_i + b), y_i) + 0.5 * ||W||_F^2      (the intercept b is not penalized)
//
// i.e. C is the inverse L2 strength on the SUMMED loss. With two classes it is the binary
// (sigmoid) model with one weight vector, as scikit-learn does. The optimizer is L-BFGS from
// LBFGSpp (backtracking line search to the strong Wolfe conditions); matrix products run in float32
// (or float64) through ATen's BLAS.
//
//   strata::LogisticRegression lr(strata::LogisticOptions().set_C(1.0));
//   lr.fit(x_train, y_train);                  // float [N, D], int64 [N] (any label values)
//   at::Tensor pred = lr.predict(x_test);      // int64 [M], values from the training labels
//   double acc = lr.score(x_test, y_test);
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace strata {

/// Options for LogisticRegression.
struct LogisticOptions {
  double C = 1.0;           ///< inverse L2 strength on the summed loss (scikit-learn's C), > 0
  double tol = 1e-4;        ///< stop when ||gradient of the mean loss||_2 <= tol
  int64_t max_iter = 1000;  ///< L-BFGS iterations at most
  int64_t history = 10;     ///< L-BFGS memory (correction pairs)
  bool warm_start = false;  ///< start from the previous fit's solution when the shapes match
  /// Products in float64 instead of float32: slower, but the gradient can reach tolerances
  /// below ~1e-5 (float32 sums of N terms cannot).
  bool double_precision = false;

  LogisticOptions& set_C(double v) {
    C = v;
    return *this;
  }
  LogisticOptions& set_tol(double v) {
    tol = v;
    return *this;
  }
  LogisticOptions& set_max_iter(int64_t v) {
    max_iter = v;
    return *this;
  }
  LogisticOptions& set_history(int64_t v) {
    history = v;
    return *this;
  }
  LogisticOptions& set_warm_start(bool v) {
    warm_start = v;
    return *this;
  }
  LogisticOptions& set_double_precision(bool v) {
    double_precision = v;
    return *this;
  }
};

/// An L2-regularized (multinomial) logistic-regression classifier; see the file comment.
class LogisticRegression {
 public:
  /// Errors: C <= 0 or not finite, tol < 0, max_iter < 1, history < 1.
  explicit LogisticRegression(LogisticOptions options = {});

  /// Fits on x (floating point [N, D]) and y (integer [N]). Errors (strata::Error, prefixed
  /// "LogisticRegression::fit"): shapes, a count mismatch, fewer than two classes, NaN/Inf in x.
  LogisticRegression& fit(const at::Tensor& x, const at::Tensor& y);
  /// Class scores W x + b, float [M, K] (binary: [M, 1], the positive class's logit).
  at::Tensor decision_function(const at::Tensor& x) const;
  /// Class probabilities, float [M, K] (binary too).
  at::Tensor predict_proba(const at::Tensor& x) const;
  /// Predicted labels, int64 [M], values from classes().
  at::Tensor predict(const at::Tensor& x) const;
  /// Fraction of rows of x whose prediction equals y.
  double score(const at::Tensor& x, const at::Tensor& y) const;

  /// The sorted distinct training labels, int64 [K].
  const at::Tensor& classes() const { return classes_; }
  /// Weights, double [K, D] (binary: [1, D]).
  const at::Tensor& coef() const { return coef_; }
  /// Intercepts, double [K] (binary: [1]).
  const at::Tensor& intercept() const { return intercept_; }
  /// L-BFGS iterations of the last fit.
  int64_t iterations() const { return iterations_; }
  /// True when the last fit met the gradient tolerance (false: max_iter or a stalled line search).
  bool converged() const { return converged_; }
  /// The options (C can be changed between fits, e.g. along a CV grid with warm_start).
  LogisticOptions& options() { return options_; }

 private:
  void check_fitted(const char* caller, const at::Tensor& x) const;
  LogisticOptions options_;
  at::Tensor classes_, coef_, intercept_;
  int64_t iterations_ = 0;
  bool converged_ = false;
};

}  // namespace strata
