// Model loads a TorchScript file (scripted or traced), lists its module tree, and instruments a
// clone of it so every submodule call becomes a hook point (see capture/hook_session.h).
//
//   auto model = strata::Model::load("gpt.pt");
//   for (const auto& m : model.modules()) std::cout << m.name << " " << m.type_name << "\n";
//   c10::IValue out = model.forward({tokens});
#pragma once

#include <ATen/core/ivalue.h>
#include <c10/core/Device.h>

#include <strata/capture/instrument.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace torch {
namespace jit {
struct Module;
}
}  // namespace torch

namespace strata {

/// One parameter or buffer of a module (its own, not its children's).
struct TensorInfo {
  std::string name;            ///< local name ("weight")
  std::vector<int64_t> shape;
  std::string dtype;           ///< "float32", "int64", ...
  bool is_buffer = false;
};

/// One module of the tree, in depth-first order.
struct ModuleInfo {
  std::string name;       ///< qualified name ("blocks.3.attn"); "" for the root
  std::string type_name;  ///< TorchScript class name, e.g. "Linear" (the last part of the qualified one)
  std::string qualified_type;  ///< full TorchScript class name (__torch__.torch.nn.modules...)
  int64_t depth = 0;
  std::vector<TensorInfo> tensors;  ///< parameters, then buffers
};

/// Options for Model::load.
struct LoadOptions {
  c10::Device device = c10::Device(c10::kCPU);  ///< where the model runs
  bool eval = true;                              ///< put the model in eval mode

  LoadOptions& set_device(c10::Device d) { device = d; return *this; }
  LoadOptions& set_eval(bool v) { eval = v; return *this; }
};

/// A loaded, instrumented TorchScript model.
class Model {
 public:
  /// Loads `path`; errors (missing file, not a TorchScript archive) name the path.
  static Model load(const std::string& path, const LoadOptions& options = {});
  /// Instruments a module built or loaded elsewhere (a clone of it; `module` is left untouched).
  static Model from_module(const torch::jit::Module& module, std::string source = "<module>",
                           const LoadOptions& options = {});

  /// Runs forward. Starts a new pass of the active HookSession; errors name the module that was
  /// running and the inputs' shapes and dtypes.
  c10::IValue forward(std::vector<c10::IValue> inputs) const;

  /// The module tree (root first).
  const std::vector<ModuleInfo>& modules() const;
  /// Names of the submodules (every module but the root), depth-first.
  std::vector<std::string> submodule_names() const;
  /// Submodule names matching `pattern` (exact, glob, or "re:"); throws strata::Error naming
  /// the pattern and a few of the model's names when nothing matches.
  std::vector<std::string> match(const std::string& pattern) const;
  /// What instrumentation found.
  const InstrumentStats& instrument_stats() const;
  /// Throws strata::Error when the model has no submodule calls left to hook (frozen/inlined).
  void require_hook_points() const;
  /// The file it came from.
  const std::string& source() const;
  /// The device given at load.
  c10::Device device() const;
  /// The instrumented module.
  torch::jit::Module& module() const;
  /// The submodule with qualified name `name` ("layers.3.attention"); errors name the missing
  /// part. Its forward runs with the hook layer: wrap calls in SuspendHooks to keep it silent.
  torch::jit::Module submodule(const std::string& name) const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

/// "float32[2, 8]" for a tensor, "int 3" for a scalar, etc.; used in error messages.
std::string describe_value(const c10::IValue& v);

}  // namespace strata
