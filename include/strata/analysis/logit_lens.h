// The logit lens (nostalgebraist, 2020): decode every layer's hidden state with the model's own
// final norm and unembedding, as if the network stopped there, and see how its prediction forms
// layer by layer. With per-layer affine translators it becomes the tuned lens (Belrose et al.,
// 2023). See docs/analyzers/logit_lens.md for the formulas.
//
//   auto model = strata::Model::load("stories260K.pt");
//   std::vector<c10::IValue> inputs{tokens};                       // int64 [1, T]
//   strata::LensStructure s = strata::find_lens_structure(model, inputs);
//   // s.layers = {"tok_embeddings", "layers.0", ..., "layers.4"}, s.norm = "norm", s.unembed =
//   "output" strata::LogitLens lens(model, s, strata::LogitLensOptions().set_target(417));
//   strata::TensorDataset data(tensors, /*batch_size=*/8);         // arg0: int64 [N, T]
//   strata::Runner runner(model);
//   runner.add(lens);
//   strata::Report r = runner.run(data)[0];   // r.data["top1"], r.data["aggregate"], ...
//
// Each layer is decoded by calling the model's own norm and unembedding submodules on that
// layer's hidden state, so the norm's statistics (the RMS of RMSNorm, the mean and variance of
// LayerNorm) are recomputed for that hidden state, never borrowed from the final layer.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>
#include <strata/analysis/analyzer.h>
#include <strata/capture/hook_point.h>
#include <strata/report/heatmap.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace strata {

class Model;

/// An affine translator for one layer (the tuned lens): h' = h + h Wᵀ + b, i.e. the identity
/// plus a learned residual, so W = 0, b = 0 is the plain logit lens. `weight` is [d, d] in
/// torch.nn.Linear's (out, in) layout, `bias` is [d]; either may be undefined (zero).
struct Translator {
  at::Tensor weight;
  at::Tensor bias;

  /// Applies the translator to h [..., d].
  at::Tensor apply(const at::Tensor& h) const;
};

/// Reads translators from a safetensors file with keys `<layer>.weight` ([d, d]) and
/// `<layer>.bias` ([d]) (the layer key may itself contain dots: "layers.3.weight"); errors name
/// the path and the offending key.
std::map<std::string, Translator> load_translators(const std::string& path);

/// What to decode and how.
struct LogitLensOptions {
  /// Hook-point patterns of the layers to decode (see capture/pattern.h); empty: the embedding
  /// output and every block of the residual stream, found by find_lens_structure().
  std::vector<std::string> layers;
  /// The final norm's module name; empty: found automatically; "none": the model has none.
  std::string norm;
  /// The unembedding's module name; empty: found automatically.
  std::string unembed;
  /// How many tokens to list per layer and position.
  int64_t top_k = 5;
  /// A token id whose probability and rank are reported per layer and position.
  std::optional<int64_t> target;
  /// Per-layer translators (tuned lens), keyed by the layer's hook-point key.
  std::map<std::string, Translator> translators;
  /// Per-position matrices are kept for this many sequences (the first ones seen); the
  /// aggregates cover every sequence, so memory stays bounded on a corpus of any size.
  int64_t keep_sequences = 1;

  LogitLensOptions& set_layers(std::vector<std::string> v) {
    layers = std::move(v);
    return *this;
  }
  LogitLensOptions& set_norm(std::string v) {
    norm = std::move(v);
    return *this;
  }
  LogitLensOptions& set_unembed(std::string v) {
    unembed = std::move(v);
    return *this;
  }
  LogitLensOptions& set_top_k(int64_t v) {
    top_k = v;
    return *this;
  }
  LogitLensOptions& set_target(std::optional<int64_t> v) {
    target = v;
    return *this;
  }
  LogitLensOptions& set_translators(std::map<std::string, Translator> v) {
    translators = std::move(v);
    return *this;
  }
  LogitLensOptions& set_keep_sequences(int64_t v) {
    keep_sequences = v;
    return *this;
  }
};

/// Where a model keeps its residual stream, final norm and unembedding.
struct LensStructure {
  /// Hook-point keys of the layers to decode, in call order ("tok_embeddings", "layers.0", ...;
  /// "blocks.0:0" for a tuple element; "blocks.0:in:0" when the first block's input is not any
  /// submodule's output, e.g. token plus position embeddings added inline).
  std::vector<std::string> layers;
  std::string norm;         ///< module name of the final norm; "" when the model has none
  std::string unembed;      ///< module name of the unembedding
  std::string embedding;    ///< the key of the first block's input ("" when layers were given)
  int64_t hidden_size = 0;  ///< d: the last dimension of the norm's input
  int64_t vocab_size = 0;   ///< V: the last dimension of the logits
  int64_t output_index =
      0;  ///< which tensor of the model's (flattened) return value are the logits
};

