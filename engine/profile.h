// profile.h — per-kernel wall time on the CPU, for finding where a program spends its time:
// DFQ_PROFILE=1 in the environment makes every CPU kernel called through DFQ_DISPATCH (and the
// CPU-only fused ones) add its time to a table that is printed to stderr when the program exits,
// heaviest first. Off (the default) it costs one predictable branch per kernel call.
#pragma once

namespace dfq::profile {

bool enabled();
// Adds `ms` to kernel `name` (a string literal: kept by pointer).
void add(const char* name, double ms);

// Times its scope when profiling is on.
class Scope {
 public:
  explicit Scope(const char* name);
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  const char* name_;
  long long t0_ns_;
};

}  // namespace dfq::profile
