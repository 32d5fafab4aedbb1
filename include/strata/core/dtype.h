// Dtype names as Python users write them ("float32", "bfloat16", "int64").
#pragma once

#include <c10/core/ScalarType.h>

#include <string>

namespace strata {

/// "float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8",
/// "bool"; other types fall back to LibTorch's name.
std::string dtype_name(c10::ScalarType t);

/// Parses a dtype name (also accepts "float", "half", "double", "long", "int", "f32", "bf16"...);
/// throws strata::Error listing the accepted names.
c10::ScalarType parse_dtype(const std::string& name);

}  // namespace strata
