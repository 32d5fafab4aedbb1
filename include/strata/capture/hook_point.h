// A hook point is one tensor flowing out of (or into) one submodule call. Its key is the stable
// name every strata tool and file uses:
//   blocks.3.attn        output of the first call of module `blocks.3.attn` (a single tensor)
//   blocks.3.attn:1      the tensor at index 1 of a tuple output (flattened, tensors only)
//   blocks.3.attn@2      output of the third call of the module in one forward pass
//   blocks.3.attn:in:0   the first tensor argument of the call (input hook points)
//   output, output:1     the model's own return value
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace c10 {
struct IValue;
}

namespace strata {

/// Whether a hook point sits on a module call's output or on one of its inputs.
enum class HookKind { Output = 0, Input = 1 };

/// Which hook points a selection covers.
enum class Which { Output, Input, Both };

/// One tensor at one submodule call.
struct HookPoint {
  std::string module;             ///< qualified module name, e.g. "blocks.3.attn"
  HookKind kind = HookKind::Output;
  int64_t call = 0;               ///< 0 for the first call of the module in a forward pass
  int64_t index = -1;             ///< tensor index in a tuple (or among the inputs); -1: single tensor

  /// The key used in captures, files and edits ("blocks.3.attn@1:0", "mlp:in:0").
  std::string key() const;
  /// The key with the call always spelled out ("lin@0", "pair@0:1"), which patterns also accept
  /// to select only the first call of a module that is called several times.
  std::string explicit_key() const;
};

/// Builds the key of a hook point from its parts (see HookPoint::key).
std::string hook_key(const std::string& module, HookKind kind, int64_t call, int64_t index);

/// The tensors of a value in flattened order (tuples and lists depth-first; non-tensors skipped).
std::vector<at::Tensor> flatten_tensors(const c10::IValue& value);

/// Keys for a flattened value under `name`: {"name"} for a tensor, {"name:0", "name:1", ...} for
/// a tuple (as `strata capture` stores the model's return value under "output").
std::vector<std::string> flattened_keys(const c10::IValue& value, const std::string& name);

}  // namespace strata
