// Which modality does a vision-language model follow when image and text conflict? Runs the three
// passes (text only, image only, both) of a TorchScript model on prepared inputs, then the
// entropy-based analysis (docs/analyzers/modality_uncertainty.md).
//
//   modality_example MODEL.pt DIR [CURVE.png]
//
// DIR holds text_inputs.safetensors, image_inputs.safetensors and joint_inputs.safetensors, each
// with forward's arguments arg0, arg1, ... for the same N items (examples/modality/modality_toy.py
// data DIR writes them for the toy model).
#include <strata/analysis/modality_uncertainty.h>
#include <strata/core/error.h>
#include <strata/io/safetensors.h>
#include <strata/model/model.h>

#include <cstdio>
#include <string>
#include <vector>

namespace {

std::vector<at::Tensor> args(const std::string& path) {
  strata::SafetensorsFile f = strata::load_safetensors(path);
  std::vector<at::Tensor> out;
  for (int i = 0; f.tensors.contains("arg" + std::to_string(i)); ++i)
    out.push_back(f.tensors.at("arg" + std::to_string(i)));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.pt DIR [CURVE.png]\n", argv[0]);
    return 2;
  }
  try {
    const std::string dir = argv[2];
    strata::Model model = strata::Model::load(argv[1]);
    // The three passes; the joint one also through the logit lens (answer = last position).
    strata::ModalityRuns runs = strata::run_modality_passes(
        model, args(dir + "/text_inputs.safetensors"), args(dir + "/image_inputs.safetensors"),
        args(dir + "/joint_inputs.safetensors"));
    strata::ModalityUncertainty mu(strata::ModalityOptions().set_bootstrap(500).set_seed(0));
    strata::ModalityResult r = mu.analyze(runs.text, runs.image, runs.joint, runs.layer_logits);

    std::printf("%zu items: follows text %lld, image %lld (excluded: other %lld, both %lld)\n",
                r.items.size(), static_cast<long long>(r.n_text), static_cast<long long>(r.n_image),
                static_cast<long long>(r.n_other), static_cast<long long>(r.n_both));
    for (const strata::CurveBin& b : r.curve)
      std::printf("  dH_rel in [%+.2f, %+.2f): p_text %.3f (n = %lld)\n", b.lo, b.hi, b.p_text,
                  static_cast<long long>(b.n));
    if (r.balance_point) {
      std::printf("balance point %.3f, 95%% CI [%.3f, %.3f]\n", *r.balance_point,
                  r.balance_point_ci ? r.balance_point_ci->first : NAN,
                  r.balance_point_ci ? r.balance_point_ci->second : NAN);
    } else {
      std::printf("no balance point: %s\n", r.note.c_str());
    }
    if (r.oscillation && r.oscillation->ambiguous && r.oscillation->clear) {
      std::printf("mean lens top-1 switches over %zu layers: ambiguous %.3f, clear %.3f\n",
                  runs.layers.size(), *r.oscillation->ambiguous, *r.oscillation->clear);
    }
    if (argc > 3) {
      strata::modality_curve_image(r).save_png(argv[3]);
      std::printf("wrote %s\n", argv[3]);
    }
  } catch (const strata::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
