// Layer-wise linear probes on a TorchScript model: which layers hold a property linearly?
//
//   probe_example MODEL.pt DATA.safetensors LAYERS POSITION CURVE.png
//
// DATA holds arg0 (the model's input, e.g. tokens [N, T]) and labels ([N] for POSITION last or
// mean, [N, T] for every; -1 = no label). LAYERS is a comma-separated list of hook-point
// patterns ("tok_embeddings,layers.?"). The probe is L2 logistic regression with C chosen by
// 5-fold cross-validation on the training split, a split by sequence, the majority baseline and
// the control task (each token type gets a random label; selectivity = accuracy - control).
#include <ATen/Parallel.h>
#include <strata/analysis/layerwise_probe.h>
#include <strata/analysis/runner.h>
#include <strata/core/error.h>
#include <strata/io/safetensors.h>
#include <strata/model/model.h>

#include <cstdio>
#include <exception>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr,
                 "usage: probe_example MODEL.pt DATA.safetensors LAYERS POSITION CURVE.png\n");
    return 2;
  }
  try {
    at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    strata::Model model = strata::Model::load(argv[1]);
    strata::TensorDataset data(strata::load_safetensors(argv[2]).tensors, /*batch_size=*/32);

    std::vector<std::string> layers;
    for (std::string s = argv[3], part; !s.empty();) {
      const auto comma = s.find(',');
      layers.push_back(s.substr(0, comma));
      s = comma == std::string::npos ? "" : s.substr(comma + 1);
    }
    std::vector<int64_t> indices;
    strata::LayerwiseProbeOptions opts;
    opts.set_layers(layers).set_position(strata::parse_probe_position(argv[4], indices));
    opts.set_indices(indices);
    opts.probe.set_cv_folds(5).set_control(true);

    strata::LayerwiseProbe probe(opts);
    strata::Runner runner(model, strata::RunnerOptions().set_progress(false));
    runner.add(probe);
    const strata::Report r = runner.run(data)[0];

    std::printf("%lld samples from %lld sequences, %lld classes, majority baseline %.3f\n",
                static_cast<long long>(r.data["num_samples"].get<int64_t>()),
                static_cast<long long>(r.data["num_sequences"].get<int64_t>()),
                static_cast<long long>(r.data["num_classes"].get<int64_t>()),
                r.data["majority_accuracy"].get<double>());
    std::printf("%-16s %8s %8s %8s %12s %8s\n", "layer", "train", "test", "control", "selectivity",
                "C");
    for (const auto& name : r.data["layer_order"]) {
      const auto& l = r.data["layers"][name.get<std::string>()];
      std::printf("%-16s %8.3f %8.3f %8.3f %12.3f %8.3g\n", name.get<std::string>().c_str(),
                  l["train_accuracy"].get<double>(), l["test_accuracy"].get<double>(),
                  l["control_accuracy"].get<double>(), l["selectivity"].get<double>(),
                  l["C"].get<double>());
    }
    strata::probe_curve(r.data).render().save_png(argv[5]);
    std::printf("wrote %s\n", argv[5]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "probe_example: %s\n", e.what());
    return 1;
  }
  return 0;
}
