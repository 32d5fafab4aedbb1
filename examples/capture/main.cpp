// Capture and patch activations of the demo transformer (examples/capture/make_demo_model.py).
//
// 1. Runs a "clean" prompt (step token S3: 7 0 3 6 9 ...) and captures every block's output.
// 2. Runs a "corrupted" prompt whose step token is S1 instead, with the same digits.
// 3. Activation patching: for each block, and for the step-token position only, copies the clean
//    activation into the corrupted run and reports how much of the clean prediction comes back.
//
// Usage: capture_example MODEL.pt
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cstdio>
#include <exception>

#include <strata/capture/hook_session.h>
#include <strata/core/error.h>
#include <strata/model/model.h>

namespace {

at::Tensor prompt(int64_t step_token, int64_t step, int64_t start, int64_t len) {
  std::vector<int64_t> ids = {step_token};
  for (int64_t i = 0; i + 1 < len; ++i) ids.push_back((start + step * i) % 10);
  return at::tensor(ids, at::kLong).unsqueeze(0);
}

// Log-probability of `token` at the last position.
double last_logprob(const c10::IValue& logits, int64_t token) {
  at::Tensor l = logits.toTensor()[0][-1].log_softmax(-1);
  return l[token].item<double>();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s MODEL.pt\n", argv[0]);
    return 2;
  }
  try {
    at::NoGradGuard no_grad;
    strata::Model model = strata::Model::load(argv[1]);
    const auto blocks = model.match(R"(re:blocks\.\d+)");  // the residual stream, block by block

    // Clean: step 3 from 7 -> next digit after 7 0 3 6 9 2 5 8 1 4 is 7. Corrupted: step token S1
    // with the same digits; the model must reconcile a step token that disagrees with the digits.
    const at::Tensor clean = prompt(10 + 3, 3, 7, 11);
    at::Tensor corrupted = clean.clone();
    corrupted[0][0] = 10 + 1;
    const int64_t answer = (7 + 3 * 10) % 10;

    strata::TensorMap clean_cache;
    double clean_lp = 0;
    {
      strata::HookSession session;
      session.capture(R"(re:blocks\.\d+)").capture("tok_emb");
      clean_lp = last_logprob(model.forward({clean}), answer);
      clean_cache = session.activations();
    }
    std::printf("captured %lld hook points on the clean prompt:\n",
                static_cast<long long>(clean_cache.size()));
    for (const auto& key : clean_cache.names()) {
      const at::Tensor& a = clean_cache.at(key);
      std::printf("  %-18s shape [%lld, %lld, %lld]  mean |h| per token %.3f\n", key.c_str(),
                  static_cast<long long>(a.size(0)), static_cast<long long>(a.size(1)),
                  static_cast<long long>(a.size(2)), a.norm(2, {2}).mean().item<double>());
    }
    const double corrupt_lp = last_logprob(model.forward({corrupted}), answer);
    std::printf("\nlog p(answer %lld): clean %.4f, corrupted %.4f\n",
                static_cast<long long>(answer), clean_lp, corrupt_lp);

    std::printf("\npatching the clean activation into the corrupted run, step-token position only:\n");
    std::printf("  %-10s %12s %10s\n", "block", "log p", "recovered");
    for (const auto& b : blocks) {
      strata::HookSession session;
      session.edit(b, strata::Edit::patch(clean_cache).at(/*dim=*/1, {0}));
      const double lp = last_logprob(model.forward({corrupted}), answer);
      const double denom = clean_lp - corrupt_lp;
      std::printf("  %-10s %12.4f %9.1f%%\n", b.c_str(), lp,
                  denom != 0 ? 100.0 * (lp - corrupt_lp) / denom : 0.0);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "capture_example: error: %s\n", e.what());
    return 1;
  }
}
