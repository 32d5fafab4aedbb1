// The element-wise step of every LRP rule as one fused pass (internal to the LRP driver).
//
// A rule sends each modified run of a layer the gradient coef * g * num / (den + eps * sign(den)),
// sign(0) = +1 (Zennit's stabilizer): for the epsilon rule num = den = the layer's output z and
// coef = 1. Written with ATen ops this is five kernels and four temporaries (>=, two adds, where,
// div, mul); on float32/float64 CPU tensors ratio_scaled_grad does it in one parallel pass, in the
// tensor's own precision and order of operations, so the result equals the ATen composition bit
// for bit. Other devices and dtypes use the ATen composition.
#pragma once

#include <ATen/core/Tensor.h>

namespace strata::lrp_detail {

/// coef * (g * (num / (den + eps * sign(den)))), sign(0) = +1; eps == 0 gives 0 where den == 0.
/// All three tensors have one shape. When the caller hands over the only reference to g
/// (std::move), the result is written into g.
at::Tensor ratio_scaled_grad(at::Tensor g, const at::Tensor& num, const at::Tensor& den, double eps,
                             double coef);

}  // namespace strata::lrp_detail
