// Helpers shared by strata's tests: where the Python-made fixtures live, and exact comparisons.
#pragma once

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <strata/io/safetensors.h>

#include <fstream>
#include <sstream>
#include <string>

namespace strata::testing {

/// A path inside the fixture directory that tests/python/make_fixtures.py wrote.
inline std::string fixture(const std::string& name) {
  return std::string(STRATA_FIXTURE_DIR) + "/" + name;
}

/// The fixtures' manifest.json.
inline const nlohmann::json& manifest() {
  static const nlohmann::json m = [] {
    std::ifstream f(fixture("manifest.json"));
    if (!f) throw std::runtime_error("fixtures missing: run ctest (fixtures.generate) first");
    return nlohmann::json::parse(f);
  }();
  return m;
}

/// Loads the tensors of a fixture safetensors file.
inline TensorMap fixture_tensors(const std::string& name) {
  return load_safetensors(fixture(name)).tensors;
}

/// Exact equality (same dtype, shape and bits) with a message naming the key on failure.
inline ::testing::AssertionResult exactly_equal(const at::Tensor& expected, const at::Tensor& actual,
                                                const std::string& what) {
  if (!actual.defined()) return ::testing::AssertionFailure() << what << ": undefined tensor";
  if (expected.scalar_type() != actual.scalar_type() || expected.sizes() != actual.sizes()) {
    return ::testing::AssertionFailure()
           << what << ": expected " << expected.scalar_type() << expected.sizes() << ", got "
           << actual.scalar_type() << actual.sizes();
  }
  if (!at::equal(expected, actual.to(expected.device()))) {
    double diff = 0;
    if (expected.is_floating_point())
      diff = (expected.to(at::kDouble) - actual.to(at::kDouble)).abs().max().item<double>();
    return ::testing::AssertionFailure() << what << ": values differ (max |diff| " << diff << ")";
  }
  return ::testing::AssertionSuccess();
}

}  // namespace strata::testing
