#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <LBFGS.h>
#include <strata/core/error.h>
#include <strata/probe/logistic_regression.h>

#include <Eigen/Core>
#include <cmath>
#include <limits>
#include <vector>

#include "label_index.h"

namespace strata {

namespace {

// The objective and its gradient for L-BFGS, scaled by 1 / (C N) relative to scikit-learn's
// C * sum CE + ||W||^2 / 2 (the same minimizer; gradients of order one for the tolerance):
//   f(W, b) = mean_i CE_i + ||W||^2 / (2 C N)
// Parameters: W row-major [Kf, D], then b [Kf]. Kf = 1 for two classes (sigmoid), else K.
template <typename T>
class Objective {
 public:
  Objective(const at::Tensor& x, const std::vector<int32_t>& y, int64_t kf, double C)
      : x_(x), y_(y), n_(x.size(0)), d_(x.size(1)), kf_(kf), C_(C) {
    const auto dt = x.scalar_type();
    w_ = at::empty({kf_, d_}, dt);
    z_ = at::empty({n_, kf_}, dt);
    g_ = at::empty({kf_, d_}, dt);
  }

  double operator()(const Eigen::VectorXd& p, Eigen::VectorXd& grad) {
    const int64_t kd = kf_ * d_;
    T* w = w_.data_ptr<T>();
    for (int64_t i = 0; i < kd; ++i) w[i] = static_cast<T>(p[i]);
    const double* b = p.data() + kd;
    T* z = z_.data_ptr<T>();
    const int32_t* y = y_.data();
    const int64_t kf = kf_;
    // One pass over X per evaluation, in blocks of rows that stay in cache: Z_b = X_b W^T,
    // then softmax / sigmoid, the loss and Z_b := P_b - Y_b in place, then the block's gradient
    // G_b = Z_b^T X_b while X_b is still cached (the products are memory-bound: K is small).
    // Blocks run in parallel (BLAS runs single-threaded inside); per-block sums are combined in
    // a fixed order, so results do not depend on the thread count.
    const int64_t block = kBlockRows;
    const int64_t chunks = (n_ + block - 1) / block;
    if (gb_.size(0) != chunks) gb_ = at::empty({chunks, kf_, d_}, w_.scalar_type());
    std::vector<double> loss(chunks, 0.0);
    std::vector<double> bsum(chunks * kf, 0.0);
    at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
      std::vector<double> e(kf);
      for (int64_t c = c0; c < c1; ++c) {
        double l = 0;
        double* bs = bsum.data() + c * kf;
        const int64_t r0 = c * block, r1 = std::min(n_, (c + 1) * block);
        const at::Tensor xb = x_.narrow(0, r0, r1 - r0);
        at::Tensor zb = z_.narrow(0, r0, r1 - r0);
        at::mm_out(zb, xb, w_.t());
        for (int64_t r = r0; r < r1; ++r) {
          T* zr = z + r * kf;
          if (kf == 1) {
            const double t = zr[0] + b[0];
            const double yt = y[r];
            // softplus(t) - y t, and sigmoid(t) - y, without overflow
            l += std::max(t, 0.0) + std::log1p(std::exp(-std::abs(t))) - yt * t;
            const double s = t >= 0 ? 1 / (1 + std::exp(-t)) : std::exp(t) / (1 + std::exp(t));
            zr[0] = static_cast<T>(s - yt);
            bs[0] += s - yt;
          } else {
            double m = -std::numeric_limits<double>::infinity();
            for (int64_t k = 0; k < kf; ++k) {
              e[k] = zr[k] + b[k];
              m = std::max(m, e[k]);
            }
            double s = 0;
            const double zy = e[y[r]];
            for (int64_t k = 0; k < kf; ++k) s += (e[k] = std::exp(e[k] - m));
            l += m + std::log(s) - zy;
            const double inv = 1 / s;
            for (int64_t k = 0; k < kf; ++k) {
              const double pk = e[k] * inv - (k == y[r] ? 1.0 : 0.0);
              zr[k] = static_cast<T>(pk);
              bs[k] += pk;
            }
          }
        }
        at::Tensor gc = gb_.select(0, c);
        at::mm_out(gc, zb.t(), xb);
        loss[c] = l;
      }
    });
    // G = sum of the blocks' gradients, in block order.
    {
      const T* gp = gb_.data_ptr<T>();
      T* g = g_.data_ptr<T>();
      for (int64_t i = 0; i < kd; ++i) g[i] = gp[i];
      for (int64_t c = 1; c < chunks; ++c)
        for (int64_t i = 0; i < kd; ++i) g[i] += gp[c * kd + i];
    }
    const double inv_n = 1.0 / static_cast<double>(n_);
    const double reg = inv_n / C_;
    double total = 0, wsq = 0;
    for (double l : loss) total += l;
    const T* g = g_.data_ptr<T>();
    for (int64_t i = 0; i < kd; ++i) {
      grad[i] = g[i] * inv_n + reg * p[i];
      wsq += p[i] * p[i];
    }
    for (int64_t k = 0; k < kf; ++k) {
      double s = 0;
      for (int64_t c = 0; c < chunks; ++c) s += bsum[c * kf + k];
      grad[kd + k] = s * inv_n;
    }
    const double f = total * inv_n + 0.5 * reg * wsq;
    if (f < best_f_) {
      best_f_ = f;
      best_ = p;
    }
    return f;
  }

