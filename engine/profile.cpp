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
    for (const auto& r : v) total += r.second.first;
    std::fprintf(stderr, "\n[DFQ_PROFILE] CPU kernels, total %.1f ms\n%-36s %12s %7s %10s\n", total, "kernel", "ms", "%", "calls");
    for (const auto& r : v)
      std::fprintf(stderr, "%-36s %12.1f %6.1f%% %10lld\n", r.first.c_str(), r.second.first, 100.0 * r.second.first / total,
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

void add(const char* name, double ms) {
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  auto& row = t.rows[name];
  row.first += ms;
  row.second += 1;
}

Scope::Scope(const char* name) : name_(name), t0_ns_(enabled() ? now_ns() : 0) {}

Scope::~Scope() {
  if (t0_ns_) add(name_, (now_ns() - t0_ns_) * 1e-6);
}

}  // namespace dfq::profile
