// ref_kernels.h — naive loop references for the tests only: direct convolution (forward, backward
// data, backward filter; groups, stride, padding, dilation) and a naive GEMM, all accumulating in
// double. Slow on purpose: written to be obviously right, never used by the engine.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/kernels/kernels.h"

namespace dfq::test::ref {

// Calls f(n, k, p, q, c, r, s, h, w) for every input tap of every output element that lands inside
// the image (padding taps skipped); c is the absolute input channel.
template <typename F>
void conv_taps(const Conv2dArgs& a, F f) {
  const int Cg = a.C / a.groups, Kg = a.K / a.groups;
  for (int n = 0; n < a.N; ++n)
    for (int k = 0; k < a.K; ++k)
      for (int p = 0; p < a.P; ++p)
        for (int q = 0; q < a.Q; ++q)
          for (int cg = 0; cg < Cg; ++cg)
            for (int r = 0; r < a.R; ++r)
              for (int s = 0; s < a.S; ++s) {
                int h = p * a.stride_h - a.pad_h + r * a.dil_h, w = q * a.stride_w - a.pad_w + s * a.dil_w;
                if (h < 0 || h >= a.H || w < 0 || w >= a.W) continue;
                f(n, k, p, q, (k / Kg) * Cg + cg, cg, r, s, h, w);
              }
}

inline int64_t x_at(const Conv2dArgs& a, int n, int c, int h, int w) { return ((int64_t(n) * a.C + c) * a.H + h) * a.W + w; }
inline int64_t y_at(const Conv2dArgs& a, int n, int k, int p, int q) { return ((int64_t(n) * a.K + k) * a.P + p) * a.Q + q; }
inline int64_t w_at(const Conv2dArgs& a, int k, int cg, int r, int s) {
  return ((int64_t(k) * (a.C / a.groups) + cg) * a.R + r) * a.S + s;
}

inline std::vector<float> conv2d_forward(const Conv2dArgs& a, const float* x, const float* w, const float* b) {
  std::vector<double> acc(size_t(a.N) * a.K * a.P * a.Q, 0.0);
  conv_taps(a, [&](int n, int k, int p, int q, int c, int cg, int r, int s, int h, int ww) {
    acc[y_at(a, n, k, p, q)] += double(x[x_at(a, n, c, h, ww)]) * w[w_at(a, k, cg, r, s)];
  });
  std::vector<float> y(acc.size());
  for (size_t i = 0; i < acc.size(); ++i) y[i] = float(acc[i] + (b ? b[(i / (size_t(a.P) * a.Q)) % a.K] : 0.0));
  return y;
}

inline std::vector<float> conv2d_backward_data(const Conv2dArgs& a, const float* gy, const float* w) {
  std::vector<double> acc(size_t(a.N) * a.C * a.H * a.W, 0.0);
  conv_taps(a, [&](int n, int k, int p, int q, int c, int cg, int r, int s, int h, int ww) {
    acc[x_at(a, n, c, h, ww)] += double(gy[y_at(a, n, k, p, q)]) * w[w_at(a, k, cg, r, s)];
  });
  return std::vector<float>(acc.begin(), acc.end());
}

// returns gw followed by gb (K)
inline std::vector<float> conv2d_backward_filter(const Conv2dArgs& a, const float* x, const float* gy) {
  size_t wn = size_t(a.K) * (a.C / a.groups) * a.R * a.S;
  std::vector<double> acc(wn + a.K, 0.0);
  conv_taps(a, [&](int n, int k, int p, int q, int c, int cg, int r, int s, int h, int ww) {
    acc[w_at(a, k, cg, r, s)] += double(gy[y_at(a, n, k, p, q)]) * x[x_at(a, n, c, h, ww)];
  });
  for (int n = 0; n < a.N; ++n)
    for (int k = 0; k < a.K; ++k)
      for (int p = 0; p < a.P; ++p)
        for (int q = 0; q < a.Q; ++q) acc[wn + k] += gy[y_at(a, n, k, p, q)];
  return std::vector<float>(acc.begin(), acc.end());
}

// C (M,N) = alpha op(A) op(B) + beta C, row-major, in double.
inline void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                 float beta, float* C, int ldc) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double s = 0;
      for (int k = 0; k < K; ++k) {
        double av = ta ? A[int64_t(k) * lda + i] : A[int64_t(i) * lda + k];
        double bv = tb ? B[int64_t(j) * ldb + k] : B[int64_t(k) * ldb + j];
        s += av * bv;
      }
      double c0 = beta == 0.f ? 0.0 : double(beta) * C[int64_t(i) * ldc + j];
      C[int64_t(i) * ldc + j] = float(alpha * s + c0);
    }
}

}  // namespace dfq::test::ref
