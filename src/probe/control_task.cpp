#include <ATen/ATen.h>
#include <strata/core/error.h>
#include <strata/probe/control_task.h>

#include <map>
#include <random>
#include <vector>

#include "rng.h"

namespace strata {

namespace {

std::vector<int64_t> longs(const at::Tensor& t, const char* caller, const char* what) {
  STRATA_CHECK(t.defined() && t.dim() == 1 && !t.is_floating_point(), caller, ": ", what,
               " must be a 1-D integer tensor");
  at::Tensor c = t.to(at::kLong).contiguous().cpu();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

std::vector<bool> mask(const at::Tensor& t, size_t n, const char* caller) {
  STRATA_CHECK(t.defined() && t.dim() == 1 && static_cast<size_t>(t.size(0)) == n, caller,
               ": the train mask must be 1-D with ", n, " entries");
  at::Tensor c = t.to(at::kBool).contiguous().cpu();
  return std::vector<bool>(c.data_ptr<bool>(), c.data_ptr<bool>() + n);
}

}  // namespace

at::Tensor control_labels(const at::Tensor& types, const at::Tensor& labels, uint64_t seed) {
  const std::vector<int64_t> ty = longs(types, "control_labels", "types");
  const std::vector<int64_t> y = longs(labels, "control_labels", "labels");
  STRATA_CHECK(!y.empty(), "control_labels: no samples");
  STRATA_CHECK(ty.size() == y.size(), "control_labels: ", ty.size(), " types for ", y.size(),
               " labels");
  // Types in order of first appearance, then one draw each from the empirical label
  // distribution (a uniformly chosen sample's label), so the draw does not depend on how
  // type ids are numbered beyond their order.
  std::mt19937_64 rng(seed);
  std::map<int64_t, int64_t> label_of;
  at::Tensor out = at::empty({static_cast<int64_t>(y.size())}, at::kLong);
  int64_t* o = out.data_ptr<int64_t>();
  for (size_t i = 0; i < ty.size(); ++i) {
    auto it = label_of.find(ty[i]);
    if (it == label_of.end())
      it = label_of.emplace(ty[i], y[detail::uniform_below(rng, y.size())]).first;
    o[i] = it->second;
  }
  return out;
}

int64_t majority_label(const at::Tensor& labels, const at::Tensor& train) {
  const std::vector<int64_t> y = longs(labels, "majority_label", "labels");
  const std::vector<bool> tr = mask(train, y.size(), "majority_label");
  std::map<int64_t, int64_t> counts;
  for (size_t i = 0; i < y.size(); ++i)
    if (tr[i]) ++counts[y[i]];
  STRATA_CHECK(!counts.empty(), "majority_label: the training side is empty");
  int64_t best = counts.begin()->first, best_count = -1;
  for (const auto& [label, count] : counts)
    if (count > best_count) best = label, best_count = count;
  return best;
}

double majority_accuracy(const at::Tensor& labels, const at::Tensor& train) {
  const int64_t m = majority_label(labels, train);
  const std::vector<int64_t> y = longs(labels, "majority_accuracy", "labels");
  const std::vector<bool> tr = mask(train, y.size(), "majority_accuracy");
  int64_t hit = 0, n = 0;
  for (size_t i = 0; i < y.size(); ++i)
    if (!tr[i]) ++n, hit += y[i] == m;
  STRATA_CHECK(n > 0, "majority_accuracy: the test side is empty");
  return static_cast<double>(hit) / static_cast<double>(n);
}

}  // namespace strata
