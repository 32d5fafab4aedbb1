// The whole logit lens over a batch of tokens, timed per batch, next to a plain forward.
//
//   strata_lens_bench MODEL.pt TOKENS.safetensors [--threads=N] [--reps=R] [--warmup=W]
//                     [--seed=S] [--top-k=K] [--target=ID] [--retain-memory]
//                     [--out=SAMPLES.json] [--report=AGGREGATE.json] [--breakdown]
//
// MODEL is a TorchScript file (tools/llama2c/convert.py writes stories260K.pt), TOKENS a
// safetensors file with `arg0` (int64 [B, T]); the whole of it is one batch. --threads sets
// at::set_num_threads (default 1; give the Python peer, bench/python_lens_bench.py, the same).
// --retain-memory calls strata::retain_freed_memory() (glibc keeps freed memory; see
// docs/benchmarks.md), or makes its mallopt calls itself where that function returns false. bench/run_lens_bench.sh runs this next to the Python peer and prints the
// tables of docs/benchmarks.md.
//
// Variants (W warm-up runs of each first, then R timed repetitions of each in a random order
// drawn with --seed, so load from other work on a shared machine spreads evenly over them):
//   forward  Model::forward on the batch under NoGradGuard, nothing captured (the baseline)
//   lens     what a user runs: find nothing again (the LensStructure is found once, at start-up),
//            construct strata::LogitLens (top-k, target; every layer: the embedding output and
//            every block) and a strata::Runner, run it over the one-batch TensorDataset and
//            finish() the report: forward with capture, decode every layer with the model's own
//            norm and unembedding, all metrics for every position, the per-layer aggregates and
//            the first sequence's per-position matrices.
// Each sample is wall-clock and calling-thread CPU time of one whole batch, and its minor page
// faults. The samples go to --out as {"samples": [{"variant", "wall_ms", "cpu_ms", "faults"}]}.
// --report writes the last lens report's "aggregate" (the Python peer's numbers are checked
// against it).
//
// --breakdown instead times the steps of LogitLens::end_batch one by one, replaying the same
// ATen calls (src/analysis/logit_lens.cpp, at the revision this file was written) on hidden states
// captured once, and also times a restructured computation of the same numbers (all layers in one
// norm + unembedding call, float32 log-softmax, no where(), one device-to-host read): where the
// time goes and what a rewrite could gain. Printed as JSON on stdout.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <strata/analysis/dataset.h>
#include <strata/analysis/logit_lens.h>
#include <strata/analysis/runner.h>
#include <strata/capture/hook_session.h>
#include <strata/core/memory.h>
#include <strata/io/safetensors.h>
#include <strata/model/model.h>

#include <malloc.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace {

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

double wall_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

struct Sample {
  std::string variant;
  double wall = 0, cpu = 0;
  long faults = 0;
};

Sample timed(const std::string& variant, const std::function<void()>& fn) {
  Sample s;
  s.variant = variant;
  const long f0 = minor_faults();
  const double c0 = thread_cpu_ms(), w0 = wall_ms();
  fn();
  s.wall = wall_ms() - w0;
  s.cpu = thread_cpu_ms() - c0;
  s.faults = minor_faults() - f0;
  return s;
}

[[noreturn]] void die(const std::string& what) {
  std::cerr << "strata_lens_bench: " << what << "\n";
  std::exit(1);
}

bool flag(const char* arg, const char* name, std::string* value) {
  const size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0) return false;
  if (arg[n] == '=') {
    *value = arg + n + 1;
    return true;
  }
  if (arg[n] == '\0') {
    *value = "";
    return true;
  }
  return false;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

torch::jit::Module submodule(const torch::jit::Module& root, const std::string& name) {
  torch::jit::Module m = root;
  size_t start = 0;
  while (true) {
    const size_t dot = name.find('.', start);
    m = m.attr(name.substr(start, dot == std::string::npos ? std::string::npos : dot - start))
            .toModule();
    if (dot == std::string::npos) return m;
    start = dot + 1;
  }
}

