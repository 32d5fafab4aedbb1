// An outside program using the installed strata package: load, capture one layer, check it.
#include <ATen/ATen.h>

#include <cstdio>

#include <strata/capture/hook_session.h>
#include <strata/model/model.h>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  auto model = strata::Model::load(argv[1]);
  strata::HookSession session;
  session.capture("1");
  model.forward({at::ones({2, 16})});
  const at::Tensor& relu = session.activations().at("1");
  if (relu.sizes() != at::IntArrayRef({2, 32}) || relu.min().item<float>() < 0) return 1;
  std::printf("consumer: captured '1' with shape [%lld, %lld]\n",
              static_cast<long long>(relu.size(0)), static_cast<long long>(relu.size(1)));
  return 0;
}
