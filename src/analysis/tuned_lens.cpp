#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <strata/analysis/dataset.h>
#include <strata/analysis/runner.h>
#include <strata/analysis/tuned_lens.h>
#include <strata/capture/hook_session.h>
#include <strata/core/dtype.h>
#include <strata/core/error.h>
#include <strata/core/torch_error.h>
#include <strata/io/safetensors.h>
#include <strata/model/model.h>
#include <strata/text/tokenizer.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

namespace strata {

namespace {

std::string shape_of(const at::Tensor& t) { return str_cat(t.sizes()); }

// The logits among a model's (flattened) outputs.
at::Tensor logits_of(const c10::IValue& out, int64_t index, const char* caller) {
  const auto outs = flatten_tensors(out);
  STRATA_CHECK(index >= 0 && index < static_cast<int64_t>(outs.size()), caller,
               ": the model returned ", describe_value(out), ", expected logits at output tensor ",
               index);
  return outs[index];
}

void check_tokens(const at::Tensor& tokens, const char* caller) {
  STRATA_CHECK(tokens.defined(), caller, ": no tokens given");
  STRATA_CHECK(
      !tokens.is_floating_point() && !tokens.is_complex() && tokens.scalar_type() != at::kBool,
      caller, ": tokens are ", dtype_name(tokens.scalar_type()),
      ", expected integer token ids (int64 [N, T])");
  STRATA_CHECK(tokens.dim() == 2 && tokens.size(0) > 0 && tokens.size(1) > 0, caller,
               ": tokens have shape ", tokens.sizes(), ", expected [N, T] with N, T > 0");
}

// Turns requires_grad off on every (leaf) parameter of a module while alive, and restores it:
// the tuned lens differentiates through the model's norm and unembedding, but must neither
// train them nor leave gradients in their .grad fields. A parameter that is not a leaf (a module
// cloned with autograd on holds clones of its parameters) cannot be switched off; the gradients
// are therefore also computed with autograd::grad for the translators only.
class FreezeParameters {
 public:
  explicit FreezeParameters(const torch::jit::Module& m) {
    for (const at::Tensor& p : m.parameters(/*recurse=*/true)) {
      if (!p.is_leaf() || !p.requires_grad()) continue;
      saved_.emplace_back(p, true);
      p.set_requires_grad(false);
    }
  }
  ~FreezeParameters() {
    // Reverse order: a tied weight listed twice ends with its first-seen state.
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it)
      it->first.set_requires_grad(it->second);
  }
  FreezeParameters(const FreezeParameters&) = delete;
  FreezeParameters& operator=(const FreezeParameters&) = delete;

