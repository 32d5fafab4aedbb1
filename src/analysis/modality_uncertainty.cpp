#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <LBFGS.h>
#include <fmt/format.h>
#include <strata/analysis/logit_lens.h>
#include <strata/analysis/modality_uncertainty.h>
#include <strata/capture/hook_point.h>
#include <strata/capture/hook_session.h>
#include <strata/core/dtype.h>
#include <strata/core/error.h>
#include <strata/core/torch_error.h>
#include <strata/model/model.h>
#include <torch/csrc/jit/api/module.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <set>

namespace strata {

const char* follows_name(Follows f) {
  switch (f) {
    case Follows::Text:
      return "text";
    case Follows::Image:
      return "image";
    case Follows::Both:
      return "both";
    case Follows::Other:
      break;
  }
  return "other";
}

// ---------------------------------------------------------------------------------------------
// Statistics

namespace {

std::string shape_of(const at::Tensor& t) {
  return t.defined() ? str_cat(dtype_name(t.scalar_type()), t.sizes()) : "undefined";
}

// Standard normal quantile by bisection on the CDF (only called a handful of times).
double normal_quantile(double p) {
  double lo = -40, hi = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return 0.5 * (lo + hi);
}

// Percentile with linear interpolation between order statistics (R's type 7, numpy's default).
double quantile_sorted(const std::vector<double>& s, double p) {
  const double h = (static_cast<double>(s.size()) - 1) * p;
  const auto i = static_cast<size_t>(std::floor(h));
  if (i + 1 >= s.size()) return s.back();
  return s[i] + (h - static_cast<double>(i)) * (s[i + 1] - s[i]);
}

// A row's answer (argmax, first on ties) and entropy, over the candidates when given.
struct RowStat {
  int64_t answer = 0;
  double entropy = 0;
};

RowStat row_stat(const double* x, int64_t V, const std::vector<int64_t>& cand) {
  const bool all = cand.empty();
  const int64_t K = all ? V : static_cast<int64_t>(cand.size());
  auto at_k = [&](int64_t k) { return x[all ? k : cand[k]]; };
  int64_t best = 0;
  for (int64_t k = 1; k < K; ++k)
    if (at_k(k) > at_k(best)) best = k;
  const double m = at_k(best);
  double z = 0, s = 0;  // z = Σ e^(x−m), s = Σ e^(x−m) (x−m)
  for (int64_t k = 0; k < K; ++k) {
    const double d = at_k(k) - m;
    if (d == -std::numeric_limits<double>::infinity()) continue;
    const double e = std::exp(d);
    z += e;
    s += e * d;
  }
  // H = −Σ p log p with p = e^d / z: H = log z − s / z.
  RowStat r;
  r.answer = all ? best : cand[best];
  r.entropy = std::max(0.0, std::log(z) - s / z);
  return r;
}

at::Tensor as_double(const at::Tensor& t) {
  return t.detach().to(at::kCPU, at::kDouble).contiguous();
}

// Rejects NaN, +inf and rows that are −inf everywhere (over the candidates when given).
void check_finite(const at::Tensor& x, const char* what, const std::vector<int64_t>& cand) {
  const int64_t V = x.size(-1);
  const int64_t rows = x.numel() / V;
  const double* p = x.data_ptr<double>();
  for (int64_t r = 0; r < rows; ++r) {
    const double* row = p + r * V;
    bool any = false;
    for (int64_t v = 0; v < V; ++v) {
      const double val = row[v];
      const std::string where = x.dim() == 3
                                    ? str_cat("item ", r / x.size(1), ", layer ", r % x.size(1))
                                    : str_cat("item ", r);
      STRATA_CHECK(!std::isnan(val) && val != std::numeric_limits<double>::infinity(),
                   "ModalityUncertainty: the ", what, " logits of ", where, " hold ", val,
                   " at token ", v, "; logits must be finite (−inf marks an impossible token)");
    }
    if (cand.empty()) {
      for (int64_t v = 0; v < V && !any; ++v)
        any = row[v] > -std::numeric_limits<double>::infinity();
    } else {
      for (int64_t c : cand) any = any || row[c] > -std::numeric_limits<double>::infinity();
    }
    STRATA_CHECK(any, "ModalityUncertainty: the ", what, " logits of item ",
                 x.dim() == 3 ? r / x.size(1) : r, " are −inf for every token",
                 cand.empty() ? "" : " of the candidate set");
  }
}

}  // namespace

std::vector<double> answer_entropy(const at::Tensor& logits,
                                   const std::vector<int64_t>& candidates) {
  STRATA_CHECK(logits.defined() && logits.dim() == 2 && logits.is_floating_point(),
               "answer_entropy: expected floating-point logits [N, V], got ", shape_of(logits));
  const at::Tensor x = as_double(logits);
  const int64_t N = x.size(0), V = x.size(1);
  for (int64_t c : candidates)
    STRATA_CHECK(c >= 0 && c < V, "answer_entropy: candidate token id ", c,
                 " is outside the vocabulary [0, ", V, ")");
  std::vector<double> h(N);
  for (int64_t n = 0; n < N; ++n)
    h[n] = row_stat(x.data_ptr<double>() + n * V, V, candidates).entropy;
  return h;
}

double relative_uncertainty(double h_text, double h_image) {
  const double s = h_text + h_image;
  return s > 0 ? 2.0 * (h_text - h_image) / s : 0.0;
}

std::pair<double, double> wilson_interval(int64_t k, int64_t n, double confidence) {
  STRATA_CHECK(n > 0 && k >= 0 && k <= n, "wilson_interval: ", k, " successes in ", n, " trials");
  STRATA_CHECK(confidence > 0 && confidence < 1, "wilson_interval: confidence ", confidence,
               " is outside (0, 1)");
  const double z = normal_quantile(0.5 + confidence / 2);
  const double nn = static_cast<double>(n), p = static_cast<double>(k) / nn;
  const double denom = 1 + z * z / nn;
  const double center = (p + z * z / (2 * nn)) / denom;
  const double half = z * std::sqrt(p * (1 - p) / nn + z * z / (4 * nn * nn)) / denom;
  return {std::max(0.0, center - half), std::min(1.0, center + half)};
}

std::optional<double> LogisticFit::crossing(double lo, double hi) const {
  if (!(slope != 0) || !std::isfinite(slope) || !std::isfinite(intercept)) return std::nullopt;
  const double x = -intercept / slope;
  if (!(x >= lo && x <= hi)) return std::nullopt;
  return x;
}

namespace {

// Mean negative log-likelihood of the logistic model (+ the slope's ridge term) and its
// gradient. The mean (not the sum) keeps the first LBFGS steps of the same size whatever n. The
// per-item terms are evaluated with ATen's vectorized exp/log1p over the (gathered) items: the
// transcendentals dominate the bootstrap's cost.
class LogisticLoss {
 public:
  static constexpr double kRidge = 1e-6;

