#include <strata/capture/hook_point.h>

#include <ATen/core/ivalue.h>

namespace strata {

std::string hook_key(const std::string& module, HookKind kind, int64_t call, int64_t index) {
  std::string key = module;
  if (call > 0) key += "@" + std::to_string(call);
  if (kind == HookKind::Input) {
    key += ":in:" + std::to_string(index < 0 ? 0 : index);
  } else if (index >= 0) {
    key += ":" + std::to_string(index);
  }
  return key;
}

std::string HookPoint::key() const { return hook_key(module, kind, call, index); }

std::string HookPoint::explicit_key() const {
  std::string key = module + "@" + std::to_string(call);
  return key + hook_key("", kind, 0, index);
}

namespace {
void flatten_into(const c10::IValue& v, std::vector<at::Tensor>& out) {
  if (v.isTensor()) {
    out.push_back(v.toTensor());
  } else if (v.isTuple()) {
    for (const auto& e : v.toTupleRef().elements()) flatten_into(e, out);
  } else if (v.isList()) {
    for (const auto& e : v.toListRef()) flatten_into(e, out);
  }
}
}  // namespace

std::vector<at::Tensor> flatten_tensors(const c10::IValue& value) {
  std::vector<at::Tensor> out;
  flatten_into(value, out);
  return out;
}

std::vector<std::string> flattened_keys(const c10::IValue& value, const std::string& name) {
  if (value.isTensor()) return {name};
  std::vector<std::string> keys;
  const auto n = flatten_tensors(value).size();
  for (size_t i = 0; i < n; ++i) keys.push_back(name + ":" + std::to_string(i));
  return keys;
}

}  // namespace strata
