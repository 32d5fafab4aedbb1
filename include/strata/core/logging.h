// strata logs through its own named spdlog logger ("strata"), never the default one, so the host
// program keeps control of its logs. The logger writes to stderr; set its level or replace its sinks.
#pragma once

#include <memory>

namespace spdlog {
class logger;
}

namespace strata {

/// The "strata" logger (created on first use, stderr, level info).
std::shared_ptr<spdlog::logger> logger();

}  // namespace strata