  LogisticLoss(const std::vector<double>& x, const std::vector<int>& y, const int32_t* idx,
               int64_t n)
      : n_(n) {
    xs_ = at::empty({n}, at::kDouble);
    ys_ = at::empty({n}, at::kDouble);
    double* px = xs_.data_ptr<double>();
    double* py = ys_.data_ptr<double>();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t j = idx ? idx[i] : i;
      px[i] = x[j];
      py[i] = y[j];
    }
  }

  double operator()(const Eigen::VectorXd& w, Eigen::VectorXd& grad) {
    // log(1 + e^z) − y z and σ(z), stably, with one exp: e = e^(−|z|).
    const at::Tensor z = xs_ * w[1] + w[0];
    const at::Tensor e = at::exp(-at::abs(z));
    const at::Tensor softplus = at::clamp_min(z, 0.0) + at::log1p(e);
    const at::Tensor p = at::where(z > 0, 1.0 / (1.0 + e), e / (1.0 + e));
    const at::Tensor r = p - ys_;
    const double inv = 1.0 / static_cast<double>(n_);
    const double f = (softplus - ys_ * z).sum().item<double>() * inv + kRidge * w[1] * w[1];
    grad[0] = r.sum().item<double>() * inv;
    grad[1] = at::dot(r, xs_).item<double>() * inv + 2 * kRidge * w[1];
    // A step so long that the loss overflows: tell the line search to step back.
    if (!std::isfinite(f)) return std::numeric_limits<double>::infinity();
    return f;
  }

 private:
  at::Tensor xs_, ys_;
  int64_t n_;
};

// `start`: the point LBFGS starts from (the problem is convex, so only the number of iterations
// depends on it; bootstrap refits start from the full data's fit).
LogisticFit fit_logistic_impl(const std::vector<double>& x, const std::vector<int>& y,
                              const int32_t* idx, int64_t n, double start_a = 0,
                              double start_b = 0) {
  LogisticLoss loss(x, y, idx, n);
  LBFGSpp::LBFGSParam<double> param;
  param.epsilon = 1e-10;
  param.epsilon_rel = 1e-10;
  param.max_iterations = 500;
  LBFGSpp::LBFGSSolver<double> solver(param);
  Eigen::VectorXd w(2);
  w << start_a, start_b;
  double fx = 0;
  LogisticFit fit;
  try {
    solver.minimize(loss, w, fx);
    fit.converged = true;
  } catch (const std::exception&) {
    // LBFGS++ throws when the line search cannot improve any more (at the optimum to rounding,
    // or on separated data where the slope grows until the ridge term stops it); w holds the
    // last accepted point. Converged means the gradient is small relative to the data.
    Eigen::VectorXd g(2);
    fx = loss(w, g);
    fit.converged = g.norm() <= 1e-7;
  }
  Eigen::VectorXd g(2);
  fit.intercept = w[0];
  fit.slope = w[1];
  fit.log_likelihood = -(loss(w, g) - LogisticLoss::kRidge * w[1] * w[1]) * static_cast<double>(n);
  return fit;
}

}  // namespace

