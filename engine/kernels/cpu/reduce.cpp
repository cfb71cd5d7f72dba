// reduce.cpp — CPU reference reductions: reduce_sum over any set of dims, channel_mean_var; and
// channel_affine (the per-channel map that channel_moments' backward is).
// Rules: accumulate in double; parallelise over output elements (or blocks of them), never over
// the reduced axis, and visit the reduced elements in one fixed order, so results are bit-for-bit
// the same on every run and for any thread count.
#include <algorithm>
#include <vector>

#include "engine/kernels/cpu/common.h"
#include "engine/kernels/kernels.h"
#include "engine/kernels/shape_util.h"

namespace dfq::cpu {
using detail::kParMin;

void reduce_sum(const ReduceArgs& a, const float* x, float* y) {
  // Merge the dims into alternating groups of kept / reduced dims (size-1 dims dropped).
  int64_t size[kMaxDims], stride[kMaxDims];
  bool red[kMaxDims];
  int m = 0;
  int64_t total = 1;
  for (int d = 0; d < a.ndim; ++d) total *= a.shape[d];
  int64_t out_n = 1;
  for (int d = 0; d < a.ndim; ++d)
    if (!a.reduce[d]) out_n *= a.shape[d];
  if (out_n == 0) return;
  if (total == 0) {  // sum over an empty set
    std::fill(y, y + out_n, 0.f);
    return;
  }
  m = reduce_groups(a, size, red, stride);
  // Kept and reduced groups, outer to inner.
  int64_t ksize[kMaxDims], kstride[kMaxDims], rsize[kMaxDims], rstride[kMaxDims];
  int nk = 0, nr = 0;
  for (int g = 0; g < m; ++g) {
    if (red[g]) {
      rsize[nr] = size[g];
      rstride[nr++] = stride[g];
    } else {
      ksize[nk] = size[g];
      kstride[nk++] = stride[g];
    }
  }
  if (nr == 0) {  // nothing reduced: a copy
    std::copy(x, x + total, y);
    return;
  }
  if (m > 0 && red[m - 1]) {
    // Innermost group reduced: each output sums (outer reduced combos) x (contiguous run of L).
    int64_t L = rsize[nr - 1];
    int64_t combos = detail::prod(nr - 1, rsize);
#pragma omp parallel for schedule(static) if (total > kParMin && out_n > 1)
    for (int64_t o = 0; o < out_n; ++o) {
      int64_t base = detail::strided_offset(o, nk, ksize, kstride);
      double acc = 0;
      for (int64_t c = 0; c < combos; ++c) {
        const float* p = x + base + detail::strided_offset(c, nr - 1, rsize, rstride);
        for (int64_t i = 0; i < L; ++i) acc += p[i];
      }
      y[o] = static_cast<float>(acc);
    }
  } else {
    // Innermost group kept (length L, contiguous): blocks of outputs accumulate rows in order.
    constexpr int64_t kBlock = 256;
    int64_t L = ksize[nk - 1];
    int64_t outer = out_n / L, nblk = (L + kBlock - 1) / kBlock;
    int64_t combos = detail::prod(nr, rsize);
#pragma omp parallel for schedule(static) if (total > kParMin && outer * nblk > 1)
    for (int64_t t = 0; t < outer * nblk; ++t) {
      int64_t o = t / nblk, j0 = (t % nblk) * kBlock, len = std::min(kBlock, L - j0);
      int64_t base = detail::strided_offset(o, nk - 1, ksize, kstride) + j0;
      double acc[kBlock];
      std::fill(acc, acc + len, 0.0);
      for (int64_t c = 0; c < combos; ++c) {
        const float* p = x + base + detail::strided_offset(c, nr, rsize, rstride);
        for (int64_t i = 0; i < len; ++i) acc[i] += p[i];
      }
      float* yo = y + o * L + j0;
      for (int64_t i = 0; i < len; ++i) yo[i] = static_cast<float>(acc[i]);
    }
  }
}

void channel_mean_var(int N, int C, int HW, const float* x, float* mean, float* var) {
  if (C <= 0) return;
  int64_t M = static_cast<int64_t>(N) * HW;
  int64_t plane = static_cast<int64_t>(C) * HW;
  // Two passes in double: mean, then the mean of squared deviations (biased).
#pragma omp parallel for schedule(static) if (M * C > kParMin && C > 1)
  for (int c = 0; c < C; ++c) {
    double s = 0;
    for (int n = 0; n < N; ++n) {
      const float* p = x + n * plane + static_cast<int64_t>(c) * HW;
      for (int i = 0; i < HW; ++i) s += p[i];
    }
    double mu = M > 0 ? s / M : 0.0;
    double q = 0;
    for (int n = 0; n < N; ++n) {
      const float* p = x + n * plane + static_cast<int64_t>(c) * HW;
      for (int i = 0; i < HW; ++i) {
        double d = p[i] - mu;
        q += d * d;
      }
    }
    mean[c] = static_cast<float>(mu);
    var[c] = static_cast<float>(M > 0 ? q / M : 0.0);
  }
}

void channel_affine(int N, int C, int HW, const float* x, const float* scale, const float* shift, float* y) {
  const int64_t planes = int64_t(N) * C;
#pragma omp parallel for schedule(static) if (planes * HW > kParMin && planes > 1)
  for (int64_t t = 0; t < planes; ++t) {
    const float a = scale[t % C], b = shift[t % C];
    const float* xp = x + t * HW;
    float* yp = y + t * HW;
    for (int i = 0; i < HW; ++i) yp[i] = xp[i] * a + b;
  }
}

}  // namespace dfq::cpu
