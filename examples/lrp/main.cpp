// LRP on a real CNN: why does face-api's face-expression network call this face "happy"?
// Runs the network on one face crop, explains its top class with Zennit's EpsilonGammaBox
// composite (z^B with the exact per-channel input bounds for the first convolution, gamma for the
// other convolutions, epsilon for the classifier), prints the conservation check and the layers
// that carry the most relevance, and draws the heatmap next to the face.
//
// Usage: lrp_example FACE_EXPRESSION.pt FACES.safetensors [FACE_INDEX] [OUT.png]
//   (tools/faceapi/prepare.py DIR writes DIR/face_expression.pt and DIR/faces.safetensors)
#include <ATen/ATen.h>
#include <strata/core/error.h>
#include <strata/io/safetensors.h>
#include <strata/lrp/composite.h>
#include <strata/lrp/lrp.h>
#include <strata/lrp/relevance_image.h>
#include <strata/model/model.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 3 || argc > 5) {
    std::fprintf(stderr, "usage: %s FACE_EXPRESSION.pt FACES.safetensors [FACE_INDEX] [OUT.png]\n",
                 argv[0]);
    return 2;
  }
  const int64_t index = argc > 3 ? std::stoll(argv[3]) : 0;
  const std::string png = argc > 4 ? argv[4] : "lrp.png";
  const std::vector<std::string> labels = {"neutral", "happy",     "sad",      "angry",
                                           "fearful", "disgusted", "surprised"};
  try {
    strata::Model model = strata::Model::load(argv[1]);
    const strata::TensorMap faces = strata::load_safetensors(argv[2]).tensors;
    const at::Tensor all = faces.at("arg0");  // [F, 3, 112, 112], (rgb - mean) / 255
    STRATA_CHECK(index >= 0 && index < all.size(0), "face ", index, " of ", all.size(0));
    const at::Tensor x = all.slice(0, index, index + 1);
    const at::Tensor pixels = faces.at("pixels")[index];

    // The input bounds of z^B: pixel values 0 and 255, normalised like the input.
    const at::Tensor mean = at::tensor({122.782, 117.001, 104.298}, at::kDouble).view({1, 3, 1, 1});
    strata::Composite composite;
    composite
        .set_first(strata::Rule::zbox((0.0 - mean) / 255.0, (255.0 - mean) / 255.0),
                   /*convs_only=*/true)
        .set_conv(strata::Rule::gamma(0.25))
        .set_linear(strata::Rule::epsilon(1e-6))
        .set_name("EpsilonGammaBox(per-channel bounds)");

    strata::LrpExplainer explainer(model, composite);
    strata::LrpResult r = explainer.explain({x}, /*target=*/0);  // any class, to read the logits
    const int64_t top = r.output.argmax(-1).item<int64_t>();
    if (top != 0) r = explainer.explain({x}, top);
    const at::Tensor probs = r.output.softmax(-1)[0];
    std::printf("face %lld: %s (p = %.3f), logit %.4f\n", static_cast<long long>(index),
                labels[top].c_str(), probs[top].item<double>(), r.output_score);
    std::printf("input relevance sum %.4f = %.1f%% of the logit (biases absorb the rest)\n",
                r.input_sum, 100.0 * r.input_sum / r.output_score);
    for (const auto& m : r.merged) std::printf("merged %s\n", m.batchnorm.c_str());

    std::vector<strata::LayerRelevance> rows;
    for (const auto& row : r.table)
      if (!row.rule.empty() && row.rule != "pass") rows.push_back(row);
    std::sort(rows.begin(), rows.end(),
              [](const auto& a, const auto& b) { return a.contribution > b.contribution; });
    std::printf("layers with the largest contribution score (share of |relevance|):\n");
    for (size_t i = 0; i < rows.size() && i < 5; ++i)
      std::printf("  %-26s %-14s %.4f\n", rows[i].key.c_str(), rows[i].rule.c_str(),
                  rows[i].contribution);

    strata::relevance_image(
        r.relevance[0], strata::RelevanceImageOptions().set_image(pixels).set_scale(3).set_title(
                            "LRP: " + labels[top]))
        .save_png(png);
    std::printf("wrote %s\n", png.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lrp_example: %s\n", e.what());
    return 1;
  }
  return 0;
}