 private:
  std::vector<std::pair<at::Tensor, bool>> saved_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Training text

namespace {

// SplitMix64: decorrelated seeds for the per-row generators.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

at::Tensor sample_sequences(const Model& model, const SampleOptions& o, int64_t output_index,
                            const std::function<void(int64_t)>& progress) {
  STRATA_CHECK(o.count > 0, "sample_sequences: count ", o.count, " must be positive");
  STRATA_CHECK(o.length >= 1, "sample_sequences: length ", o.length, " must be at least 1");
  STRATA_CHECK(o.temperature > 0 && std::isfinite(o.temperature), "sample_sequences: temperature ",
               o.temperature, " must be positive");
  STRATA_CHECK(o.batch_size > 0, "sample_sequences: batch_size ", o.batch_size,
               " must be positive");
  STRATA_CHECK(o.start_token >= 0, "sample_sequences: start token ", o.start_token, " is negative");
  at::NoGradGuard no_grad;
  SuspendHooks suspend;  // sample from the plain model: no captures, no edits of a caller's session
  at::Tensor all = at::empty({o.count, o.length}, at::kLong);
  int64_t done = 0;
  for (int64_t first = 0; first < o.count; first += o.batch_size) {
    const int64_t B = std::min(o.batch_size, o.count - first);
    // One generator per row, seeded from (seed, row): row i is the same whatever the count and
    // batch size, so a longer run extends a shorter one.
    std::vector<at::Generator> gens;
    for (int64_t b = 0; b < B; ++b)
      gens.push_back(at::make_generator<at::CPUGeneratorImpl>(mix(o.seed ^ mix(first + b))));
    at::Tensor seq = at::full({B, 1}, o.start_token, at::kLong);
    for (int64_t t = 1; t < o.length; ++t) {
      c10::IValue out;
      try {
        out = model.forward({seq.to(model.device())});
      } catch (const Error& e) {
        if (t > 1) throw;
        throw Error(str_cat("sample_sequences: the first forward pass, on the start token ",
                            o.start_token, ", failed: ", e.what()));
      }
      const at::Tensor logits = logits_of(out, output_index, "sample_sequences");
      STRATA_CHECK(logits.dim() == 3 && logits.size(0) == B && logits.size(1) == t,
                   "sample_sequences: the model returned logits ", logits.sizes(), " for tokens [",
                   B, ", ", t, "], expected [", B, ", ", t, ", V]");
      // float64 on the CPU: the draws depend only on the seed, not on the device or threads.
      const at::Tensor probs =
          (logits.select(1, t - 1).to(at::kCPU, at::kDouble) / o.temperature).softmax(-1);
      at::Tensor next = at::empty({B, 1}, at::kLong);
      for (int64_t b = 0; b < B; ++b)
        next[b].copy_(at::multinomial(probs[b], 1, /*replacement=*/false, gens[b]));
      seq = at::cat({seq, next}, 1);
      done += B;
      if (progress) progress(done);
    }
    all.narrow(0, first, B).copy_(seq);
  }
  return all;
}

at::Tensor corpus_sequences(const Tokenizer& tokenizer, const std::string& text, int64_t length) {
  STRATA_CHECK(length >= 2, "corpus_sequences: length ", length, " must be at least 2");
  // Documents are separated by blank lines (lines of nothing but whitespace).
  std::vector<std::string> docs;
  std::string doc, line;
  std::istringstream in(text);
  auto flush = [&] {
    while (!doc.empty() && doc.back() == '\n') doc.pop_back();
    if (!doc.empty()) docs.push_back(doc);
    doc.clear();
  };
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) {
      flush();
    } else {
      doc += line + "\n";
    }
  }
  flush();
  std::vector<int64_t> ids;
  for (const auto& d : docs) {
    const std::vector<int64_t> e = tokenizer.encode(d, /*bos=*/true);
    ids.insert(ids.end(), e.begin(), e.end());
  }
  const int64_t rows = static_cast<int64_t>(ids.size()) / length;
  STRATA_CHECK(rows > 0, "corpus_sequences: the corpus (", text.size(), " bytes, ", docs.size(),
               " documents) encodes to ", ids.size(), " tokens, fewer than one sequence of ",
               length);
  ids.resize(rows * length);
  return at::tensor(ids, at::kLong).reshape({rows, length});
}

// ---------------------------------------------------------------------------------------------
// Training

struct TunedLensTrainer::State {
  std::vector<at::Tensor> weight, bias;  // per trained layer; leaves with requires_grad
  at::Generator gen;
  at::Tensor order;  // the current epoch's permutation of the rows
  int64_t next = 0;  // next unused position in `order`
  int64_t rows = -1;
};

TunedLensTrainer::TunedLensTrainer(const Model& model, LensStructure structure,
                                   TunedLensOptions options)
    : model_(model), structure_(std::move(structure)), options_(std::move(options)) {
  const int64_t d = structure_.hidden_size;
  STRATA_CHECK(!structure_.layers.empty() && !structure_.unembed.empty() && d > 0 &&
                   structure_.vocab_size > 0,
               "TunedLensTrainer: the structure names no layers or no unembedding; use "
               "find_lens_structure()");
  STRATA_CHECK(options_.steps >= 0, "TunedLensTrainer: steps ", options_.steps, " is negative");
  STRATA_CHECK(options_.learning_rate > 0 && std::isfinite(options_.learning_rate),
               "TunedLensTrainer: learning rate ", options_.learning_rate, " must be positive");
  STRATA_CHECK(options_.batch_size > 0, "TunedLensTrainer: batch_size ", options_.batch_size,
               " must be positive");
  STRATA_CHECK(options_.momentum >= 0 && options_.momentum < 1, "TunedLensTrainer: momentum ",
               options_.momentum, " is outside [0, 1)");
  STRATA_CHECK(options_.weight_decay >= 0, "TunedLensTrainer: weight_decay ", options_.weight_decay,
               " is negative");

  std::vector<std::string> wanted = options_.layers;
  if (wanted.empty()) {
    wanted.assign(structure_.layers.begin(), structure_.layers.end() - 1);
    STRATA_CHECK(!wanted.empty(), "TunedLensTrainer: the structure decodes only one layer ('",
                 structure_.layers.front(),
                 "'), the last, which keeps the identity; name the layers to train");
  }
  std::string names;
  for (const auto& l : structure_.layers) names += (names.empty() ? "" : ", ") + l;
  const std::set<std::string> wanted_set(wanted.begin(), wanted.end());
  for (const auto& w : wanted) {
    STRATA_CHECK(
        std::find(structure_.layers.begin(), structure_.layers.end(), w) != structure_.layers.end(),
        "TunedLensTrainer: '", w, "' is not one of the decoded layers (", names, ")");
  }
  for (const auto& l : structure_.layers)  // the structure's order, each once
    if (wanted_set.count(l)) layers_.push_back(l);

  check_translators(options_.init, structure_, "TunedLensTrainer");
  for (const auto& [layer, tr] : options_.init) {
    STRATA_CHECK(wanted_set.count(layer), "TunedLensTrainer: an initial translator is given for '",
                 layer, "', which is not a trained layer");
  }

  state_ = std::make_unique<State>();
  state_->gen = at::make_generator<at::CPUGeneratorImpl>(options_.seed);
  const auto opts = at::TensorOptions().dtype(at::kFloat).device(model_.device());
  for (const auto& layer : layers_) {
    at::Tensor w = at::zeros({d, d}, opts), b = at::zeros({d}, opts);
    auto it = options_.init.find(layer);
    if (it != options_.init.end()) {
      if (it->second.weight.defined()) w.copy_(it->second.weight);
      if (it->second.bias.defined()) b.copy_(it->second.bias);
    }
    state_->weight.push_back(w.set_requires_grad(true));
    state_->bias.push_back(b.set_requires_grad(true));
  }
}

TunedLensTrainer::~TunedLensTrainer() = default;

namespace {

// The losses of one batch: for each trained layer, mean over positions of KL(p_final || p_layer)
// through the model's own norm and unembedding, as a differentiable scalar. `backward`: call
// backward on each layer's loss as soon as it is computed (frees that layer's graph).
std::vector<double> batch_losses(const Model& model, const LensStructure& s,
                                 const std::vector<std::string>& layers,
                                 const std::vector<at::Tensor>& weight,
                                 const std::vector<at::Tensor>& bias, const at::Tensor& tokens,
                                 bool backward) {
  // 1. Hidden states and final distribution, without gradients.
  std::map<std::string, at::Tensor> hidden;
  at::Tensor final_logp;
  {
    at::NoGradGuard no_grad;
    const std::set<std::string> keys(layers.begin(), layers.end());
    HookSession session;
    session.keep(KeepOptions().set_device(std::nullopt).set_clone(true))
        .capture_if([&keys](const HookPoint& p) { return keys.count(p.key()) > 0; });
    const c10::IValue out = model.forward({tokens.to(model.device())});
    const at::Tensor logits = logits_of(out, s.output_index, "TunedLensTrainer");
    STRATA_CHECK(logits.is_floating_point() && logits.size(-1) == s.vocab_size,
                 "TunedLensTrainer: the model's logits are ", dtype_name(logits.scalar_type()),
                 logits.sizes(), ", expected [..., ", s.vocab_size, "]");
    final_logp = logits.detach().to(at::kFloat).log_softmax(-1).reshape({-1, s.vocab_size});
    const TensorMap& acts = session.activations();
    for (const auto& l : layers) {
      STRATA_CHECK(acts.contains(l), "TunedLensTrainer: the hook point '", l,
                   "' was not reached in a forward pass of '", model.source(), "'");
      hidden[l] = acts.at(l);
    }
  }
  const at::Tensor p_final = final_logp.exp();
  // Σ p log p with 0 log 0 = 0: the constant part of the KL (its gradient is zero).
  const at::Tensor neg_entropy =
      at::where(p_final > 0, p_final * final_logp, at::zeros_like(p_final)).sum(-1).mean();

  // 2. Decode each translated hidden state with gradients reaching only W and b.
  SuspendHooks suspend;  // the norm and unembedding are instrumented submodules
  std::vector<double> out;
  for (size_t i = 0; i < layers.size(); ++i) {
    const at::Tensor& h = hidden.at(layers[i]);
    at::Tensor x = Translator{weight[i], bias[i]}.apply(h);
    at::Tensor logits;
    try {
      if (!s.norm.empty()) x = model.submodule(s.norm).forward({x}).toTensor();
      const auto outs = flatten_tensors(model.submodule(s.unembed).forward({x}));
      STRATA_CHECK(!outs.empty(), "no tensor came out");
      logits = outs.front();
    } catch (const std::exception& e) {
      throw Error(str_cat("TunedLensTrainer: decoding '", layers[i], "' (", h.sizes(), ") with ",
                          s.norm.empty() ? "" : "'" + s.norm + "' and ", "'", s.unembed,
                          "' failed: ", condense_torch_message(e)));
    }
    STRATA_CHECK(logits.numel() == final_logp.numel(), "TunedLensTrainer: decoding '", layers[i],
                 "' gave logits ", logits.sizes(), " but the model's output has ",
                 final_logp.size(0), " positions of ", s.vocab_size);
    const at::Tensor logp = logits.to(at::kFloat).log_softmax(-1).reshape({-1, s.vocab_size});
    // KL(p_final || p) = Σ p_final log p_final - Σ p_final log p, averaged over positions.
    const at::Tensor loss = neg_entropy - (p_final * logp).sum(-1).mean();
    if (backward) {
      // Only W and b: nothing flows into the model's parameters (or their .grad fields).
      const auto g = torch::autograd::grad({loss}, {weight[i], bias[i]});
      weight[i].mutable_grad() = g[0];
      bias[i].mutable_grad() = g[1];
    }
    out.push_back(loss.item<double>());
  }
  return out;
}

}  // namespace

TunedLensStep TunedLensTrainer::train(const at::Tensor& tokens,
                                      const std::function<void(const TunedLensStep&)>& on_step) {
  check_tokens(tokens, "TunedLensTrainer::train");
  State& st = *state_;
  const int64_t N = tokens.size(0);
  const int64_t B = std::min(options_.batch_size, N);
  const at::Tensor cpu_tokens = tokens.to(at::kCPU, at::kLong);
  if (st.rows != N) {  // new data: a fresh epoch
    st.rows = N;
    st.next = N;
  }

  std::vector<at::Tensor> params;
  for (size_t i = 0; i < layers_.size(); ++i) {
    params.push_back(st.weight[i]);
    params.push_back(st.bias[i]);
  }
  std::unique_ptr<torch::optim::Optimizer> opt;
  if (options_.optimizer == TunedLensOptimizer::Adam) {
    opt = std::make_unique<torch::optim::Adam>(
        params,
        torch::optim::AdamOptions(options_.learning_rate).weight_decay(options_.weight_decay));
  } else {
    opt =
        std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(options_.learning_rate)
                                                        .momentum(options_.momentum)
                                                        .nesterov(options_.momentum > 0)
                                                        .weight_decay(options_.weight_decay));
  }

