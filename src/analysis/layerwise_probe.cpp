#include <ATen/ATen.h>
#include <strata/analysis/layerwise_probe.h>
#include <strata/core/error.h>

#include <algorithm>

namespace strata {

namespace {

const char* position_name(ProbePosition p) {
  switch (p) {
    case ProbePosition::Last:
      return "last";
    case ProbePosition::Mean:
      return "mean";
    case ProbePosition::Every:
      return "every";
    case ProbePosition::Indices:
      return "indices";
  }
  return "?";
}

}  // namespace

ProbePosition parse_probe_position(const std::string& text, std::vector<int64_t>& indices) {
  indices.clear();
  if (text == "last") return ProbePosition::Last;
  if (text == "mean") return ProbePosition::Mean;
  if (text == "every") return ProbePosition::Every;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string part = text.substr(start, comma - start);
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    STRATA_CHECK(!part.empty() && used == part.size(), "position '", text,
                 "' is not last, mean, every or a comma-separated list of token indices "
                 "(e.g. 0,5,-1)");
    indices.push_back(v);
    start = comma + 1;
  }
  return ProbePosition::Indices;
}

LayerwiseProbe::LayerwiseProbe(LayerwiseProbeOptions options) : options_(std::move(options)) {
  STRATA_CHECK(!options_.layers.empty(),
               "LayerwiseProbe: no layers given; name the hook points to probe (e.g. 'layers.*')");
  for (const auto& l : options_.layers) patterns_.emplace_back(l);
  STRATA_CHECK(options_.position != ProbePosition::Indices || !options_.indices.empty(),
               "LayerwiseProbe: position 'indices' needs at least one token index");
}

bool LayerwiseProbe::wants(const HookPoint& point) const {
  if (point.kind != HookKind::Output) return false;
  for (const auto& p : patterns_)
    if (p.selects(point, Which::Output)) return true;
  return false;
}

at::Tensor LayerwiseProbe::select(const std::string& key, const at::Tensor& v) const {
  const bool pooled =
      options_.position == ProbePosition::Last || options_.position == ProbePosition::Mean;
  STRATA_CHECK(v.is_floating_point() && (v.dim() == 3 || (pooled && v.dim() == 2)),
               "LayerwiseProbe: hook point '", key, "' gives a ", v.scalar_type(),
               " tensor of shape ", v.sizes(), "; position '", position_name(options_.position),
               "' needs [B, T, D]", pooled ? " (or [B, D])" : "");
  if (v.dim() == 2) return v;
  const int64_t B = v.size(0), T = v.size(1), D = v.size(2);
  switch (options_.position) {
    case ProbePosition::Last:
      return v.select(1, T - 1);
    case ProbePosition::Mean:
      return v.mean(1);
    case ProbePosition::Every:
      return v.reshape({B * T, D});
    case ProbePosition::Indices: {
      std::vector<int64_t> idx;
      for (int64_t i : options_.indices) {
        const int64_t j = i < 0 ? i + T : i;
        STRATA_CHECK(j >= 0 && j < T, "LayerwiseProbe: token index ", i, " is outside the ", T,
                     " positions of hook point '", key, "'");
        idx.push_back(j);
      }
      return v.index_select(1, at::tensor(idx, at::kLong))
          .reshape({B * static_cast<int64_t>(idx.size()), D});
    }
  }
  return v;
}

void LayerwiseProbe::visit(const Activation& a) {
  STRATA_CHECK(!finished_, "LayerwiseProbe: visit() after finish()");
  const std::string key = a.point.key();
  at::Tensor f = select(key, a.value).to(at::kCPU).to(at::kFloat).contiguous().clone();
  auto [it, inserted] = chunks_.try_emplace(key);
  if (inserted) order_.push_back(key);
  rows_in_batch_[key] += f.size(0);
  it->second.push_back(std::move(f));
}

