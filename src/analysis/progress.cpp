#include <strata/analysis/progress.h>

#include <cmath>

namespace strata {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(std::llround(seconds));
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>((s % 3600) / 60));
  }
  return buf;
}

Progress::Progress(std::string label, int64_t total, bool enabled, std::string unit,
                   std::FILE* stream)
    : label_(std::move(label)),
      total_(total),
      enabled_(enabled),
      unit_(std::move(unit)),
      stream_(stream),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  if (done_ > 0) finish();
}

std::string Progress::line() const {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? done_ / elapsed : 0.0;
  char buf[256];
  if (total_ >= 0) {
    const double eta = rate > 0 ? (total_ - done_) / rate : NAN;
    std::snprintf(buf, sizeof buf, "%s %lld/%lld %s  %.1f %s/s  elapsed %s  ETA %s",
                  label_.c_str(), static_cast<long long>(done_), static_cast<long long>(total_),
                  unit_.c_str(), rate, unit_.c_str(), format_duration(elapsed).c_str(),
                  format_duration(eta).c_str());
  } else {
    std::snprintf(buf, sizeof buf, "%s %lld %s  %.1f %s/s  elapsed %s", label_.c_str(),
                  static_cast<long long>(done_), unit_.c_str(), rate, unit_.c_str(),
                  format_duration(elapsed).c_str());
  }
  return buf;
}

void Progress::draw(bool final) {
  if (!enabled_ || stream_ == nullptr) return;
  std::fprintf(stream_, "\r%s\033[K%s", line().c_str(), final ? "\n" : "");
  std::fflush(stream_);
}

void Progress::step(int64_t n) {
  done_ += n;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ >= std::chrono::milliseconds(200)) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  draw(true);
}

}  // namespace strata
