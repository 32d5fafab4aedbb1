#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <strata/analysis/logit_lens.h>
#include <strata/capture/hook_session.h>
#include <strata/capture/pattern.h>
#include <strata/core/dtype.h>
#include <strata/core/error.h>
#include <strata/core/torch_error.h>
#include <strata/io/safetensors.h>
#include <strata/model/model.h>
#include <torch/csrc/jit/api/module.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>

// The lens's inner loops also get an AVX2 build, chosen at load time on CPUs that have it (the
// library itself targets baseline x86-64).
#if defined(__x86_64__) && defined(__GNUC__)
#define STRATA_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define STRATA_VECTOR_CLONES
#endif

namespace strata {

// ---------------------------------------------------------------------------------------------
// Translators

at::Tensor Translator::apply(const at::Tensor& h) const {
  at::Tensor out = h;
  if (weight.defined()) out = out + at::matmul(h, weight.to(h.options()).t());
  if (bias.defined()) out = out + bias.to(h.options());
  return out;
}

std::map<std::string, Translator> load_translators(const std::string& path) {
  SafetensorsFile file = load_safetensors(path);
  std::map<std::string, Translator> out;
  for (const auto& key : file.tensors.names()) {
    const at::Tensor& t = file.tensors.at(key);
    const auto dot = key.rfind('.');
    const std::string part = dot == std::string::npos ? "" : key.substr(dot + 1);
    STRATA_CHECK(dot != std::string::npos && dot > 0 && (part == "weight" || part == "bias"),
                 "load_translators: '", path, "' has a tensor '", key,
                 "'; expected '<layer>.weight' ([d, d]) and '<layer>.bias' ([d]) keys");
    STRATA_CHECK(t.is_floating_point(), "load_translators: '", path, "': '", key, "' is ",
                 dtype_name(t.scalar_type()), ", expected a floating-point tensor");
    const std::string layer = key.substr(0, dot);
    Translator& tr = out[layer];
    if (part == "weight") {
      STRATA_CHECK(t.dim() == 2 && t.size(0) == t.size(1), "load_translators: '", path, "': '", key,
                   "' has shape ", t.sizes(), ", expected a square [d, d] matrix");
      tr.weight = t;
    } else {
      STRATA_CHECK(t.dim() == 1, "load_translators: '", path, "': '", key, "' has shape ",
                   t.sizes(), ", expected [d]");
      tr.bias = t;
    }
    if (tr.weight.defined() && tr.bias.defined()) {
      STRATA_CHECK(tr.weight.size(0) == tr.bias.size(0), "load_translators: '", path, "': '", layer,
                   ".weight' is ", tr.weight.sizes(), " but '", layer, ".bias' is ",
                   tr.bias.sizes());
    }
  }
  STRATA_CHECK(!out.empty(), "load_translators: '", path, "' holds no tensors");
  return out;
}

// ---------------------------------------------------------------------------------------------
// Structure discovery

namespace {

const char* const kHowToName =
    "name them with LogitLensOptions (norm, unembed, layers) or on the command line with "
    "--norm NAME --unembed NAME --layers GLOB (`strata inspect MODEL` lists the module names; "
    "--norm none for a model without a final norm)";

struct Seen {
  HookPoint point;
  at::Tensor value;
};

// The same tensor object flowing on: one module's output handed to the next as its input.
bool same_tensor(const at::Tensor& a, const at::Tensor& b) {
  return a.defined() && b.defined() && a.numel() > 0 && a.data_ptr() == b.data_ptr() &&
         a.sizes() == b.sizes() && a.strides() == b.strides() &&
         a.scalar_type() == b.scalar_type() && a.device() == b.device();
}

bool equal_tensor(const at::Tensor& a, const at::Tensor& b) {
  return a.defined() && b.defined() && a.numel() > 0 && a.sizes() == b.sizes() &&
         a.scalar_type() == b.scalar_type() && a.device() == b.device() && at::equal(a, b);
}

std::string parent_of(const std::string& name) {
  const auto dot = name.rfind('.');
  return dot == std::string::npos ? "" : name.substr(0, dot);
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

const ModuleInfo* module_info(const Model& model, const std::string& name) {
  for (const auto& m : model.modules())
    if (m.name == name && !name.empty()) return &m;
  return nullptr;
}

bool looks_like_norm(const Model& model, const std::string& name) {
  const ModuleInfo* info = module_info(model, name);
  const std::string type = info ? lower(info->type_name) : "";
  const std::string last =
      lower(name.substr(name.rfind('.') == std::string::npos ? 0 : name.rfind('.') + 1));
  return type.find("norm") != std::string::npos || last.find("norm") != std::string::npos ||
         last.rfind("ln", 0) == 0;
}

std::string type_of(const Model& model, const std::string& name) {
  const ModuleInfo* info = module_info(model, name);
  return info ? info->type_name : "?";
}

std::string describe(const at::Tensor& t) {
  return str_cat(dtype_name(t.scalar_type()), t.sizes());
}

void require_module(const Model& model, const std::string& name, const char* what) {
  if (module_info(model, name)) return;
  std::string some;
  int n = 0;
  for (const auto& m : model.modules()) {
    if (m.name.empty()) continue;
    if (n++ == 10) {
      some += ", ...";
      break;
    }
    some += (some.empty() ? "" : ", ") + m.name;
  }
  throw Error(str_cat("find_lens_structure: '", model.source(), "' has no module '", name,
                      "' (given as the ", what, "); its modules: ", some));
}

// Index in `seen` of the first output of `module` (its first call; a tuple's element 0).
int64_t output_point(const std::vector<Seen>& seen, const std::string& module) {
  for (size_t i = 0; i < seen.size(); ++i) {
    const HookPoint& p = seen[i].point;
    if (p.kind == HookKind::Output && p.module == module && p.call == 0 && p.index <= 0)
      return static_cast<int64_t>(i);
  }
  return -1;
}

// Index of the first tensor input of the call that produced seen[out].
int64_t input_point(const std::vector<Seen>& seen, int64_t out) {
  const HookPoint& o = seen[out].point;
  for (int64_t i = out - 1; i >= 0; --i) {
    const HookPoint& p = seen[i].point;
    if (p.kind == HookKind::Input && p.module == o.module && p.call == o.call && p.index == 0)
      return i;
  }
  return -1;
}

// The output point (before `before`) that produced `t`; the outermost module when a wrapper
// returns its child's tensor unchanged (it completes last).
int64_t producer(const std::vector<Seen>& seen, const at::Tensor& t, int64_t before) {
  for (int64_t i = before - 1; i >= 0; --i) {
    if (seen[i].point.kind == HookKind::Output && same_tensor(seen[i].value, t)) return i;
  }
  return -1;
}

}  // namespace

LensStructure find_lens_structure(const Model& model,
                                  const std::vector<c10::IValue>& example_inputs,
                                  const LogitLensOptions& options) {
  model.require_hook_points();
  const std::string& src = model.source();
  // One forward pass that records every point, outputs and inputs, as the live tensors (on their
  // device, not copied): identity of tensors is how the parts are found.
  std::vector<Seen> seen;
  c10::IValue out;
  {
    HookSession session;
    session.store(false)
        .keep(KeepOptions().set_device(std::nullopt))
        .capture_all(Which::Both)
        .observe([&seen](const HookPoint& p, const at::Tensor& t) {
          seen.push_back({p, t});
        });
    at::NoGradGuard no_grad;
    out = model.forward(example_inputs);
  }
  const std::vector<at::Tensor> outs = flatten_tensors(out);
  STRATA_CHECK(!outs.empty(), "find_lens_structure: '", src, "' returns no tensor (",
               describe_value(out), "); the logit lens needs logits");

  LensStructure s;
  // --- the unembedding: its output is the model's output
  int64_t u = -1;
  if (!options.unembed.empty()) {
    require_module(model, options.unembed, "unembedding");
    u = output_point(seen, options.unembed);
    STRATA_CHECK(u >= 0, "find_lens_structure: the unembedding '", options.unembed, "' of '", src,
                 "' was not called in the forward pass");
    s.output_index = -1;
    for (size_t j = 0; j < outs.size() && s.output_index < 0; ++j)
      if (same_tensor(outs[j], seen[u].value) || equal_tensor(outs[j], seen[u].value))
        s.output_index = static_cast<int64_t>(j);
    for (size_t j = 0; j < outs.size() && s.output_index < 0; ++j)
      if (outs[j].sizes() == seen[u].value.sizes()) s.output_index = static_cast<int64_t>(j);
    STRATA_CHECK(s.output_index >= 0, "find_lens_structure: the output of the unembedding '",
                 options.unembed, "' (", describe(seen[u].value),
                 ") is not among the model's outputs (", describe_value(out), ")");
  } else {
    // The innermost module whose output is the model's output (it completes first).
    for (size_t j = 0; j < outs.size() && u < 0; ++j) {
      for (size_t i = 0; i < seen.size(); ++i) {
        if (seen[i].point.kind == HookKind::Output && same_tensor(seen[i].value, outs[j])) {
          u = static_cast<int64_t>(i);
          s.output_index = static_cast<int64_t>(j);
          break;
        }
      }
    }
    for (size_t j = 0; j < outs.size() && u < 0; ++j) {
      for (int64_t i = static_cast<int64_t>(seen.size()) - 1; i >= 0; --i) {
        if (seen[i].point.kind == HookKind::Output && equal_tensor(seen[i].value, outs[j])) {
          u = i;
          s.output_index = static_cast<int64_t>(j);
          break;
        }
      }
    }
    STRATA_CHECK(u >= 0, "find_lens_structure: no unembedding found in '", src,
                 "': no submodule's output is the model's output (", describe_value(out),
                 "), so the logits are computed inline; ", kHowToName);
  }
  s.unembed = seen[u].point.module;
  const at::Tensor& logits = seen[u].value;
  STRATA_CHECK(logits.is_floating_point() && logits.dim() >= 1,
               "find_lens_structure: the output of '", s.unembed, "' (", describe(logits),
               ") is not floating-point logits; ", kHowToName);
  s.vocab_size = logits.size(-1);
  const int64_t u_in = input_point(seen, u);
  STRATA_CHECK(u_in >= 0, "find_lens_structure: the unembedding '", s.unembed, "' of '", src,
               "' has no tensor input; ", kHowToName);

  // --- the final norm: its output is the unembedding's input
  int64_t stream_in;  // the point whose tensor is the residual stream entering the head
  int64_t consumer;   // the head's first point (the residual stream is produced before it)
  if (options.norm == "none") {
    stream_in = u_in;
    consumer = u_in;
  } else if (!options.norm.empty()) {
    require_module(model, options.norm, "final norm");
    const int64_t n = output_point(seen, options.norm);
    STRATA_CHECK(n >= 0, "find_lens_structure: the final norm '", options.norm, "' of '", src,
                 "' was not called in the forward pass");
    s.norm = options.norm;
    stream_in = input_point(seen, n);
    STRATA_CHECK(stream_in >= 0, "find_lens_structure: the final norm '", s.norm,
                 "' has no tensor input");
    consumer = stream_in;
  } else {
    const int64_t n = producer(seen, seen[u_in].value, u_in);
    STRATA_CHECK(n >= 0, "find_lens_structure: no final norm found in '", src,
                 "': the input of the unembedding '", s.unembed,
                 "' is not the output of any submodule (computed inline?); ", kHowToName);
    const std::string& name = seen[n].point.module;
    STRATA_CHECK(looks_like_norm(model, name), "find_lens_structure: no final norm found in '", src,
                 "': the unembedding '", s.unembed, "' reads the output of '", name, "' (",
                 type_of(model, name), "), which is not a normalization layer; ", kHowToName);
    s.norm = name;
    stream_in = input_point(seen, n);
    STRATA_CHECK(stream_in >= 0, "find_lens_structure: the final norm '", s.norm,
                 "' has no tensor input");
    consumer = stream_in;
  }
  const at::Tensor& stream = seen[stream_in].value;
  STRATA_CHECK(stream.is_floating_point() && stream.dim() >= 1,
               "find_lens_structure: the input of '", s.norm.empty() ? s.unembed : s.norm, "' (",
               describe(stream), ") is not a floating-point hidden state; ", kHowToName);
  s.hidden_size = stream.size(-1);

  // --- the layers
  std::vector<int64_t> chosen;
  if (!options.layers.empty()) {
    std::vector<Pattern> patterns;
    for (const auto& text : options.layers) patterns.emplace_back(text);
    std::vector<bool> used(patterns.size(), false);
    for (size_t i = 0; i < seen.size(); ++i) {
      const HookPoint& p = seen[i].point;
      bool any = false;
      for (size_t k = 0; k < patterns.size(); ++k) {
        const bool yes = p.kind == HookKind::Output
                             ? patterns[k].selects(p, Which::Output)
                             : patterns[k].text().find(":in:") != std::string::npos &&
                                   patterns[k].selects(p, Which::Input);
        if (yes) used[k] = any = true;
      }
      if (any) chosen.push_back(static_cast<int64_t>(i));
    }
    for (size_t k = 0; k < patterns.size(); ++k) {
      STRATA_CHECK(used[k], "find_lens_structure: the layer pattern '", patterns[k].text(),
                   "' matches no hook point of '", src,
                   "' in a forward pass (see `strata inspect`)");
    }
  } else {
    const int64_t last = producer(seen, stream, consumer);
    STRATA_CHECK(last >= 0, "find_lens_structure: no last block found in '", src,
                 "': the input of '", s.norm.empty() ? s.unembed : s.norm,
                 "' is not the output of any submodule (computed inline?); ", kHowToName);
    const HookPoint& lp = seen[last].point;
    const std::string container = parent_of(lp.module);
    for (int64_t i = 0; i <= last; ++i) {
      const HookPoint& p = seen[i].point;
      if (p.kind != HookKind::Output || p.index != lp.index || parent_of(p.module) != container)
        continue;
      if (p.module == s.norm || p.module == s.unembed) continue;
      const at::Tensor& v = seen[i].value;
      if (!v.is_floating_point() || v.sizes() != stream.sizes()) continue;
      chosen.push_back(i);
    }
    // The residual stream entering the first block: the embedding output (named by the module
    // that produced it when there is one, else the block's input point).
    const int64_t first_in = input_point(seen, chosen.front());
    if (first_in >= 0 && seen[first_in].value.is_floating_point() &&
        seen[first_in].value.sizes() == stream.sizes()) {
      const int64_t e = producer(seen, seen[first_in].value, first_in);
      const int64_t pick = e >= 0 ? e : first_in;
      if (std::find(chosen.begin(), chosen.end(), pick) == chosen.end()) {
        chosen.insert(chosen.begin(), pick);
        s.embedding = seen[pick].point.key();
      }
    }
  }
  for (int64_t i : chosen) {
    const std::string key = seen[i].point.key();
    const at::Tensor& v = seen[i].value;
    STRATA_CHECK(v.is_floating_point() && v.dim() >= 1 && v.size(-1) == s.hidden_size,
                 "find_lens_structure: the hook point '", key, "' (", describe(v),
                 ") is not a hidden state of size ", s.hidden_size, " that '",
                 s.norm.empty() ? s.unembed : s.norm,
                 "' can decode; choose residual-stream points (a glob's * also crosses dots: "
                 "use e.g. 're:layers\\.[0-9]+')");
    if (std::find(s.layers.begin(), s.layers.end(), key) == s.layers.end()) s.layers.push_back(key);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// The analyzer

namespace {

// One (layer, position) of the lens: the metrics of that layer's distribution against the final
// one.
struct Cell {
  int64_t top1 = 0, rank = 1, target_rank = 1;
  double top1_prob = 0, entropy = 0, kl = 0, target_prob = 0;
};

// One row of V logits with what the pass needs: x = logits, e = exp(x - m) for a shift m (the
// row's maximum, or 0 when exp(x) is safe). The final distribution's rows have no float e (its
// float64 e comes separately).
template <typename S>
struct Row {
  const S* x;
  const S* e;
  S m;
};

// Partial top-k of x by insertion (ties keep the lower id first). The k-th best value is kept
// in a local, so the scan is one compare per token and the insertions are rare.
template <typename S>
STRATA_VECTOR_CLONES void top_k(const S* x, int64_t V, int64_t k, S* topv, int64_t* topi) {
  auto insert = [&](int64_t last, S xv, int64_t v) {
    int64_t i = last;
    while (i > 0 && topv[i - 1] < xv) {
      topv[i] = topv[i - 1];
      topi[i] = topi[i - 1];
      --i;
    }
    topv[i] = xv;
    topi[i] = v;
  };
  const int64_t first = std::min(k, V);
  for (int64_t v = 0; v < first; ++v) insert(v, x[v], v);
  S kth = topv[k - 1];
  for (int64_t v = first; v < V; ++v) {
    const S xv = x[v];
    if (xv > kth) {
      insert(k - 1, xv, v);
      kth = topv[k - 1];
    }
  }
}

// The sums of one row (double accumulators; `omp simd` lets the compiler reorder them into
// vector lanes): s = Σ e, sx = Σ e·x, spx = Σ pf·x (pf: the final distribution), and the
// counts of tokens scoring strictly higher than `ref` and than `tref`. A -inf logit (a masked
// token) makes 0·(-inf) = NaN in the plain sums; then the row is summed again skipping the
// products with a zero weight.
template <typename S, typename E>
STRATA_VECTOR_CLONES void row_sums(const S* x, const E* e, const double* pf, int64_t V, S ref, S tref, double& s_out,
              double& sx_out, double& spx_out, int64_t& above_ref, int64_t& above_tref) {
  int32_t a = 0, t = 0;
#pragma omp simd reduction(+ : a, t)
  for (int64_t v = 0; v < V; ++v) {
    a += x[v] > ref;
    t += x[v] > tref;
  }
  double s = 0, sx = 0, spx = 0;
#pragma omp simd reduction(+ : s, sx, spx)
  for (int64_t v = 0; v < V; ++v) {
    const double xv = x[v], ev = e[v];
    s += ev;
    sx += ev * xv;
    spx += pf[v] * xv;
  }
  if (std::isnan(sx) || std::isnan(spx)) {
    sx = spx = 0;
    for (int64_t v = 0; v < V; ++v) {
      const double xv = x[v], ev = e[v];
      if (ev > 0) sx += ev * xv;
      if (pf[v] > 0) spx += pf[v] * xv;
    }
  }
  s_out = s;
  sx_out = sx;
  spx_out = spx;
  above_ref = a;
  above_tref = t;
}

// The lens over rows of V: row(l, n) for each layer l < L and position n, row(L, n) the final
// distribution, whose e comes (only) in float64 from final_e(n) (pf = e / Σ e carries into every
// layer's KL, so it gets the full precision). With c = m + log Σ e the log-normalizer of a row and
// p = e / Σ e:
//   entropy     H = c − Σ p·x
//   KL(final‖l) = Σ pf·(xf − cf) − Σ pf·(x − c) = (Σ pf·xf − cf) − Σ pf·x + c
// so each row needs one exp per token (done by ATen, vectorized) and one pass here. Ranks and
// the top-k compare the logits themselves (the order of the exact log-probabilities, without
// the rounding of a float32 log-softmax merging neighbours). A layer whose logits equal the
// final ones bit for bit gets the final row's cell (KL exactly 0).
template <typename S>
void lens_pass(const std::function<Row<S>(int64_t, int64_t)>& row,
               const std::function<const double*(int64_t)>& final_e, int64_t L, int64_t N,
               int64_t V, int64_t k, std::optional<int64_t> target, std::vector<Cell>& cells,
               std::vector<int64_t>& topk_ids, std::vector<double>& topk_probs,
               std::vector<int64_t>& final_top1) {
  at::parallel_for(0, N, 8, [&](int64_t n0, int64_t n1) {
    std::vector<S> topv(k);
    std::vector<int64_t> topi(k);
    std::vector<double> pf(V);
    const int64_t tgt = target.value_or(0);
    // Metrics of one row given its sums; fills cell (l, n) and its top-k.
    auto finish_cell = [&](int64_t l, int64_t n, const Row<S>& r, const auto* e, double s,
                           double sx, double kl, int64_t above, int64_t above_t) {
      Cell& c = cells[l * N + n];
      const double logz = static_cast<double>(r.m) + std::log(s);
      c.entropy = logz - sx / s;
      c.kl = kl;
      c.rank = 1 + above;
      top_k(r.x, V, k, topv.data(), topi.data());
      int64_t* ids = topk_ids.data() + (l * N + n) * k;
      double* probs = topk_probs.data() + (l * N + n) * k;
      for (int64_t i = 0; i < k; ++i) {
        ids[i] = topi[i];
        probs[i] = static_cast<double>(e[topi[i]]) / s;
      }
      c.top1 = topi[0];
      c.top1_prob = probs[0];
      if (target) {
        c.target_rank = 1 + above_t;
        c.target_prob = static_cast<double>(e[tgt]) / s;
      }
    };
    for (int64_t n = n0; n < n1; ++n) {
      const Row<S> f = row(L, n);
      top_k(f.x, V, 1, topv.data(), topi.data());
      const int64_t f1 = topi[0];  // the first of equal maxima, like argmax
      final_top1[n] = f1;
      const double* fe = final_e(n);
      double fs = 0;
      for (int64_t v = 0; v < V; ++v) fs += fe[v];
      const double inv = 1.0 / fs;
      for (int64_t v = 0; v < V; ++v) pf[v] = fe[v] * inv;
      double s, sx, spx;
      int64_t above, above_t;
      row_sums(f.x, fe, pf.data(), V, f.x[f1], f.x[tgt], s, sx, spx, above, above_t);
      const double flogz = static_cast<double>(f.m) + std::log(s);
      const double fconst = spx - flogz;  // Σ pf·xf − cf
      finish_cell(L, n, f, fe, s, sx, 0.0, above, above_t);
      for (int64_t l = 0; l < L; ++l) {
        const Row<S> r = row(l, n);
        if (r.x == f.x || std::memcmp(r.x, f.x, sizeof(S) * V) == 0) {
          cells[l * N + n] = cells[L * N + n];
          std::copy_n(topk_ids.data() + (L * N + n) * k, k, topk_ids.data() + (l * N + n) * k);
          std::copy_n(topk_probs.data() + (L * N + n) * k, k,
                      topk_probs.data() + (l * N + n) * k);
          continue;
        }
        row_sums(r.x, r.e, pf.data(), V, r.x[f1], r.x[tgt], s, sx, spx, above, above_t);
        const double logz = static_cast<double>(r.m) + std::log(s);
        finish_cell(l, n, r, r.e, s, sx, fconst - spx + logz, above, above_t);
      }
    }
  });
}

template <typename T>
std::vector<T> row_of(const at::Tensor& t2d, int64_t b) {
  at::Tensor r = t2d[b].contiguous().to(at::kCPU).to(c10::CppTypeToScalarType<T>::value);
  return std::vector<T>(r.data_ptr<T>(), r.data_ptr<T>() + r.numel());
}

}  // namespace

struct LogitLens::Sequence {
  std::vector<int64_t> tokens;
  std::vector<std::vector<int64_t>> top1, rank, target_rank;
  std::vector<std::vector<double>> top1_prob, entropy, kl, target_prob;
  std::vector<std::vector<std::vector<int64_t>>> topk_ids;
  std::vector<std::vector<std::vector<double>>> topk_probs;
};

LogitLens::LogitLens(const Model& model, LensStructure structure, LogitLensOptions options)
    : model_(model), structure_(std::move(structure)), options_(std::move(options)) {
  const int64_t V = structure_.vocab_size, d = structure_.hidden_size;
  STRATA_CHECK(!structure_.layers.empty(), "LogitLens: no layers to decode");
  STRATA_CHECK(!structure_.unembed.empty() && V > 0 && d > 0,
               "LogitLens: the structure names no unembedding; use find_lens_structure()");
  STRATA_CHECK(options_.top_k >= 1 && options_.top_k <= V, "LogitLens: top_k ", options_.top_k,
               " is outside [1, ", V, "] (the vocabulary size)");
  STRATA_CHECK(options_.keep_sequences >= 0, "LogitLens: keep_sequences ", options_.keep_sequences,
               " is negative");
  if (options_.target) {
    STRATA_CHECK(*options_.target >= 0 && *options_.target < V, "LogitLens: target token id ",
                 *options_.target, " is out of range: the vocabulary has ", V, " tokens (ids 0..",
                 V - 1, ")");
  }
  for (const auto& [layer, tr] : options_.translators) {
    if (std::find(structure_.layers.begin(), structure_.layers.end(), layer) ==
        structure_.layers.end()) {
      std::string names;
      for (const auto& l : structure_.layers) names += (names.empty() ? "" : ", ") + l;
      throw Error(str_cat("LogitLens: a translator is given for '", layer,
                          "', which is not a decoded layer (", names, ")"));
    }
    STRATA_CHECK(!tr.weight.defined() ||
                     (tr.weight.dim() == 2 && tr.weight.size(0) == d && tr.weight.size(1) == d),
                 "LogitLens: the translator weight of '", layer, "' is ", tr.weight.sizes(),
                 ", expected [", d, ", ", d, "] (the hidden size)");
    STRATA_CHECK(!tr.bias.defined() || (tr.bias.dim() == 1 && tr.bias.size(0) == d),
                 "LogitLens: the translator bias of '", layer, "' is ", tr.bias.sizes(),
                 ", expected [", d, "]");
  }
  wanted_.insert(structure_.layers.begin(), structure_.layers.end());
}

LogitLens::~LogitLens() = default;

int LogitLens::head_role(const HookPoint& point) const {
  const bool in = point.kind == HookKind::Input && point.index == 0;
  const bool out = point.kind == HookKind::Output && point.index <= 0;
  if (point.call != 0 || (!in && !out)) return -1;
  if (!structure_.norm.empty() && point.module == structure_.norm) return in ? 0 : 1;
  if (point.module == structure_.unembed) return in ? 2 : 3;
  return -1;
}

bool LogitLens::wants(const HookPoint& point) const {
  return wanted_.count(point.key()) > 0 || head_role(point) >= 0;
}

void LogitLens::begin(const RunContext& ctx) {
  STRATA_CHECK(ctx.model == nullptr || &ctx.model->module() == &model_.module(),
               "LogitLens: run with a different model than the one it was built for ('",
               model_.source(), "')");
  hidden_.clear();
  aggregate_.assign(structure_.layers.size() + 1, Aggregate{});
  sequences_.clear();
  num_sequences_ = 0;
}

void LogitLens::visit(const Activation& a) {
  // A copy: the live tensor may be modified in place later in the forward pass. Only this
  // batch's hidden states are kept (decoded in end_batch, once the final logits are known).
  const int role = head_role(a.point);
  if (role >= 0) {
    head_[role] = a.value;
    head_version_[role] = a.value._version();
  }
  const std::string key = a.point.key();
  if (wanted_.count(key) == 0) return;
  hidden_[key] = a.value.detach().clone();
  if (key == structure_.layers.back()) {
    last_layer_ = a.value;
    last_layer_version_ = a.value._version();
  }
}

at::Tensor LogitLens::translate(const std::string& layer, const at::Tensor& hidden) const {
  at::Tensor x = hidden.to(model_.device());
  auto it = options_.translators.find(layer);
  if (it != options_.translators.end()) x = it->second.apply(x);
  return x;
}

at::Tensor LogitLens::head(const at::Tensor& hidden) const {
  at::Tensor x = hidden;
  if (!structure_.norm.empty()) x = model_.submodule(structure_.norm).forward({x}).toTensor();
  const auto outs = flatten_tensors(model_.submodule(structure_.unembed).forward({x}));
  STRATA_CHECK(!outs.empty(), "no tensor came out");
  return outs.front();
}

at::Tensor LogitLens::decode(const std::string& layer, const at::Tensor& hidden) const {
  try {
    return head(translate(layer, hidden));
  } catch (const std::exception& e) {
    throw Error(str_cat("LogitLens: decoding '", layer, "' (", describe(hidden), ") with ",
                        structure_.norm.empty() ? "" : "'" + structure_.norm + "' and ", "'",
                        structure_.unembed, "' failed: ", condense_torch_message(e)));
  }
}

void LogitLens::end_batch(const BatchContext& batch) {
  at::NoGradGuard no_grad;
  // The norm and unembedding are the model's own instrumented submodules: calling them must not
  // re-enter the Runner's session (no captures, no call counting, no edits).
  SuspendHooks suspend;
  const int64_t V = structure_.vocab_size, k = options_.top_k;
  const auto outs = flatten_tensors(batch.output);
  STRATA_CHECK(structure_.output_index < static_cast<int64_t>(outs.size()),
               "LogitLens: the model returned ", describe_value(batch.output),
               ", expected logits at output tensor ", structure_.output_index);
  const at::Tensor final_logits = outs[structure_.output_index].detach();
  STRATA_CHECK(final_logits.dim() >= 1 && final_logits.dim() <= 3 && final_logits.size(-1) == V,
               "LogitLens: the model's logits are ", describe(final_logits), ", expected [B, T, ",
               V, "]");
  const int64_t B = final_logits.dim() == 3 ? final_logits.size(0) : 1;
  const int64_t T = final_logits.numel() / V / B;
  const int64_t N = B * T;

  // Decode every layer. All but the last in one norm + unembedding call on their hidden states
  // concatenated along the first dimension (the norm is per position, so this is exact) when
  // they have the same shape and dtype; the last layer on its own, at the shape the model's
  // forward gave its head, so that the last block decodes to the model's logits bit for bit (a
  // matrix product over more rows may round differently). One call per layer when the shapes
  // differ or the batched call fails.
  const int64_t L = static_cast<int64_t>(structure_.layers.size());
  std::vector<at::Tensor> xs(L);
  for (int64_t l = 0; l < L; ++l) {
    const std::string& layer = structure_.layers[l];
    auto it = hidden_.find(layer);
    STRATA_CHECK(it != hidden_.end(), "LogitLens: the hook point '", layer,
                 "' was not reached in batch ", batch.index);
    xs[l] = it->second;
  }
  // Blocks of consecutive layers decoded together: first layer, logits [count, N, V]; the final
  // logits are the last block (first = L).
  struct Block {
    int64_t first, count;
    at::Tensor x, m, e;
    bool shifted = true;  // e = exp(x - m); else e = exp(x)
  };
  std::vector<Block> blocks;
  const int64_t nb = L - 1;
  bool uniform = nb >= 2 && xs[0].dim() >= 2;
  for (int64_t l = 1; l < nb && uniform; ++l)
    uniform = xs[l].sizes() == xs[0].sizes() && xs[l].scalar_type() == xs[0].scalar_type();
  if (uniform) {
    try {
      std::vector<at::Tensor> ins(nb);
      for (int64_t l = 0; l < nb; ++l) ins[l] = translate(structure_.layers[l], xs[l]);
      const at::Tensor out = head(at::cat(ins, 0));
      if (out.numel() == nb * N * V) blocks.push_back({0, nb, out.reshape({nb, N, V}), {}, {}});
    } catch (const std::exception&) {
      blocks.clear();  // decoded layer by layer below, with a precise error
    }
  }
  // The last layer's decoding is the model's own output when the hooks saw that layer's tensor
  // enter the norm, the norm's output enter the unembedding, and the unembedding's output come
  // back as the logits (and no translator applies): exact, and one decoding fewer.
  const bool last_is_output =
      options_.translators.count(structure_.layers.back()) == 0 &&
      (structure_.norm.empty()
           ? same_tensor(head_[2], last_layer_) && head_version_[2] == last_layer_version_
           : same_tensor(head_[0], last_layer_) && head_version_[0] == last_layer_version_ &&
                 same_tensor(head_[1], head_[2]) && head_version_[1] == head_version_[2]) &&
      same_tensor(head_[3], final_logits);
  last_layer_ = at::Tensor();
  for (at::Tensor& t : head_) t = at::Tensor();
  for (int64_t l = blocks.empty() ? 0 : nb; l < L; ++l) {
    if (l == L - 1 && last_is_output) continue;  // the final block's rows, below
    const std::string& layer = structure_.layers[l];
    const at::Tensor logits = decode(layer, xs[l]);
    STRATA_CHECK(logits.numel() == N * V, "LogitLens: decoding '", layer, "' gave ",
                 describe(logits), ", but the model's logits are ", describe(final_logits));
    blocks.push_back({l, 1, logits.reshape({1, N, V}), {}, {}});
  }
  blocks.push_back({L, 1, final_logits.reshape({1, N, V}), {}, {}});

  // Per block (all rows at once, vectorized by ATen): m = max over the vocabulary and
  // e = exp(x - m), in float32 (float64 when the model's logits or a decoding are float64); then
  // one C++ pass per position over the vocabulary.
  bool dbl = false;
  for (const Block& bl : blocks) dbl = dbl || bl.x.scalar_type() == at::kDouble;
  const auto opts = at::TensorOptions().dtype(dbl ? at::kDouble : at::kFloat).device(at::kCPU);
  std::vector<int64_t> block_of(L + 1);
  for (size_t i = 0; i < blocks.size(); ++i) {
    Block& bl = blocks[i];
    bl.x = bl.x.to(opts).contiguous();
    bl.m = bl.x.amax(-1, /*keepdim=*/true);
    for (int64_t j = 0; j < bl.count; ++j) block_of[bl.first + j] = static_cast<int64_t>(i);
    if (bl.first == L) continue;  // the final distribution's e: in float64, below
    // exp(x - m) keeps the largest term at 1. When every row's maximum lies in [-20, 80],
    // exp(x) itself neither overflows nor loses a row's leading terms (float32 and float64), so
    // the subtraction (a broadcast pass over all rows) is skipped and m counts as 0 below.
    const auto range = at::aminmax(bl.m);
    bl.shifted = !(std::get<0>(range).item<double>() >= -20 && std::get<1>(range).item<double>() <= 80);
    bl.e = bl.shifted ? bl.x.sub(bl.m).exp_() : bl.x.exp();
  }
  // The final distribution's e = exp(x - m) in float64 only: its probabilities enter every
  // layer's KL.
  const Block& fb = blocks.back();
  const at::Tensor final_e64 =
      fb.x.to(at::kDouble).sub(fb.m.to(at::kDouble)).exp_().contiguous();
  std::vector<Cell> cells((L + 1) * N);
  std::vector<int64_t> topk_ids((L + 1) * N * k), final_top1(N);
  std::vector<double> topk_probs((L + 1) * N * k);
  auto run = [&](auto zero) {
    using S = decltype(zero);
    struct Ptr {
      const S* x;
      const S* e;
      const S* m;  // nullptr: e = exp(x)
    };
    std::vector<Ptr> ptr(L + 1);
    for (int64_t l = L; l >= 0; --l) {
      if (l == L - 1 && last_is_output) {
        ptr[l] = ptr[L];
        continue;
      }
      const Block& bl = blocks[block_of[l]];
      const int64_t row0 = (l - bl.first) * N;
      ptr[l] = {bl.x.data_ptr<S>() + row0 * V,
                bl.e.defined() ? bl.e.data_ptr<S>() + row0 * V : nullptr,
                bl.shifted ? bl.m.data_ptr<S>() + row0 : nullptr};
    }
    const std::function<Row<S>(int64_t, int64_t)> row = [&](int64_t l, int64_t n) -> Row<S> {
      return {ptr[l].x + n * V, ptr[l].e ? ptr[l].e + n * V : nullptr,
              ptr[l].m ? ptr[l].m[n] : S(0)};
    };
    const std::function<const double*(int64_t)> final_e = [&](int64_t n) {
      return final_e64.data_ptr<double>() + n * V;
    };
    lens_pass<S>(row, final_e, L, N, V, k, options_.target, cells, topk_ids, topk_probs,
                 final_top1);
  };
  if (dbl) {
    run(0.0);
  } else {
    run(0.0f);
  }

  // Which of this batch's sequences are kept position by position.
  const int64_t keep = std::clamp<int64_t>(options_.keep_sequences - num_sequences_, 0, B);
  const size_t first_kept = sequences_.size();
  for (int64_t b = 0; b < keep; ++b) {
    Sequence seq;
    if (!batch.inputs.empty() && batch.inputs[0].isTensor()) {
      const at::Tensor& tok = batch.inputs[0].toTensor();
      if (!tok.is_floating_point() && tok.numel() == B * T)
        seq.tokens = row_of<int64_t>(tok.reshape({B, T}), b);
    }
    sequences_.push_back(std::move(seq));
  }

  for (int64_t l = 0; l <= L; ++l) {
    const Cell* c = cells.data() + l * N;
    Aggregate& a = aggregate_[l];
    a.positions += N;
    double entropy = 0, kl = 0, top1_prob = 0, agree = 0, rank = 0, in_topk = 0;
    double target_prob = 0, target_rank = 0;
    for (int64_t n = 0; n < N; ++n) {
      entropy += c[n].entropy;
      kl += c[n].kl;
      top1_prob += c[n].top1_prob;
      agree += c[n].top1 == final_top1[n];
      rank += static_cast<double>(c[n].rank);
      in_topk += c[n].rank <= k;
      target_prob += c[n].target_prob;
      target_rank += static_cast<double>(c[n].target_rank);
    }
    a.entropy += entropy;
    a.kl += kl;
    a.top1_prob += top1_prob;
    a.agree += agree;
    a.rank += rank;
    a.in_topk += in_topk;
    if (options_.target) {
      a.target_prob += target_prob;
      a.target_rank += target_rank;
    }

    for (int64_t b = 0; b < keep; ++b) {
      Sequence& seq = sequences_[first_kept + b];
      const Cell* r = c + b * T;
      std::vector<int64_t> top1(T), rk(T), trk(T);
      std::vector<double> top1p(T), ent(T), kls(T), tp(T);
      std::vector<std::vector<int64_t>> id_rows(T);
      std::vector<std::vector<double>> prob_rows(T);
      for (int64_t t = 0; t < T; ++t) {
        top1[t] = r[t].top1;
        rk[t] = r[t].rank;
        trk[t] = r[t].target_rank;
        top1p[t] = r[t].top1_prob;
        ent[t] = r[t].entropy;
        kls[t] = r[t].kl;
        tp[t] = r[t].target_prob;
        const int64_t off = (l * N + b * T + t) * k;
        id_rows[t].assign(topk_ids.begin() + off, topk_ids.begin() + off + k);
        prob_rows[t].assign(topk_probs.begin() + off, topk_probs.begin() + off + k);
      }
      seq.top1.push_back(std::move(top1));
      seq.top1_prob.push_back(std::move(top1p));
      seq.entropy.push_back(std::move(ent));
      seq.kl.push_back(std::move(kls));
      seq.rank.push_back(std::move(rk));
      if (options_.target) {
        seq.target_prob.push_back(std::move(tp));
        seq.target_rank.push_back(std::move(trk));
      }
      seq.topk_ids.push_back(std::move(id_rows));
      seq.topk_probs.push_back(std::move(prob_rows));
    }
  }
  num_sequences_ += B;
  hidden_.clear();
}

Report LogitLens::finish() {
  Report r;
  r.analyzer = std::string(name());
  nlohmann::json& d = r.data;
  std::vector<std::string> layers = structure_.layers;
  layers.push_back("output");
  d["layers"] = layers;
  d["norm"] = structure_.norm;
  d["unembed"] = structure_.unembed;
  d["embedding"] = structure_.embedding;
  d["hidden_size"] = structure_.hidden_size;
  d["vocab_size"] = structure_.vocab_size;
  d["top_k"] = options_.top_k;
  if (options_.target) d["target"] = *options_.target;
  std::vector<std::string> tuned;
  for (const auto& [layer, tr] : options_.translators) tuned.push_back(layer);
  d["translated_layers"] = tuned;

  auto seq_json = [this](const Sequence& s) {
    nlohmann::json j;
    j["tokens"] = s.tokens;
    j["top1"] = s.top1;
    j["top1_prob"] = s.top1_prob;
    j["entropy"] = s.entropy;
    j["kl_to_final"] = s.kl;
    j["rank_of_final_top1"] = s.rank;
    if (options_.target) {
      j["target_prob"] = s.target_prob;
      j["target_rank"] = s.target_rank;
    }
    j["topk_tokens"] = s.topk_ids;
    j["topk_probs"] = s.topk_probs;
    return j;
  };
  if (!sequences_.empty()) d.update(seq_json(sequences_.front()));
  if (options_.keep_sequences > 1) {
    d["sequences"] = nlohmann::json::array();
    for (const auto& s : sequences_) d["sequences"].push_back(seq_json(s));
  }

  nlohmann::json agg = nlohmann::json::array();
  for (size_t l = 0; l < aggregate_.size(); ++l) {
    const Aggregate& a = aggregate_[l];
    const double n = a.positions > 0 ? static_cast<double>(a.positions) : NAN;
    nlohmann::json j = {{"layer", layers[l]},
                        {"positions", a.positions},
                        {"mean_entropy", a.entropy / n},
                        {"mean_kl_to_final", a.kl / n},
                        {"mean_top1_prob", a.top1_prob / n},
                        {"top1_agreement", a.agree / n},
                        {"mean_rank_of_final_top1", a.rank / n},
                        {"final_top1_in_topk", a.in_topk / n}};
    if (options_.target) {
      j["mean_target_prob"] = a.target_prob / n;
      j["mean_target_rank"] = a.target_rank / n;
    }
    agg.push_back(std::move(j));
  }
  d["aggregate"] = {{"sequences", num_sequences_}, {"layers", agg}};
  return r;
}

// ---------------------------------------------------------------------------------------------
// Pictures

std::string lens_token_label(const std::string& piece) {
  std::string p = piece;
  // llama2.c writes BOS/EOS as "\n<s>\n", "\n</s>\n".
  if (p.size() > 4 && p.front() == '\n' && p.back() == '\n' && p[1] == '<' &&
      p[p.size() - 2] == '>')
    p = p.substr(1, p.size() - 2);
  // Byte tokens "<0xAB>" stand for one raw byte.
  if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' &&
      std::isxdigit(static_cast<unsigned char>(p[3])) &&
      std::isxdigit(static_cast<unsigned char>(p[4]))) {
    p = std::string(1, static_cast<char>(std::stoi(p.substr(3, 2), nullptr, 16)));
  }
  std::string out;
  for (unsigned char c : p) {
    if (c == ' ') {
      out += '_';
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

Heatmap logit_lens_heatmap(const Report& report, const TokenText& token_text, LensColor color,
                           const std::string& model_name) {
  const nlohmann::json& d = report.data;
  STRATA_CHECK(d.contains("layers") && d.contains("top1") && !d.at("top1").empty(),
               "logit_lens_heatmap: the report has no per-position results (a LogitLens report "
               "with keep_sequences >= 1 is needed)");
  const auto layers = d.at("layers").get<std::vector<std::string>>();
  const auto top1 = d.at("top1").get<std::vector<std::vector<int64_t>>>();
  const auto values = d.at(color == LensColor::Probability ? "top1_prob" : "entropy")
                          .get<std::vector<std::vector<double>>>();
  const int64_t L = static_cast<int64_t>(layers.size());
  const int64_t T = static_cast<int64_t>(top1.front().size());
  STRATA_CHECK(static_cast<int64_t>(top1.size()) == L, "logit_lens_heatmap: ", top1.size(),
               " rows of top-1 tokens for ", L, " layers");
  auto text = [&token_text](int64_t id) {
    return token_text ? lens_token_label(token_text(id)) : std::to_string(id);
  };
  std::vector<double> flat;
  std::vector<std::string> cells;
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t t = 0; t < T; ++t) {
      flat.push_back(values[l][t]);
      cells.push_back(text(top1[l][t]));
    }
  }
  Heatmap h(std::move(flat), L, T);
  h.cell_text = std::move(cells);
  h.row_labels = layers;
  const auto tokens = d.value("tokens", std::vector<int64_t>{});
  for (int64_t t = 0; t < T; ++t) {
    h.col_labels.push_back(static_cast<int64_t>(tokens.size()) == T ? text(tokens[t])
                                                                    : std::to_string(t));
  }
  const std::string what = color == LensColor::Probability ? "probability" : "entropy";
  h.title = "logit lens" + (model_name.empty() ? std::string() : ": " + model_name) +
            " - top-1 next token per layer and position, coloured by " + what;
  h.text_scale = 2;
  if (color == LensColor::Probability) {
    h.colorbar_label = "p(top-1)";
    h.vmin = 0.0;
    h.vmax = 1.0;
  } else {
    h.colorbar_label = "entropy (nats)";
    h.vmin = 0.0;
    h.vmax = std::log(static_cast<double>(d.value("vocab_size", int64_t{2})));
  }
  return h;
}

}  // namespace strata
