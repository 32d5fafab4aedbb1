#include <strata/model/model.h>

#include <torch/script.h>

#include <strata/capture/hook_session.h>
#include <strata/capture/pattern.h>
#include <strata/core/dtype.h>
#include <strata/core/error.h>
#include <strata/core/torch_error.h>

#include <filesystem>
#include <unordered_map>
#include <fstream>
#include <sstream>

#include "../capture/module_registry.h"

namespace strata {

struct Model::Impl {
  torch::jit::Module module;
  std::string source;
  c10::Device device = c10::Device(c10::kCPU);
  std::vector<ModuleInfo> modules;
  InstrumentStats stats;

  ~Impl() { detail::unregister_modules(this); }
};

namespace {

std::string last_part(const std::string& qualified) {
  const auto pos = qualified.rfind('.');
  return pos == std::string::npos ? qualified : qualified.substr(pos + 1);
}

void list_modules(const torch::jit::Module& m, const std::string& name, int64_t depth,
                  std::vector<ModuleInfo>& out) {
  ModuleInfo info;
  info.name = name;
  info.qualified_type = m.type()->name() ? m.type()->name()->qualifiedName() : "<anonymous>";
  info.type_name = last_part(info.qualified_type);
  info.depth = depth;
  for (const auto& p : m.named_parameters(/*recurse=*/false)) {
    info.tensors.push_back(
        {p.name, p.value.sizes().vec(), dtype_name(p.value.scalar_type()), false});
  }
  for (const auto& b : m.named_buffers(/*recurse=*/false)) {
    info.tensors.push_back({b.name, b.value.sizes().vec(), dtype_name(b.value.scalar_type()), true});
  }
  out.push_back(std::move(info));
  for (const auto& child : m.named_children()) {
    list_modules(child.value, name.empty() ? child.name : name + "." + child.name, depth + 1, out);
  }
}

bool looks_like_zip(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char magic[4] = {0, 0, 0, 0};
  f.read(magic, 4);
  return f.gcount() == 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4;
}

struct TrackingGuard {
  detail::ThreadState& ts;
  explicit TrackingGuard(detail::ThreadState& s) : ts(s) {
    if (ts.tracking++ == 0) ts.stack.clear();
  }
  ~TrackingGuard() { --ts.tracking; }
};

}  // namespace

Model Model::from_module(const torch::jit::Module& module, std::string source,
                         const LoadOptions& options) {
  Model model;
  model.impl_ = std::make_shared<Impl>();
  Impl& impl = *model.impl_;
  impl.source = std::move(source);
  impl.device = options.device;
  try {
    // Instrument a clone before its first forward: the executor caches an optimized graph on the
    // first run, and the caller's module stays as it was.
    {
      // Without this guard the cloned parameters would be non-leaf copies linked by autograd to
      // the caller's module (backward would reach into it, and requires_grad could not be reset).
      at::NoGradGuard no_grad;
      impl.module = module.clone();
    }
    // Cloned under no_grad, the parameters are leaves without requires_grad: restore the flag.
    {
      auto originals = module.named_parameters(/*recurse=*/true);
      std::unordered_map<std::string, bool> wanted;
      for (const auto& p : originals) wanted[p.name] = p.value.requires_grad();
      for (const auto& p : impl.module.named_parameters(/*recurse=*/true)) {
        auto it = wanted.find(p.name);
        if (it != wanted.end() && it->second) p.value.requires_grad_(true);
      }
    }
    if (options.eval) impl.module.eval();
    impl.module.to(options.device);
    impl.stats = instrument(impl.module);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(str_cat("Model: cannot instrument '", impl.source, "': ",
                        condense_torch_message(e)));
  }
  list_modules(impl.module, "", 0, impl.modules);
  detail::register_modules(impl.module, model.impl_.get());
  return model;
}

Model Model::load(const std::string& path, const LoadOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  STRATA_CHECK(fs::exists(path, ec), "Model::load: no such file: '", path, "'");
  STRATA_CHECK(!fs::is_directory(path, ec), "Model::load: '", path, "' is a directory, not a file");
  STRATA_CHECK(looks_like_zip(path), "Model::load: '", path,
               "' is not a TorchScript archive (expected a zip file written by "
               "torch.jit.save / ScriptModule.save)");
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, options.device);
  } catch (const std::exception& e) {
    throw Error(str_cat("Model::load: '", path, "' is not a readable TorchScript archive: ",
                        condense_torch_message(e)));
  }
  return from_module(module, path, options);
}

