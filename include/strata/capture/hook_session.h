// HookSession is the one object that decides what happens at hook points while it is alive on
// the calling thread: which points are captured, what is kept of them, which edits apply, and
// whether gradients are retained. With no session active, an instrumented model computes exactly
// what the original does.
//
//   auto model = strata::Model::load("gpt.pt");
//   strata::HookSession session;                  // active on this thread until destroyed
//   session.capture("blocks.*").edit("blocks.1.mlp", strata::Edit::zero());
//   auto out = model.forward({tokens});
//   at::Tensor h = session.activations().at("blocks.0");
//
// Sessions nest: a new session hides the previous one until it is destroyed.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <strata/capture/edit.h>
#include <strata/capture/hook_point.h>
#include <strata/capture/pattern.h>
#include <strata/io/safetensors.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace strata {

/// What is kept of a captured activation.
struct KeepOptions {
  bool detach = true;                     ///< cut the autograd graph
  bool clone = false;                     ///< copy even when no conversion is needed
  std::optional<c10::Device> device = c10::Device(c10::kCPU);  ///< nullopt: stay on its device
  std::optional<c10::ScalarType> dtype;   ///< nullopt: keep the dtype

  KeepOptions& set_detach(bool v) { detach = v; return *this; }
  KeepOptions& set_clone(bool v) { clone = v; return *this; }
  KeepOptions& set_device(std::optional<c10::Device> v) { device = v; return *this; }
  KeepOptions& set_dtype(std::optional<c10::ScalarType> v) { dtype = v; return *this; }

  /// Applies these options to a tensor.
  at::Tensor apply(const at::Tensor& t) const;
};

/// Called for each captured activation (after edits and KeepOptions).
using Observer = std::function<void(const HookPoint&, const at::Tensor&)>;

/// Decides per hook point whether it is captured.
using Selector = std::function<bool(const HookPoint&)>;

/// The thread-local controller of hook points; see the file comment.
class HookSession {
 public:
  /// Creates the session and makes it the active one on this thread.
  HookSession();
  /// Restores the previously active session (if any).
  ~HookSession();
  HookSession(const HookSession&) = delete;
  HookSession& operator=(const HookSession&) = delete;

  /// Captures the points matching `pattern` (see pattern.h); outputs by default.
  HookSession& capture(const std::string& pattern, Which which = Which::Output);
  /// Captures every hook point (outputs, inputs, or both).
  HookSession& capture_all(Which which = Which::Output);
  /// Captures the points for which `selector` returns true.
  HookSession& capture_if(Selector selector);
  /// Sets what is kept of captured activations.
  HookSession& keep(KeepOptions options);
  /// Stores captures in activations() (default true); observers see them either way.
  HookSession& store(bool enabled);
  /// Calls `observer` for each captured activation.
  HookSession& observe(Observer observer);
  /// Applies `edit` at the points matching `pattern` (outputs; a key with ":in:" for inputs).
  HookSession& edit(const std::string& pattern, Edit edit, Which which = Which::Output);
  /// Keeps the (edited) live tensors of captured points so their gradients can be read after a
  /// backward pass (gradients()).
  HookSession& retain_grad(bool enabled = true);

  /// Starts a new forward pass: call counters (the @K suffixes) restart. Model::forward calls it.
  void new_pass();
  /// Activations captured since the session began (later passes overwrite equal keys). Throws if
  /// one was modified in place after capture (capture with KeepOptions::clone to avoid that).
  const TensorMap& activations() const;
  /// Drops stored activations and retained tensors.
  void clear();
  /// Gradients of retained points after backward (points without a gradient are left out).
  TensorMap gradients() const;
  /// The points this session saw in the last pass, in order (captured or not).
  const std::vector<HookPoint>& seen() const { return seen_; }
  /// Number of edits applied so far, per pattern (to tell a user that an edit never fired).
  int64_t edits_applied(const std::string& pattern) const;

  /// The active session on this thread, or nullptr.
  static HookSession* current();

  /// Called by the hook operator: processes one tensor at one point and returns its replacement.
  at::Tensor on_hook(const std::string& module, HookKind kind, int64_t index, const at::Tensor& x);

 private:
  struct EditEntry {
    Pattern pattern;
    Which which;
    Edit edit;
    int64_t applied = 0;
  };
  struct CallState {
    int64_t calls = 0;  // completed calls in this pass
    at::Tensor input;   // first tensor input of the running call (for skip)
  };
  bool selected(const HookPoint& p);
  static bool which_ok(Which which, HookKind kind);

  HookSession* previous_ = nullptr;
  std::vector<Selector> selectors_;
  std::unordered_map<std::string, bool> selected_cache_;
  std::vector<EditEntry> edits_;
  bool any_skip_ = false;
  KeepOptions keep_;
  bool store_ = true;
  std::vector<Observer> observers_;
  bool retain_grad_ = false;
  TensorMap activations_;
  std::unordered_map<std::string, int64_t> versions_;
  TensorMap retained_;
  std::unordered_map<std::string, CallState> calls_;
  std::vector<HookPoint> seen_;
};

/// Suspends hook processing on the calling thread while alive: instrumented modules called
/// meanwhile behave exactly like the originals (no captures, no edits, no call counting). An
/// analyzer that runs the model's own submodules (the logit lens calling the final norm) uses it
/// so that those calls do not re-enter the active session.
class SuspendHooks {
 public:
  SuspendHooks();
  ~SuspendHooks();
  SuspendHooks(const SuspendHooks&) = delete;
  SuspendHooks& operator=(const SuspendHooks&) = delete;

 private:
  HookSession* session_;
  int tracking_;
};

}  // namespace strata
