// The layer-wise probe analyzer: while a Runner streams a dataset through the model, it keeps
// one feature vector per sample (or per token) from each chosen hook point, then fits one linear
// probe per layer with strata's probing methodology (held-out split, CV of C on the training
// split, majority baseline, control task and selectivity, seeds; see probe/layer_probe.h) and
// reports the accuracy curve. Only the selected positions are kept: [N, D] per layer, never the
// whole [B, T, D] activations.
//
//   strata::LayerwiseProbeOptions opts;
//   opts.set_layers({"tok_embeddings", "layers.*"})
//       .set_position(strata::ProbePosition::Every);    // labels [B, T]; -1 = skip a token
//   opts.probe.set_control(true).set_num_seeds(3);
//   strata::LayerwiseProbe probe(opts);
//   strata::TensorDataset data(tensors, 32);            // arg0 tokens [N, T], labels [N, T]
//   strata::Runner runner(model);
//   runner.add(probe);
//   strata::Report r = runner.run(data)[0];             // r.data: a probe_layers report
//   strata::probe_curve(r.data).render().save_png("curve.png");
#pragma once

#include <strata/analysis/analyzer.h>
#include <strata/capture/pattern.h>
#include <strata/probe/layer_probe.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace strata {

/// Which token positions of a [B, T, D] activation become features.
enum class ProbePosition {
  Last,    ///< the last position: one sample per sequence, labels [B]
  Mean,    ///< the mean over positions: one sample per sequence, labels [B]
  Every,   ///< every position: B*T samples, labels [B, T] (negative labels: skipped)
  Indices  ///< the given positions (negative: from the end): labels [B, len(indices)]
};

/// Parses "last", "mean", "every" or a comma-separated list of integers ("0,3,-1"); errors
/// name the text. `indices` receives the integers.
ProbePosition parse_probe_position(const std::string& text, std::vector<int64_t>& indices);

/// Options for LayerwiseProbe.
struct LayerwiseProbeOptions {
  /// Hook-point patterns of the layers to probe (capture/pattern.h; outputs only). Required.
  std::vector<std::string> layers;
  ProbePosition position = ProbePosition::Last;
  std::vector<int64_t> indices;  ///< for ProbePosition::Indices
  ProbeOptions probe;            ///< how each layer is probed
  /// The forward argument holding token ids [B, T]; the token at each probed position is its
  /// control-task type (Hewitt & Liang: one random label per word type). -1, or a non-integer
  /// argument: each sample is its own type.
  int64_t type_input = 0;

  LayerwiseProbeOptions& set_layers(std::vector<std::string> v) {
    layers = std::move(v);
    return *this;
  }
  LayerwiseProbeOptions& set_position(ProbePosition v) {
    position = v;
    return *this;
  }
  LayerwiseProbeOptions& set_indices(std::vector<int64_t> v) {
    indices = std::move(v);
    return *this;
  }
  LayerwiseProbeOptions& set_probe(ProbeOptions v) {
    probe = std::move(v);
    return *this;
  }
  LayerwiseProbeOptions& set_type_input(int64_t v) {
    type_input = v;
    return *this;
  }
};

/// The analyzer; see the file comment. With Every and Indices, the samples of one sequence form
/// a group, so the train/test split (and the CV folds) never put tokens of the same sequence on
/// both sides. Errors (strata::Error): no layers, batches without labels, labels whose shape does
/// not fit the position mode, activations that are not [B, T, D] (or [B, D] for Last/Mean), a
/// layer that never appeared, and every probe_layers() error, naming the layer and the count.
class LayerwiseProbe final : public Analyzer {
 public:
  explicit LayerwiseProbe(LayerwiseProbeOptions options);

  std::string_view name() const override { return "layerwise_probe"; }
  bool wants(const HookPoint& point) const override;
  void visit(const Activation& activation) override;
  void end_batch(const BatchContext& batch) override;
  Report finish() override;

  /// The collected features per layer key, float [N, D], in the order layers were first seen
  /// (after finish(): with skipped samples removed). For saving with save_safetensors.
  TensorMap features() const;
  /// The collected labels, groups and types (int64 [N]) as "labels", "groups", "types".
  TensorMap labels() const;

 private:
  at::Tensor select(const std::string& key, const at::Tensor& value) const;

  LayerwiseProbeOptions options_;
  std::vector<Pattern> patterns_;
  std::vector<std::string> order_;
  std::map<std::string, std::vector<at::Tensor>> chunks_;
  std::map<std::string, int64_t> rows_in_batch_;
  std::vector<at::Tensor> labels_, groups_, types_;
  int64_t sequences_ = 0;
  bool finished_ = false;
  std::map<std::string, at::Tensor> final_;
  at::Tensor final_labels_, final_groups_, final_types_;
};

}  // namespace strata
