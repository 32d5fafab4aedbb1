#include "cli_common.h"

#include <ATen/Context.h>

#include <fstream>
#include <sstream>

#include <strata/core/error.h>

namespace strata::cli {

c10::Device parse_device(const std::string& text) {
  c10::Device d(c10::kCPU);
  try {
    d = c10::Device(text);
  } catch (const std::exception&) {
    throw UsageError("--device: unknown device '" + text + "' (use cpu, cuda or cuda:N)");
  }
  if (d.is_cuda() && !at::hasCUDA()) {
    throw Error("--device " + text + ": this build of LibTorch has no CUDA device available");
  }
  return d;
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string part; std::getline(ss, part, ',');) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

std::vector<c10::IValue> forward_args(const TensorMap& tensors, const std::string& path,
                                      c10::Device device) {
  std::vector<c10::IValue> args;
  for (int64_t i = 0; tensors.contains("arg" + std::to_string(i)); ++i) {
    args.emplace_back(tensors.at("arg" + std::to_string(i)).to(device));
  }
  for (const auto& name : tensors.names()) {
    if (name.size() < 4 || name.compare(0, 3, "arg") != 0 ||
        name.find_first_not_of("0123456789", 3) != std::string::npos) {
      continue;
    }
    STRATA_CHECK(std::stoll(name.substr(3)) < static_cast<int64_t>(args.size()), "'", path,
                 "' has '", name, "' but no 'arg", args.size(),
                 "': forward's arguments must be numbered without gaps");
  }
  if (args.empty()) {
    std::string keys;
    for (const auto& n : tensors.names()) keys += (keys.empty() ? "" : ", ") + n;
    throw Error(str_cat("'", path, "' has no tensor 'arg0' (the first argument of forward); it holds: ",
                        keys.empty() ? "nothing" : keys));
  }
  return args;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  STRATA_CHECK(f.good(), "cannot write '", path, "'");
  f << text;
  STRATA_CHECK(f.good(), "error while writing '", path, "'");
}

}  // namespace strata::cli
