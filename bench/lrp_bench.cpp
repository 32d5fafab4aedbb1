// One LRP explanation against one forward pass on face-api's face-expression CNN (one 112x112
// face), plus gradient x input, all in C++ through strata; bench/run_lrp_bench.sh runs it next
// to the Python peer (bench/python_lrp_bench.py) and prints the ratios of docs/benchmarks.md.
//
// usage: strata_lrp_bench MODEL.pt FACES.safetensors REPS OUT.json COMPOSITE plain|points
//        [default-malloc]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <strata/core/memory.h>
#include <strata/io/safetensors.h>
#include <strata/lrp/composite.h>
#include <strata/lrp/lrp.h>
#include <strata/model/model.h>
#include <sys/resource.h>
#include <torch/csrc/jit/api/module.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

// Times the variants in blocks: each round runs every variant `reps / rounds` times in a row
// (after one untimed run), variants taking turns round by round, so that load from other
// processes on the machine hits them alike while each variant runs with its own data warm in the
// caches, as a loop over inputs would (one run of a variant right after a different one measures
// the cache refill as well). Reports each variant's median.
class Interleaved {
 public:
  void add(std::string name, std::function<void()> f) {
    runs_.push_back({std::move(name), std::move(f), {}, 0});
  }
  nlohmann::json run(int reps, int rounds = 5) {
    for (auto& r : runs_)
      for (int i = 0; i < 3; ++i) r.f();  // warm-up (the executor optimises on the first runs)
    const int per = std::max(1, reps / rounds);
    for (int k = 0; k < rounds; ++k)
      for (auto& r : runs_) {
        r.f();
        const long faults0 = minor_faults();
        for (int i = 0; i < per; ++i) {
          const auto a = std::chrono::steady_clock::now();
          r.f();
          const auto b = std::chrono::steady_clock::now();
          r.ms.push_back(std::chrono::duration<double, std::milli>(b - a).count());
        }
        r.faults += minor_faults() - faults0;
      }
    nlohmann::json out;
    for (auto& r : runs_) {
      std::sort(r.ms.begin(), r.ms.end());
      out[r.name] = r.ms[r.ms.size() / 2];
      out["page_faults_per_run"][r.name] = static_cast<double>(r.faults) / r.ms.size();
    }
    return out;
  }

 private:
  struct Run {
    std::string name;
    std::function<void()> f;
    std::vector<double> ms;
    long faults;
  };
  static long minor_faults() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
  }
  std::vector<Run> runs_;
};

}  // namespace

int main(int argc, char** argv) {
  const bool default_malloc = argc == 8 && std::string(argv[7]) == "default-malloc";
  if ((argc != 7 && !default_malloc) ||
      (std::string(argv[6]) != "plain" && std::string(argv[6]) != "points")) {
    std::fprintf(stderr,
                 "usage: %s MODEL.pt FACES.safetensors REPS OUT.json COMPOSITE plain|points "
                 "[default-malloc]\n",
                 argv[0]);
    return 2;
  }
  // As the strata command does at start-up (docs/benchmarks.md: without it, glibc hands the
  // memory an explanation frees back to the kernel, and depending on where the heap lies the next
  // explanation pays up to ~1,500 page faults for it).
  // default-malloc leaves glibc's settings alone, to see the difference.
  const bool retained = !default_malloc && strata::retain_freed_memory();
  const int reps = std::stoi(argv[3]);
  const std::string name = argv[5];
  const bool points = std::string(argv[6]) == "points";
  strata::Model model = strata::Model::load(argv[1]);
  const at::Tensor x = strata::load_safetensors(argv[2]).tensors.at("arg0").slice(0, 0, 1);
  // Gradients for the input only, as in the Python peer (parameters would get gradients too).
  for (auto p : model.module().parameters()) p.requires_grad_(false);
  // One composite per process, as a user explaining many inputs runs it: the forward pass it is
  // compared with runs in the same process, with the same allocator state.
  // EpsilonGammaBox's z^B rule takes the input's bounds: the range of face-api's normalized pixels.
  const std::string preset = name == "epsilon_gamma_box" ? name + ":-0.49:0.6" : name;
  strata::LrpExplainer ex(model, strata::Composite::preset(preset),
                          strata::LrpOptions().set_keep_points(points));
  Interleaved bench;
  bench.add("forward_ms", [&] {
    at::NoGradGuard g;
    model.forward({x});
  });
  bench.add("gradient_x_input_ms", [&] {
    const at::Tensor xi = x.detach().clone().requires_grad_(true);
    const at::Tensor y = model.forward({xi}).toTensor();
    y.select(1, 1).sum().backward();
    (xi.grad() * x).sum().item<double>();
  });
  bench.add("lrp_ms", [&] { ex.explain({x}, 1); });
  nlohmann::json out = bench.run(reps);
  out["threads"] = at::get_num_threads();
  out["composite"] = name;
  out["relevance_at_all_points"] = points;
  out["retain_freed_memory"] = retained;
  std::ofstream(argv[4]) << out.dump(2) << "\n";
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
