#include <ATen/ATen.h>
#include <strata/core/error.h>
#include <strata/probe/ridge_regression.h>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <cmath>

#include "label_index.h"

namespace strata {

namespace {

using MatrixRd = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

at::Tensor as_double_matrix(const at::Tensor& x, const char* caller) {
  STRATA_CHECK(x.defined() && x.dim() == 2, caller, ": features must be 2-D [N, D], got ",
               x.defined() ? str_cat("shape ", x.sizes()) : std::string("none"));
  STRATA_CHECK(x.is_floating_point(), caller, ": features must be floating point, got ",
               x.scalar_type());
  return x.to(at::kCPU).to(at::kDouble).contiguous();
}

}  // namespace

RidgeRegression::RidgeRegression(double alpha) : alpha_(alpha) {
  STRATA_CHECK(std::isfinite(alpha) && alpha >= 0, "RidgeRegression: alpha = ", alpha,
               "; it must be a finite number >= 0");
}

RidgeRegression& RidgeRegression::fit(const at::Tensor& x_in, const at::Tensor& y_in) {
  const char* caller = "RidgeRegression::fit";
  STRATA_CHECK(std::isfinite(alpha_) && alpha_ >= 0, caller, ": alpha = ", alpha_);
  const at::Tensor x = as_double_matrix(x_in, caller);
  STRATA_CHECK(y_in.defined() && (y_in.dim() == 1 || y_in.dim() == 2), caller,
               ": targets must be [N] or [N, K]");
  vector_target_ = y_in.dim() == 1;
  const at::Tensor y = as_double_matrix(vector_target_ ? y_in.unsqueeze(1) : y_in, caller);
  const int64_t n = x.size(0), d = x.size(1), k = y.size(1);
  STRATA_CHECK(y.size(0) == n, caller, ": ", y.size(0), " targets for ", n, " samples");
  STRATA_CHECK(n >= 1, caller, ": no samples");
  const int64_t nonfinite = (~at::isfinite(x)).sum().item<int64_t>();
  STRATA_CHECK(nonfinite == 0, caller, ": ", nonfinite, " NaN or Inf feature values");

  // Centre, then the normal equations (Xc^T Xc + alpha I) W^T = Xc^T Yc. The D x D Gram matrix
  // is one BLAS product through ATen; the solve is Eigen's LDLT (robust for alpha = 0 on
  // rank-deficient data too).
  const at::Tensor xm = x.mean(0), ym = y.mean(0);
  const at::Tensor xc = x - xm, yc = y - ym;
  const at::Tensor gram = at::mm(xc.t(), xc).contiguous();
  const at::Tensor rhs = at::mm(xc.t(), yc).contiguous();
  Eigen::Map<const MatrixRd> G(gram.data_ptr<double>(), d, d);
  Eigen::Map<const MatrixRd> R(rhs.data_ptr<double>(), d, k);
  MatrixRd A = G;
  A.diagonal().array() += alpha_;
  MatrixRd Wt = A.ldlt().solve(R);  // [D, K]
  STRATA_CHECK(Wt.allFinite(), caller, ": the normal equations are singular (alpha = ", alpha_,
               "); use alpha > 0");
  // clone(): for k = 1 the transpose is already contiguous and would still point into Wt.
  coef_ = at::from_blob(Wt.data(), {d, k}, at::kDouble).t().clone(at::MemoryFormat::Contiguous);
  intercept_ = ym - at::mv(coef_, xm);
  return *this;
}

at::Tensor RidgeRegression::predict(const at::Tensor& x_in) const {
  const char* caller = "RidgeRegression::predict";
  STRATA_CHECK(coef_.defined(), caller, ": not fitted");
  const at::Tensor x = as_double_matrix(x_in, caller);
  STRATA_CHECK(x.size(1) == coef_.size(1), caller, ": fitted on ", coef_.size(1),
               " features, got shape ", x.sizes());
  at::Tensor out = at::addmm(intercept_, x, coef_.t());
  return vector_target_ ? out.squeeze(1) : out;
}

RidgeClassifier::RidgeClassifier(double alpha) : ridge_(alpha) {}

RidgeClassifier& RidgeClassifier::fit(const at::Tensor& x, const at::Tensor& y) {
  const char* caller = "RidgeClassifier::fit";
  const detail::LabelIndex li = detail::index_labels(y, caller);
  STRATA_CHECK(x.defined() && x.dim() == 2 && x.size(0) == static_cast<int64_t>(li.index.size()),
               caller, ": ", li.index.size(), " labels for ",
               x.defined() && x.dim() >= 1 ? x.size(0) : 0, " samples");
  STRATA_CHECK(li.classes.size() >= 2, caller, ": a single class (",
               li.classes.empty() ? 0 : li.classes[0], ") among ", li.index.size(),
               " samples; a classifier needs at least two");
  const int64_t n = static_cast<int64_t>(li.index.size());
  const int64_t K = static_cast<int64_t>(li.classes.size());
  const int64_t kf = K == 2 ? 1 : K;
  at::Tensor t = at::full({n, kf}, -1.0, at::kDouble);
  double* p = t.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) {
    if (kf == 1) {
      p[i] = li.index[i] == 1 ? 1.0 : -1.0;
    } else {
      p[i * kf + li.index[i]] = 1.0;
    }
  }
  ridge_.fit(x, t);
  classes_ = detail::classes_tensor(li.classes);
  return *this;
}

at::Tensor RidgeClassifier::decision_function(const at::Tensor& x) const {
  STRATA_CHECK(classes_.defined(), "RidgeClassifier::decision_function: not fitted");
  return ridge_.predict(x);
}

at::Tensor RidgeClassifier::predict(const at::Tensor& x) const {
  at::Tensor z = decision_function(x);
  at::Tensor idx = z.size(1) == 1 ? (z.squeeze(1) > 0).to(at::kLong) : z.argmax(1);
  return classes_.index_select(0, idx);
}

double RidgeClassifier::score(const at::Tensor& x, const at::Tensor& y) const {
  at::Tensor pred = predict(x);
  STRATA_CHECK(y.defined() && y.dim() == 1 && y.size(0) == pred.size(0),
               "RidgeClassifier::score: ", y.defined() ? y.size(0) : 0, " labels for ",
               pred.size(0), " samples");
  return pred.eq(y.to(at::kLong)).to(at::kDouble).mean().item<double>();
}

}  // namespace strata
