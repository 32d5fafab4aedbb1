#include <ATen/ATen.h>
#include <strata/core/error.h>
#include <strata/lrp/canonizer.h>

namespace strata {

MergedLayer merge_batchnorm(const at::Tensor& weight, const at::Tensor& bias,
                            const BatchNormParams& bn) {
  STRATA_CHECK(weight.defined() && weight.dim() >= 2, "merge_batchnorm: the layer's weight has ",
               weight.defined() ? weight.dim() : 0, " dimensions; expected [out, in, ...]");
  const int64_t out = weight.size(0);
  STRATA_CHECK(bn.running_mean.defined() && bn.running_var.defined(),
               "merge_batchnorm: the BatchNorm keeps no running statistics "
               "(track_running_stats=False); it cannot be merged");
  STRATA_CHECK(bn.running_mean.numel() == out && bn.running_var.numel() == out,
               "merge_batchnorm: the BatchNorm has ", bn.running_mean.numel(),
               " channels but the layer before it has ", out, " outputs");
  const at::Tensor var = bn.running_var.to(weight.scalar_type());
  const at::Tensor mean = bn.running_mean.to(weight.scalar_type());
  at::Tensor gamma = bn.weight.defined() ? bn.weight.to(weight.scalar_type()) : at::ones_like(var);
  at::Tensor beta = bn.bias.defined() ? bn.bias.to(weight.scalar_type()) : at::zeros_like(var);
  const at::Tensor s = gamma / at::sqrt(var + bn.eps);
  std::vector<int64_t> shape(weight.dim(), 1);
  shape[0] = out;
  MergedLayer m;
  m.weight = weight * s.reshape(shape);
  const at::Tensor b = bias.defined() ? bias : at::zeros_like(var);
  STRATA_CHECK(b.numel() == out, "merge_batchnorm: bias has ", b.numel(), " elements, expected ",
               out);
  m.bias = s * (b - mean) + beta;
  return m;
}

}  // namespace strata
