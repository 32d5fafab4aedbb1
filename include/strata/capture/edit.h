// Edits change an activation as it flows through a hook point: ablations, patching from another
// run, steering vectors, skipping a module, or any user callback. Attach them to a HookSession:
//
//   strata::HookSession s;
//   s.edit("blocks.2.mlp", strata::Edit::zero());                       // zero-ablate
//   s.edit("blocks.*.attn:0", strata::Edit::zero().at(/*dim=*/1, {3}));  // only position 3
//   s.edit("blocks.4", strata::Edit::add(steer, 4.0));                   // add 4 * steer
//   s.edit("blocks.1", strata::Edit::patch(clean_cache));                // patch from a cache
//   s.edit("blocks.3", strata::Edit::skip());                            // output := input
//
// Semantics match the same edit written as a PyTorch forward hook (see docs/architecture.md).
#pragma once

#include <ATen/core/Tensor.h>

#include <strata/capture/hook_point.h>
#include <strata/io/safetensors.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace strata {

/// A user callback: receives the hook point and its tensor, returns the replacement.
using EditFn = std::function<at::Tensor(const HookPoint&, const at::Tensor&)>;

/// One change applied to the tensor at a hook point.
class Edit {
 public:
  enum class Kind { Zero, Mean, Patch, Add, Skip, Callback };

  /// Replace with zeros.
  static Edit zero();
  /// Replace with the mean over the batch dimension (dim 0) of the current activation.
  static Edit mean();
  /// Replace with a given mean (broadcast to the activation's shape, e.g. a dataset mean).
  static Edit mean_of(at::Tensor mean);
  /// Replace with the activation stored under the same key in `cache` (another run).
  static Edit patch(TensorMap cache);
  /// Replace with the given tensor (broadcast to the activation's shape).
  static Edit patch_with(at::Tensor value);
  /// Add `scale * vector` (a steering vector; broadcast from the last dimension).
  static Edit add(at::Tensor vector, double scale = 1.0);
  /// Skip the module: its output becomes its first tensor input (shapes must agree).
  static Edit skip();
  /// Any user function of the activation.
  static Edit callback(EditFn fn);

  /// Restricts the edit to the given indices along `dim` (negative dims count from the end).
  Edit& at(int64_t dim, std::vector<int64_t> indices);

  /// Applies the edit. `input` is the module's first input (used by skip). Errors name the point.
  at::Tensor apply(const HookPoint& point, const at::Tensor& value, const at::Tensor& input) const;

  Kind kind() const { return kind_; }
  /// A short description for logs ("zero at dim 1 [3]").
  std::string describe() const;

 private:
  explicit Edit(Kind kind) : kind_(kind) {}
  at::Tensor replacement(const HookPoint& point, const at::Tensor& value,
                         const at::Tensor& input) const;

  Kind kind_;
  std::optional<int64_t> dim_;
  std::vector<int64_t> indices_;
  at::Tensor tensor_;  // mean / patch value / steering vector
  std::shared_ptr<TensorMap> cache_;
  double scale_ = 1.0;
  EditFn fn_;
};

}  // namespace strata
