#include "ratio_kernel.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

// The loops also get an AVX2 build, chosen at load time on CPUs that have it (the library itself
// targets baseline x86-64).
#if defined(__x86_64__) && defined(__GNUC__)
#define STRATA_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define STRATA_VECTOR_CLONES
#endif

namespace strata::lrp_detail {

namespace {

// Elements per task: a pass over this many floats costs far more than handing out a task.
constexpr int64_t kGrain = 16384;

template <typename T>
STRATA_VECTOR_CLONES void ratio_loop(const T* g, const T* __restrict num, const T* __restrict den,
                                     T* out, int64_t n, T eps, T coef) {
  // out may be g itself (same index read before written); the stabilizer is a select between
  // two constants, which vectorizes (z + (-eps) == z - eps exactly)
  for (int64_t i = 0; i < n; ++i) {
    const T d = den[i];
    out[i] = coef * (g[i] * (num[i] / (d + (d >= T(0) ? eps : -eps))));
  }
}

template <typename T>
void ratio_loop_zero(const T* g, const T* num, const T* den, T* out, int64_t n, T coef) {
  for (int64_t i = 0; i < n; ++i) {
    const T d = den[i];
    out[i] = d != T(0) ? coef * (g[i] * (num[i] / d)) : T(0);
  }
}

bool fused_ok(const at::Tensor& t) {
  return t.device().is_cpu() && (t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble);
}

}  // namespace

at::Tensor ratio_scaled_grad(at::Tensor g_in, const at::Tensor& num_in, const at::Tensor& den_in,
                             double eps, double coef) {
  const auto st = den_in.scalar_type();
  if (!fused_ok(den_in) || num_in.scalar_type() != st || g_in.scalar_type() != st ||
      !g_in.device().is_cpu() || !num_in.device().is_cpu() || g_in.sizes() != den_in.sizes() ||
      num_in.sizes() != den_in.sizes()) {
    const at::Tensor r =
        eps == 0.0 ? at::where(den_in != 0, num_in / den_in, at::zeros({}, den_in.options()))
                   : num_in / at::where(den_in >= 0, den_in + eps, den_in - eps);
    return coef == 1.0 ? g_in * r : coef * (g_in * r);
  }
  const at::Tensor num = num_in.contiguous(), den = den_in.contiguous();
  const bool own = g_in.is_contiguous() && !g_in.requires_grad() && g_in.use_count() == 1 &&
                   g_in.storage().use_count() == 1;
  const at::Tensor g = g_in.contiguous();
  at::Tensor out = own ? g : at::empty_like(den, at::MemoryFormat::Contiguous);
  const int64_t n = den.numel();
  AT_DISPATCH_FLOATING_TYPES(st, "ratio_scaled_grad", [&] {
    const scalar_t* gp = g.data_ptr<scalar_t>();
    const scalar_t* np = num.data_ptr<scalar_t>();
    const scalar_t* dp = den.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    const auto e = static_cast<scalar_t>(eps);
    const auto c = static_cast<scalar_t>(coef);
    at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t end) {
      if (eps == 0.0)
        ratio_loop_zero<scalar_t>(gp + b, np + b, dp + b, op + b, end - b, c);
      else
        ratio_loop<scalar_t>(gp + b, np + b, dp + b, op + b, end - b, e, c);
    });
  });
  return out;
}

}  // namespace strata::lrp_detail