// --breakdown: end_batch's steps, replayed with the same ATen calls, each timed on its own.
void breakdown(const strata::Model& model, const strata::LensStructure& s,
               const std::vector<c10::IValue>& inputs, int64_t k, int64_t target, int reps,
               int warmup) {
  torch::NoGradGuard no_grad;
  const int64_t V = s.vocab_size;
  const int64_t L = static_cast<int64_t>(s.layers.size());
  std::map<std::string, std::vector<double>> ms;  // step -> per-repetition ms
  auto clock = [&ms](const std::string& step, const std::function<void()>& fn, bool record) {
    const double c0 = thread_cpu_ms();
    fn();
    if (record) ms[step].push_back(thread_cpu_ms() - c0);
  };
  torch::jit::Module norm = submodule(model.module(), s.norm);
  torch::jit::Module unembed = submodule(model.module(), s.unembed);
  double sink = 0;
  std::vector<double> fused_means;  // step F's per-layer means, to check against the report
  for (int rep = 0; rep < warmup + reps; ++rep) {
    const bool rec = rep >= warmup;
    // 1. The forward with the layers captured (the lens's visit() clones each).
    std::map<std::string, at::Tensor> hidden;
    at::Tensor final_logits;
    clock("1 forward, capture + clone the layers", [&] {
      strata::HookSession session;
      for (const auto& l : s.layers) session.capture(l);
      final_logits = model.forward(inputs).toTensor();
      for (const auto& l : s.layers) hidden[l] = session.activations().at(l).detach().clone();
    }, rec);
    strata::SuspendHooks suspend;
    const int64_t B = final_logits.size(0), T = final_logits.size(1);
    at::Tensor final_logp, final_top1;
    clock("2 final: to(double) + log_softmax + argmax", [&] {
      final_logp = final_logits.to(at::kDouble).log_softmax(-1).reshape({B, T, V});
      final_top1 = final_logp.argmax(-1);
    }, rec);
    at::Tensor pf;
    for (int64_t l = 0; l <= L; ++l) {
      at::Tensor logits, logp;
      if (l < L) {
        clock("3 decode: norm + unembed submodule forward (per layer)", [&] {
          at::Tensor x = norm.forward({hidden[s.layers[l]]}).toTensor();
          logits = unembed.forward({x}).toTensor();
        }, rec);
        clock("4 logits to(double) + log_softmax", [&] {
          logp = logits.to(at::kDouble).log_softmax(-1).reshape({B, T, V});
        }, rec);
      } else {
        logp = final_logp;
      }
      at::Tensor entropy, kl, ids, probs, rank, tp, trank;
      clock("5a entropy: exp, where(p>0, p*logp, 0), sum", [&] {
        const at::Tensor p = logp.exp();
        entropy = -at::where(p > 0, p * logp, at::zeros_like(p)).sum(-1);
      }, rec);
      clock("5b KL(final||layer): exp, where(pf>0, pf*(flogp-logp), 0), sum", [&] {
        pf = final_logp.exp();
        kl = at::where(pf > 0, pf * (final_logp - logp), at::zeros_like(pf)).sum(-1);
      }, rec);
      clock("5c top-k + exp", [&] {
        auto top = logp.topk(k, -1);
        ids = std::get<1>(top);
        probs = std::get<0>(top).exp();
      }, rec);
      clock("5d rank of final top-1: gather, (logp > ref).sum", [&] {
        const at::Tensor ref = logp.gather(-1, final_top1.unsqueeze(-1));
        rank = (logp > ref).sum(-1) + 1;
      }, rec);
      clock("5e target prob + rank: select, exp, (logp > t).sum", [&] {
        const at::Tensor t = logp.select(-1, target);
        tp = t.exp();
        trank = (logp > t.unsqueeze(-1)).sum(-1) + 1;
      }, rec);
      clock("6 aggregates: 8 sums + .item()", [&] {
        sink += entropy.sum().item<double>() + kl.sum().item<double>() +
                probs.select(-1, 0).sum().item<double>() +
                (ids.select(-1, 0) == final_top1).sum().item<double>() +
                rank.to(at::kDouble).sum().item<double>() + (rank <= k).sum().item<double>() +
                tp.sum().item<double>() + trank.to(at::kDouble).sum().item<double>();
      }, rec);
      clock("7 first sequence's rows to std::vector", [&] {
        for (const at::Tensor& t : {entropy, kl, tp}) {
          at::Tensor r = t[0].contiguous();
          sink += std::vector<double>(r.data_ptr<double>(), r.data_ptr<double>() + r.numel())[0];
        }
        for (const at::Tensor& t : {ids.select(-1, 0), rank, trank}) {
          at::Tensor r = t[0].contiguous().to(at::kLong);
          sink += std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel())[0];
        }
        at::Tensor i0 = ids[0].contiguous(), p0 = probs[0].contiguous();
        for (int64_t t = 0; t < T; ++t) {
          sink += std::vector<int64_t>(i0[t].data_ptr<int64_t>(), i0[t].data_ptr<int64_t>() + k)[0];
          sink += std::vector<double>(p0[t].data_ptr<double>(), p0[t].data_ptr<double>() + k)[0];
        }
      }, rec);
    }

    // A restructured computation of the same numbers: one norm + unembed call for all layers,
    // log-softmax in float32 (the logits' own dtype; the sums are accumulated in float64),
    // entropy and KL without where() (log_softmax of finite logits is finite, and p = 0 only
    // where exp underflows, where p * logp is 0 anyway), all per-layer sums in one tensor read
    // back with one .item(). The first sequence's rows (step 7) are left out here.
    clock("R restructured lens, same outputs (after the forward)", [&] {
      std::vector<at::Tensor> hs;
      for (const auto& l : s.layers) hs.push_back(hidden[l]);
      at::Tensor x = at::stack(hs);                                     // [L, B, T, d]
      at::Tensor lp = unembed.forward({norm.forward({x}).toTensor()}).toTensor();  // [L, B, T, V]
      lp = at::cat({lp, final_logits.unsqueeze(0)}).log_softmax(-1);    // [L+1, B, T, V] float32
      const at::Tensor flp = lp[L];
      const at::Tensor ftop1 = flp.argmax(-1, true);                    // [B, T, 1]
      const at::Tensor p = lp.exp();
      const at::Tensor ent = -(p * lp).sum(-1);
      const at::Tensor kl2 = (flp.exp() * (flp - lp)).sum(-1);
      auto top = lp.topk(k, -1);
      const at::Tensor pr = std::get<0>(top).exp();
      const at::Tensor ref = lp.gather(-1, ftop1.unsqueeze(0).expand({L + 1, B, T, 1}));
      const at::Tensor rk = (lp > ref).sum(-1) + 1;
      const at::Tensor t = lp.select(-1, target);
      const at::Tensor trk = (lp > t.unsqueeze(-1)).sum(-1) + 1;
      const at::Tensor agg = at::stack({ent.to(at::kDouble).sum({1, 2}), kl2.to(at::kDouble).sum({1, 2}),
                                        pr.select(-1, 0).to(at::kDouble).sum({1, 2}),
                                        (std::get<1>(top).select(-1, 0) == ftop1.squeeze(-1))
                                            .sum({1, 2}).to(at::kDouble),
                                        rk.sum({1, 2}).to(at::kDouble),
                                        (rk <= k).sum({1, 2}).to(at::kDouble),
                                        t.exp().to(at::kDouble).sum({1, 2}),
                                        trk.sum({1, 2}).to(at::kDouble)});  // [8, L+1]
      sink += agg.sum().item<double>();
    }, rec);
    // The same numbers with two vectorized ATen ops and one pass of plain C++ per row: all layers
    // decoded in one call, log_softmax and exp in float32 over [L+1, N, V], then per position a
    // loop over the vocabulary (float inputs, double sums) for entropy, KL, top-k, both ranks and
    // the target; no [N, V]-sized temporaries besides lp and p. (Ranks compare float32 log-probs
    // where the library compares float64 ones: ties may differ.)
    clock("F fused: 2 ATen ops + one C++ pass per position (after the forward)", [&] {
      std::vector<at::Tensor> hs;
      for (const auto& l : s.layers) hs.push_back(hidden[l]);
      at::Tensor x = at::stack(hs);
      at::Tensor lg = unembed.forward({norm.forward({x}).toTensor()}).toTensor();
      const at::Tensor lp = at::cat({lg, final_logits.unsqueeze(0)}).log_softmax(-1).contiguous();
      const at::Tensor p = lp.exp();
      const int64_t N = B * T;
      const float* LP = lp.data_ptr<float>();
      const float* P = p.data_ptr<float>();
      std::vector<double> agg(8 * (L + 1), 0.0);
      std::vector<int64_t> top(k);
      std::vector<float> topv(k);
      for (int64_t n = 0; n < N; ++n) {
        const float* flp = LP + (L * N + n) * V;
        const float* fp = P + (L * N + n) * V;
        int64_t f1 = 0;
        for (int64_t v = 1; v < V; ++v)
          if (flp[v] > flp[f1]) f1 = v;
        for (int64_t l = 0; l <= L; ++l) {
          const float* a = LP + (l * N + n) * V;
          const float* q = P + (l * N + n) * V;
          double ent = 0, kl = 0;
          int64_t rank = 1, trank = 1;
          const float ref = a[f1], tv = a[target];
          int64_t filled = 0;
          for (int64_t v = 0; v < V; ++v) {
            ent -= static_cast<double>(q[v]) * a[v];
            kl += static_cast<double>(fp[v]) * (static_cast<double>(flp[v]) - a[v]);
            rank += a[v] > ref;
            trank += a[v] > tv;
            if (filled < k || a[v] > topv[filled - 1]) {  // insertion into the sorted top-k
              int64_t i = filled < k ? filled++ : k - 1;
              while (i > 0 && topv[i - 1] < a[v]) {
                topv[i] = topv[i - 1];
                top[i] = top[i - 1];
                --i;
              }
              topv[i] = a[v];
              top[i] = v;
            }
          }
          double* g = agg.data() + 8 * l;
          g[0] += ent;
          g[1] += kl;
          g[2] += std::exp(static_cast<double>(topv[0]));
          g[3] += top[0] == f1;
          g[4] += rank;
          g[5] += rank <= k;
          g[6] += std::exp(static_cast<double>(tv));
          g[7] += trank;
        }
      }
      for (double d : agg) sink += d;
      fused_means.assign(agg.begin(), agg.end());
      for (double& d : fused_means) d /= static_cast<double>(N);
    }, rec);
  }
  nlohmann::json out = {{"unit", "CPU ms of the calling thread per batch (median)"},
                        {"batch", {inputs[0].toTensor().size(0), inputs[0].toTensor().size(1)}},
                        {"layers", L},
                        {"vocab", V},
                        {"steps", nlohmann::json::object()}};
  // Step F's numbers, layer by layer: mean entropy, KL, top-1 prob, top-1 agreement, rank of the
  // final top-1, final top-1 in top-k, target prob, target rank (the report's "aggregate" order).
  out["fused_means"] = fused_means;
  for (auto& [step, v] : ms) {
    // Steps run once per layer are summed over the layers of one repetition.
    const size_t per_rep = v.size() / reps;
    std::vector<double> sums;
    for (int r = 0; r < reps; ++r) {
      double sum = 0;
      for (size_t i = 0; i < per_rep; ++i) sum += v[r * per_rep + i];
      sums.push_back(sum);
    }
    out["steps"][step] = {{"ms", median(sums)}, {"calls_per_batch", per_rep}};
  }
  std::cout << out.dump(2) << "\n";
  if (sink == 1.2345) std::cerr << "";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  int threads = 1, reps = 10, warmup = 3;
  unsigned seed = 0;
  int64_t top_k = 5, target = 13;
  bool retain = false, do_breakdown = false;
  std::string out_path, report_path, v;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (flag(a, "--threads", &v)) threads = std::stoi(v);
    else if (flag(a, "--reps", &v)) reps = std::stoi(v);
    else if (flag(a, "--warmup", &v)) warmup = std::stoi(v);
    else if (flag(a, "--seed", &v)) seed = static_cast<unsigned>(std::stoul(v));
    else if (flag(a, "--top-k", &v)) top_k = std::stoll(v);
    else if (flag(a, "--target", &v)) target = std::stoll(v);
    else if (flag(a, "--retain-memory", &v)) retain = true;
    else if (flag(a, "--breakdown", &v)) do_breakdown = true;
    else if (flag(a, "--out", &v)) out_path = v;
    else if (flag(a, "--report", &v)) report_path = v;
    else if (a[0] == '-') die(std::string("unknown option ") + a);
    else pos.push_back(a);
  }
  if (pos.size() != 2) die("usage: strata_lens_bench MODEL.pt TOKENS.safetensors [options]");
  if (retain && !strata::retain_freed_memory()) {
    // strata::retain_freed_memory() returns false without doing anything when src/core/memory.cpp
    // was compiled without __GLIBC__ defined (it includes no libc header before its #if). Make
    // the calls it documents here, so the numbers are those of the retaining allocator.
    std::cerr << "strata_lens_bench: strata::retain_freed_memory() returned false; calling mallopt "
                 "directly\n";
    if (mallopt(M_MMAP_THRESHOLD, 32 << 20) != 1 || mallopt(M_TRIM_THRESHOLD, 1 << 30) != 1 ||
        mallopt(M_TOP_PAD, 256 << 20) != 1)
      die("mallopt refused");
  }
  at::set_num_threads(threads);

  const strata::Model model = strata::Model::load(pos[0]);
  const strata::TensorMap tensors = strata::load_safetensors(pos[1]).tensors;
  const at::Tensor tokens = tensors.at("arg0");
  const std::vector<c10::IValue> inputs{tokens};
  strata::LogitLensOptions options = strata::LogitLensOptions().set_top_k(top_k).set_target(target);
  const strata::LensStructure structure = strata::find_lens_structure(model, inputs, options);
  std::cerr << "strata_lens_bench: batch " << tokens.sizes() << ", layers";
  for (const auto& l : structure.layers) std::cerr << " " << l;
  std::cerr << ", norm '" << structure.norm << "', unembed '" << structure.unembed << "', V "
            << structure.vocab_size << ", threads " << at::get_num_threads() << "\n";

  if (do_breakdown) {
    breakdown(model, structure, inputs, top_k, target, reps, warmup);
    return 0;
  }

  strata::Report last;
  auto run_forward = [&] {
    torch::NoGradGuard no_grad;
    c10::IValue out = model.forward(inputs);
    if (!out.isTensor()) die("the model did not return a tensor");
  };
  auto run_lens = [&] {
    strata::LogitLens lens(model, structure, options);
    strata::TensorDataset data(tensors, tokens.size(0));  // the whole file: one batch
    strata::Runner runner(model, strata::RunnerOptions().set_progress(false));
    runner.add(lens);
    last = runner.run(data).at(0);
  };
  const std::vector<std::pair<std::string, std::function<void()>>> variants = {
      {"forward", run_forward}, {"lens", run_lens}};
  for (int w = 0; w < warmup; ++w)
    for (const auto& [name, fn] : variants) fn();
  std::vector<size_t> order;
  for (int r = 0; r < reps; ++r)
    for (size_t i = 0; i < variants.size(); ++i) order.push_back(i);
  std::mt19937 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<Sample> samples;
  for (size_t i : order) samples.push_back(timed(variants[i].first, variants[i].second));

  nlohmann::json j = {{"language", "C++"}, {"threads", at::get_num_threads()},
                      {"retain_memory", retain}, {"samples", nlohmann::json::array()}};
  for (const auto& s : samples)
    j["samples"].push_back(
        {{"variant", s.variant}, {"wall_ms", s.wall}, {"cpu_ms", s.cpu}, {"faults", s.faults}});
  for (const auto& [name, fn] : variants) {
    std::vector<double> w;
    for (const auto& s : samples)
      if (s.variant == name) w.push_back(s.wall);
    std::cerr << "  C++ " << name << ": median " << median(w) << " ms over " << w.size() << "\n";
  }
  if (!out_path.empty()) std::ofstream(out_path) << j.dump() << "\n";
  if (!report_path.empty()) std::ofstream(report_path) << last.data["aggregate"].dump(1) << "\n";
  return 0;
}
