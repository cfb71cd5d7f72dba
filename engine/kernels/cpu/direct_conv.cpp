// direct_conv.cpp — convolution with few output channels (GDFQ's generator ends in a 64 -> 3 conv
// at 32x32) computed directly, without GEMM: im2col makes it a GEMM 3 rows high, which BLAS runs
// at ~10 GFLOP/s after writing a column matrix 9x the size of the input.
// Each input plane is copied into a zero-padded plane of row length Wp = W + 2 pad_w; the outputs
// are computed on the same Wp-wide grid (the last S-1 columns of each row are garbage, dropped at
// the end), so that a kernel tap (r, s) is one shift by r*Wp + s of the whole plane and every
// inner loop runs over ~P*Wp values, which the compiler vectorises. Forward: per image, up to three
// taps of a row added per pass over the accumulator. Filter gradient: per input channel, dot
// products of gy (laid on the same grid, zero in the garbage columns) with the shifted planes, three
// taps per pass, in float lanes per image, summed over images in double. Stride 1, no dilation, no groups;
// every value is summed in one fixed order, whatever the thread count.
#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/kernels/cpu/common.h"
#include "engine/kernels/cpu/shifted_conv.h"

namespace dfq::cpu::detail {
namespace {

struct PaddedGrid {
  int Wp, Hp;
  int64_t plane;  // Hp * Wp + S: the shifted reads of the garbage columns of the last rows stay inside
  int64_t L;      // P * Wp outputs on the grid
};
PaddedGrid grid_of(const Conv2dArgs& a) {
  PaddedGrid g;
  g.Wp = a.W + 2 * a.pad_w;
  g.Hp = a.H + 2 * a.pad_h;
  g.plane = int64_t(g.Hp) * g.Wp + a.S;
  g.L = int64_t(a.P) * g.Wp;
  return g;
}

// x's plane into the interior of buf (its border and tail are zero and never written).
inline void pad_plane(const Conv2dArgs& a, const PaddedGrid& g, const float* xc, float* buf) {
  for (int h = 0; h < a.H; ++h)
    std::memcpy(buf + int64_t(h + a.pad_h) * g.Wp + a.pad_w, xc + int64_t(h) * a.W, sizeof(float) * a.W);
}

// acc[i] += w[0] x[i] + w[1] x[i+1] + ... (m <= 3 taps, added left to right), i in [0, n)
inline void add_taps(float* __restrict acc, const float* __restrict x, const float* w, int m, int64_t n) {
  const float w0 = w[0], w1 = m > 1 ? w[1] : 0.f, w2 = m > 2 ? w[2] : 0.f;
  if (m == 3)
    for (int64_t i = 0; i < n; ++i) acc[i] = ((acc[i] + w0 * x[i]) + w1 * x[i + 1]) + w2 * x[i + 2];
  else if (m == 2)
    for (int64_t i = 0; i < n; ++i) acc[i] = (acc[i] + w0 * x[i]) + w1 * x[i + 1];
  else
    for (int64_t i = 0; i < n; ++i) acc[i] += w0 * x[i];
}

// out[j] += sum of g[i] * x[i + j], i in [0, n), for the m <= 3 taps j < m. Each tap sums in two
// 4-float lane sets (independent adds; the three taps share the loads of g), then in double.
inline void dot_taps(const float* __restrict g, const float* __restrict x, int64_t n, int m, double* out) {
  float l[3][2][4] = {};
  int64_t i = 0;
  if (m == 3) {
    for (; i + 8 <= n; i += 8)
      for (int h = 0; h < 2; ++h)
        for (int j = 0; j < 4; ++j) {
          const int64_t t = i + 4 * h + j;
          l[0][h][j] += g[t] * x[t];
          l[1][h][j] += g[t] * x[t + 1];
          l[2][h][j] += g[t] * x[t + 2];
        }
  } else {
    for (int tap = 0; tap < m; ++tap)
      for (int64_t k = 0; k + 8 <= n; k += 8)
        for (int h = 0; h < 2; ++h)
          for (int j = 0; j < 4; ++j) l[tap][h][j] += g[k + 4 * h + j] * x[k + 4 * h + j + tap];
    i = n - n % 8;
  }
  for (int tap = 0; tap < m; ++tap) {
    double s = 0;
    for (int64_t k = i; k < n; ++k) s += double(g[k]) * x[k + tap];
    for (int h = 0; h < 2; ++h)
      for (int j = 0; j < 4; ++j) s += l[tap][h][j];
    out[tap] += s;
  }
}
}  // namespace

bool direct_conv_applies(const Conv2dArgs& a) {
  return a.K <= 8 && a.groups == 1 && a.stride_h == 1 && a.stride_w == 1 && a.dil_h == 1 && a.dil_w == 1 &&
         a.pad_h < a.R && a.pad_w < a.S && a.P > 0 && a.Q > 0;
}

void direct_conv_forward(const Conv2dArgs& a, const float* x, const float* w, float* y) {
  const PaddedGrid g = grid_of(a);
  const int64_t RS = int64_t(a.R) * a.S, CRS = a.C * RS, HW = int64_t(a.H) * a.W;
#pragma omp parallel if (int64_t(a.N) * a.K * g.L * CRS > kParMin && a.N > 1)
  {
    std::vector<float> xp(size_t(g.plane), 0.f), acc(size_t(a.K * g.L));
#pragma omp for schedule(static)
    for (int n = 0; n < a.N; ++n) {
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int c = 0; c < a.C; ++c) {
        pad_plane(a, g, x + (int64_t(n) * a.C + c) * HW, xp.data());
        for (int k = 0; k < a.K; ++k)
          for (int r = 0; r < a.R; ++r)
            for (int s = 0; s < a.S; s += 3)
              add_taps(acc.data() + k * g.L, xp.data() + int64_t(r) * g.Wp + s, w + k * CRS + c * RS + r * a.S + s,
                       std::min(3, a.S - s), g.L);
      }
      for (int k = 0; k < a.K; ++k)
        for (int p = 0; p < a.P; ++p)
          std::memcpy(y + ((int64_t(n) * a.K + k) * a.P + p) * a.Q, acc.data() + k * g.L + int64_t(p) * g.Wp, sizeof(float) * a.Q);
    }
  }
}

