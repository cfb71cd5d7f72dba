// batch_norm.cpp — CPU reference batch norm over (N, C, HW): train / eval forward and backward.
// Rules: per-channel statistics and gradient sums accumulate in double, two passes (mean, then
// squared deviations); loops are parallel over channels only, so results are deterministic.
// Running stats (train): running = (1 - m) * running + m * batch, running_var with the unbiased
// var (M/(M-1), M = N*HW; the biased var when M == 1). An empty batch (M == 0) leaves the running
// stats alone, writes save_mean = 0, save_invstd = 1/sqrt(eps). gamma/beta null = 1/0.
#include <cmath>

#include "engine/kernels/cpu/common.h"
#include "engine/kernels/kernels.h"

namespace dfq::cpu {
using detail::kParMin;

namespace {
// Applies f(ptr to HW floats of (n, c), n) over every image of channel c.
template <typename F>
inline void for_channel(const BatchNormArgs& a, int c, F f) {
  const int64_t plane = int64_t(a.C) * a.HW;
  for (int n = 0; n < a.N; ++n) f(n * plane + int64_t(c) * a.HW);
}
}  // namespace

void batch_norm_forward_train(const BatchNormArgs& a, const float* x, const float* gamma, const float* beta,
                              float* running_mean, float* running_var, float* y, float* save_mean,
                              float* save_invstd) {
  const int64_t M = int64_t(a.N) * a.HW;
#pragma omp parallel for schedule(static) if (M * a.C > kParMin && a.C > 1)
  for (int c = 0; c < a.C; ++c) {
    if (M == 0) {
      save_mean[c] = 0.f;
      save_invstd[c] = static_cast<float>(1.0 / std::sqrt(double(a.eps)));
      continue;
    }
    double s = 0;
    for_channel(a, c, [&](int64_t o) {
      for (int i = 0; i < a.HW; ++i) s += x[o + i];
    });
    const double mean = s / M;
    double q = 0;
    for_channel(a, c, [&](int64_t o) {
      for (int i = 0; i < a.HW; ++i) {
        double d = x[o + i] - mean;
        q += d * d;
      }
    });
    const double var = q / M;
    const double invstd = 1.0 / std::sqrt(var + a.eps);
    const float g = gamma ? gamma[c] : 1.f, b = beta ? beta[c] : 0.f;
    // y = x * scale + shift, with scale = invstd * gamma, shift = beta - mean * scale
    const float scale = static_cast<float>(invstd * g);
    const float shift = static_cast<float>(b - mean * invstd * g);
    for_channel(a, c, [&](int64_t o) {
      for (int i = 0; i < a.HW; ++i) y[o + i] = x[o + i] * scale + shift;
    });
    save_mean[c] = static_cast<float>(mean);
    save_invstd[c] = static_cast<float>(invstd);
    if (running_mean) {
      const double m = a.momentum;
      const double unbiased = M > 1 ? var * double(M) / double(M - 1) : var;
      running_mean[c] = static_cast<float>((1.0 - m) * running_mean[c] + m * mean);
      if (running_var) running_var[c] = static_cast<float>((1.0 - m) * running_var[c] + m * unbiased);
    }
  }
}

void batch_norm_forward_eval(const BatchNormArgs& a, const float* x, const float* gamma, const float* beta,
                             const float* running_mean, const float* running_var, float* y) {
  const int64_t M = int64_t(a.N) * a.HW;
  const int64_t planes = int64_t(a.N) * a.C;
#pragma omp parallel for schedule(static) if (M * a.C > kParMin && planes > 1)
  for (int64_t t = 0; t < planes; ++t) {
    const int c = static_cast<int>(t % a.C);
    const double invstd = 1.0 / std::sqrt(double(running_var[c]) + a.eps);
    const float g = gamma ? gamma[c] : 1.f, b = beta ? beta[c] : 0.f;
    const float scale = static_cast<float>(invstd * g);
    const float shift = static_cast<float>(b - running_mean[c] * invstd * g);
    const float* xp = x + t * a.HW;
    float* yp = y + t * a.HW;
    for (int i = 0; i < a.HW; ++i) yp[i] = xp[i] * scale + shift;
  }
}

void batch_norm_backward_train(const BatchNormArgs& a, const float* x, const float* gy, const float* gamma,
                               const float* save_mean, const float* save_invstd, float* gx, float* ggamma,
                               float* gbeta) {
  const int64_t M = int64_t(a.N) * a.HW;
#pragma omp parallel for schedule(static) if (M * a.C > kParMin && a.C > 1)
  for (int c = 0; c < a.C; ++c) {
    const double mean = save_mean[c], invstd = save_invstd[c];
    double sg = 0, sgx = 0;  // sum(gy), sum(gy * xhat)
    for_channel(a, c, [&](int64_t o) {
      for (int i = 0; i < a.HW; ++i) {
        sg += gy[o + i];
        sgx += gy[o + i] * ((x[o + i] - mean) * invstd);
      }
    });
    if (ggamma) ggamma[c] = static_cast<float>(sgx);
    if (gbeta) gbeta[c] = static_cast<float>(sg);
    if (!gx || M == 0) continue;
    // gx = gamma*invstd/M * (M*gy - sum(gy) - xhat*sum(gy*xhat))
    //    = k * gy - k * (mean_gy + xhat * mean_gyx), k = gamma*invstd
    const double k = (gamma ? gamma[c] : 1.0) * invstd;
    const double mg = sg / M, mgx = sgx / M;
    for_channel(a, c, [&](int64_t o) {
      for (int i = 0; i < a.HW; ++i) {
        double xhat = (x[o + i] - mean) * invstd;
        gx[o + i] = static_cast<float>(k * (gy[o + i] - mg - xhat * mgx));
      }
    });
  }
}

void batch_norm_backward_eval(const BatchNormArgs& a, const float* x, const float* gy, const float* gamma,
                              const float* running_mean, const float* running_var, float* gx, float* ggamma,
                              float* gbeta) {
  const int64_t M = int64_t(a.N) * a.HW;
#pragma omp parallel for schedule(static) if (M * a.C > kParMin && a.C > 1)
  for (int c = 0; c < a.C; ++c) {
    const double mean = running_mean[c], invstd = 1.0 / std::sqrt(double(running_var[c]) + a.eps);
    if (ggamma || gbeta) {
      double sg = 0, sgx = 0;
      for_channel(a, c, [&](int64_t o) {
        for (int i = 0; i < a.HW; ++i) {
          sg += gy[o + i];
          sgx += gy[o + i] * ((x[o + i] - mean) * invstd);
        }
      });
      if (ggamma) ggamma[c] = static_cast<float>(sgx);
      if (gbeta) gbeta[c] = static_cast<float>(sg);
    }
    if (gx) {
      const float k = static_cast<float>((gamma ? gamma[c] : 1.0) * invstd);
      for_channel(a, c, [&](int64_t o) {
        for (int i = 0; i < a.HW; ++i) gx[o + i] = gy[o + i] * k;
      });
    }
  }
}

}  // namespace dfq::cpu