c10::IValue Model::forward(std::vector<c10::IValue> inputs) const {
  auto& ts = detail::thread_state();
  if (ts.session) ts.session->new_pass();
  const auto& schema = impl_->module.get_method("forward").function().getSchema();
  const auto& args = schema.arguments();
  size_t required = 0;
  std::string names;
  for (size_t i = 1; i < args.size(); ++i) {
    if (!args[i].default_value()) ++required;
    names += (i > 1 ? ", " : "") + args[i].name();
  }
  STRATA_CHECK(inputs.size() >= required && inputs.size() + 1 <= args.size(), "Model::forward: '",
               impl_->source, "' takes ", args.size() - 1, " argument(s) (", names, "), got ",
               inputs.size());
  TrackingGuard guard(ts);
  std::vector<c10::IValue> described = inputs;  // forward() may consume the vector
  try {
    return impl_->module.forward(std::move(inputs));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    std::ostringstream msg;
    msg << "Model::forward: '" << impl_->source << "' failed";
    if (!ts.stack.empty()) msg << " in module '" << *ts.stack.back() << "'";
    msg << ": " << condense_torch_message(e) << " (inputs: ";
    for (size_t i = 0; i < described.size(); ++i) {
      msg << (i ? ", " : "") << "arg" << i << " " << (i + 1 < args.size() ? args[i + 1].name() : "")
          << "=" << describe_value(described[i]);
    }
    msg << ")";
    throw Error(msg.str());
  }
}

const std::vector<ModuleInfo>& Model::modules() const { return impl_->modules; }

std::vector<std::string> Model::submodule_names() const {
  std::vector<std::string> out;
  for (const auto& m : impl_->modules)
    if (!m.name.empty()) out.push_back(m.name);
  return out;
}

std::vector<std::string> Model::match(const std::string& pattern) const {
  Pattern p(pattern);
  // Keys naming one element or one call ("attn:1", "lin@0", "pair@1:*") match their module.
  Pattern modules(p.module_part());
  std::vector<std::string> out;
  for (const auto& m : impl_->modules) {
    if (!m.name.empty() && (p.matches(m.name) || modules.matches(m.name))) out.push_back(m.name);
  }
  if (out.empty()) {
    std::string some;
    int n = 0;
    for (const auto& m : impl_->modules) {
      if (m.name.empty()) continue;
      if (n++ == 8) {
        some += ", ...";
        break;
      }
      some += (some.empty() ? "" : ", ") + m.name;
    }
    throw Error(str_cat("hook pattern '", pattern, "' matches no module of '", impl_->source,
                        "' (", impl_->modules.size() - 1, " modules: ", some,
                        "; see `strata inspect`)"));
  }
  return out;
}

const InstrumentStats& Model::instrument_stats() const { return impl_->stats; }

void Model::require_hook_points() const {
  STRATA_CHECK(impl_->stats.call_sites > 0, "'", impl_->source,
               "' has no submodule calls left to hook: it was frozen (torch.jit.freeze) or its "
               "submodules were inlined. Save the scripted or traced module without freezing.");
}

const std::string& Model::source() const { return impl_->source; }
c10::Device Model::device() const { return impl_->device; }
torch::jit::Module& Model::module() const { return impl_->module; }

torch::jit::Module Model::submodule(const std::string& name) const {
  torch::jit::Module m = impl_->module;
  size_t start = 0;
  while (start <= name.size()) {
    const size_t dot = name.find('.', start);
    const std::string part =
        name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    STRATA_CHECK(m.hasattr(part) && m.attr(part).isModule(), "Model::submodule: '",
                 impl_->source, "' has no module '", name, "' (no '", part, "')");
    m = m.attr(part).toModule();
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return m;
}

std::string describe_value(const c10::IValue& v) {
  std::ostringstream os;
  if (v.isTensor()) {
    const auto& t = v.toTensor();
    os << dtype_name(t.scalar_type()) << t.sizes();
  } else if (v.isTuple()) {
    os << "(";
    const auto& el = v.toTupleRef().elements();
    for (size_t i = 0; i < el.size(); ++i) os << (i ? ", " : "") << describe_value(el[i]);
    os << ")";
  } else {
    os << v.tagKind() << " " << v;
  }
  return os.str();
}

}  // namespace strata
