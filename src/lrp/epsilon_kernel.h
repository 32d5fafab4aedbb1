// The epsilon rule's element-wise step as one fused pass (internal to the LRP driver).
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

}  // namespace strata::lrp_detail
