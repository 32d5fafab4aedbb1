// Private helpers shared by the `strata` subcommands.
#pragma once

#include <ATen/core/ivalue.h>
#include <c10/core/Device.h>

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include <strata/io/safetensors.h>

namespace strata::cli {

/// A usage error: `strata` prints it and exits with status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Parses "cpu", "cuda", "cuda:1"; a usage error for other text, a runtime error (exit 1)
/// when this LibTorch build has no CUDA device.
c10::Device parse_device(const std::string& text);

/// Splits "a,b,c" into {"a","b","c"} (empty parts dropped).
std::vector<std::string> split_list(const std::string& text);

/// The tensors arg0, arg1, ... of an input file, as forward's positional arguments, on `device`.
/// A gap (arg0 and arg2 without arg1) is an error, not a silently dropped argument.
std::vector<c10::IValue> forward_args(const TensorMap& tensors, const std::string& path,
                                      c10::Device device);

/// Writes `text` to `path` (errors name the path).
void write_text(const std::string& path, const std::string& text);

/// Registers each subcommand; each returns the exit status through `status`.
void add_inspect(CLI::App& app, int& status);
void add_capture(CLI::App& app, int& status);
void add_stats(CLI::App& app, int& status);
void add_lens(CLI::App& app, int& status);
void add_lens_train(CLI::App& app, int& status);
void add_lrp(CLI::App& app, int& status);
void add_probe(CLI::App& app, int& status);
void add_modality(CLI::App& app, int& status);

}  // namespace strata::cli
