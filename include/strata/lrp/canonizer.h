// Canonizers rewrite a network into an equivalent one that LRP rules handle well. The one strata
// needs is BatchNorm merging: y = BN(W x + b) equals W' x + b' with
//   s = gamma / sqrt(running_var + eps),  W' = s * W (per output channel),  b' = s * (b - mean) +
//   beta,
// so the rule of the linear/conv layer sees the merged parameters (as Zennit's MergeBatchNorm).
// The LRP pass merges on the fly and checks, on every call, that the merged layer reproduces the
// BatchNorm's output (LrpResult::merged lists the largest deviation).
//
//   strata::MergedLayer m = strata::merge_batchnorm(conv_w, conv_b, bn);
#pragma once

#include <ATen/core/Tensor.h>

namespace strata {

/// The parameters of an eval-mode BatchNorm.
struct BatchNormParams {
  at::Tensor weight;  ///< gamma (undefined: ones)
  at::Tensor bias;    ///< beta (undefined: zeros)
  at::Tensor running_mean;
  at::Tensor running_var;
  double eps = 1e-5;
};

/// A linear/conv layer's weight and bias after merging a BatchNorm into it.
struct MergedLayer {
  at::Tensor weight;  ///< same shape as the layer's weight
  at::Tensor bias;    ///< [out_channels]
};

/// Merges `bn` into a layer with `weight` (output channels along dim 0, as Linear and Conv store
/// them) and `bias` (undefined: none). Shapes that do not fit throw strata::Error.
MergedLayer merge_batchnorm(const at::Tensor& weight, const at::Tensor& bias,
                            const BatchNormParams& bn);

}  // namespace strata
