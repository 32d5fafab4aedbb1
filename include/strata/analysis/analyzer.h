// The visitor interface every analysis implements. A Runner streams batches through an
// instrumented model and, for each hook point, first asks every analyzer whether it wants the
// point (nothing is copied that nobody wants), then hands the activation to those that do:
//
//   begin(ctx)  ->  for each batch: visit(activation)...  end_batch(batch)  ->  finish()
//
//   class MeanNorm final : public strata::Analyzer {
//    public:
//     std::string_view name() const override { return "mean_norm"; }
//     bool wants(const strata::HookPoint& p) const override { return p.kind == strata::HookKind::Output; }
//     void visit(const strata::Activation& a) override { sum_[a.point.key()] += a.value.norm().item<double>(); }
//     strata::Report finish() override { strata::Report r{std::string(name())}; r.data = sum_; return r; }
//    private:
//     std::map<std::string, double> sum_;
//   };
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <strata/capture/hook_point.h>
#include <strata/io/safetensors.h>

#include <string>
#include <string_view>
#include <vector>

namespace strata {

class Model;

/// What an analyzer learns before the first batch.
struct RunContext {
  const Model* model = nullptr;
  c10::Device device = c10::Device(c10::kCPU);
  int64_t num_batches = -1;  ///< -1 when the dataset does not know
};

/// One activation at one hook point for one batch.
struct Activation {
  const HookPoint& point;
  const at::Tensor& value;  ///< after edits and the Runner's KeepOptions
  int64_t batch = 0;
};

/// What an analyzer sees after each batch.
struct BatchContext {
  int64_t index = 0;
  const std::vector<c10::IValue>& inputs;
  const c10::IValue& output;  ///< the model's return value
  const at::Tensor& labels;   ///< undefined when the dataset has none
};

/// The result of an analysis: JSON for numbers, tensors for anything large.
struct Report {
  std::string analyzer;
  nlohmann::json data = nlohmann::json::object();
  TensorMap tensors;
};

/// The analyzer interface; see the file comment.
class Analyzer {
 public:
  virtual ~Analyzer() = default;
  /// A short identifier ("logit_lens").
  virtual std::string_view name() const = 0;
  /// Asked once per hook point before anything is copied; default: every point.
  virtual bool wants(const HookPoint& point) const { return true; }
  /// Called once before the first batch.
  virtual void begin(const RunContext& ctx) {}
  /// Called for each wanted activation.
  virtual void visit(const Activation& activation) = 0;
  /// Called after each batch's forward pass.
  virtual void end_batch(const BatchContext& batch) {}
  /// Called once after the last batch.
  virtual Report finish() = 0;
};

}  // namespace strata