/// Finds the final norm, the unembedding and the layers by running one forward pass on
/// `example_inputs` and following tensors back from the model's output: the unembedding is the
/// submodule whose output IS the model's output, the final norm the one whose output is the
/// unembedding's input, the last block the one whose output is the norm's input, and the layers
/// that block's siblings in the same container, in call order, preceded by the first block's
/// input (the embedding output). Names given in `options` are used as they are. Throws
/// strata::Error saying what was not found and how to name it (LogitLensOptions, or the CLI's
/// --norm NAME --unembed NAME --layers GLOB).
LensStructure find_lens_structure(const Model& model,
                                  const std::vector<c10::IValue>& example_inputs,
                                  const LogitLensOptions& options = {});

/// The logit-lens analyzer; see the file comment. Its Report holds:
///   layers            the decoded hook points in order, then "output" (the model's own logits)
///   tokens            the first kept sequence's input ids (when the first input is an int tensor)
///   top1, top1_prob, entropy, kl_to_final, rank_of_final_top1   L × T matrices (row = layer)
///   topk_tokens, topk_probs                                     L × T × k
///   target_prob, target_rank                                    L × T, when a target is set
///   sequences         the same for each kept sequence, when keep_sequences > 1
///   aggregate         per layer means over every position of every sequence
class LogitLens final : public Analyzer {
 public:
  /// `model` must outlive the analyzer. Errors: translators for unknown layers or of the wrong
  /// shape, a target id outside [0, vocab), top_k outside [1, vocab].
  LogitLens(const Model& model, LensStructure structure, LogitLensOptions options = {});
  ~LogitLens() override;

  std::string_view name() const override { return "logit_lens"; }
  bool wants(const HookPoint& point) const override;
  void begin(const RunContext& ctx) override;
  void visit(const Activation& activation) override;
  void end_batch(const BatchContext& batch) override;
  Report finish() override;

  /// The structure this lens decodes.
  const LensStructure& structure() const { return structure_; }

 private:
  struct Sequence;
  struct Aggregate {
    int64_t positions = 0;
    double entropy = 0, kl = 0, top1_prob = 0, agree = 0, rank = 0, in_topk = 0;
    double target_prob = 0, target_rank = 0;
  };
  at::Tensor decode(const std::string& layer, const at::Tensor& hidden) const;
  at::Tensor translate(const std::string& layer, const at::Tensor& hidden) const;
  at::Tensor head(const at::Tensor& hidden) const;  // the norm, then the unembedding
  // Which of the head's tensors a hook point is (-1: none): the norm's input and output, the
  // unembedding's input and output, at their first call.
  int head_role(const HookPoint& point) const;

  const Model& model_;
  LensStructure structure_;
  LogitLensOptions options_;
  std::set<std::string> wanted_;
  std::map<std::string, at::Tensor> hidden_;  // this batch only
  // This batch's data flow through the head, as the hooks saw it (references, so no storage is
  // freed and reused during the pass): when the last layer's tensor went through the norm and
  // the unembedding straight into the model's output, the model's own logits are that layer's
  // decoding and it is not decoded again. The version counters rule out in-place changes in
  // between.
  at::Tensor last_layer_;
  at::Tensor head_[4];
  int64_t last_layer_version_ = -1;
  int64_t head_version_[4] = {-1, -1, -1, -1};
  std::vector<Aggregate> aggregate_;          // one per layer, then the output
  std::vector<Sequence> sequences_;
  int64_t num_sequences_ = 0;
};

/// How a token id is shown in pictures and tables (e.g. Tokenizer::piece).
using TokenText = std::function<std::string(int64_t)>;

/// A token's text made readable in plain ASCII: spaces become '_' (SentencePiece's marker),
/// newline/tab/CR become \n \t \r, byte tokens "<0x0A>" their escape, other bytes outside
/// printable ASCII \xNN.
std::string lens_token_label(const std::string& piece);

/// Which value colours the cells of the lens picture.
enum class LensColor { Probability, Entropy };

/// The familiar lens picture from a LogitLens report: rows = layers (then "output"), columns =
/// positions labelled with the input tokens, each cell showing its top-1 token and coloured by
/// its probability (or the entropy). `token_text` gives a token's raw text (nullptr: ids).
Heatmap logit_lens_heatmap(const Report& report, const TokenText& token_text = nullptr,
                           LensColor color = LensColor::Probability,
                           const std::string& model_name = "");

}  // namespace strata
