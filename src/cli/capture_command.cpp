// strata capture MODEL.pt --input IN.safetensors --out OUT.safetensors [--hooks GLOB[,GLOB...]]
// One tensor per captured hook point, keyed as hook_point.h describes, plus the model's output.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <iostream>

#include <strata/capture/hook_session.h>
#include <strata/core/dtype.h>
#include <strata/core/error.h>
#include <strata/core/logging.h>
#include <strata/model/model.h>

#include <spdlog/spdlog.h>

#include "cli_common.h"

namespace strata::cli {

namespace {
struct CaptureArgs {
  std::string model, input, out, hooks, device = "cpu", dtype;
  bool inputs = false, quiet = false;
};
}  // namespace

void add_capture(CLI::App& app, int& status) {
  auto* cmd = app.add_subcommand("capture", "run a model once and save activations at hook points");
  auto a = std::make_shared<CaptureArgs>();
  cmd->add_option("model", a->model, "TorchScript file (.pt)")->required();
  cmd->add_option("--input", a->input, "safetensors file with arg0, arg1, ...")->required();
  cmd->add_option("--out", a->out, "safetensors file to write")->required();
  cmd->add_option("--hooks", a->hooks, "comma-separated names or globs (default: every submodule)");
  cmd->add_flag("--inputs", a->inputs, "also capture each call's tensor inputs (NAME:in:I)");
  cmd->add_option("--dtype", a->dtype, "convert captured tensors (e.g. float16)");
  cmd->add_option("--device", a->device, "cpu or cuda[:N]");
  cmd->add_flag("--quiet", a->quiet, "no progress or summary on stderr");
  cmd->callback([a, &status] {
    const c10::Device device = parse_device(a->device);
    std::optional<c10::ScalarType> dtype;
    if (!a->dtype.empty()) {
      try {
        dtype = parse_dtype(a->dtype);
      } catch (const Error& e) {
        throw UsageError(std::string("--dtype: ") + e.what());
      }
    }
    Model model = Model::load(a->model, LoadOptions().set_device(device));
    model.require_hook_points();
    SafetensorsFile in = load_safetensors(a->input);
    std::vector<c10::IValue> args = forward_args(in.tensors, a->input, device);

    HookSession session;
    KeepOptions keep;
    keep.set_dtype(dtype).set_clone(true);  // a copy: later in-place ops cannot change it
    session.keep(keep);
    const Which which = a->inputs ? Which::Both : Which::Output;
    const auto patterns = split_list(a->hooks);
    if (patterns.empty()) {
      session.capture_all(which);
    } else {
      for (const auto& p : patterns) {
        model.match(p);  // a pattern that matches no module is an error, not an empty file
        session.capture(p, which);
      }
    }
    c10::IValue output;
    {
      at::NoGradGuard no_grad;
      output = model.forward(args);
    }
    TensorMap out = session.activations();
    const auto keys = flattened_keys(output, "output");
    const auto tensors = flatten_tensors(output);
    for (size_t i = 0; i < keys.size(); ++i) out.insert(keys[i], tensors[i].detach().to(at::kCPU));
    STRATA_CHECK(!session.seen().empty(), "capture: no hook point fired while running '", a->model,
                 "'");
    for (const auto& text : patterns) {
      const Pattern p(text);
      bool any = false;
      for (const auto& point : session.seen()) any = any || p.selects(point, which);
      STRATA_CHECK(any, "capture: hook pattern '", text, "' names modules of '", a->model,
                   "' but selected no hook point in this forward pass (not called, or no such "
                   "call or tuple element)");
    }
    save_safetensors(a->out, out, {{"format", "pt"}, {"producer", "strata capture"},
                                   {"model", a->model}});
    if (!a->quiet) {
      std::cerr << "strata: captured " << session.activations().size() << " hook points (+ "
                << keys.size() << " output tensors) into " << a->out << "\n";
    }
    status = 0;
  });
}

}  // namespace strata::cli
