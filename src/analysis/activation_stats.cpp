#include <strata/analysis/activation_stats.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <strata/core/dtype.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace strata {

ActivationStats::ActivationStats(std::vector<std::string> patterns) {
  for (auto& p : patterns) patterns_.emplace_back(std::move(p));
}

bool ActivationStats::wants(const HookPoint& point) const {
  if (patterns_.empty()) return point.kind == HookKind::Output;
  for (const auto& p : patterns_)
    if (p.selects(point, Which::Output)) return true;
  return false;
}

void ActivationStats::visit(const Activation& a) {
  if (!a.value.is_floating_point() || a.value.numel() == 0) return;
  const std::string key = a.point.key();
  auto [it, inserted] = acc_.try_emplace(key);
  Acc& s = it->second;
  at::Tensor x = a.value.to(at::kDouble);
  if (inserted) {
    s.order = next_order_++;
    s.min = std::numeric_limits<double>::infinity();
    s.max = -std::numeric_limits<double>::infinity();
  }
  s.dtype = dtype_name(a.value.scalar_type());
  s.shape = a.value.sizes().vec();
  s.count += x.numel();
  s.sum += x.sum().item<double>();
  s.sum_sq += (x * x).sum().item<double>();
  s.min = std::min(s.min, x.min().item<double>());
  s.max = std::max(s.max, x.max().item<double>());
  s.zeros += (x == 0).sum().item<int64_t>();
  if (x.dim() >= 1) {
    at::Tensor norms = x.reshape({-1, x.size(-1)}).norm(2, {1});
    s.vectors += norms.numel();
    s.norm_sum += norms.sum().item<double>();
  }
}

Report ActivationStats::finish() {
  std::vector<std::pair<int64_t, std::string>> order;
  for (const auto& [k, s] : acc_) order.emplace_back(s.order, k);
  std::sort(order.begin(), order.end());
  nlohmann::json points = nlohmann::json::array();
  for (const auto& [o, key] : order) {
    const Acc& s = acc_.at(key);
    const double mean = s.sum / s.count;
    const double var = std::max(0.0, s.sum_sq / s.count - mean * mean);
    points.push_back({{"key", key},
                      {"dtype", s.dtype},
                      {"shape", s.shape},
                      {"count", s.count},
                      {"mean", mean},
                      {"std", std::sqrt(var)},
                      {"min", s.min},
                      {"max", s.max},
                      {"zero_fraction", static_cast<double>(s.zeros) / s.count},
                      {"mean_norm", s.vectors ? s.norm_sum / s.vectors : 0.0}});
  }
  Report r;
  r.analyzer = std::string(name());
  r.data["points"] = points;
  return r;
}

std::string ActivationStats::table(const Report& report) {
  std::string out = fmt::format("{:<32} {:<18} {:>10} {:>10} {:>10} {:>10} {:>7} {:>10}\n",
                                "hook point", "shape (last batch)", "mean", "std", "min", "max",
                                "zeros", "mean |v|");
  for (const auto& p : report.data.at("points")) {
    std::string shape = "[";
    for (size_t i = 0; i < p.at("shape").size(); ++i)
      shape += (i ? "," : "") + std::to_string(p.at("shape")[i].get<int64_t>());
    shape += "]";
    out += fmt::format("{:<32} {:<18} {:>10.4f} {:>10.4f} {:>10.4f} {:>10.4f} {:>6.1f}% {:>10.4f}\n",
                       p.at("key").get<std::string>(), shape, p.at("mean").get<double>(),
                       p.at("std").get<double>(), p.at("min").get<double>(),
                       p.at("max").get<double>(), 100.0 * p.at("zero_fraction").get<double>(),
                       p.at("mean_norm").get<double>());
  }
  return out;
}

}  // namespace strata
