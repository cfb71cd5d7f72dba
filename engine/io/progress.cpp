// progress.cpp — see progress.h.
#include "engine/io/progress.h"

#include <unistd.h>

#include <cstdio>

namespace dfq {

std::string format_duration(double s) {
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.1fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, (int(s) % 3600) / 60);
  return buf;
}

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)), total_(total > 0 ? total : 1), tty_(isatty(STDERR_FILENO)),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(int64_t done, const std::string& status) { draw(done, status, false); }
void Progress::finish(const std::string& status) { draw(total_, status, true); }

void Progress::draw(int64_t done, const std::string& status, bool final) {
  auto now = std::chrono::steady_clock::now();
  int64_t pct = done * 100 / total_;
  if (finished_) return;
  if (!final) {
    if (tty_ && std::chrono::duration<double>(now - last_draw_).count() < 0.1) return;
    if (!tty_ && pct / 10 == last_pct_ / 10) return;
    if (!tty_ && pct >= 100) return;  // the final line comes from finish()
  }
  finished_ = final;
  last_draw_ = now;
  last_pct_ = pct;
  double el = elapsed_s();
  double eta = done > 0 ? el * (total_ - done) / done : 0;
  const int width = 28;
  int filled = static_cast<int>(width * done / total_);
  std::string bar(filled, '#');
  bar.append(width - filled, '.');
  std::fprintf(stderr, "%s%s [%s] %3lld%% %lld/%lld  %s elapsed, ETA %s  %s%s", tty_ ? "\r" : "", label_.c_str(),
               bar.c_str(), (long long)pct, (long long)done, (long long)total_, format_duration(el).c_str(),
               final ? "0s" : format_duration(eta).c_str(), status.c_str(), (final || !tty_) ? "\n" : "\x1b[K");
  std::fflush(stderr);
}

}  // namespace dfq
