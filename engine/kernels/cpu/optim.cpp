// optim.cpp — CPU reference fused optimizer steps (in place): SGD and Adam with torch.optim's
// semantics, exactly the formulas of kernels.h. Rules: element-wise in float (as PyTorch's float32
// parameters); the bias corrections 1 - beta^t are computed once in double, as PyTorch does in
// Python. Each element is independent, so the OpenMP split never changes a result.
#include <cmath>

#include "engine/kernels/cpu/common.h"
#include "engine/kernels/kernels.h"

namespace dfq::cpu {
using detail::kParMin;

void sgd_update(const SgdArgs& a, int64_t n, float* p, const float* g, float* momentum_buf) {
  const float lr = a.lr, mom = a.momentum, wd = a.weight_decay;
  if (mom == 0.f) {
#pragma omp parallel for schedule(static) if (n > kParMin)
    for (int64_t i = 0; i < n; ++i) p[i] -= lr * (g[i] + wd * p[i]);
    return;
  }
  float* buf = momentum_buf;
  const bool first = a.first_step, nesterov = a.nesterov;
#pragma omp parallel for schedule(static) if (n > kParMin)
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] + wd * p[i];
    const float b = first ? gi : mom * buf[i] + gi;
    buf[i] = b;
    const float d = nesterov ? gi + mom * b : b;
    p[i] -= lr * d;
  }
}

void adam_update(const AdamArgs& a, int64_t n, float* p, const float* g, float* m, float* v) {
  const double bc1 = 1.0 - std::pow(double(a.beta1), double(a.step));
  const double bc2 = 1.0 - std::pow(double(a.beta2), double(a.step));
  const float step_size = static_cast<float>(a.lr / bc1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float b1 = static_cast<float>(a.beta1), b2 = static_cast<float>(a.beta2), eps = static_cast<float>(a.eps),
              wd = static_cast<float>(a.weight_decay);
  const float omb1 = static_cast<float>(1.0 - a.beta1), omb2 = static_cast<float>(1.0 - a.beta2);  // PyTorch: alpha=1-beta
#pragma omp parallel for schedule(static) if (n > kParMin)
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] + wd * p[i];
    const float mi = b1 * m[i] + omb1 * gi;
    const float vi = b2 * v[i] + omb2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= step_size * mi / (std::sqrt(vi) / bc2_sqrt + eps);
  }
}

}  // namespace dfq::cpu