  double best_f_ = std::numeric_limits<double>::infinity();
  Eigen::VectorXd best_;

 private:
  const at::Tensor& x_;
  const std::vector<int32_t>& y_;
  int64_t n_, d_, kf_;
  double C_;
  static constexpr int64_t kBlockRows = 512;  // 512 x D floats: an L2-sized slab of X
  at::Tensor w_, z_, g_, gb_ = at::empty({0});
};

at::Tensor as_matrix(const at::Tensor& x, const char* caller, at::ScalarType dtype) {
  STRATA_CHECK(x.defined() && x.dim() == 2, caller, ": features must be 2-D [N, D], got ",
               x.defined() ? str_cat("shape ", x.sizes()) : std::string("none"));
  STRATA_CHECK(x.is_floating_point(), caller, ": features must be floating point, got ",
               x.scalar_type());
  return x.to(at::kCPU).to(dtype).contiguous();
}

template <typename T>
void minimize(Objective<T>& f, const LogisticOptions& o, Eigen::VectorXd& p, int64_t& iterations,
              bool& converged) {
  LBFGSpp::LBFGSParam<double> param;
  param.m = static_cast<int>(o.history);
  param.epsilon = o.tol;
  param.epsilon_rel = 0;
  param.max_iterations = static_cast<int>(o.max_iter);
  param.linesearch = LBFGSpp::LBFGS_LINESEARCH_BACKTRACKING_STRONG_WOLFE;
  param.max_linesearch = 40;
  LBFGSpp::LBFGSSolver<double, LBFGSpp::LineSearchBacktracking> solver(param);
  double fx = 0;
  converged = false;
  try {
    iterations = solver.minimize(f, p, fx);
    converged = iterations < o.max_iter;
  } catch (const std::exception&) {
    // The line search stalls when the products' precision cannot resolve a further decrease,
    // i.e. at the optimum to working precision: keep the best point seen.
    iterations = o.max_iter;
    fx = std::numeric_limits<double>::infinity();
  }
  if (f.best_.size() == p.size() && f.best_f_ <= fx) p = f.best_;
  if (!converged) {
    Eigen::VectorXd g(p.size());
    f(p, g);
    converged = g.norm() <= std::max(o.tol, 1e-4);
  }
}

}  // namespace

LogisticRegression::LogisticRegression(LogisticOptions options) : options_(options) {
  STRATA_CHECK(std::isfinite(options_.C) && options_.C > 0, "LogisticRegression: C = ", options_.C,
               "; it must be a positive number (inverse L2 strength)");
  STRATA_CHECK(options_.tol >= 0, "LogisticRegression: tol = ", options_.tol, " is negative");
  STRATA_CHECK(options_.max_iter >= 1, "LogisticRegression: max_iter = ", options_.max_iter);
  STRATA_CHECK(options_.history >= 1, "LogisticRegression: history = ", options_.history);
}