void LayerwiseProbe::end_batch(const BatchContext& b) {
  STRATA_CHECK(b.labels.defined(), "LayerwiseProbe: batch ", b.index,
               " has no labels; the dataset needs a 'labels' tensor");
  STRATA_CHECK(!b.labels.is_floating_point(), "LayerwiseProbe: batch ", b.index, ": labels are ",
               b.labels.scalar_type(), "; expected integer class ids (int64)");
  at::Tensor y = b.labels.to(at::kCPU).to(at::kLong);
  const int64_t B = y.size(0);
  int64_t per_seq = 1;
  switch (options_.position) {
    case ProbePosition::Last:
    case ProbePosition::Mean:
      if (y.dim() == 2 && y.size(1) == 1) y = y.squeeze(1);
      STRATA_CHECK(y.dim() == 1, "LayerwiseProbe: position '", position_name(options_.position),
                   "' needs one label per sequence, labels [B]; batch ", b.index, " has labels ",
                   y.sizes());
      break;
    case ProbePosition::Every:
    case ProbePosition::Indices:
      STRATA_CHECK(y.dim() == 2, "LayerwiseProbe: position '", position_name(options_.position),
                   "' needs labels [B, ",
                   options_.position == ProbePosition::Every ? "T" : "len(indices)", "]; batch ",
                   b.index, " has labels ", y.sizes());
      per_seq = y.size(1);
      STRATA_CHECK(options_.position != ProbePosition::Indices ||
                       per_seq == static_cast<int64_t>(options_.indices.size()),
                   "LayerwiseProbe: ", options_.indices.size(), " token indices but batch ",
                   b.index, " has ", per_seq, " labels per sequence");
      break;
  }
  for (auto& [key, rows] : rows_in_batch_) {
    STRATA_CHECK(rows == B * per_seq, "LayerwiseProbe: hook point '", key, "' gave ", rows,
                 " feature rows in batch ", b.index, " but the labels are ", y.sizes(), " (",
                 B * per_seq, " samples)");
    rows = 0;
  }
  labels_.push_back(y.reshape({-1}));
  groups_.push_back(
      (at::arange(B, at::kLong) + sequences_).unsqueeze(1).expand({B, per_seq}).reshape({-1}));
  sequences_ += B;
  // Control-task types: the token at each probed position.
  at::Tensor types;
  const auto ti = options_.type_input;
  if (ti >= 0 && ti < static_cast<int64_t>(b.inputs.size()) && b.inputs[ti].isTensor() &&
      options_.position != ProbePosition::Mean) {
    const at::Tensor tok = b.inputs[ti].toTensor().to(at::kCPU);
    if (!tok.is_floating_point() && tok.dim() == 2 && tok.size(0) == B) {
      const at::Tensor t = tok.to(at::kLong);
      const int64_t T = t.size(1);
      if (options_.position == ProbePosition::Last) {
        types = t.select(1, T - 1).contiguous();
      } else if (options_.position == ProbePosition::Every && T == per_seq) {
        types = t.reshape({-1});
      } else if (options_.position == ProbePosition::Indices) {
        std::vector<int64_t> idx;
        for (int64_t i : options_.indices) idx.push_back(i < 0 ? i + T : i);
        types = t.index_select(1, at::tensor(idx, at::kLong)).reshape({-1});
      }
    }
  }
  types_.push_back(types);
}

Report LayerwiseProbe::finish() {
  STRATA_CHECK(!labels_.empty(), "LayerwiseProbe: no batches were run");
  STRATA_CHECK(!order_.empty(), "LayerwiseProbe: no hook point matched the layers (",
               options_.layers.front(), options_.layers.size() > 1 ? ", ..." : "",
               "); see `strata inspect` for the model's module names");
  at::Tensor y = at::cat(labels_);
  const at::Tensor keep = y.ge(0).nonzero().squeeze(1);
  const int64_t skipped = y.numel() - keep.numel();
  final_labels_ = y.index_select(0, keep);
  final_groups_ = at::cat(groups_).index_select(0, keep);
  const bool have_types =
      std::all_of(types_.begin(), types_.end(), [](const at::Tensor& t) { return t.defined(); });
  if (have_types) final_types_ = at::cat(types_).index_select(0, keep);
  std::vector<std::pair<std::string, at::Tensor>> layers;
  for (const auto& key : order_) {
    at::Tensor f = at::cat(chunks_[key]);
    STRATA_CHECK(f.size(0) == y.size(0), "LayerwiseProbe: hook point '", key, "' has ", f.size(0),
                 " feature rows for ", y.size(0), " labels (it did not run in every batch)");
    final_[key] = f.index_select(0, keep);
    chunks_[key].clear();
    layers.emplace_back(key, final_[key]);
  }
  finished_ = true;
  ProbeData data;
  data.labels = final_labels_;
  const bool per_token =
      options_.position == ProbePosition::Every || options_.position == ProbePosition::Indices;
  if (per_token) data.groups = final_groups_;
  if (have_types) data.types = final_types_;
  Report r;
  r.analyzer = std::string(name());
  r.data = probe_layers(layers, data, options_.probe);
  r.data["analyzer"] = std::string(name());
  r.data["position"] = position_name(options_.position);
  if (options_.position == ProbePosition::Indices) r.data["indices"] = options_.indices;
  r.data["num_sequences"] = sequences_;
  r.data["skipped_samples"] = skipped;
  if (options_.probe.control) r.data["control_types"] = have_types ? "tokens" : "samples";
  return r;
}

TensorMap LayerwiseProbe::features() const {
  TensorMap m;
  for (const auto& key : order_) {
    auto it = final_.find(key);
    m.insert(key, it != final_.end() ? it->second : at::cat(chunks_.at(key)));
  }
  return m;
}

TensorMap LayerwiseProbe::labels() const {
  TensorMap m;
  if (finished_) {
    m.insert("labels", final_labels_);
    m.insert("groups", final_groups_);
    if (final_types_.defined()) m.insert("types", final_types_);
  } else if (!labels_.empty()) {
    m.insert("labels", at::cat(labels_));
    m.insert("groups", at::cat(groups_));
  }
  return m;
}

}  // namespace strata
