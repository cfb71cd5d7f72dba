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
// running = (1 - m) * running + m * batch for channel c (running_var takes the unbiased var)
inline void update_running(float* running_mean, float* running_var, int c, double momentum, double mean, double var, int64_t M) {
  const double unbiased = M > 1 ? var * double(M) / double(M - 1) : var;
  running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mean);
  if (running_var) running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * unbiased);
}

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
    if (running_mean) update_running(running_mean, running_var, c, a.momentum, mean, var, M);
  }
}

void batch_norm_forward_eval(const BatchNormArgs& a, const float* x, const float* gamma, const float* beta,
                             const float* running_mean, const float* running_var, float* y) {
  const int64_t M = int64_t(a.N) * a.HW;
  const int64_t planes = int64_t(a.N) * a.C;
#pragma omp parallel for schedule(static) if (M * a.C > kParMin && planes > 1)
  for (int64_t t = 0; t < planes; ++t) {
    const int c = static_cast<int>(t % a.C);
    float scale, shift;
    bn_eval_affine(running_mean[c], running_var[c], a.eps, gamma ? gamma[c] : 1.f, beta ? beta[c] : 0.f, scale, shift);
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

// ---- conditional batch norm + leaky ReLU (GDFQ's generator), fused --------------------------------
// Per-plane sums run in kLanes float lanes (a fixed order the compiler vectorises; a plane is at
// most a few thousand values) and the planes add up in double; parallel over channels as above.
// The pre-activation z = x * scale + shift is recomputed in the backward from the same float
// scale / shift, so its sign (the leaky ReLU's branch) is the forward's bit for bit.
namespace dfq::cpu {
namespace {
constexpr int kLanes = 8;

struct CondAffine {
  float scale, shift;
};
inline CondAffine cond_affine(float mean, float invstd, float gamma, float beta) {
  return {static_cast<float>(double(gamma) * invstd), static_cast<float>(beta - double(mean) * invstd * gamma)};
}

// Sum of x and of (x - mean)^2 over one plane.
inline double plane_sum(const float* x, int n) {
  float acc[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += x[i + l];
  double s = 0;
  for (; i < n; ++i) s += x[i];
  for (float v : acc) s += v;
  return s;
}
inline double plane_sqdev(const float* x, int n, float mean) {
  float acc[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      float d = x[i + l] - mean;
      acc[l] += d * d;
    }
  double s = 0;
  for (; i < n; ++i) s += double(x[i] - mean) * (x[i] - mean);
  for (float v : acc) s += v;
  return s;
}

// gz = gy * leaky_relu'(z); returns sum(gz) and sum(gz * xhat) over one plane.
struct GradSums {
  double g, gx;
};
inline GradSums plane_grad_sums(const float* x, const float* gy, int n, CondAffine t, float slope, float mean, float invstd) {
  float sg[kLanes] = {}, sgx[kLanes] = {};
  auto term = [&](int i, float& a, float& b) {
    const float z = x[i] * t.scale + t.shift, g1 = gy[i], gs = g1 * slope;
    const float g = z > 0.f ? g1 : gs;  // both sides computed: a select the compiler vectorises
    a += g;
    b += g * ((x[i] - mean) * invstd);
  };
  int i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) term(i + l, sg[l], sgx[l]);
  float tg = 0.f, tgx = 0.f;
  for (; i < n; ++i) term(i, tg, tgx);
  GradSums r{tg, tgx};
  for (int l = 0; l < kLanes; ++l) {
    r.g += sg[l];
    r.gx += sgx[l];
  }
  return r;
}
}  // namespace

void cond_batch_norm_forward(const CondBnArgs& a, const float* x, const float* gamma, const float* beta,
                             float* running_mean, float* running_var, float* y, float* save_mean, float* save_invstd) {
  const int64_t M = int64_t(a.N) * a.HW, plane = int64_t(a.C) * a.HW;
  const float slope = a.slope;
#pragma omp parallel for schedule(static) if (M * a.C > kParMin && a.C > 1)
  for (int c = 0; c < a.C; ++c) {
    auto xp = [&](int n) { return x + n * plane + int64_t(c) * a.HW; };
    double mean, invstd;
    if (a.training) {
      double s = 0, q = 0;
      for (int n = 0; n < a.N; ++n) s += plane_sum(xp(n), a.HW);
      mean = M > 0 ? s / double(M) : 0.0;
      for (int n = 0; n < a.N; ++n) q += plane_sqdev(xp(n), a.HW, static_cast<float>(mean));
      const double var = M > 0 ? q / double(M) : 0.0;
      invstd = 1.0 / std::sqrt(var + a.eps);
      if (running_mean && M > 0) update_running(running_mean, running_var, c, a.momentum, mean, var, M);
    } else {
      mean = running_mean[c];
      invstd = 1.0 / std::sqrt(double(running_var[c]) + a.eps);
    }
    save_mean[c] = static_cast<float>(mean);
    save_invstd[c] = static_cast<float>(invstd);
    for (int n = 0; n < a.N; ++n) {
      const CondAffine t = cond_affine(save_mean[c], save_invstd[c], gamma[int64_t(n) * a.C + c], beta[int64_t(n) * a.C + c]);
      const float* xs = xp(n);
      float* ys = y + n * plane + int64_t(c) * a.HW;
      for (int i = 0; i < a.HW; ++i) {
        const float z = xs[i] * t.scale + t.shift, zs = z * slope;
        ys[i] = z > 0.f ? z : zs;
      }
    }
  }
}

void cond_batch_norm_backward(const CondBnArgs& a, const float* x, const float* gy, const float* gamma, const float* beta,
                              const float* save_mean, const float* save_invstd, float* gx, float* ggamma, float* gbeta) {
  const int64_t M = int64_t(a.N) * a.HW, plane = int64_t(a.C) * a.HW;
  const float slope = a.slope;
#pragma omp parallel for schedule(static) if (M * a.C > kParMin && a.C > 1)
  for (int c = 0; c < a.C; ++c) {
    const float mf = save_mean[c], isf = save_invstd[c];
    // pass 1: per (n, c) sums of gz (d loss / d pre-activation) and gz * xhat = the gradients of
    // beta and gamma; their gamma-weighted totals over n are the batch-statistics terms of the BN
    double A = 0, B = 0;
    for (int n = 0; n < a.N; ++n) {
      const int64_t nc = int64_t(n) * a.C + c, o = n * plane + int64_t(c) * a.HW;
      const GradSums s = plane_grad_sums(x + o, gy + o, a.HW, cond_affine(mf, isf, gamma[nc], beta[nc]), slope, mf, isf);
      if (ggamma) ggamma[nc] = static_cast<float>(s.gx);
      if (gbeta) gbeta[nc] = static_cast<float>(s.g);
      A += gamma[nc] * s.g;
      B += gamma[nc] * s.gx;
    }
    if (!gx) continue;
    // pass 2: gx = invstd * (gamma * gz - A / M - xhat * B / M) (training), invstd * gamma * gz (eval)
    const float cA = a.training && M > 0 ? static_cast<float>(isf * A / double(M)) : 0.f;
    const float cB = a.training && M > 0 ? static_cast<float>(isf * B / double(M)) : 0.f;
    for (int n = 0; n < a.N; ++n) {
      const int64_t nc = int64_t(n) * a.C + c, o = n * plane + int64_t(c) * a.HW;
      const CondAffine t = cond_affine(mf, isf, gamma[nc], beta[nc]);
      const float k = static_cast<float>(double(gamma[nc]) * isf);
      const float *xs = x + o, *gs = gy + o;
      float* gxs = gx + o;
      for (int i = 0; i < a.HW; ++i) {
        const float z = xs[i] * t.scale + t.shift, g1 = gs[i], g2 = g1 * slope;
        const float g = z > 0.f ? g1 : g2;
        gxs[i] = k * g - cA - ((xs[i] - mf) * isf) * cB;
      }
    }
  }
}

}  // namespace dfq::cpu