  FreezeParameters frozen(model_.module());
  TunedLensStep last;
  for (int64_t step = 1; step <= options_.steps; ++step) {
    if (st.next + B > N) {
      st.order = at::randperm(N, st.gen, at::kLong);
      st.next = 0;
    }
    const at::Tensor rows = st.order.narrow(0, st.next, B);
    st.next += B;
    // Linear decay to zero, as in Belrose et al.
    const double lr = options_.learning_rate *
                      (1.0 - static_cast<double>(step - 1) / static_cast<double>(options_.steps));
    for (auto& group : opt->param_groups()) group.options().set_lr(lr);

    // No zero_grad(): batch_losses() overwrites every translator's .grad (with autograd::grad's
    // result, which may be a view that zero_grad() could not detach in place).
    last.layer_loss = batch_losses(model_, structure_, layers_, st.weight, st.bias,
                                   cpu_tokens.index_select(0, rows), /*backward=*/true);
    opt->step();
    ++steps_done_;
    last.step = steps_done_;
    last.loss = 0;
    for (double v : last.layer_loss) last.loss += v;
    last.loss /= static_cast<double>(last.layer_loss.size());
    STRATA_CHECK(std::isfinite(last.loss), "TunedLensTrainer: the loss became ", last.loss,
                 " at step ", steps_done_, " (learning rate ", lr, "); lower the learning rate");
    if (on_step) on_step(last);
  }
  return last;
}

