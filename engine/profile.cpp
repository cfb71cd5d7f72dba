// profile.cpp — see profile.h.
#include "engine/profile.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace dfq::profile {
namespace {

long long now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Table {
  std::mutex mu;
  std::map<std::string, std::pair<double, long long>> rows;  // name -> (ms, calls)
  ~Table() {
    if (rows.empty()) return;
    std::vector<std::pair<std::string, std::pair<double, long long>>> v(rows.begin(), rows.end());
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
    double total = 0;
    for (const auto& r : v)
      if (r.first[0] != '[') total += r.second.first;  // phase rows ("[name]") hold kernels already counted
    std::fprintf(stderr, "\n[DFQ_PROFILE] CPU kernels, total %.1f ms (%% of it; [phase] rows: wall time of the phase)\n%-52s %12s %7s %10s\n",
                 total, "kernel", "ms", "%", "calls");
    for (const auto& r : v)
      std::fprintf(stderr, "%-52s %12.1f %6.1f%% %10lld\n", r.first.c_str(), r.second.first, 100.0 * r.second.first / total,
                   r.second.second);
  }
};

Table& table() {
  static Table t;
  return t;
}

}  // namespace

bool enabled() {
  static const bool on = [] {
    const char* e = std::getenv("DFQ_PROFILE");
    return e && *e && std::string(e) != "0";
  }();
  return on;
}

namespace {
const char* g_phase = nullptr;  // set by Phase, from the thread that runs the kernels

void add_row(const std::string& row_name, double ms) {
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  auto& row = t.rows[row_name];
  row.first += ms;
  row.second += 1;
}
}  // namespace

void add(const char* name, double ms) { add_row(g_phase ? std::string(g_phase) + "/" + name : std::string(name), ms); }

Phase::Phase(const char* name) : name_(name), t0_ns_(enabled() ? now_ns() : 0) {
  if (t0_ns_) g_phase = name;
}

Phase::~Phase() {
  if (!t0_ns_) return;
  g_phase = nullptr;
  add_row(std::string("[") + name_ + "]", (now_ns() - t0_ns_) * 1e-6);
}

Scope::Scope(const char* name) : name_(name), t0_ns_(enabled() ? now_ns() : 0) {}

Scope::~Scope() {
  if (t0_ns_) add(name_, (now_ns() - t0_ns_) * 1e-6);
}

}  // namespace dfq::profile