LogisticRegression& LogisticRegression::fit(const at::Tensor& x_in, const at::Tensor& y_in) {
  const char* caller = "LogisticRegression::fit";
  STRATA_CHECK(std::isfinite(options_.C) && options_.C > 0, caller, ": C = ", options_.C,
               "; it must be a positive number");
  const at::Tensor x =
      as_matrix(x_in, caller, options_.double_precision ? at::kDouble : at::kFloat);
  const detail::LabelIndex li = detail::index_labels(y_in, caller);
  const int64_t n = x.size(0), d = x.size(1);
  STRATA_CHECK(static_cast<int64_t>(li.index.size()) == n, caller, ": ", li.index.size(),
               " labels for ", n, " samples");
  STRATA_CHECK(li.classes.size() >= 2, caller, ": a single class (",
               li.classes.empty() ? 0 : li.classes[0], ") among ", n,
               " samples; a classifier needs at least two");
  const int64_t nonfinite = n == 0 ? 0 : (~at::isfinite(x)).sum().item<int64_t>();
  STRATA_CHECK(nonfinite == 0, caller, ": ", nonfinite, " NaN or Inf feature values");
  const int64_t K = static_cast<int64_t>(li.classes.size());
  const int64_t kf = K == 2 ? 1 : K;
  const int64_t np = kf * d + kf;

  Eigen::VectorXd p = Eigen::VectorXd::Zero(np);
  at::Tensor classes = detail::classes_tensor(li.classes);
  if (options_.warm_start && coef_.defined() && coef_.size(0) == kf && coef_.size(1) == d &&
      classes_.defined() && at::equal(classes_, classes)) {
    const at::Tensor c = coef_.contiguous(), b = intercept_.contiguous();
    std::copy(c.data_ptr<double>(), c.data_ptr<double>() + kf * d, p.data());
    std::copy(b.data_ptr<double>(), b.data_ptr<double>() + kf, p.data() + kf * d);
  }

  if (options_.double_precision) {
    Objective<double> f(x, li.index, kf, options_.C);
    minimize(f, options_, p, iterations_, converged_);
  } else {
    Objective<float> f(x, li.index, kf, options_.C);
    minimize(f, options_, p, iterations_, converged_);
  }

  classes_ = classes;
  coef_ = at::from_blob(p.data(), {kf, d}, at::kDouble).clone();
  intercept_ = at::from_blob(p.data() + kf * d, {kf}, at::kDouble).clone();
  return *this;
}

void LogisticRegression::check_fitted(const char* caller, const at::Tensor& x) const {
  STRATA_CHECK(coef_.defined(), caller, ": not fitted");
  STRATA_CHECK(x.defined() && x.dim() == 2 && x.size(1) == coef_.size(1), caller, ": fitted on ",
               coef_.size(1), " features, got ",
               x.defined() ? str_cat("shape ", x.sizes()) : std::string("none"));
}

at::Tensor LogisticRegression::decision_function(const at::Tensor& x_in) const {
  const char* caller = "LogisticRegression::decision_function";
  check_fitted(caller, x_in);
  const auto dt = options_.double_precision ? at::kDouble : at::kFloat;
  const at::Tensor x = as_matrix(x_in, caller, dt);
  return at::addmm(intercept_.to(dt), x, coef_.to(dt).t());
}

at::Tensor LogisticRegression::predict_proba(const at::Tensor& x) const {
  at::Tensor z = decision_function(x);
  if (z.size(1) == 1) {
    at::Tensor p1 = at::sigmoid(z);
    return at::cat({1 - p1, p1}, 1);
  }
  return at::softmax(z, 1);
}

at::Tensor LogisticRegression::predict(const at::Tensor& x) const {
  at::Tensor z = decision_function(x);
  at::Tensor idx = z.size(1) == 1 ? (z.squeeze(1) > 0).to(at::kLong) : z.argmax(1);
  return classes_.index_select(0, idx);
}

double LogisticRegression::score(const at::Tensor& x, const at::Tensor& y) const {
  at::Tensor pred = predict(x);
  STRATA_CHECK(y.defined() && y.dim() == 1 && y.size(0) == pred.size(0),
               "LogisticRegression::score: ", y.defined() ? y.size(0) : 0, " labels for ",
               pred.size(0), " samples");
  return pred.eq(y.to(at::kLong)).to(at::kDouble).mean().item<double>();
}

}  // namespace strata
