// Cost of capturing every submodule output, against a plain forward of the same TorchScript model.
//
//   strata_capture_bench [google-benchmark flags] MODEL.pt INPUT.safetensors [--threads=N]
//                        [--iters=K] [--retain-memory] [--suite=model|hookpath]
//
// MODEL is a TorchScript file, INPUT a safetensors file whose keys arg0, arg1, ... are the forward
// arguments (bench/make_bench_gpt.py writes both). --threads sets at::set_num_threads (default 2;
// give the Python peer the same). --iters fixes the forwards per repetition (default: Google
// Benchmark chooses); with --benchmark_repetitions=R --benchmark_enable_random_interleaving=true
// the variants' repetitions run in random order, which spreads the load of a shared machine
// evenly over them. --retain-memory makes glibc's malloc keep freed memory (mallopt; see main()).
// bench/run_capture_bench.sh runs this next to the Python peer (bench/python_hooks_bench.py) and
// turns the medians into the ratios of docs/benchmarks.md.
//
// Variants, all under NoGradGuard, one forward per iteration, wall-clock time:
//   original          torch::jit::load'ed module, no instrumentation
//   instrumented      strata::Model (hook operators in the graph), no HookSession
//   session_idle      Model with an active HookSession that selects nothing (bookkeeping only)
//   capture_all       Model with HookSession::capture_all(), default KeepOptions (detached, CPU,
//                     no clone): every submodule output is stored; read and cleared each iteration
//   capture_all_clone the same with KeepOptions().set_clone(true)
// and two diagnostics that separate the hook layer's own cost from the cost of keeping ~100 MB of
// activations alive per pass (the "faults" counter: minor page faults per forward):
//   capture_all_observe    capture_all().store(false) with an observer: every point is processed
//                          and handed over, nothing is retained
//   capture_all_overwrite  capture_all without clear(): each pass replaces the previous pass's
//                          entries one by one
// --suite=hookpath runs instead hookpath_*: one forward's hook points (the model's call order)
// replayed straight into HookSession::on_hook without the model, i.e. strata's bookkeeping alone.
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <torch/script.h>

#include <strata/capture/hook_session.h>
#include <strata/io/safetensors.h>
#include <strata/core/memory.h>
#include <strata/model/model.h>

#include <malloc.h>
#include <sys/resource.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace {

struct Setup {
  torch::jit::Module original;
  std::unique_ptr<strata::Model> model;
  std::vector<c10::IValue> inputs;
  int64_t expected_captures = 0;     // output hook points per forward
  std::vector<std::string> modules;  // the called submodules, in call order
};
Setup* g = nullptr;

constexpr int kWarmup = 3;  // the profiling executor optimizes on the 2nd run

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// Reports minor page faults per forward: memory the allocator had to fetch from the kernel (and
// the kernel had to zero), the main cost of keeping many activations alive.
struct FaultCounter {
  benchmark::State& state;
  long start = minor_faults();
  explicit FaultCounter(benchmark::State& s) : state(s) {}
  ~FaultCounter() {
    state.counters["faults"] = benchmark::Counter(static_cast<double>(minor_faults() - start),
                                                  benchmark::Counter::kAvgIterations);
  }
};

void check(bool ok, const std::string& what) {
  if (!ok) {
    std::cerr << "strata_capture_bench: " << what << "\n";
    std::exit(1);
  }
}

void BM_original(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  FaultCounter faults(state);
  for (auto _ : state) {
    c10::IValue out = g->original.forward(g->inputs);
    benchmark::DoNotOptimize(out);
  }
}

void BM_instrumented(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  FaultCounter faults(state);
  for (auto _ : state) {
    c10::IValue out = g->model->forward(g->inputs);
    benchmark::DoNotOptimize(out);
  }
}

void BM_session_idle(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  FaultCounter faults(state);
  strata::HookSession session;  // active, selects nothing
  for (auto _ : state) {
    c10::IValue out = g->model->forward(g->inputs);
    benchmark::DoNotOptimize(out);
  }
  state.counters["hook_points"] = static_cast<double>(session.seen().size());
}

