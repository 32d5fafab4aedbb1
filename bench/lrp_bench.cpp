// One LRP explanation against one forward pass on face-api's face-expression CNN (one 112x112
// face), plus gradient x input, all in C++ through strata; bench/run_lrp_bench.sh runs it next
// to the Python peer (bench/python_lrp_bench.py) and prints the ratios of docs/benchmarks.md.
//
// usage: strata_lrp_bench MODEL.pt FACES.safetensors REPS OUT.json
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <strata/io/safetensors.h>
#include <strata/lrp/composite.h>
#include <strata/lrp/lrp.h>
#include <strata/model/model.h>
#include <torch/csrc/jit/api/module.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

double median_ms(int reps, const std::function<void()>& f) {
  for (int i = 0; i < 3; ++i) f();  // warm-up (the executor optimises on the first runs)
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto a = std::chrono::steady_clock::now();
    f();
    const auto b = std::chrono::steady_clock::now();
    t.push_back(std::chrono::duration<double, std::milli>(b - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s MODEL.pt FACES.safetensors REPS OUT.json\n", argv[0]);
    return 2;
  }
  const int reps = std::stoi(argv[3]);
  strata::Model model = strata::Model::load(argv[1]);
  const at::Tensor x = strata::load_safetensors(argv[2]).tensors.at("arg0").slice(0, 0, 1);
  nlohmann::json out;
  out["threads"] = at::get_num_threads();
  out["forward_ms"] = median_ms(reps, [&] {
    at::NoGradGuard g;
    model.forward({x});
  });
  out["forward_grad_ms"] = median_ms(reps, [&] { model.forward({x}); });
  // Gradients for the input only, as in the Python peer (parameters would get gradients too).
  for (auto p : model.module().parameters()) p.requires_grad_(false);
  out["gradient_x_input_ms"] = median_ms(reps, [&] {
    const at::Tensor xi = x.detach().clone().requires_grad_(true);
    const at::Tensor y = model.forward({xi}).toTensor();
    y.select(1, 1).sum().backward();
    (xi.grad() * x).sum().item<double>();
  });
  const std::vector<std::pair<std::string, strata::Composite>> composites = {
      {"epsilon", strata::Composite()},
      {"epsilon_gamma_box", strata::Composite::epsilon_gamma_box(-0.49, 0.6)},
      {"epsilon_plus_flat", strata::Composite::epsilon_plus_flat()},
      {"epsilon_alpha2_beta1", strata::Composite::epsilon_alpha2_beta1()}};
  for (const auto& [name, c] : composites) {
    strata::LrpExplainer ex(model, c, strata::LrpOptions().set_keep_points(false));
    out["lrp_ms"][name] = median_ms(reps, [&] { ex.explain({x}, 1); });
    strata::LrpExplainer full(model, c);
    out["lrp_with_points_ms"][name] = median_ms(reps, [&] { full.explain({x}, 1); });
  }
  std::ofstream(argv[4]) << out.dump(2) << "\n";
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