LogisticFit fit_logistic(const std::vector<double>& x, const std::vector<int>& y) {
  STRATA_CHECK(x.size() == y.size(), "fit_logistic: ", x.size(), " x values for ", y.size(),
               " labels");
  STRATA_CHECK(x.size() >= 2, "fit_logistic: ", x.size(), " points; need at least 2");
  for (size_t i = 0; i < y.size(); ++i)
    STRATA_CHECK(y[i] == 0 || y[i] == 1, "fit_logistic: label ", i, " is ", y[i],
                 ", expected 0 or 1");
  return fit_logistic_impl(x, y, nullptr, static_cast<int64_t>(x.size()));
}

// ---------------------------------------------------------------------------------------------
// The analysis

ModalityUncertainty::ModalityUncertainty(ModalityOptions options) : options_(std::move(options)) {
  const ModalityOptions& o = options_;
  STRATA_CHECK(o.bins >= 1, "ModalityUncertainty: bins is ", o.bins, "; need at least 1");
  STRATA_CHECK(o.bootstrap >= 0, "ModalityUncertainty: bootstrap is ", o.bootstrap,
               "; give 0 (no interval) or more resamples");
  STRATA_CHECK(o.confidence > 0 && o.confidence < 1, "ModalityUncertainty: confidence ",
               o.confidence, " is outside (0, 1)");
  STRATA_CHECK(o.window > 0, "ModalityUncertainty: window ", o.window, " must be positive");
  std::set<int64_t> seen;
  for (int64_t c : o.candidates) {
    STRATA_CHECK(c >= 0, "ModalityUncertainty: candidate token id ", c, " is negative");
    STRATA_CHECK(seen.insert(c).second, "ModalityUncertainty: candidate token id ", c,
                 " is given twice");
  }
  STRATA_CHECK(o.candidates.empty() || o.candidates.size() >= 2,
               "ModalityUncertainty: one candidate token; an answer needs at least 2 to choose "
               "from (or none: the full vocabulary)");
}

