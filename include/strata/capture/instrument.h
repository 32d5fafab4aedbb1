// The graph pass behind the hook layer. It rewrites every method graph of every module type in a
// TorchScript module so that each submodule call `prim::CallMethod[name="forward"]` passes its
// tensor inputs and outputs (tuple elements one by one) through the `strata::hook` operator.
// Model::load does this on a clone of the loaded module; call it yourself only for a module you
// built in C++, and before its first forward (the executor caches an optimized graph then).
#pragma once

#include <cstdint>

namespace torch {
namespace jit {
struct Module;
}
}  // namespace torch

namespace strata {

/// What instrument() did.
struct InstrumentStats {
  int64_t call_sites = 0;    ///< submodule calls found and hooked, over all distinct graphs
  int64_t output_hooks = 0;  ///< hook operators on outputs (one per tensor)
  int64_t input_hooks = 0;   ///< hook operators on inputs (one per tensor)
  int64_t graphs = 0;        ///< method graphs visited
};

/// Instruments `module` in place (see file comment). Idempotent: a graph that already holds hook
/// operators is left alone.
InstrumentStats instrument(torch::jit::Module& module);

}  // namespace strata
