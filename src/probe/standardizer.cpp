#include <strata/probe/standardizer.h>

#include <ATen/ATen.h>

#include <strata/core/error.h>

namespace strata {

Standardizer Standardizer::fit(const at::Tensor& x) {
  STRATA_CHECK(x.defined() && x.dim() == 2, "Standardizer::fit: expected a 2-D [N, D] matrix, got ",
               x.defined() ? str_cat("shape ", x.sizes()) : std::string("an undefined tensor"));
  STRATA_CHECK(x.is_floating_point(), "Standardizer::fit: expected floating-point features, got ",
               x.scalar_type());
  STRATA_CHECK(x.size(0) >= 1, "Standardizer::fit: no rows (shape ", x.sizes(), ")");
  const at::Tensor xd = x.to(at::kDouble);
  Standardizer s;
  s.mean_ = xd.mean(0);
  // Population variance (ddof 0), as scikit-learn's StandardScaler; constant features get 1.
  at::Tensor var = (xd - s.mean_).pow(2).mean(0);
  at::Tensor scale = var.sqrt();
  s.scale_ = at::where(scale == 0, at::ones_like(scale), scale);
  return s;
}

at::Tensor Standardizer::transform(const at::Tensor& x) const {
  STRATA_CHECK(mean_.defined(), "Standardizer::transform: not fitted");
  STRATA_CHECK(x.dim() == 2 && x.size(1) == mean_.size(0), "Standardizer::transform: fitted on ",
               mean_.size(0), " features, got shape ", x.sizes());
  return ((x.to(at::kDouble) - mean_) / scale_).to(x.scalar_type());
}

}  // namespace strata
