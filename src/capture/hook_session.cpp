#include <strata/capture/hook_session.h>

#include <ATen/ATen.h>

#include <strata/core/error.h>

#include "module_registry.h"

namespace strata {

at::Tensor KeepOptions::apply(const at::Tensor& t) const {
  at::Tensor r = detach ? t.detach() : t;
  const bool move = device && r.device() != *device;
  const bool cast = dtype && r.scalar_type() != *dtype;
  if (move || cast) {
    r = r.to(move ? *device : r.device(), cast ? *dtype : r.scalar_type(), /*non_blocking=*/false,
             /*copy=*/clone);
  } else if (clone) {
    r = r.clone();
  }
  return r;
}

HookSession::HookSession() {
  auto& ts = detail::thread_state();
  previous_ = ts.session;
  ts.session = this;
}

HookSession::~HookSession() { detail::thread_state().session = previous_; }

HookSession* HookSession::current() { return detail::thread_state().session; }

SuspendHooks::SuspendHooks() {
  auto& ts = detail::thread_state();
  session_ = ts.session;
  tracking_ = ts.tracking;
  ts.session = nullptr;
  ts.tracking = 0;
}

SuspendHooks::~SuspendHooks() {
  auto& ts = detail::thread_state();
  ts.session = session_;
  ts.tracking = tracking_;
}

bool HookSession::which_ok(Which which, HookKind kind) {
  return which == Which::Both || (which == Which::Output) == (kind == HookKind::Output);
}


HookSession& HookSession::capture(const std::string& pattern, Which which) {
  Pattern p(pattern);
  selectors_.push_back([p, which](const HookPoint& point) { return p.selects(point, which); });
  selected_cache_.clear();
  return *this;
}

HookSession& HookSession::capture_all(Which which) {
  selectors_.push_back([which](const HookPoint& point) { return which_ok(which, point.kind); });
  selected_cache_.clear();
  return *this;
}

HookSession& HookSession::capture_if(Selector selector) {
  STRATA_CHECK(static_cast<bool>(selector), "HookSession::capture_if: empty selector");
  selectors_.push_back(std::move(selector));
  selected_cache_.clear();
  return *this;
}

HookSession& HookSession::keep(KeepOptions options) {
  keep_ = options;
  return *this;
}

HookSession& HookSession::store(bool enabled) {
  store_ = enabled;
  return *this;
}

HookSession& HookSession::observe(Observer observer) {
  STRATA_CHECK(static_cast<bool>(observer), "HookSession::observe: empty observer");
  observers_.push_back(std::move(observer));
  return *this;
}

HookSession& HookSession::edit(const std::string& pattern, Edit edit, Which which) {
  if (edit.kind() == Edit::Kind::Skip) any_skip_ = true;
  edits_.push_back(EditEntry{Pattern(pattern), which, std::move(edit), 0});
  return *this;
}

HookSession& HookSession::retain_grad(bool enabled) {
  retain_grad_ = enabled;
  return *this;
}

void HookSession::new_pass() {
  calls_.clear();
  seen_.clear();
}

const TensorMap& HookSession::activations() const {
  for (const auto& key : activations_.names()) {
    auto it = versions_.find(key);
    STRATA_CHECK(it == versions_.end() || activations_.at(key)._version() == it->second,
                 "HookSession::activations: the activation at '", key,
                 "' was modified in place by the model after it was captured; capture with "
                 "KeepOptions().set_clone(true) to keep a copy");
  }
  return activations_;
}

void HookSession::clear() {
  activations_ = TensorMap();
  versions_.clear();
  retained_ = TensorMap();
}

TensorMap HookSession::gradients() const {
  TensorMap out;
  for (const auto& key : retained_.names()) {
    const at::Tensor& g = retained_.at(key).grad();
    if (g.defined()) out.insert(key, g);
  }
  return out;
}

int64_t HookSession::edits_applied(const std::string& pattern) const {
  int64_t n = 0;
  for (const auto& e : edits_)
    if (e.pattern.text() == pattern) n += e.applied;
  return n;
}

bool HookSession::selected(const HookPoint& p) {
  if (selectors_.empty()) return false;
  const std::string key = p.key();
  auto it = selected_cache_.find(key);
  if (it != selected_cache_.end()) return it->second;
  bool yes = false;
  for (const auto& s : selectors_) {
    if (s(p)) {
      yes = true;
      break;
    }
  }
  selected_cache_.emplace(key, yes);
  return yes;
}

at::Tensor HookSession::on_hook(const std::string& module, HookKind kind, int64_t index,
                                const at::Tensor& x) {
  CallState& cs = calls_[module];
  // The first output tensor of a call completes it; later tuple elements belong to that call.
  int64_t call = cs.calls;
  if (kind == HookKind::Output) {
    if (index <= 0) {
      ++cs.calls;
    } else {
      call = cs.calls - 1;
    }
  }
  HookPoint point{module, kind, call, index};
  seen_.push_back(point);

  at::Tensor value = x;
  for (auto& e : edits_) {
    if (!e.pattern.selects(point, e.which)) continue;
    value = e.edit.apply(point, value, cs.input);
    ++e.applied;
  }
  // Skip needs the call's first input when its output arrives; it stays until the next call.
  if (kind == HookKind::Input && index == 0 && any_skip_) cs.input = value;

  if (!selected(point)) return value;
  const std::string key = point.key();
  if (retain_grad_ && value.requires_grad()) {
    // A fresh view is the value handed to the caller: its gradient excludes any use the module
    // itself made of the tensor (attention weights reused inside the module, say).
    value = value.view_as(value);
    value.retain_grad();
    retained_.insert(key, value);
  }
  if (store_ || !observers_.empty()) {
    at::Tensor kept = keep_.apply(value);
    for (const auto& obs : observers_) obs(point, kept);
    if (store_) {
      activations_.insert(key, kept);
      versions_[key] = kept._version();
    }
  }
  return value;
}

}  // namespace strata
