// pool.cpp — CPU reference pooling and resampling: max / avg pooling (PyTorch, ceil_mode=false),
// adaptive average pooling, nearest 2x up-sampling; forward and backward.
// Rules: every loop is parallel over (n, c) planes; backward kernels zero their plane and then
// accumulate into it in a fixed order, so results are deterministic. Max pooling: padding never
// wins (windows are clipped to the image), NaN propagates (as PyTorch), idx = h*W + w in the plane.
// Avg pooling divides by R*S always (count_include_pad=true).
#include <algorithm>
#include <cmath>

#include "engine/kernels/cpu/common.h"
#include "engine/kernels/kernels.h"

namespace dfq::cpu {
using detail::kParMin;

void max_pool2d_forward(const Pool2dArgs& a, const float* x, float* y, int32_t* idx) {
  const int64_t planes = int64_t(a.N) * a.C, HW = int64_t(a.H) * a.W, PQ = int64_t(a.P) * a.Q;
#pragma omp parallel for schedule(static) if (planes * PQ * a.R * a.S > kParMin && planes > 1)
  for (int64_t t = 0; t < planes; ++t) {
    const float* xp = x + t * HW;
    for (int p = 0; p < a.P; ++p) {
      int h0 = p * a.stride_h - a.pad_h, h1 = std::min(h0 + a.R, a.H);
      h0 = std::max(h0, 0);
      for (int q = 0; q < a.Q; ++q) {
        int w0 = q * a.stride_w - a.pad_w, w1 = std::min(w0 + a.S, a.W);
        w0 = std::max(w0, 0);
        float best = -INFINITY;
        int32_t bi = h0 * a.W + w0;
        for (int h = h0; h < h1; ++h)
          for (int w = w0; w < w1; ++w) {
            float v = xp[h * a.W + w];
            if (v > best || std::isnan(v)) {
              best = v;
              bi = h * a.W + w;
            }
          }
        y[t * PQ + p * a.Q + q] = best;
        idx[t * PQ + p * a.Q + q] = bi;
      }
    }
  }
}

void max_pool2d_backward(const Pool2dArgs& a, const float* gy, const int32_t* idx, float* gx) {
  const int64_t planes = int64_t(a.N) * a.C, HW = int64_t(a.H) * a.W, PQ = int64_t(a.P) * a.Q;
#pragma omp parallel for schedule(static) if (planes * (HW + PQ) > kParMin && planes > 1)
  for (int64_t t = 0; t < planes; ++t) {
    float* g = gx + t * HW;
    std::fill(g, g + HW, 0.f);
    for (int64_t i = 0; i < PQ; ++i) {
      int32_t j = idx[t * PQ + i];
      if (j >= 0 && j < HW) g[j] += gy[t * PQ + i];
    }
  }
}

void avg_pool2d_forward(const Pool2dArgs& a, const float* x, float* y) {
  const int64_t planes = int64_t(a.N) * a.C, HW = int64_t(a.H) * a.W, PQ = int64_t(a.P) * a.Q;
  const float inv = 1.f / static_cast<float>(a.R * a.S);
#pragma omp parallel for schedule(static) if (planes * PQ * a.R * a.S > kParMin && planes > 1)
  for (int64_t t = 0; t < planes; ++t) {
    const float* xp = x + t * HW;
    for (int p = 0; p < a.P; ++p) {
      int h0 = std::max(p * a.stride_h - a.pad_h, 0), h1 = std::min(p * a.stride_h - a.pad_h + a.R, a.H);
      for (int q = 0; q < a.Q; ++q) {
        int w0 = std::max(q * a.stride_w - a.pad_w, 0), w1 = std::min(q * a.stride_w - a.pad_w + a.S, a.W);
        float s = 0.f;
        for (int h = h0; h < h1; ++h)
          for (int w = w0; w < w1; ++w) s += xp[h * a.W + w];
        y[t * PQ + p * a.Q + q] = s * inv;
      }
    }
  }
}

void avg_pool2d_backward(const Pool2dArgs& a, const float* gy, float* gx) {
  const int64_t planes = int64_t(a.N) * a.C, HW = int64_t(a.H) * a.W, PQ = int64_t(a.P) * a.Q;
  const float inv = 1.f / static_cast<float>(a.R * a.S);
#pragma omp parallel for schedule(static) if (planes * PQ * a.R * a.S > kParMin && planes > 1)
  for (int64_t t = 0; t < planes; ++t) {
    float* g = gx + t * HW;
    std::fill(g, g + HW, 0.f);
    for (int p = 0; p < a.P; ++p) {
      int h0 = std::max(p * a.stride_h - a.pad_h, 0), h1 = std::min(p * a.stride_h - a.pad_h + a.R, a.H);
      for (int q = 0; q < a.Q; ++q) {
        int w0 = std::max(q * a.stride_w - a.pad_w, 0), w1 = std::min(q * a.stride_w - a.pad_w + a.S, a.W);
        float v = gy[t * PQ + p * a.Q + q] * inv;
        for (int h = h0; h < h1; ++h)
          for (int w = w0; w < w1; ++w) g[h * a.W + w] += v;
      }
    }
  }
}

namespace {
// PyTorch's adaptive window [start, end) of output cell p over an input length L split into P.
inline int adaptive_start(int p, int L, int P) { return static_cast<int>((int64_t(p) * L) / P); }
inline int adaptive_end(int p, int L, int P) { return static_cast<int>(((int64_t(p) + 1) * L + P - 1) / P); }
}  // namespace

void adaptive_avg_pool2d_forward(int NC, int H, int W, int P, int Q, const float* x, float* y) {
  const int64_t HW = int64_t(H) * W, PQ = int64_t(P) * Q;
#pragma omp parallel for schedule(static) if (int64_t(NC) * HW > kParMin && NC > 1)
  for (int t = 0; t < NC; ++t) {
    const float* xp = x + t * HW;
    for (int p = 0; p < P; ++p) {
      int h0 = adaptive_start(p, H, P), h1 = adaptive_end(p, H, P);
      for (int q = 0; q < Q; ++q) {
        int w0 = adaptive_start(q, W, Q), w1 = adaptive_end(q, W, Q);
        float s = 0.f;
        for (int h = h0; h < h1; ++h)
          for (int w = w0; w < w1; ++w) s += xp[h * W + w];
        y[t * PQ + p * Q + q] = s / static_cast<float>((h1 - h0) * (w1 - w0));
      }
    }
  }
}

void adaptive_avg_pool2d_backward(int NC, int H, int W, int P, int Q, const float* gy, float* gx) {
  const int64_t HW = int64_t(H) * W, PQ = int64_t(P) * Q;
#pragma omp parallel for schedule(static) if (int64_t(NC) * HW > kParMin && NC > 1)
  for (int t = 0; t < NC; ++t) {
    float* g = gx + t * HW;
    std::fill(g, g + HW, 0.f);
    for (int p = 0; p < P; ++p) {
      int h0 = adaptive_start(p, H, P), h1 = adaptive_end(p, H, P);
      for (int q = 0; q < Q; ++q) {
        int w0 = adaptive_start(q, W, Q), w1 = adaptive_end(q, W, Q);
        float v = gy[t * PQ + p * Q + q] / static_cast<float>((h1 - h0) * (w1 - w0));
        for (int h = h0; h < h1; ++h)
          for (int w = w0; w < w1; ++w) g[h * W + w] += v;
      }
    }
  }
}

void upsample_nearest2x_forward(int NC, int H, int W, const float* x, float* y) {
  const int64_t rows = int64_t(NC) * H;
#pragma omp parallel for schedule(static) if (rows * W * 4 > kParMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * W;
    float* y0 = y + r * 4 * W;  // output rows 2h and 2h+1 of plane r / H
    float* y1 = y0 + 2 * W;
    for (int w = 0; w < W; ++w) y0[2 * w] = y0[2 * w + 1] = xr[w];
    std::copy(y0, y0 + 2 * W, y1);
  }
}

void upsample_nearest2x_backward(int NC, int H, int W, const float* gy, float* gx) {
  const int64_t rows = int64_t(NC) * H;
#pragma omp parallel for schedule(static) if (rows * W * 4 > kParMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const float* g0 = gy + r * 4 * W;
    const float* g1 = g0 + 2 * W;
    float* gr = gx + r * W;
    for (int w = 0; w < W; ++w) gr[w] = (g0[2 * w] + g0[2 * w + 1]) + (g1[2 * w] + g1[2 * w + 1]);
  }
}

}  // namespace dfq::cpu
