// Private: maps live module objects to their qualified names, and the per-thread state the hook
// operator reads. Graphs are shared by every instance of a module type, so the operator receives
// the module object and resolves its name here at run time.
#pragma once

#include <string>
#include <vector>

namespace c10 {
struct IValue;
}
namespace torch {
namespace jit {
struct Module;
}
}  // namespace torch

namespace strata {
class HookSession;
namespace detail {

/// Records every module in the tree of `root` (root itself as ""), under `owner`.
void register_modules(const torch::jit::Module& root, const void* owner);
/// Forgets every module recorded for `owner`.
void unregister_modules(const void* owner);
/// The qualified name of a module object, or nullptr when it was never registered.
const std::string* module_name(const c10::IValue& module);

/// Per-thread state: the active session and the stack of module calls in progress.
struct ThreadState {
  HookSession* session = nullptr;
  int tracking = 0;                        // >0 while Model::forward runs
  std::vector<const std::string*> stack;   // modules whose inputs were seen, outputs not yet
};
ThreadState& thread_state();

}  // namespace detail
}  // namespace strata
