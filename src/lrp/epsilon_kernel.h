// The element-wise steps of the LRP rules as single fused passes (internal to the LRP driver).
//
// For a layer output z the epsilon rule sends g * z / (z + eps * sign(z)) back through the layer,
// with sign(0) = +1 (Zennit's stabilizer). Written with ATen ops this is five kernels and four
// temporaries per layer (>=, two adds, where, div, mul); on float32/float64 CPU tensors these
// functions do it in one parallel pass, in the tensor's own precision and in the same order of
// operations, so the results equal the ATen composition bit for bit. Other devices and dtypes
// use the ATen composition.
#pragma once

#include <ATen/core/Tensor.h>

namespace strata::lrp_detail {

/// z / (z + eps * sign(z)), sign(0) = +1: the epsilon rule's factor on the gradient.
at::Tensor epsilon_scale(const at::Tensor& z, double eps);

/// g * (z / (z + eps * sign(z))) without materialising the factor. g and z have one shape. When
/// the caller hands over the only reference to g (std::move), the result is written into g.
at::Tensor epsilon_scaled_grad(at::Tensor g, const at::Tensor& z, double eps);

/// coef * g * (num / (den + eps * sign(den))), sign(0) = +1, the gradient every other LRP rule
/// sends into one of its modified layer runs (num: the layer's output, den: the run plus its
/// bias). eps == 0 gives 0 where den == 0. All three tensors have one shape. When the caller hands
/// over the only reference to g (std::move), the result is written into g.
at::Tensor ratio_scaled_grad(at::Tensor g, const at::Tensor& num, const at::Tensor& den, double eps,
                             double coef);

}  // namespace strata::lrp_detail