TunedLensStep TunedLensTrainer::loss(const at::Tensor& tokens, int64_t batch_size) const {
  check_tokens(tokens, "TunedLensTrainer::loss");
  STRATA_CHECK(batch_size > 0, "TunedLensTrainer::loss: batch_size ", batch_size,
               " must be positive");
  at::NoGradGuard no_grad;
  const at::Tensor cpu_tokens = tokens.to(at::kCPU, at::kLong);
  TunedLensStep r;
  r.step = steps_done_;
  r.layer_loss.assign(layers_.size(), 0.0);
  const int64_t N = tokens.size(0);
  for (int64_t first = 0; first < N; first += batch_size) {
    const int64_t n = std::min(batch_size, N - first);
    const auto l = batch_losses(model_, structure_, layers_, state_->weight, state_->bias,
                                cpu_tokens.narrow(0, first, n), /*backward=*/false);
    for (size_t i = 0; i < l.size(); ++i) r.layer_loss[i] += l[i] * n / static_cast<double>(N);
  }
  for (double v : r.layer_loss) r.loss += v / static_cast<double>(r.layer_loss.size());
  return r;
}

std::map<std::string, Translator> TunedLensTrainer::translators() const {
  std::map<std::string, Translator> out;
  for (size_t i = 0; i < layers_.size(); ++i) {
    out[layers_[i]] = Translator{state_->weight[i].detach().to(at::kCPU).clone(),
                                 state_->bias[i].detach().to(at::kCPU).clone()};
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Files and evaluation

void save_translators(const std::string& path, const std::map<std::string, Translator>& translators,
                      std::map<std::string, std::string> metadata) {
  STRATA_CHECK(!translators.empty(), "save_translators: no translators to write to '", path, "'");
  TensorMap t;
  for (const auto& [layer, tr] : translators) {
    STRATA_CHECK(tr.weight.defined() || tr.bias.defined(), "save_translators: the translator of '",
                 layer, "' has neither weight nor bias");
    const int64_t d = tr.weight.defined() ? tr.weight.size(0) : tr.bias.size(0);
    STRATA_CHECK(!tr.weight.defined() || (tr.weight.dim() == 2 && tr.weight.size(1) == d),
                 "save_translators: the weight of '", layer, "' is ", shape_of(tr.weight),
                 ", expected [d, d]");
    STRATA_CHECK(!tr.bias.defined() || (tr.bias.dim() == 1 && tr.bias.size(0) == d),
                 "save_translators: the bias of '", layer, "' is ", shape_of(tr.bias),
                 ", expected [", d, "]");
    const auto f = at::TensorOptions().dtype(at::kFloat);
    t.insert(layer + ".weight", tr.weight.defined() ? tr.weight.detach().to(at::kCPU, at::kFloat)
                                                    : at::zeros({d, d}, f));
    t.insert(layer + ".bias",
             tr.bias.defined() ? tr.bias.detach().to(at::kCPU, at::kFloat) : at::zeros({d}, f));
  }
  metadata["format"] = "strata.tuned_lens";
  metadata["parameterization"] = "h + h W^T + b";
  save_safetensors(path, t, metadata);
}

void check_translators(const std::map<std::string, Translator>& translators, const LensStructure& s,
                       const std::string& caller) {
  const int64_t d = s.hidden_size;
  std::string names;
  for (const auto& l : s.layers) names += (names.empty() ? "" : ", ") + l;
  for (const auto& [layer, tr] : translators) {
    STRATA_CHECK(std::find(s.layers.begin(), s.layers.end(), layer) != s.layers.end(), caller,
                 ": a translator is given for '", layer, "', which is not a decoded layer (", names,
                 ")");
    STRATA_CHECK(!tr.weight.defined() ||
                     (tr.weight.dim() == 2 && tr.weight.size(0) == d && tr.weight.size(1) == d),
                 caller, ": the translator weight of '", layer, "' is ", shape_of(tr.weight),
                 ", expected [", d, ", ", d, "] (the hidden size)");
    STRATA_CHECK(!tr.bias.defined() || (tr.bias.dim() == 1 && tr.bias.size(0) == d), caller,
                 ": the translator bias of '", layer, "' is ", shape_of(tr.bias), ", expected [", d,
                 "]");
  }
}

LensComparison compare_lenses(const Model& model, const LensStructure& structure,
                              const std::map<std::string, Translator>& translators,
                              const at::Tensor& tokens, int64_t batch_size) {
  check_tokens(tokens, "compare_lenses");
  STRATA_CHECK(batch_size > 0, "compare_lenses: batch_size ", batch_size, " must be positive");
  check_translators(translators, structure, "compare_lenses");
  LogitLens plain(model, structure, LogitLensOptions().set_keep_sequences(0));
  LogitLens tuned(model, structure,
                  LogitLensOptions().set_keep_sequences(0).set_translators(translators));
  TensorMap in;
  in.insert("arg0", tokens.to(at::kLong));
  TensorDataset data(in, batch_size);
  Runner runner(model, RunnerOptions().set_progress(false).set_label("lens-eval"));
  runner.add(plain);
  runner.add(tuned);
  const std::vector<Report> reports = runner.run(data);

  LensComparison c;
  c.layers = structure.layers;
  c.sequences = tokens.size(0);
  auto kl = [&c](const Report& r, std::vector<double>& out) {
    const auto& layers = r.data.at("aggregate").at("layers");
    for (size_t l = 0; l < c.layers.size(); ++l) {
      out.push_back(layers.at(l).at("mean_kl_to_final").get<double>());
      c.positions = layers.at(l).at("positions").get<int64_t>();
    }
  };
  kl(reports.at(0), c.logit_kl);
  kl(reports.at(1), c.tuned_kl);
  return c;
}

}  // namespace strata