ModalityResult ModalityUncertainty::analyze(const at::Tensor& text_in, const at::Tensor& image_in,
                                            const at::Tensor& joint_in,
                                            const at::Tensor& layers_in) const {
  const ModalityOptions& o = options_;
  const std::pair<const char*, const at::Tensor*> runs[] = {
      {"text-only", &text_in}, {"image-only", &image_in}, {"joint", &joint_in}};
  for (const auto& [what, t] : runs) {
    STRATA_CHECK(t->defined() && t->dim() == 2 && t->is_floating_point(),
                 "ModalityUncertainty: the ", what, " logits are ", shape_of(*t),
                 "; expected floating-point [N, V] (one row per item, the answer token's logits)");
  }
  const int64_t N = text_in.size(0), V = text_in.size(1);
  for (const auto& [what, t] : runs) {
    STRATA_CHECK(t->size(0) == N, "ModalityUncertainty: the text-only logits have ", N,
                 " items but the ", what, " logits ", t->size(0), " (", shape_of(text_in), " vs ",
                 shape_of(*t), "); the three runs must hold the same items in the same order");
    STRATA_CHECK(t->size(1) == V, "ModalityUncertainty: the text-only logits have a vocabulary of ",
                 V, " but the ", what, " logits ", t->size(1), " (", shape_of(text_in), " vs ",
                 shape_of(*t), ")");
  }
  STRATA_CHECK(N > 0, "ModalityUncertainty: no items (the logits have 0 rows)");
  STRATA_CHECK(V >= 2, "ModalityUncertainty: a vocabulary of ", V,
               " token(s); an answer needs at least 2 to choose from");
  for (int64_t c : o.candidates)
    STRATA_CHECK(c < V, "ModalityUncertainty: candidate token id ", c,
                 " is outside the vocabulary [0, ", V, ")");
  const bool with_layers = layers_in.defined();
  if (with_layers) {
    STRATA_CHECK(layers_in.dim() == 3 && layers_in.is_floating_point(),
                 "ModalityUncertainty: the layer logits are ", shape_of(layers_in),
                 "; expected floating-point [N, L, V] (the joint run's lens logits)");
    STRATA_CHECK(layers_in.size(0) == N, "ModalityUncertainty: the layer logits have ",
                 layers_in.size(0), " items but the answer logits ", N, " (", shape_of(layers_in),
                 " vs ", shape_of(text_in), ")");
    STRATA_CHECK(layers_in.size(2) == V,
                 "ModalityUncertainty: the layer logits have a vocabulary of ", layers_in.size(2),
                 " but the answer logits ", V, " (", shape_of(layers_in), " vs ", shape_of(text_in),
                 ")");
    STRATA_CHECK(layers_in.size(1) >= 1, "ModalityUncertainty: the layer logits have no layers (",
                 shape_of(layers_in), ")");
  }
  const at::Tensor T = as_double(text_in), I = as_double(image_in), J = as_double(joint_in);
  check_finite(T, "text-only", o.candidates);
  check_finite(I, "image-only", o.candidates);
  check_finite(J, "joint", o.candidates);
  at::Tensor Lg;
  if (with_layers) {
    Lg = as_double(layers_in);
    check_finite(Lg, "layer", o.candidates);
  }

  ModalityResult r;
  r.options = o;
  r.vocab_size = V;
  r.items.resize(N);
  for (int64_t n = 0; n < N; ++n) {
    ModalityItem& it = r.items[n];
    const RowStat t = row_stat(T.data_ptr<double>() + n * V, V, o.candidates);
    const RowStat v = row_stat(I.data_ptr<double>() + n * V, V, o.candidates);
    const RowStat j = row_stat(J.data_ptr<double>() + n * V, V, o.candidates);
    it.h_text = t.entropy;
    it.h_image = v.entropy;
    it.delta_h_rel = relative_uncertainty(t.entropy, v.entropy);
    it.text_answer = t.answer;
    it.image_answer = v.answer;
    it.joint_answer = j.answer;
    if (t.answer == v.answer) {
      it.follows = Follows::Both;
      ++r.n_both;
    } else if (j.answer == t.answer) {
      it.follows = Follows::Text;
      ++r.n_text;
    } else if (j.answer == v.answer) {
      it.follows = Follows::Image;
      ++r.n_image;
    } else {
      it.follows = Follows::Other;
      ++r.n_other;
    }
  }
  const int64_t used = r.n_text + r.n_image;
  STRATA_CHECK(used > 0, "ModalityUncertainty: none of the ", N, " items follows one modality: in ",
               r.n_other, " the joint answer is neither unimodal answer, in ", r.n_both,
               " the text-only and image-only answers are the same token (no conflict)");

  // The curve's items.
  std::vector<double> x;
  std::vector<int> y;
  x.reserve(used);
  y.reserve(used);
  for (const auto& it : r.items) {
    if (it.follows != Follows::Text && it.follows != Follows::Image) continue;
    x.push_back(it.delta_h_rel);
    y.push_back(it.follows == Follows::Text ? 1 : 0);
  }
  r.x_min = *std::min_element(x.begin(), x.end());
  r.x_max = *std::max_element(x.begin(), x.end());

  // Bins over [−2, 2].
  {
    const double width = 4.0 / static_cast<double>(o.bins);
    std::vector<CurveBin> bins(o.bins);
    std::vector<double> sum(o.bins, 0.0);
    for (int64_t b = 0; b < o.bins; ++b) {
      bins[b].lo = -2.0 + width * static_cast<double>(b);
      bins[b].hi = b + 1 == o.bins ? 2.0 : -2.0 + width * static_cast<double>(b + 1);
      bins[b].center = 0.5 * (bins[b].lo + bins[b].hi);
    }
    for (size_t i = 0; i < x.size(); ++i) {
      const auto b = std::clamp<int64_t>(static_cast<int64_t>(std::floor((x[i] + 2.0) / width)), 0,
                                         o.bins - 1);
      ++bins[b].n;
      bins[b].n_text += y[i];
      sum[b] += x[i];
    }
    for (int64_t b = 0; b < o.bins; ++b) {
      CurveBin& c = bins[b];
      if (c.n == 0) continue;
      c.mean_delta_h_rel = sum[b] / static_cast<double>(c.n);
      c.p_text = static_cast<double>(c.n_text) / static_cast<double>(c.n);
      std::tie(c.ci_lo, c.ci_hi) = wilson_interval(c.n_text, c.n, o.confidence);
      r.curve.push_back(c);
    }
  }

  // The fit and the balance point.
  const int64_t n_follow_text = r.n_text;
  if (used < 2 || n_follow_text == 0 || n_follow_text == used) {
    r.note = used < 2 ? str_cat("only ", used, " conflicting item; no curve to fit")
                      : str_cat("every one of the ", used, " conflicting items follows ",
                                n_follow_text == 0 ? "the image" : "the text",
                                ": the following curve never crosses 0.5, so there is no "
                                "balance point");
  } else {
    r.fit = fit_logistic_impl(x, y, nullptr, used);
    r.balance_point = r.fit->crossing(r.x_min, r.x_max);
    if (!r.balance_point) {
      const double p_mid =
          1.0 / (1.0 + std::exp(-(r.fit->intercept + r.fit->slope * 0.5 * (r.x_min + r.x_max))));
      r.note = fmt::format(
          "the fitted curve does not cross 0.5 inside the observed ΔH_rel range [{:.3f}, {:.3f}] "
          "(it stays {} 0.5: the model follows {} throughout); no balance point",
          r.x_min, r.x_max, p_mid > 0.5 ? "above" : "below", p_mid > 0.5 ? "text" : "the image");
    }
    // The fit may cross 0.5 where the data never do (a misfit at the edge of the range): the
    // binned curve must reach 0.5 from both sides too, or there is no balance point.
    bool above = false, below = false;
    for (const auto& c : r.curve) {
      above = above || c.p_text >= 0.5;
      below = below || c.p_text <= 0.5;
    }
    if (r.balance_point && !(above && below)) {
      r.note = fmt::format(
          "every bin of the curve has p_text {} 0.5 (the model follows {} throughout), although "
          "the logistic fit crosses 0.5 at {:.3f}; no balance point",
          above ? "above" : "below", above ? "text" : "the image", *r.balance_point);
      r.balance_point.reset();
    }
  }
  if (r.balance_point && o.bootstrap > 0) {
    std::mt19937_64 rng(o.seed);
    std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(used - 1));
    std::vector<int32_t> idx(static_cast<size_t>(o.bootstrap * used));
    for (auto& i : idx) i = pick(rng);
    std::vector<double> cross(o.bootstrap, std::numeric_limits<double>::quiet_NaN());
    at::parallel_for(0, o.bootstrap, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const LogisticFit f =
            fit_logistic_impl(x, y, idx.data() + b * used, used, r.fit->intercept, r.fit->slope);
        if (auto c = f.crossing(r.x_min, r.x_max)) cross[b] = *c;
      }
    });
    std::vector<double> ok;
    for (double c : cross)
      if (!std::isnan(c)) ok.push_back(c);
    r.bootstrap_crossing = static_cast<int64_t>(ok.size());
    if (ok.size() >= 2) {
      std::sort(ok.begin(), ok.end());
      const double a = (1 - o.confidence) / 2;
      r.balance_point_ci = std::make_pair(quantile_sorted(ok, a), quantile_sorted(ok, 1 - a));
    }
    if (static_cast<double>(ok.size()) < o.confidence * static_cast<double>(o.bootstrap)) {
      r.note = fmt::format(
          "only {} of {} bootstrap resamples cross 0.5 inside the observed range; the interval "
          "is taken over those and understates the uncertainty",
          ok.size(), o.bootstrap);
    }
  }

  // Layer-wise oscillation.
  if (with_layers) {
    const int64_t L = Lg.size(1);
    Oscillation osc;
    osc.layers = L;
    std::vector<double> d_all(L, 0), d_amb(L, 0), d_clr(L, 0), d_t(L, 0), d_v(L, 0);
    int64_t n_all = 0, n_t = 0, n_v = 0;
    double s_all = 0, s_amb = 0, s_clr = 0;
    const double* base = Lg.data_ptr<double>();
    for (int64_t n = 0; n < N; ++n) {
      ModalityItem& it = r.items[n];
      if (it.follows != Follows::Text && it.follows != Follows::Image) continue;
      int64_t switches = 0;
      int state = 0;  // 1: text answer on top, 2: image answer, 0: none yet
      it.layer_logit_diff.resize(L);
      for (int64_t l = 0; l < L; ++l) {
        const double* row = base + (n * L + l) * V;
        const int64_t top = row_stat(row, V, o.candidates).answer;
        const int s = top == it.text_answer ? 1 : top == it.image_answer ? 2 : 0;
        if (s != 0) {
          if (state != 0 && s != state) ++switches;
          state = s;
        }
        it.layer_logit_diff[l] = row[it.text_answer] - row[it.image_answer];
      }
      it.switches = switches;
      ++n_all;
      s_all += static_cast<double>(switches);
      for (int64_t l = 0; l < L; ++l) d_all[l] += it.layer_logit_diff[l];
      auto& grp = it.follows == Follows::Text ? d_t : d_v;
      (it.follows == Follows::Text ? n_t : n_v)++;
      for (int64_t l = 0; l < L; ++l) grp[l] += it.layer_logit_diff[l];
      if (r.balance_point) {
        const bool amb = std::abs(it.delta_h_rel - *r.balance_point) <= o.window;
        (amb ? osc.n_ambiguous : osc.n_clear)++;
        (amb ? s_amb : s_clr) += static_cast<double>(switches);
        auto& d = amb ? d_amb : d_clr;
        for (int64_t l = 0; l < L; ++l) d[l] += it.layer_logit_diff[l];
      }
    }
    auto mean = [](std::vector<double> v, int64_t n) {
      if (n == 0) return std::vector<double>{};
      for (auto& e : v) e /= static_cast<double>(n);
      return v;
    };
    if (n_all > 0) osc.all = s_all / static_cast<double>(n_all);
    if (osc.n_ambiguous > 0) osc.ambiguous = s_amb / static_cast<double>(osc.n_ambiguous);
    if (osc.n_clear > 0) osc.clear = s_clr / static_cast<double>(osc.n_clear);
    osc.diff_all = mean(d_all, n_all);
    osc.diff_ambiguous = mean(d_amb, osc.n_ambiguous);
    osc.diff_clear = mean(d_clr, osc.n_clear);
    osc.diff_follows_text = mean(d_t, n_t);
    osc.diff_follows_image = mean(d_v, n_v);
    r.oscillation = std::move(osc);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Report

namespace {

nlohmann::json opt_json(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

}  // namespace

Report modality_report(const ModalityResult& r) {
  Report rep;
  rep.analyzer = "modality_uncertainty";
  nlohmann::json& d = rep.data;
  const ModalityOptions& o = r.options;
  d["balance_point"] = opt_json(r.balance_point);
  d["balance_point_ci"] =
      r.balance_point_ci
          ? nlohmann::json::array({r.balance_point_ci->first, r.balance_point_ci->second})
          : nlohmann::json(nullptr);
  d["note"] = r.note;
  d["confidence"] = o.confidence;
  d["bootstrap"] = {{"resamples", o.bootstrap},
                    {"seed", o.seed},
                    {"method", "percentile, resampling items with replacement"},
                    {"crossing", r.bootstrap_crossing}};
  if (r.fit) {
    d["fit"] = {{"kind", "logistic"},
                {"formula", "p_text = 1 / (1 + exp(-(intercept + slope * delta_h_rel)))"},
                {"intercept", r.fit->intercept},
                {"slope", r.fit->slope},
                {"log_likelihood", r.fit->log_likelihood},
                {"converged", r.fit->converged}};
    d["fit_decreasing"] = r.fit->slope < 0;
  } else {
    d["fit"] = nullptr;
    d["fit_decreasing"] = nullptr;
  }
  d["observed_range"] = {r.x_min, r.x_max};
  d["curve_interval"] = "wilson";
  nlohmann::json curve = nlohmann::json::array();
  for (const auto& c : r.curve) {
    curve.push_back({{"delta_h_rel", c.center},
                     {"lo", c.lo},
                     {"hi", c.hi},
                     {"mean_delta_h_rel", c.mean_delta_h_rel},
                     {"p_text", c.p_text},
                     {"n", c.n},
                     {"n_text", c.n_text},
                     {"ci", {c.ci_lo, c.ci_hi}}});
  }
  d["curve"] = std::move(curve);
  // Where the binned curve rises although the law says it falls: consecutive non-empty bins
  // whose p_text goes up with disjoint Wilson intervals (a rise the bins' noise cannot explain).
  nlohmann::json rises = nlohmann::json::array();
  for (size_t i = 0; i + 1 < r.curve.size(); ++i) {
    const CurveBin &a = r.curve[i], &b = r.curve[i + 1];
    if (b.p_text > a.p_text && b.ci_lo > a.ci_hi)
      rises.push_back(
          {{"from", {a.lo, a.hi}}, {"to", {b.lo, b.hi}}, {"p_text", {a.p_text, b.p_text}}});
  }
  d["significant_rises"] = std::move(rises);
  const int64_t N = static_cast<int64_t>(r.items.size());
  d["counts"] = {{"items", N},
                 {"text", r.n_text},
                 {"image", r.n_image},
                 {"other", r.n_other},
                 {"both", r.n_both}};
  d["excluded"] = {{"other", r.n_other},
                   {"both", r.n_both},
                   {"why",
                    "other: the joint answer is neither unimodal answer; both: the "
                    "text-only and image-only answers are the same token (no conflict)"}};
  d["vocab_size"] = r.vocab_size;
  d["candidates"] = o.candidates.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.candidates);
  d["bins"] = o.bins;
  nlohmann::json items = nlohmann::json::array();
  for (const auto& it : r.items) {
    nlohmann::json j = {{"h_text", it.h_text},
                        {"h_image", it.h_image},
                        {"delta_h_rel", it.delta_h_rel},
                        {"follows", follows_name(it.follows)},
                        {"text_answer", it.text_answer},
                        {"image_answer", it.image_answer},
                        {"joint_answer", it.joint_answer}};
    if (it.switches) {
      j["switches"] = *it.switches;
      j["layer_logit_diff"] = it.layer_logit_diff;
    }
    items.push_back(std::move(j));
  }
  d["items"] = std::move(items);
  if (r.oscillation) {
    const Oscillation& s = *r.oscillation;
    d["oscillation"] = {{"ambiguous", opt_json(s.ambiguous)},
                        {"clear", opt_json(s.clear)},
                        {"all", opt_json(s.all)},
                        {"n_ambiguous", s.n_ambiguous},
                        {"n_clear", s.n_clear},
                        {"window", o.window},
                        {"layers", s.layers},
                        {"layer_logit_diff",
                         {{"all", s.diff_all},
                          {"ambiguous", s.diff_ambiguous},
                          {"clear", s.diff_clear},
                          {"follows_text", s.diff_follows_text},
                          {"follows_image", s.diff_follows_image}}}};
    if (!r.balance_point)
      d["oscillation"]["note"] = "no balance point, so no ambiguous/clear regions";
  }
  return rep;
}

// ---------------------------------------------------------------------------------------------
// Picture

Image modality_curve_image(const ModalityResult& r, const std::string& title) {
  const int64_t W = 720, H = 480, left = 70, right = 30, top = 50, bottom = 60;
  Image img(W, H, Rgb{255, 255, 255});
  const int64_t pw = W - left - right, ph = H - top - bottom;
  auto px = [&](double x) {
    return left + static_cast<int64_t>(std::lround((x + 2.0) / 4.0 * pw));
  };
  auto py = [&](double p) { return top + static_cast<int64_t>(std::lround((1.0 - p) * ph)); };
  const Rgb black{0, 0, 0}, grid{225, 225, 225}, blue{31, 119, 180}, red{214, 39, 40},
      orange{255, 127, 14}, gray{120, 120, 120}, shade{253, 220, 200};

  // Balance point interval (shaded), grid, axes.
  if (r.balance_point_ci) {
    const int64_t a = px(r.balance_point_ci->first), b = px(r.balance_point_ci->second);
    img.fill_rect(a, top, std::max<int64_t>(1, b - a + 1), ph, shade);
  }
  for (int k = 0; k <= 8; ++k) {
    const double x = -2.0 + 0.5 * k;
    img.draw_line(px(x), top, px(x), top + ph, grid);
    const std::string s = fmt::format("{:g}", x);
    img.draw_text(px(x) - Image::text_width(s) / 2, top + ph + 8, s, black);
  }
  for (int k = 0; k <= 4; ++k) {
    const double p = 0.25 * k;
    img.draw_line(left, py(p), left + pw, py(p), grid);
    const std::string s = fmt::format("{:.2f}", p);
    img.draw_text(left - 8 - Image::text_width(s), py(p) - Image::text_height() / 2, s, black);
  }
  img.draw_line(left, top + ph, left + pw, top + ph, black);
  img.draw_line(left, top, left, top + ph, black);
  // The 0.5 line.
  for (int64_t x = left; x < left + pw; x += 8) img.draw_line(x, py(0.5), x + 4, py(0.5), gray);

  // The fit.
  if (r.fit) {
    int64_t prevx = -1, prevy = -1;
    for (int64_t i = 0; i <= 200; ++i) {
      const double x = -2.0 + 4.0 * static_cast<double>(i) / 200.0;
      const double p = 1.0 / (1.0 + std::exp(-(r.fit->intercept + r.fit->slope * x)));
      const int64_t X = px(x), Y = py(p);
      if (prevx >= 0) img.draw_line(prevx, prevy, X, Y, orange, 2);
      prevx = X;
      prevy = Y;
    }
  }
  // Bins: intervals and points.
  for (const auto& c : r.curve) {
    const int64_t X = px(c.mean_delta_h_rel);
    img.draw_line(X, py(c.ci_lo), X, py(c.ci_hi), blue);
    img.draw_line(X - 3, py(c.ci_lo), X + 3, py(c.ci_lo), blue);
    img.draw_line(X - 3, py(c.ci_hi), X + 3, py(c.ci_hi), blue);
    img.fill_rect(X - 3, py(c.p_text) - 3, 7, 7, blue);
  }
  // The balance point.
  if (r.balance_point) {
    const int64_t X = px(*r.balance_point);
    img.draw_line(X, top, X, top + ph, red, 2);
    const std::string s = fmt::format("balance point {:.3f}", *r.balance_point);
    const std::string ci = r.balance_point_ci
                               ? fmt::format(" [{:.3f}, {:.3f}]", r.balance_point_ci->first,
                                             r.balance_point_ci->second)
                               : "";
    const std::string label = s + ci;
    int64_t tx = X + 6;
    if (tx + Image::text_width(label) > left + pw) tx = X - 6 - Image::text_width(label);
    img.draw_text(tx, top + 6, label, red);
  } else {
    img.draw_text(left + 8, top + 6, "no balance point: the curve never crosses 0.5", red);
  }
  // Titles.
  const std::string t = title.empty() ? "P(follows text) vs relative uncertainty" : title;
  img.draw_text((W - Image::text_width(t, 2)) / 2, 12, t, black, 2);
  const std::string xl = "delta H_rel = 2 (H_text - H_image) / (H_text + H_image)";
  img.draw_text(left + (pw - Image::text_width(xl)) / 2, top + ph + 28, xl, black);
  const std::string legend =
      fmt::format("bins: p_text, {:g}% Wilson interval   line: logistic fit   n = {}",
                  r.options.confidence * 100, r.n_text + r.n_image);
  img.draw_text(left + (pw - Image::text_width(legend)) / 2, H - 14, legend, gray);
  img.draw_text(8, top - 14, "P(text)", black);
  return img;
}

// ---------------------------------------------------------------------------------------------
// Running a model

namespace {

// The answer row of a forward pass's logits: [B, V] as is, [B, T, V] at `position`.
at::Tensor answer_rows(const at::Tensor& logits, int64_t position, const char* run) {
  STRATA_CHECK(logits.is_floating_point() && (logits.dim() == 2 || logits.dim() == 3),
               "run_modality_passes: the ", run, " run's logits are ", shape_of(logits),
               "; expected floating-point [B, V] or [B, T, V]");
  if (logits.dim() == 2) return logits;
  const int64_t T = logits.size(1);
  const int64_t p = position < 0 ? T + position : position;
  STRATA_CHECK(p >= 0 && p < T, "run_modality_passes: answer position ", position,
               " is outside the ", T, " positions of the ", run, " run's logits ",
               shape_of(logits));
  return logits.select(1, p);
}

std::vector<c10::IValue> slice_rows(const std::vector<at::Tensor>& in, int64_t a, int64_t b) {
  std::vector<c10::IValue> out;
  for (const auto& t : in) out.emplace_back(t.slice(0, a, b));
  return out;
}

int64_t rows_of(const std::vector<at::Tensor>& in, const char* run) {
  STRATA_CHECK(!in.empty(), "run_modality_passes: the ", run, " run has no inputs");
  const int64_t n = in[0].dim() > 0 ? in[0].size(0) : -1;
  for (size_t i = 0; i < in.size(); ++i) {
    STRATA_CHECK(in[i].dim() > 0 && in[i].size(0) == n, "run_modality_passes: the ", run,
                 " run's arg", i, " is ", shape_of(in[i]), " but arg0 is ", shape_of(in[0]),
                 "; every argument needs the same number of rows");
  }
  return n;
}

}  // namespace

ModalityRuns run_modality_passes(const Model& model, const std::vector<at::Tensor>& text_inputs,
                                 const std::vector<at::Tensor>& image_inputs,
                                 const std::vector<at::Tensor>& joint_inputs,
                                 const ModalityPassOptions& options) {
  STRATA_CHECK(options.batch_size > 0, "run_modality_passes: batch size ", options.batch_size,
               " must be positive");
  const int64_t N = rows_of(joint_inputs, "joint");
  const int64_t Nt = rows_of(text_inputs, "text-only"), Nv = rows_of(image_inputs, "image-only");
  STRATA_CHECK(Nt == N && Nv == N,
               "run_modality_passes: the runs have different numbers of items "
               "(text-only ",
               Nt, ", image-only ", Nv, ", joint ", N, ")");
  STRATA_CHECK(N > 0, "run_modality_passes: no items");
  const c10::Device dev = model.device();
  auto to_dev = [&](std::vector<c10::IValue> v) {
    for (auto& x : v) x = x.toTensor().to(dev);
    return v;
  };

  ModalityRuns out;
  LensStructure s;  // output_index 0 unless the lens structure says otherwise
  if (options.layers) {
    LogitLensOptions lo;
    lo.set_norm(options.norm).set_unembed(options.unembed).set_layers(options.lens_layers);
    s = find_lens_structure(model, to_dev(slice_rows(joint_inputs, 0, 1)), lo);
    out.layers = s.layers;
  }
  at::NoGradGuard no_grad;
  auto pass = [&](const std::vector<at::Tensor>& in, const char* run, bool lens) {
    std::vector<at::Tensor> rows, layer_rows;
    for (int64_t a = 0; a < N; a += options.batch_size) {
      const int64_t b = std::min(N, a + options.batch_size);
      std::vector<c10::IValue> args = to_dev(slice_rows(in, a, b));
      if (!lens) {
        const auto outs = flatten_tensors(model.forward(args));
        STRATA_CHECK(!outs.empty(), "run_modality_passes: the ", run, " run returned no tensor");
        STRATA_CHECK(static_cast<int64_t>(outs.size()) > s.output_index,
                     "run_modality_passes: the ", run, " run returned ", outs.size(),
                     " tensor(s); the logits are tensor ", s.output_index);
        rows.push_back(
            answer_rows(outs[s.output_index], options.position, run).to(at::kCPU, at::kFloat));
        continue;
      }
      std::map<std::string, at::Tensor> hidden;
      c10::IValue result;
      {
        std::set<std::string> want(s.layers.begin(), s.layers.end());
        HookSession session;
        session.store(false)
            .keep(KeepOptions().set_device(std::nullopt).set_clone(true))
            .capture_if([&want](const HookPoint& p) { return want.count(p.key()) > 0; })
            .observe([&hidden](const HookPoint& p, const at::Tensor& t) { hidden[p.key()] = t; });
        result = model.forward(args);
      }
      const auto outs = flatten_tensors(result);
      STRATA_CHECK(static_cast<int64_t>(outs.size()) > s.output_index, "run_modality_passes: the ",
                   run, " run returned ", describe_value(result));
      const at::Tensor logits = outs[s.output_index];
      rows.push_back(answer_rows(logits, options.position, run).to(at::kCPU, at::kFloat));
      // Decode the answer position of every layer with the model's own norm and unembedding.
      SuspendHooks suspend;
      std::vector<at::Tensor> per_layer;
      for (const auto& layer : s.layers) {
        auto it = hidden.find(layer);
        STRATA_CHECK(it != hidden.end(), "run_modality_passes: the lens layer '", layer,
                     "' was not reached in the ", run, " run");
        at::Tensor h = it->second;
        if (logits.dim() == 3 && h.dim() == 3) {
          const int64_t T = h.size(1);
          h = h.select(1, options.position < 0 ? T + options.position : options.position);
        }
        try {
          at::Tensor x = h;
          if (!s.norm.empty()) x = model.submodule(s.norm).forward({x}).toTensor();
          const auto u = flatten_tensors(model.submodule(s.unembed).forward({x}));
          STRATA_CHECK(!u.empty(), "no tensor came out");
          per_layer.push_back(u.front().reshape({b - a, -1}).to(at::kCPU, at::kFloat));
        } catch (const std::exception& e) {
          throw Error(str_cat(
              "run_modality_passes: decoding '", layer, "' (", shape_of(h),
              ") with the model's norm and unembedding failed: ", condense_torch_message(e)));
        }
      }
      layer_rows.push_back(at::stack(per_layer, 1));
    }
    if (lens) out.layer_logits = at::cat(layer_rows, 0);
    return at::cat(rows, 0);
  };
  out.text = pass(text_inputs, "text-only", false);
  out.image = pass(image_inputs, "image-only", false);
  out.joint = pass(joint_inputs, "joint", options.layers);
  return out;
}

}  // namespace strata
