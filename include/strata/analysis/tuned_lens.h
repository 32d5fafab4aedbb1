// The tuned lens (Belrose et al., 2023, "Eliciting Latent Predictions from Transformers with the
// Tuned Lens", arXiv:2303.08112): one affine translator per layer, trained so that decoding the
// translated hidden state with the model's own final norm and unembedding matches the model's
// final distribution. The translators are the LogitLens's (logit_lens.h): h' = h + h Wᵀ + b, with
// W = 0, b = 0 at the start, so an untrained tuned lens is exactly the logit lens.
//
//   auto model = strata::Model::load("stories260K.pt");
//   at::Tensor probe = at::ones({1, 8}, at::kLong);
//   strata::LensStructure s = strata::find_lens_structure(model, {probe});
//   at::Tensor train = strata::sample_sequences(model, strata::SampleOptions().set_count(64));
//   at::Tensor held_out = strata::sample_sequences(model, strata::SampleOptions().set_seed(1));
//   strata::TunedLensTrainer trainer(model, s, strata::TunedLensOptions().set_steps(300));
//   trainer.train(train);
//   strata::save_translators("lens.safetensors", trainer.translators(), {{"model",
//   "stories260K.pt"}}); strata::LensComparison c = strata::compare_lenses(model, s,
//   trainer.translators(), held_out);
//   // c.logit_kl[l] vs c.tuned_kl[l]: mean KL(p_final || p_layer) in nats, per layer
//
// See docs/analyzers/logit_lens.md ("Tuned lens") for the method and numbers on stories260K.
#pragma once

#include <ATen/core/Tensor.h>
#include <strata/analysis/logit_lens.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace strata {

class Model;
class Tokenizer;

// ---------------------------------------------------------------------------------------------
// Training text

/// How sample_sequences() draws text from a language model.
struct SampleOptions {
  int64_t count = 64;        ///< number of sequences (N)
  int64_t length = 64;       ///< tokens per sequence (T), the start token included
  double temperature = 1.0;  ///< softmax temperature (> 0)
  uint64_t seed = 0;         ///< row i is drawn with a generator seeded from (seed, i): the
                             ///< same whatever count, batch size, threads or global RNG
  int64_t start_token = 1;   ///< the first token of every sequence (llama2.c's BOS)
  int64_t batch_size = 64;   ///< sequences generated together

  SampleOptions& set_count(int64_t v) {
    count = v;
    return *this;
  }
  SampleOptions& set_length(int64_t v) {
    length = v;
    return *this;
  }
  SampleOptions& set_temperature(double v) {
    temperature = v;
    return *this;
  }
  SampleOptions& set_seed(uint64_t v) {
    seed = v;
    return *this;
  }
  SampleOptions& set_start_token(int64_t v) {
    start_token = v;
    return *this;
  }
  SampleOptions& set_batch_size(int64_t v) {
    batch_size = v;
    return *this;
  }
};

/// Samples `count` sequences of `length` tokens from `model` (tokens [B, t] -> logits [B, t, V]
/// at output tensor `output_index`), starting from `start_token` and drawing each next token from
/// softmax(logits / temperature) at the last position. Returns int64 [count, length] on the CPU.
/// The whole prefix is re-run for every token (a TorchScript model has no KV cache here), so the
/// cost grows as count · length² (· length again for attention). `progress` (optional) is called
/// after each generated token with the number of tokens generated so far (of count · (length - 1)).
at::Tensor sample_sequences(const Model& model, const SampleOptions& options = {},
                            int64_t output_index = 0,
                            const std::function<void(int64_t)>& progress = nullptr);

/// Turns a text corpus into training sequences: the text is split into documents at blank lines,
/// each document is encoded with BOS first (as llama2.c encodes a story), the documents are
/// concatenated and cut into rows of `length` tokens (an incomplete last row is dropped).
/// Returns int64 [N, length]. Errors: `length` < 2, a corpus too short for one row.
at::Tensor corpus_sequences(const Tokenizer& tokenizer, const std::string& text, int64_t length);

// ---------------------------------------------------------------------------------------------
// Training

/// The optimizer used by TunedLensTrainer (both from torch::optim).
enum class TunedLensOptimizer {
  Adam,         ///< torch::optim::Adam (default; robust at small batch sizes)
  SgdNesterov,  ///< torch::optim::SGD with Nesterov momentum, as in Belrose et al.
};

/// How TunedLensTrainer trains.
struct TunedLensOptions {
  /// Layers (hook-point keys of LensStructure::layers) that get a translator; empty: every layer
  /// but the last one. The last decoded layer is by default the last block, whose decoding IS
  /// the model's output (KL 0), so its translator stays the identity.
  std::vector<std::string> layers;
  int64_t steps = 300;          ///< optimizer steps
  double learning_rate = 3e-3;  ///< initial learning rate; decays linearly to 0 over `steps`
  TunedLensOptimizer optimizer = TunedLensOptimizer::Adam;
  double momentum = 0.9;      ///< SGD's Nesterov momentum (ignored by Adam)
  double weight_decay = 0.0;  ///< L2 penalty on W and b (pulls towards the identity)
  int64_t batch_size = 8;     ///< sequences per step (each step uses batch_size · T positions)
  uint64_t seed = 0;          ///< seed of the batch order
  /// Translators to start from instead of the identity (e.g. read by load_translators()).
  std::map<std::string, Translator> init;

