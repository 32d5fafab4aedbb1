// strata's side of the probe benchmark: the same sweep as bench/python_probe_bench.py (for every
// layer: standardize with train statistics, fit the L2 logistic probe with a fixed C, score on
// the test split), through strata::probe_layers, timed as a whole.
//
//   strata_probe_bench FEATURES LABELS OUT.json [--threads=N] [--C=1.0] [--tol=1e-4]
//
// Like the strata command, it calls strata::retain_freed_memory(). --threads sets
// at::set_num_threads (ATen's BLAS products and the row-parallel softmax); layers are fitted one
// after another.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <strata/core/memory.h>
#include <strata/io/safetensors.h>
#include <strata/probe/layer_probe.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: strata_probe_bench FEATURES LABELS OUT.json [--threads=N] [--C=1.0]\n");
    return 2;
  }
  int threads = 1;
  double C = 1.0, tol = strata::ProbeOptions().tol;
  for (int i = 4; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--threads=", 0) == 0) threads = std::stoi(a.substr(10));
    if (a.rfind("--C=", 0) == 0) C = std::stod(a.substr(4));
    if (a.rfind("--tol=", 0) == 0) tol = std::stod(a.substr(6));
  }
  at::set_num_threads(threads);
  strata::retain_freed_memory();  // as the strata command does (docs/benchmarks.md)
  const strata::TensorMap f = strata::load_safetensors(argv[1]).tensors;
  const strata::TensorMap l = strata::load_safetensors(argv[2]).tensors;
  strata::ProbeData data;
  data.labels = l.at("labels");
  data.split = l.at("split");
  std::vector<std::pair<std::string, at::Tensor>> layers;
  for (const auto& n : f.names()) layers.emplace_back(n, f.at(n));
  const auto t0 = std::chrono::steady_clock::now();
  nlohmann::json r =
      strata::probe_layers(layers, data, strata::ProbeOptions().set_C(C).set_tol(tol));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r["seconds"] = s;
  r["threads"] = threads;
  std::ofstream(argv[3]) << r.dump(1) << "\n";
  std::printf("strata: %zu layers in %.2f s (%d thread%s)\n", layers.size(), s, threads,
              threads == 1 ? "" : "s");
  return 0;
}
