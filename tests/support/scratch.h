// A scratch directory for one test program (under the system's temp directory, named after the
// process), removed when the program exits.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace strata::testing {

/// A path for `name` in this test program's scratch directory.
inline std::string scratch_path(const std::string& name) {
  struct ScratchDir {
    std::filesystem::path path =
        std::filesystem::temp_directory_path() / ("strata_test_" + std::to_string(::getpid()));
    ScratchDir() { std::filesystem::create_directories(path); }
    ~ScratchDir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static const ScratchDir dir;
  return (dir.path / name).string();
}

}  // namespace strata::testing
