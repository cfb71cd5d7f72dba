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

// Names a phase of a program (GDFQ's "G forward", "Q backward", ...): while it lives, the kernels
// timed are tabled as "phase/kernel", and the phase's own wall time is a row "[phase]". Phases
// do not nest (an inner one would end the outer's naming early); off, it costs one branch.
class Phase {
 public:
  explicit Phase(const char* name);
  ~Phase();
  Phase(const Phase&) = delete;
  Phase& operator=(const Phase&) = delete;

 private:
  const char* name_;
  long long t0_ns_;
};

}  // namespace dfq::profile
