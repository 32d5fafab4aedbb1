#include <ATen/ATen.h>
#include <strata/core/error.h>
#include <strata/lrp/rule.h>

#include <cmath>
#include <sstream>
#include <vector>

namespace strata {

namespace {

const char* kChoices =
    "epsilon[:eps], zero, gamma[:g], alphabeta[:a:b], zplus, zbox:low:high, flat, wsquare, pass";

std::vector<std::string> split_colon(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ':') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

double number(const std::string& rule, const std::string& text) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  throw Error(str_cat("LRP rule '", rule, "': '", text, "' is not a number"));
}

std::string fmt_num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

}  // namespace

Rule Rule::zero() { return Rule(Kind::Zero); }

Rule Rule::epsilon(double eps) {
  STRATA_CHECK(eps >= 0 && std::isfinite(eps), "Rule::epsilon: epsilon must be >= 0, got ", eps);
  Rule r(Kind::Epsilon);
  r.eps_ = eps;
  return r;
}

Rule Rule::gamma(double g) {
  STRATA_CHECK(g >= 0 && std::isfinite(g), "Rule::gamma: gamma must be >= 0, got ", g);
  Rule r(Kind::Gamma);
  r.gamma_ = g;
  return r;
}

Rule Rule::alpha_beta(double alpha, double beta) {
  STRATA_CHECK(alpha >= 0 && beta >= 0,
               "Rule::alpha_beta: alpha and beta must be >= 0, got alpha=", alpha, " beta=", beta);
  STRATA_CHECK(std::abs(alpha - beta - 1.0) < 1e-12,
               "Rule::alpha_beta: alpha - beta must equal 1 (conservation), got alpha=", alpha,
               " beta=", beta);
  Rule r(Kind::AlphaBeta);
  r.alpha_ = alpha;
  r.beta_ = beta;
  return r;
}

Rule Rule::zplus() { return Rule(Kind::ZPlus); }

Rule Rule::zbox(double low, double high) {
  STRATA_CHECK(low < high, "Rule::zbox: low (", low, ") must be below high (", high, ")");
  return zbox(at::scalar_tensor(low, at::kDouble), at::scalar_tensor(high, at::kDouble));
}

Rule Rule::zbox(at::Tensor low, at::Tensor high) {
  STRATA_CHECK(low.defined() && high.defined(), "Rule::zbox: bounds must be given");
  STRATA_CHECK((low <= high).all().item<bool>(), "Rule::zbox: low must not exceed high");
  Rule r(Kind::ZBox);
  r.low_ = low.detach().to(at::kDouble);
  r.high_ = high.detach().to(at::kDouble);
  return r;
}

Rule Rule::flat() { return Rule(Kind::Flat); }
Rule Rule::wsquare() { return Rule(Kind::WSquare); }
Rule Rule::pass() { return Rule(Kind::Pass); }

Rule Rule::parse(const std::string& text) {
  const std::vector<std::string> p = split_colon(text);
  const std::string& n = p[0];
  auto want = [&](size_t lo, size_t hi) {
    if (p.size() - 1 < lo || p.size() - 1 > hi)
      throw Error(str_cat("LRP rule '", text, "': ", n, " takes ",
                          lo == hi ? std::to_string(lo) : str_cat(lo, " to ", hi),
                          " parameter(s), got ", p.size() - 1, " (rules: ", kChoices, ")"));
  };
  if (n == "epsilon") {
    want(0, 1);
    return p.size() > 1 ? epsilon(number(text, p[1])) : epsilon();
  }
  if (n == "zero") {
    want(0, 0);
    return zero();
  }
  if (n == "gamma") {
    want(0, 1);
    return p.size() > 1 ? gamma(number(text, p[1])) : gamma();
  }
  if (n == "alphabeta") {
    if (p.size() == 1) return alpha_beta(2, 1);
    want(2, 2);
    return alpha_beta(number(text, p[1]), number(text, p[2]));
  }
  if (n == "zplus") {
    want(0, 0);
    return zplus();
  }
  if (n == "zbox") {
    want(2, 2);
    return zbox(number(text, p[1]), number(text, p[2]));
  }
  if (n == "flat") {
    want(0, 0);
    return flat();
  }
  if (n == "wsquare") {
    want(0, 0);
    return wsquare();
  }
  if (n == "pass") {
    want(0, 0);
    return pass();
  }
  throw Error(str_cat("unknown LRP rule '", text, "'; rules: ", kChoices));
}

std::string Rule::describe() const {
  switch (kind_) {
    case Kind::Zero:
      return "zero";
    case Kind::Epsilon:
      return "epsilon:" + fmt_num(eps_);
    case Kind::Gamma:
      return "gamma:" + fmt_num(gamma_);
    case Kind::AlphaBeta:
      return "alphabeta:" + fmt_num(alpha_) + ":" + fmt_num(beta_);
    case Kind::ZPlus:
      return "zplus";
    case Kind::ZBox:
      if (low_.dim() == 0 && high_.dim() == 0)
        return "zbox:" + fmt_num(low_.item<double>()) + ":" + fmt_num(high_.item<double>());
      return "zbox:<tensor bounds>";
    case Kind::Flat:
      return "flat";
    case Kind::WSquare:
      return "wsquare";
    case Kind::Pass:
      return "pass";
  }
  return "?";
}

}  // namespace strata
