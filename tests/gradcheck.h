// gradcheck.h — gradient checks by central finite differences, for the op tests.
//
// gradcheck(label, f, inputs) evaluates out = f(inputs), draws a fixed random tensor R of out's
// shape and compares, for every element of every input, the analytic gradient of
// L = sum(out * R) (one backward with R as the output gradient) against the numeric one
// (L(x + h) - L(x - h)) / (2h). L is summed in double on the host, so the only float32 error is the
// forward itself. Every input passed in is checked (it is made to require grad); tensors that
// must not be checked (labels, running statistics) are captured by f instead.
//
// Tolerance: h = 1e-3 on float32 inputs of magnitude ~1. The forward's rounding error is ~1e-7
// relative per output, so the difference quotient carries ~1e-7 * |L| / 2e-3 ~ 1e-4 absolute noise
// for |L| ~ 1..5, plus the O(h^2 f''') truncation term (~1e-6 relative for smooth ops). atol 2e-3
// and rtol 2e-2 stay well above that noise while a wrong backward (a missed factor, a wrong index,
// a dropped broadcast sum) is off by O(1). Inputs are kept away from kinks by the callers.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "tests/check.h"

namespace dfq::test {

struct GradcheckOptions {
  double eps = 1e-3;
  double atol = 2e-3, rtol = 2e-2;
  uint32_t seed = 12345;  // of R
};

using GradFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Host-side random inputs (std::mt19937, so they never depend on the kernels under test).
inline std::vector<float> host_uniform(int64_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}
inline Tensor uniform(const Shape& s, float lo, float hi, uint32_t seed) {
  return Tensor::from_vector(host_uniform(numel_of(s), lo, hi, seed), s);
}
// Values with |x| in [lo, hi] and a random sign: away from the kink at 0 (relu, abs, leaky_relu).
inline Tensor away_from_zero(const Shape& s, uint32_t seed, float lo = 0.2f, float hi = 1.f) {
  std::vector<float> v = host_uniform(numel_of(s), lo, hi, seed);
  std::mt19937 rng(seed + 1);
  for (auto& x : v)
    if (rng() & 1u) x = -x;
  return Tensor::from_vector(v, s);
}
// Distinct values step apart, in shuffled order, centred on 0 (max-pool ties are impossible as
// long as step >> 2 * eps).
inline Tensor distinct(const Shape& s, uint32_t seed, float step = 0.05f) {
  int64_t n = numel_of(s);
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), int64_t{0});
  std::shuffle(perm.begin(), perm.end(), std::mt19937(seed));
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = step * static_cast<float>(perm[i] - n / 2);
  return Tensor::from_vector(v, s);
}

// L = sum(out * R) in double.
inline double weighted_sum(const Tensor& out, const std::vector<float>& r) {
  std::vector<float> o = out.to_vector();
  REQUIRE(o.size() == r.size());
  double s = 0;
  for (size_t i = 0; i < o.size(); ++i) s += static_cast<double>(o[i]) * r[i];
  return s;
}

// Returns true when every gradient matched.
inline bool gradcheck(const std::string& label, const GradFn& f, std::vector<Tensor> inputs,
                      const GradcheckOptions& o = {}) {
  for (Tensor& t : inputs) {
    REQUIRE(t.dtype() == DType::F32);
    REQUIRE(t.is_contiguous());
    t.zero_grad();
    t.set_requires_grad(true);
  }
  // Analytic: one backward of out with R as its gradient.
  Tensor out = f(inputs);
  REQUIRE_MESSAGE(out.requires_grad(), label << ": output does not require grad");
  std::vector<float> r = host_uniform(out.numel(), -1.f, 1.f, o.seed);
  out.backward(Tensor::from_vector(r, out.shape()));
  std::vector<std::vector<float>> analytic;
  for (const Tensor& t : inputs) {
    Tensor g = t.grad();
    if (g.defined()) {
      REQUIRE_MESSAGE(g.shape() == t.shape(), label << ": gradient shape " << shape_str(g.shape()) << " vs " << shape_str(t.shape()));
      analytic.push_back(g.to_vector());
    } else {
      analytic.push_back(std::vector<float>(t.numel(), 0.f));  // no path from this input
    }
  }
  // Numeric: central differences, one element at a time, in no-grad mode.
  bool ok = true;
  NoGradGuard no_grad;
  for (size_t k = 0; k < inputs.size(); ++k) {
    float* p = inputs[k].data<float>();
    std::vector<float> numeric(inputs[k].numel());
    for (int64_t i = 0; i < inputs[k].numel(); ++i) {
      const float x0 = p[i];
      const float xp = static_cast<float>(x0 + o.eps), xm = static_cast<float>(x0 - o.eps);
      p[i] = xp;
      double lp = weighted_sum(f(inputs), r);
      p[i] = xm;
      double lm = weighted_sum(f(inputs), r);
      p[i] = x0;
      numeric[i] = static_cast<float>((lp - lm) / (static_cast<double>(xp) - static_cast<double>(xm)));
    }
    ok &= check_close(label + ": d/d input " + std::to_string(k), analytic[k], numeric, o.atol, o.rtol);
  }
  for (Tensor& t : inputs) t.zero_grad();
  return ok;
}

}  // namespace dfq::test
