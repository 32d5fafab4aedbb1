#include <strata/core/logging.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace strata {

std::shared_ptr<spdlog::logger> logger() {
  static std::shared_ptr<spdlog::logger> log = [] {
    auto existing = spdlog::get("strata");
    if (existing) return existing;
    auto l = spdlog::stderr_color_mt("strata");
    l->set_pattern("strata: %l: %v");
    return l;
  }();
  return log;
}

}  // namespace strata
