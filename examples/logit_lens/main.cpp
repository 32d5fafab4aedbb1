// The logit lens on a small language model: what would the model predict if it stopped after
// each layer? Decodes every layer's hidden state with the model's own final norm and
// unembedding, prints a compact table for the last position, and draws the lens picture.
//
// Usage: logit_lens_example MODEL.pt TOKENIZER.bin [PROMPT] [OUT.png]
//   e.g. logit_lens_example stories260K.pt tok512.bin "Once upon a time, there was a little girl
//   named Lily"
#include <ATen/ATen.h>
#include <strata/analysis/logit_lens.h>
#include <strata/analysis/runner.h>
#include <strata/core/error.h>
#include <strata/model/model.h>
#include <strata/text/tokenizer.h>

#include <cstdio>
#include <exception>
#include <string>

int main(int argc, char** argv) {
  if (argc < 3 || argc > 5) {
    std::fprintf(stderr, "usage: %s MODEL.pt TOKENIZER.bin [PROMPT] [OUT.png]\n", argv[0]);
    return 2;
  }
  const std::string prompt =
      argc > 3 ? argv[3] : "Once upon a time, there was a little girl named Lily";
  const std::string png = argc > 4 ? argv[4] : "logit_lens.png";
  try {
    strata::Model model = strata::Model::load(argv[1]);
    const strata::Tokenizer tok = strata::Tokenizer::load(argv[2]);
    const at::Tensor tokens = at::tensor(tok.encode(prompt), at::kLong).unsqueeze(0);  // [1, T]

    // 1. Find the residual stream, the final norm and the unembedding (one forward pass).
    const strata::LensStructure s = strata::find_lens_structure(model, {tokens});
    std::printf("final norm '%s', unembedding '%s', %zu layers decoded\n", s.norm.c_str(),
                s.unembed.c_str(), s.layers.size());

    // 2. Run the lens through a Runner, as any analyzer.
    strata::LogitLens lens(model, s, strata::LogitLensOptions().set_top_k(3));
    strata::TensorMap inputs;
    inputs.insert("arg0", tokens);
    strata::TensorDataset data(inputs, /*batch_size=*/1);
    strata::Runner runner(model, strata::RunnerOptions().set_progress(false));
    runner.add(lens);
    const strata::Report report = runner.run(data)[0];

    // 3. The last position, layer by layer: how the next-token prediction forms.
    const auto& d = report.data;
    const size_t last = d["tokens"].size() - 1;
    auto text = [&tok](int64_t id) { return strata::lens_token_label(tok.piece(id)); };
    std::printf("prompt: \"%s\" (%zu tokens); next token after '%s':\n", prompt.c_str(), last + 1,
                text(d["tokens"][last]).c_str());
    std::printf("%-16s %-10s %8s %9s %9s\n", "layer", "top-1", "p", "entropy", "KL");
    for (size_t l = 0; l < d["layers"].size(); ++l) {
      std::printf("%-16s %-10s %8.4f %9.4f %9.4f\n", d["layers"][l].get<std::string>().c_str(),
                  text(d["top1"][l][last]).c_str(), d["top1_prob"][l][last].get<double>(),
                  d["entropy"][l][last].get<double>(), d["kl_to_final"][l][last].get<double>());
    }

    // 4. The picture: layers x positions, each cell its top-1 token, coloured by probability.
    strata::logit_lens_heatmap(
        report, [&tok](int64_t id) { return tok.piece(id); }, strata::LensColor::Probability,
        "example")
        .render()
        .save_png(png);
    std::printf("wrote %s\n", png.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
