#include <strata/core/dtype.h>

#include <strata/core/error.h>

#include <utility>
#include <vector>

namespace strata {

namespace {
const std::vector<std::pair<std::string, c10::ScalarType>>& names() {
  static const std::vector<std::pair<std::string, c10::ScalarType>> n = {
      {"float32", c10::kFloat}, {"float16", c10::kHalf},  {"bfloat16", c10::kBFloat16},
      {"float64", c10::kDouble}, {"int64", c10::kLong},   {"int32", c10::kInt},
      {"int16", c10::kShort},   {"int8", c10::kChar},     {"uint8", c10::kByte},
      {"bool", c10::kBool},     {"float", c10::kFloat},   {"half", c10::kHalf},
      {"double", c10::kDouble}, {"long", c10::kLong},     {"int", c10::kInt},
      {"f32", c10::kFloat},     {"f16", c10::kHalf},      {"bf16", c10::kBFloat16},
      {"f64", c10::kDouble},    {"i64", c10::kLong},      {"i32", c10::kInt}};
  return n;
}
}  // namespace

std::string dtype_name(c10::ScalarType t) {
  for (const auto& [name, type] : names())
    if (type == t) return name;
  return c10::toString(t);
}

c10::ScalarType parse_dtype(const std::string& name) {
  for (const auto& [n, type] : names())
    if (n == name) return type;
  throw Error(str_cat("unknown dtype '", name,
                      "' (use float32, float16, bfloat16, float64, int64, int32, int16, int8, "
                      "uint8 or bool)"));
}

}  // namespace strata
