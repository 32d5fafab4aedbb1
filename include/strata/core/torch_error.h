// Turning LibTorch's multi-line exceptions (with C++ and TorchScript tracebacks) into the one-line
// messages strata::Error carries.
#pragma once

#include <exception>
#include <string>

namespace strata {

/// The essential line of a LibTorch / TorchScript error message (no backtraces).
std::string condense_torch_message(const std::exception& e);

}  // namespace strata