void run_capture(benchmark::State& state, const strata::KeepOptions& keep) {
  torch::NoGradGuard no_grad;
  strata::HookSession session;
  session.capture_all().keep(keep);
  FaultCounter faults(state);
  for (auto _ : state) {
    c10::IValue out = g->model->forward(g->inputs);
    const strata::TensorMap& acts = session.activations();
    if (acts.size() != g->expected_captures) {
      state.SkipWithError("capture_all stored the wrong number of activations");
      break;
    }
    benchmark::DoNotOptimize(out);
    session.clear();  // memory stays flat, as in a streaming use
  }
}

void BM_capture_all(benchmark::State& state) { run_capture(state, strata::KeepOptions()); }

// Diagnostics that split capture_all's cost into the hook layer and memory retention.
void BM_capture_all_observe(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  strata::HookSession session;
  int64_t seen = 0;
  session.capture_all().store(false).observe(
      [&seen](const strata::HookPoint&, const at::Tensor& t) { seen += t.defined(); });
  FaultCounter faults(state);
  for (auto _ : state) {
    seen = 0;
    c10::IValue out = g->model->forward(g->inputs);
    if (seen != g->expected_captures) {
      state.SkipWithError("the observer saw the wrong number of activations");
      break;
    }
    benchmark::DoNotOptimize(out);
  }
}

void BM_capture_all_overwrite(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  strata::HookSession session;
  session.capture_all();
  FaultCounter faults(state);
  for (auto _ : state) {
    c10::IValue out = g->model->forward(g->inputs);  // replaces the previous pass's entries
    if (session.activations().size() != g->expected_captures) {
      state.SkipWithError("capture_all stored the wrong number of activations");
      break;
    }
    benchmark::DoNotOptimize(out);
  }
}
void BM_capture_all_clone(benchmark::State& state) {
  run_capture(state, strata::KeepOptions().set_clone(true));
}