void direct_conv_backward_filter(const Conv2dArgs& a, const float* x, const float* gy, float* gw) {
  const PaddedGrid g = grid_of(a);
  const int64_t RS = int64_t(a.R) * a.S, CRS = a.C * RS, HW = int64_t(a.H) * a.W, PQ = int64_t(a.P) * a.Q;
  // gy on the grid, zero in the garbage columns: (N, K, L)
  std::vector<float> gg(size_t(a.N) * a.K * g.L, 0.f);
  for (int64_t t = 0; t < int64_t(a.N) * a.K; ++t)
    for (int p = 0; p < a.P; ++p) std::memcpy(gg.data() + t * g.L + int64_t(p) * g.Wp, gy + t * PQ + int64_t(p) * a.Q, sizeof(float) * a.Q);
#pragma omp parallel if (int64_t(a.N) * a.K * g.L * CRS > kParMin && a.C > 1)
  {
    std::vector<float> xp(size_t(g.plane), 0.f);
    std::vector<double> total(static_cast<size_t>(a.K * RS));
#pragma omp for schedule(static)
    for (int c = 0; c < a.C; ++c) {
      std::fill(total.begin(), total.end(), 0.0);
      for (int n = 0; n < a.N; ++n) {
        pad_plane(a, g, x + (int64_t(n) * a.C + c) * HW, xp.data());
        for (int k = 0; k < a.K; ++k)
          for (int r = 0; r < a.R; ++r)
            for (int s = 0; s < a.S; s += 3)
              dot_taps(gg.data() + (int64_t(n) * a.K + k) * g.L, xp.data() + int64_t(r) * g.Wp + s, g.L, std::min(3, a.S - s),
                       total.data() + k * RS + r * a.S + s);
      }
      for (int k = 0; k < a.K; ++k)
        for (int64_t i = 0; i < RS; ++i) gw[k * CRS + c * RS + i] = static_cast<float>(total[size_t(k * RS + i)]);
    }
  }
}

}  // namespace dfq::cpu::detail
