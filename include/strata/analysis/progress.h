// A progress line on stderr for long runs: count, rate and ETA, redrawn at most 5 times a second.
//
//   strata::Progress bar("capture", total_batches);
//   for (...) { ...; bar.step(); }
//   bar.finish();
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace strata {

/// Reports progress on a stream (stderr by default); silent when disabled.
class Progress {
 public:
  /// `total` < 0: unknown (no ETA). `unit` names what is counted ("batches").
  Progress(std::string label, int64_t total, bool enabled = true, std::string unit = "batches",
           std::FILE* stream = stderr);
  ~Progress();
  /// Counts `n` more units done.
  void step(int64_t n = 1);
  /// Draws the final line and ends it with a newline (once).
  void finish();
  int64_t done() const { return done_; }
  /// The line as it would be drawn now ("capture 12/100 batches 3.4 batches/s ETA 26s").
  std::string line() const;

 private:
  void draw(bool final);
  std::string label_;
  int64_t total_;
  bool enabled_;
  std::string unit_;
  std::FILE* stream_;
  int64_t done_ = 0;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

/// Seconds as "42s", "3m05s" or "1h02m".
std::string format_duration(double seconds);

}  // namespace strata
