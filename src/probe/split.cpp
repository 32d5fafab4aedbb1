#include <ATen/ATen.h>
#include <strata/core/error.h>
#include <strata/probe/split.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "rng.h"

namespace strata {

namespace {

std::vector<int64_t> to_vector(const at::Tensor& t, const char* caller, const char* what) {
  STRATA_CHECK(t.defined() && t.dim() == 1, caller, ": ", what, " must be a 1-D tensor, got ",
               t.defined() ? str_cat("shape ", t.sizes()) : std::string("none"));
  STRATA_CHECK(!t.is_floating_point() && !t.is_complex(), caller, ": ", what,
               " must be integer, got ", t.scalar_type());
  at::Tensor c = t.to(at::kLong).contiguous().cpu();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

}  // namespace

at::Tensor split_by_sample(int64_t n, double test_fraction, uint64_t seed) {
  STRATA_CHECK(n >= 2, "split_by_sample: ", n, " samples; a train/test split needs at least 2");
  STRATA_CHECK(test_fraction > 0 && test_fraction < 1, "split_by_sample: test_fraction ",
               test_fraction, " is not in (0, 1)");
  const auto n_test = static_cast<int64_t>(std::llround(test_fraction * static_cast<double>(n)));
  STRATA_CHECK(n_test >= 1 && n_test <= n - 1, "split_by_sample: test_fraction ", test_fraction,
               " of ", n, " samples leaves ", n_test, " test and ", n - n_test,
               " train samples; both sides need at least one");
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  detail::shuffle(order, rng);
  at::Tensor train = at::ones({n}, at::kBool);
  bool* p = train.data_ptr<bool>();
  for (int64_t i = 0; i < n_test; ++i) p[order[i]] = false;
  return train;
}

at::Tensor split_by_group(const at::Tensor& groups, double test_fraction, uint64_t seed) {
  const std::vector<int64_t> g = to_vector(groups, "split_by_group", "groups");
  STRATA_CHECK(test_fraction > 0 && test_fraction < 1, "split_by_group: test_fraction ",
               test_fraction, " is not in (0, 1)");
  std::map<int64_t, int64_t> sizes;
  for (int64_t v : g) ++sizes[v];
  STRATA_CHECK(sizes.size() >= 2, "split_by_group: ", sizes.size(), " distinct group(s) among ",
               g.size(), " samples; a split by group needs at least 2");
  std::vector<int64_t> ids;
  for (const auto& [id, count] : sizes) ids.push_back(id);
  std::mt19937_64 rng(seed);
  detail::shuffle(ids, rng);
  const double want = test_fraction * static_cast<double>(g.size());
  std::map<int64_t, bool> is_test;
  int64_t n_test = 0;
  for (size_t i = 0; i + 1 < ids.size() && static_cast<double>(n_test) < want; ++i) {
    is_test[ids[i]] = true;
    n_test += sizes[ids[i]];
  }
  at::Tensor train = at::ones({static_cast<int64_t>(g.size())}, at::kBool);
  bool* p = train.data_ptr<bool>();
  for (size_t i = 0; i < g.size(); ++i)
    if (is_test.count(g[i])) p[i] = false;
  return train;
}

at::Tensor kfold(int64_t n, const at::Tensor& groups, int64_t k, uint64_t seed) {
  STRATA_CHECK(k >= 2, "kfold: k = ", k, "; cross-validation needs at least 2 folds");
  std::mt19937_64 rng(seed);
  at::Tensor fold = at::empty({n}, at::kLong);
  int64_t* f = fold.data_ptr<int64_t>();
  if (!groups.defined()) {
    STRATA_CHECK(n >= k, "kfold: ", n, " samples for ", k, " folds");
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    detail::shuffle(order, rng);
    for (int64_t i = 0; i < n; ++i) f[order[i]] = i % k;
    return fold;
  }
  const std::vector<int64_t> g = to_vector(groups, "kfold", "groups");
  STRATA_CHECK(static_cast<int64_t>(g.size()) == n, "kfold: ", g.size(), " groups for ", n,
               " samples");
  std::map<int64_t, int64_t> sizes;
  for (int64_t v : g) ++sizes[v];
  STRATA_CHECK(static_cast<int64_t>(sizes.size()) >= k, "kfold: ", sizes.size(),
               " distinct groups for ", k, " folds; each fold needs a group");
  std::vector<int64_t> ids;
  for (const auto& [id, count] : sizes) ids.push_back(id);
  detail::shuffle(ids, rng);
  std::vector<int64_t> load(k, 0);
  std::map<int64_t, int64_t> assigned;
  for (int64_t id : ids) {
    const int64_t j = std::min_element(load.begin(), load.end()) - load.begin();
    assigned[id] = j;
    load[j] += sizes[id];
  }
  for (int64_t i = 0; i < n; ++i) f[i] = assigned[g[i]];
  return fold;
}

}  // namespace strata
