#include <ATen/ATen.h>
#include <strata/core/error.h>
#include <strata/probe/standardizer.h>

namespace strata {

Standardizer Standardizer::fit(const at::Tensor& x) {
  STRATA_CHECK(x.defined() && x.dim() == 2, "Standardizer::fit: expected a 2-D [N, D] matrix, got ",
               x.defined() ? str_cat("shape ", x.sizes()) : std::string("an undefined tensor"));
  STRATA_CHECK(x.is_floating_point(), "Standardizer::fit: expected floating-point features, got ",
               x.scalar_type());
  STRATA_CHECK(x.size(0) >= 1, "Standardizer::fit: no rows (shape ", x.sizes(), ")");
  // Sums in double; the centred copy in x's own dtype (no double copy of a large matrix).
  Standardizer s;
  s.mean_ = at::mean(x, {0}, /*keepdim=*/false, at::kDouble);
  // Population variance (ddof 0), as scikit-learn's StandardScaler; constant features get 1.
  const at::Tensor centred = x - s.mean_.to(x.scalar_type());
  at::Tensor var = at::mean(centred * centred, {0}, /*keepdim=*/false, at::kDouble);
  at::Tensor scale = var.sqrt();
  s.scale_ = at::where(scale == 0, at::ones_like(scale), scale);
  return s;
}

at::Tensor Standardizer::transform(const at::Tensor& x) const {
  STRATA_CHECK(mean_.defined(), "Standardizer::transform: not fitted");
  STRATA_CHECK(x.dim() == 2 && x.size(1) == mean_.size(0), "Standardizer::transform: fitted on ",
               mean_.size(0), " features, got shape ", x.sizes());
  if (x.scalar_type() == at::kDouble) return (x - mean_) / scale_;
  return (x - mean_.to(x.scalar_type())) * (1.0 / scale_).to(x.scalar_type());
}

}  // namespace strata
