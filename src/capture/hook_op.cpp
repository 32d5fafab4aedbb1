// The hook operator `strata::hook(Tensor x, Any module, int index, int kind) -> Tensor`, which
// instrument() inserts after (and before) every submodule call, and the module-name registry.
#include <torch/csrc/jit/api/module.h>
#include <torch/library.h>

#include <ATen/core/ivalue.h>

#include <shared_mutex>
#include <unordered_map>

#include <strata/capture/hook_session.h>
#include <strata/model/model.h>

#include "module_registry.h"

namespace strata {
namespace detail {
namespace {

struct Registry {
  std::shared_mutex mutex;
  std::unordered_map<const void*, std::pair<std::string, const void*>> names;  // obj -> (name, owner)
};
Registry& registry() {
  static Registry r;
  return r;
}

void collect(const torch::jit::Module& m, const std::string& prefix,
             std::vector<std::pair<const void*, std::string>>& out) {
  out.emplace_back(m._ivalue().get(), prefix);
  for (const auto& child : m.named_children()) {
    collect(child.value, prefix.empty() ? child.name : prefix + "." + child.name, out);
  }
}

}  // namespace

void register_modules(const torch::jit::Module& root, const void* owner) {
  std::vector<std::pair<const void*, std::string>> all;
  collect(root, "", all);
  auto& r = registry();
  std::unique_lock<std::shared_mutex> lock(r.mutex);
  for (auto& [obj, name] : all) r.names[obj] = {std::move(name), owner};
}

void unregister_modules(const void* owner) {
  auto& r = registry();
  std::unique_lock<std::shared_mutex> lock(r.mutex);
  for (auto it = r.names.begin(); it != r.names.end();) {
    it = it->second.second == owner ? r.names.erase(it) : std::next(it);
  }
}

const std::string* module_name(const c10::IValue& module) {
  if (!module.isObject()) return nullptr;
  auto& r = registry();
  std::shared_lock<std::shared_mutex> lock(r.mutex);
  auto it = r.names.find(&module.toObjectRef());
  // The string lives as long as the model that registered it, which outlives its forward calls.
  return it == r.names.end() ? nullptr : &it->second.first;
}

ThreadState& thread_state() {
  thread_local ThreadState state;
  return state;
}

namespace {

at::Tensor hook(const at::Tensor& x, const c10::IValue& module, int64_t index, int64_t kind) {
  ThreadState& ts = thread_state();
  if (ts.session == nullptr && ts.tracking == 0) return x;  // the plain, uninstrumented result
  const std::string* name = module_name(module);
  if (name == nullptr) return x;
  const auto hook_kind = static_cast<HookKind>(kind);
  if (ts.tracking > 0) {
    if (hook_kind == HookKind::Input && index == 0) {
      ts.stack.push_back(name);
    } else if (hook_kind == HookKind::Output && index <= 0 && !ts.stack.empty() &&
               ts.stack.back() == name) {
      ts.stack.pop_back();
    }
  }
  if (ts.session == nullptr) return x;
  return ts.session->on_hook(*name, hook_kind, index, x);
}

}  // namespace
}  // namespace detail
}  // namespace strata

// CONSERVATIVE alias analysis marks the op as having side effects, so dead-code elimination keeps
// captures whose result is unused (DESIGN.md).
TORCH_LIBRARY(strata, m) {
  m.def(torch::schema("strata::hook(Tensor x, Any module, int index, int kind) -> Tensor",
                      c10::AliasAnalysisKind::CONSERVATIVE),
        &strata::detail::hook);
}