  TunedLensOptions& set_layers(std::vector<std::string> v) {
    layers = std::move(v);
    return *this;
  }
  TunedLensOptions& set_steps(int64_t v) {
    steps = v;
    return *this;
  }
  TunedLensOptions& set_learning_rate(double v) {
    learning_rate = v;
    return *this;
  }
  TunedLensOptions& set_optimizer(TunedLensOptimizer v) {
    optimizer = v;
    return *this;
  }
  TunedLensOptions& set_momentum(double v) {
    momentum = v;
    return *this;
  }
  TunedLensOptions& set_weight_decay(double v) {
    weight_decay = v;
    return *this;
  }
  TunedLensOptions& set_batch_size(int64_t v) {
    batch_size = v;
    return *this;
  }
  TunedLensOptions& set_seed(uint64_t v) {
    seed = v;
    return *this;
  }
  TunedLensOptions& set_init(std::map<std::string, Translator> v) {
    init = std::move(v);
    return *this;
  }
};

/// One optimizer step's losses (mean KL(p_final ‖ p_layer) over the batch's positions, nats).
struct TunedLensStep {
  int64_t step = 0;                ///< 1-based
  double loss = 0;                 ///< mean over the trained layers
  std::vector<double> layer_loss;  ///< per trained layer, in TunedLensTrainer::layers() order
};

/// Trains tuned-lens translators; see the file comment.
///
/// Each step takes `batch_size` sequences of the training tokens (shuffled, seeded), runs the
/// model once without gradients while a HookSession captures the layers' hidden states and the
/// model's own final logits (detached), then for each trained layer decodes T_ℓ(h) with the
/// model's own norm and unembedding submodules (hooks suspended), and minimises
/// Σ_ℓ mean_positions KL(p_final ‖ softmax(U(N(T_ℓ(h))))) with the chosen torch::optim optimizer.
/// The model's parameters are frozen (requires_grad off) during training and restored afterwards,
/// and gradients are taken with torch::autograd::grad for W_ℓ and b_ℓ only, so nothing reaches
/// the model's parameters or their .grad fields.
class TunedLensTrainer {
 public:
  /// `model` must outlive the trainer. Errors: unknown layers, bad options, `init` translators
  /// of the wrong shape (naming the layer and both shapes).
  TunedLensTrainer(const Model& model, LensStructure structure, TunedLensOptions options = {});
  ~TunedLensTrainer();
  TunedLensTrainer(const TunedLensTrainer&) = delete;
  TunedLensTrainer& operator=(const TunedLensTrainer&) = delete;

  /// Runs `options.steps` optimizer steps on `tokens` (int64 [N, T], the model's first and only
  /// argument) and returns the last step's losses; `on_step` is called after every step.
  /// Calling train() again continues from the current translators (with a fresh schedule).
  TunedLensStep train(const at::Tensor& tokens,
                      const std::function<void(const TunedLensStep&)>& on_step = nullptr);

  /// The mean loss of the current translators on `tokens` (no training), per trained layer.
  TunedLensStep loss(const at::Tensor& tokens, int64_t batch_size = 8) const;

  /// The current translators (detached CPU float32 copies), keyed by layer.
  std::map<std::string, Translator> translators() const;
  /// The layers being trained, in the structure's order.
  const std::vector<std::string>& layers() const { return layers_; }
  /// The structure the translators decode through.
  const LensStructure& structure() const { return structure_; }
  /// Total optimizer steps taken so far.
  int64_t steps_done() const { return steps_done_; }

 private:
  struct State;
  const Model& model_;
  LensStructure structure_;
  TunedLensOptions options_;
  std::vector<std::string> layers_;
  int64_t steps_done_ = 0;
  std::unique_ptr<State> state_;
};

// ---------------------------------------------------------------------------------------------
// Files and evaluation

/// Writes translators as safetensors, float32: `<layer>.weight` = W [d, d] (torch.nn.Linear's
/// (out, in) layout, the residual: the map is h + h Wᵀ + b) and `<layer>.bias` = b [d], in layer
/// order, with string `metadata` (strata adds "format": "strata.tuned_lens",
/// "parameterization": "h + h W^T + b"). load_translators() (logit_lens.h) reads it back.
void save_translators(const std::string& path, const std::map<std::string, Translator>& translators,
                      std::map<std::string, std::string> metadata = {});

/// Checks translators against a structure: every key must be one of its layers, weights
/// [d, d], biases [d]; errors name `caller`, the layer and both shapes.
void check_translators(const std::map<std::string, Translator>& translators,
                       const LensStructure& structure, const std::string& caller);

/// Held-out comparison of the logit lens and a tuned lens.
struct LensComparison {
  std::vector<std::string> layers;  ///< the structure's layers (without "output")
  std::vector<double> logit_kl;     ///< mean KL(p_final ‖ p_layer), logit lens, nats
  std::vector<double> tuned_kl;     ///< the same with the translators
  int64_t sequences = 0;
  int64_t positions = 0;  ///< positions averaged over
};

/// Runs the LogitLens analyzer twice in one pass over `tokens` (int64 [N, T]): plainly and with
/// `translators`, and returns each layer's mean `kl_to_final` (the numbers `strata lens` reports
/// in `aggregate`, with and without --tuned).
LensComparison compare_lenses(const Model& model, const LensStructure& structure,
                              const std::map<std::string, Translator>& translators,
                              const at::Tensor& tokens, int64_t batch_size = 8);

}  // namespace strata
