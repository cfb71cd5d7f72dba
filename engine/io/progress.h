// progress.h — a one-line progress bar with rate and ETA for long loops, written to stderr
// ("\r" updates on a terminal; on a pipe, a line roughly every 10 %).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace dfq {

class Progress {
 public:
  Progress(std::string label, int64_t total);
  // Advance to `done` (absolute) with an optional status text such as "loss 0.41".
  void update(int64_t done, const std::string& status = "");
  void finish(const std::string& status = "");
  double elapsed_s() const;

 private:
  std::string label_;
  int64_t total_, last_pct_ = -1;
  bool tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
  void draw(int64_t done, const std::string& status, bool final);
};

std::string format_duration(double seconds);  // "1m05s", "12.3s"

}  // namespace dfq
