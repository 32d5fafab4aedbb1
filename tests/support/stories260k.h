// The real model of the text and lens tests: llama2.c's stories260K from ../shared/models, and
// the TorchScript file that ctest's llama2c.convert step converts it to. A missing file fails the
// test with where to get it.
#pragma once

#include <strata/model/model.h>
#include <strata/text/tokenizer.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace strata::testing {

/// A file of ../shared/models/stories260K ("stories260K.bin", "tok512.bin").
inline std::string stories260k_file(const std::string& file) {
  const std::string dir = std::string(STRATA_SOURCE_DIR) + "/../shared/models/stories260K";
  const std::string path = dir + "/" + file;
  if (!std::filesystem::exists(path)) {
    throw std::runtime_error("missing " + path +
                             ": download stories260K.bin and tok512.bin from the Hugging Face "
                             "repository karpathy/tinyllamas (folder stories260K/) into " +
                             dir);
  }
  return path;
}

/// The converted model (written by ctest's llama2c.convert step).
inline std::string stories260k_model_path() {
  stories260k_file("stories260K.bin");
  const std::string path = std::string(STRATA_FIXTURE_DIR) + "/stories260K.pt";
  if (!std::filesystem::exists(path)) {
    throw std::runtime_error("missing " + path +
                             ": run the tests through ctest (its llama2c.convert step writes it)");
  }
  return path;
}

/// The converted model, loaded once per test program.
inline const Model& stories260k_model() {
  static const Model m = Model::load(stories260k_model_path());
  return m;
}

/// The 512-token tokenizer, loaded once per test program.
inline const Tokenizer& stories260k_tokenizer() {
  static const Tokenizer t = Tokenizer::load(stories260k_file("tok512.bin"));
  return t;
}

}  // namespace strata::testing