// The hook path alone (--suite=hookpath): one iteration replays one forward pass's hook points
// (input and output of every called submodule) straight into HookSession::on_hook, without the
// model, so the per-point cost of strata's bookkeeping is measured without the forward's noise.
void run_hook_path(benchmark::State& state, bool capture, bool clear) {
  torch::NoGradGuard no_grad;
  const at::Tensor x = at::ones({8, 128, 256});
  strata::HookSession session;
  if (capture) session.capture_all();
  int64_t points = 0;
  for (auto _ : state) {
    session.new_pass();
    for (const auto& name : g->modules) {
      benchmark::DoNotOptimize(session.on_hook(name, strata::HookKind::Input, 0, x));
      benchmark::DoNotOptimize(session.on_hook(name, strata::HookKind::Output, -1, x));
    }
    points = static_cast<int64_t>(session.seen().size());
    if (clear) session.clear();
  }
  state.counters["hook_points"] = static_cast<double>(points);
  state.counters["per_point"] = benchmark::Counter(
      static_cast<double>(points), benchmark::Counter::kIsIterationInvariantRate |
                                       benchmark::Counter::kInvert);
}
void BM_hookpath_idle(benchmark::State& state) { run_hook_path(state, false, false); }
void BM_hookpath_capture_all(benchmark::State& state) { run_hook_path(state, true, true); }
void BM_hookpath_capture_all_overwrite(benchmark::State& state) {
  run_hook_path(state, true, false);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  int threads = 2;
  int iters = 0;
  bool retain_memory = false;
  std::string suite = "model";
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      threads = std::atoi(argv[i] + 10);
    } else if (std::strncmp(argv[i], "--suite=", 8) == 0) {
      suite = argv[i] + 8;
    } else if (std::strcmp(argv[i], "--retain-memory") == 0) {
      retain_memory = true;
    } else if (std::strncmp(argv[i], "--iters=", 8) == 0) {
      iters = std::atoi(argv[i] + 8);
    } else if (argv[i][0] == '-' && argv[i][1] == '-') {
      check(false, std::string("unknown flag '") + argv[i] + "'");
    } else {
      positional.emplace_back(argv[i]);
    }
  }
  check(positional.size() == 2 && threads > 0,
        "usage: strata_capture_bench [benchmark flags] MODEL.pt INPUT.safetensors [--threads=N] "
        "[--iters=K] [--retain-memory] [--suite=model|hookpath]");
  check(suite == "model" || suite == "hookpath", "--suite must be model or hookpath");
  at::set_num_threads(threads);
  if (retain_memory) {
    // What MALLOC=retain in run_capture_bench.sh does with GLIBC_TUNABLES, from inside the process:
    // glibc keeps freed memory instead of unmapping/trimming it, so activations freed by one pass
    // are reused by the next without page faults.
    check(strata::retain_freed_memory(), "strata::retain_freed_memory failed");
  }

  Setup setup;
  g = &setup;
  setup.original = torch::jit::load(positional[0]);
  setup.original.eval();
  setup.model = std::make_unique<strata::Model>(strata::Model::load(positional[0]));
  setup.model->require_hook_points();
  const auto file = strata::load_safetensors(positional[1]);
  for (size_t i = 0;; ++i) {
    const std::string key = "arg" + std::to_string(i);
    if (!file.tensors.contains(key)) break;
    setup.inputs.emplace_back(file.tensors.at(key));
  }
  check(!setup.inputs.empty(), "no arg0 in " + positional[1]);

  {  // Warm up every variant, and check that the instrumented model computes what the original does.
    torch::NoGradGuard no_grad;
    at::Tensor ref, got;
    for (int i = 0; i < kWarmup; ++i) ref = setup.original.forward(setup.inputs).toTensor();
    for (int i = 0; i < kWarmup; ++i) got = setup.model->forward(setup.inputs).toTensor();
    check(at::equal(ref, got), "instrumented output differs from the original");
    {
      strata::HookSession idle;
      for (int i = 0; i < kWarmup; ++i) setup.model->forward(setup.inputs);
    }
    strata::HookSession session;
    session.capture_all();
    for (int i = 0; i < kWarmup; ++i) {
      session.clear();
      got = setup.model->forward(setup.inputs).toTensor();
    }
    check(at::equal(ref, got), "output under capture_all differs from the original");
    setup.expected_captures = session.activations().size();
    for (const auto& key : session.activations().names()) setup.modules.push_back(key);
    check(setup.expected_captures > 0, "capture_all stored nothing");
    std::cerr << "strata_capture_bench: " << setup.model->submodule_names().size()
              << " submodules, " << setup.expected_captures << " activations captured per forward, "
              << setup.model->instrument_stats().call_sites << " call sites, threads " << threads
              << "\n";
  }

  using Fn = void (*)(benchmark::State&);
  const std::vector<std::pair<const char*, Fn>> model_suite = {
      {"original", &BM_original},
      {"instrumented", &BM_instrumented},
      {"session_idle", &BM_session_idle},
      {"capture_all", &BM_capture_all},
      {"capture_all_clone", &BM_capture_all_clone},
      {"capture_all_observe", &BM_capture_all_observe},
      {"capture_all_overwrite", &BM_capture_all_overwrite}};
  const std::vector<std::pair<const char*, Fn>> hookpath_suite = {
      {"hookpath_idle", &BM_hookpath_idle},
      {"hookpath_capture_all", &BM_hookpath_capture_all},
      {"hookpath_capture_all_overwrite", &BM_hookpath_capture_all_overwrite}};
  for (auto [name, fn] : suite == "model" ? model_suite : hookpath_suite) {
    auto* b = benchmark::RegisterBenchmark(name, fn)->UseRealTime();
    b->Unit(suite == "model" ? benchmark::kMillisecond : benchmark::kMicrosecond);
    if (iters > 0) b->Iterations(iters);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
