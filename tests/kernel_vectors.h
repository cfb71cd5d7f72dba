// kernel_vectors.h — random vectors and guarded output buffers for the kernel tests
// (test_cpu_kernels.cpp, test_cpu_conv.cpp).
#pragma once
#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tests/check.h"

namespace dfq::test {

inline std::vector<float> rand_vec(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

constexpr float kGuard = 12345.f;  // written after every output to catch out-of-bounds writes
constexpr int kGuardN = 16;

inline std::vector<float> guarded(size_t n, float fill = -7.f) {
  std::vector<float> v(n + kGuardN, kGuard);
  std::fill(v.begin(), v.begin() + n, fill);
  return v;
}
inline void check_guard(const std::string& label, const std::vector<float>& v, size_t n) {
  bool ok = true;
  for (size_t i = n; i < v.size(); ++i) ok &= v[i] == kGuard;
  if (!ok) FAIL_CHECK(label << ": write past the end of the output");
}
inline std::vector<float> head(const std::vector<float>& v, size_t n) { return std::vector<float>(v.begin(), v.begin() + n); }
// A guarded output against its reference: the first want.size() values close, the guard intact.
inline void check_guarded(const std::string& label, const std::vector<float>& got, const std::vector<float>& want,
                          double atol, double rtol) {
  check_close(label, head(got, want.size()), want, atol, rtol);
  check_guard(label, got, want.size());
}

}  // namespace dfq::test
