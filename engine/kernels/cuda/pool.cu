// pool.cu — CUDA twins of engine/kernels/cpu/pool.cpp: max / avg pooling (PyTorch, ceil_mode=false,
// count_include_pad=true), adaptive average pooling, nearest 2x up-sampling; forward and backward.
// Rules: forward kernels run one thread per output element and visit the window in the CPU's order
// (so max pooling picks the same index, NaN wins and stops the scan). Backward kernels run one
// thread per INPUT element and gather the outputs whose window holds it, in ascending (p, q) order:
// no atomics, deterministic, every gx element written (=).
#include "engine/kernels/cuda/common.cuh"

namespace dfq::cuda {
namespace {

__global__ void max_pool_fwd_kernel(Pool2dArgs a, int64_t total, const float* x, float* y, int32_t* idx) {
  const int64_t PQ = int64_t(a.P) * a.Q, HW = int64_t(a.H) * a.W;
  DFQ_GRID_LOOP(o, total) {
    const int64_t t = o / PQ;
    const int pq = static_cast<int>(o - t * PQ), p = pq / a.Q, q = pq - p * a.Q;
    const float* xp = x + t * HW;
    int h0 = p * a.stride_h - a.pad_h, h1 = min(h0 + a.R, a.H);
    h0 = max(h0, 0);
    int w0 = q * a.stride_w - a.pad_w, w1 = min(w0 + a.S, a.W);
    w0 = max(w0, 0);
    float best = -INFINITY;
    int32_t bi = h0 * a.W + w0;
    bool stop = false;
    for (int h = h0; h < h1 && !stop; ++h)
      for (int w = w0; w < w1; ++w) {
        const float v = xp[h * a.W + w];
        if (v > best || isnan(v)) {
          best = v;
          bi = h * a.W + w;
          if (isnan(v)) {
            stop = true;
            break;
          }
        }
      }
    y[o] = best;
    idx[o] = bi;
  }
}

// Output rows p whose window [p*stride - pad, p*stride - pad + R) holds input row h: [lo, hi).
__device__ __forceinline__ void covering(int h, int R, int stride, int pad, int P, int* lo, int* hi) {
  const int hp = h + pad;
  *lo = hp < R ? 0 : (hp - R) / stride + 1;
  *hi = min(hp / stride + 1, P);
}

__global__ void max_pool_bwd_kernel(Pool2dArgs a, int64_t total, const float* gy, const int32_t* idx, float* gx) {
  const int64_t PQ = int64_t(a.P) * a.Q, HW = int64_t(a.H) * a.W;
  DFQ_GRID_LOOP(i, total) {
    const int64_t t = i / HW;
    const int hw = static_cast<int>(i - t * HW), h = hw / a.W, w = hw - h * a.W;
    int p0, p1, q0, q1;
    covering(h, a.R, a.stride_h, a.pad_h, a.P, &p0, &p1);
    covering(w, a.S, a.stride_w, a.pad_w, a.Q, &q0, &q1);
    float s = 0.f;
    for (int p = p0; p < p1; ++p)
      for (int q = q0; q < q1; ++q) {
        const int64_t o = t * PQ + int64_t(p) * a.Q + q;
        if (idx[o] == hw) s += gy[o];
      }
    gx[i] = s;
  }
}

__global__ void avg_pool_fwd_kernel(Pool2dArgs a, int64_t total, float inv, const float* x, float* y) {
  const int64_t PQ = int64_t(a.P) * a.Q, HW = int64_t(a.H) * a.W;
  DFQ_GRID_LOOP(o, total) {
    const int64_t t = o / PQ;
    const int pq = static_cast<int>(o - t * PQ), p = pq / a.Q, q = pq - p * a.Q;
    const float* xp = x + t * HW;
    const int h0 = max(p * a.stride_h - a.pad_h, 0), h1 = min(p * a.stride_h - a.pad_h + a.R, a.H);
    const int w0 = max(q * a.stride_w - a.pad_w, 0), w1 = min(q * a.stride_w - a.pad_w + a.S, a.W);
    float s = 0.f;
    for (int h = h0; h < h1; ++h)
      for (int w = w0; w < w1; ++w) s += xp[h * a.W + w];
    y[o] = s * inv;
  }
}

__global__ void avg_pool_bwd_kernel(Pool2dArgs a, int64_t total, float inv, const float* gy, float* gx) {
  const int64_t PQ = int64_t(a.P) * a.Q, HW = int64_t(a.H) * a.W;
  DFQ_GRID_LOOP(i, total) {
    const int64_t t = i / HW;
    const int hw = static_cast<int>(i - t * HW), h = hw / a.W, w = hw - h * a.W;
    int p0, p1, q0, q1;
    covering(h, a.R, a.stride_h, a.pad_h, a.P, &p0, &p1);
    covering(w, a.S, a.stride_w, a.pad_w, a.Q, &q0, &q1);
    float s = 0.f;
    for (int p = p0; p < p1; ++p)
      for (int q = q0; q < q1; ++q) s += gy[t * PQ + int64_t(p) * a.Q + q] * inv;
    gx[i] = s;
  }
}

// PyTorch's adaptive window [start, end) of output cell p over an input length L split into P.
__device__ __forceinline__ int ad_start(int p, int L, int P) { return static_cast<int>((int64_t(p) * L) / P); }
__device__ __forceinline__ int ad_end(int p, int L, int P) {
  return static_cast<int>(((int64_t(p) + 1) * L + P - 1) / P);
}

__global__ void adaptive_fwd_kernel(int64_t total, int H, int W, int P, int Q, const float* x, float* y) {
  const int64_t PQ = int64_t(P) * Q, HW = int64_t(H) * W;
  DFQ_GRID_LOOP(o, total) {
    const int64_t t = o / PQ;
    const int pq = static_cast<int>(o - t * PQ), p = pq / Q, q = pq - p * Q;
    const int h0 = ad_start(p, H, P), h1 = ad_end(p, H, P), w0 = ad_start(q, W, Q), w1 = ad_end(q, W, Q);
    const float* xp = x + t * HW;
    float s = 0.f;
    for (int h = h0; h < h1; ++h)
      for (int w = w0; w < w1; ++w) s += xp[h * W + w];
    y[o] = s / static_cast<float>((h1 - h0) * (w1 - w0));
  }
}

// Output cells p whose adaptive window holds input row h lie in [floor(h*P/H), ceil((h+1)*P/H));
// the range is widened by one on each side and every candidate is tested exactly.
__global__ void adaptive_bwd_kernel(int64_t total, int H, int W, int P, int Q, const float* gy, float* gx) {
  const int64_t PQ = int64_t(P) * Q, HW = int64_t(H) * W;
  DFQ_GRID_LOOP(i, total) {
    const int64_t t = i / HW;
    const int hw = static_cast<int>(i - t * HW), h = hw / W, w = hw - h * W;
    const int p_lo = max(static_cast<int>((int64_t(h) * P) / H) - 1, 0);
    const int p_hi = min(static_cast<int>(((int64_t(h) + 1) * P + H - 1) / H) + 1, P);
    const int q_lo = max(static_cast<int>((int64_t(w) * Q) / W) - 1, 0);
    const int q_hi = min(static_cast<int>(((int64_t(w) + 1) * Q + W - 1) / W) + 1, Q);
    float s = 0.f;
    for (int p = p_lo; p < p_hi; ++p) {
      const int h0 = ad_start(p, H, P), h1 = ad_end(p, H, P);
      if (h < h0 || h >= h1) continue;
      for (int q = q_lo; q < q_hi; ++q) {
        const int w0 = ad_start(q, W, Q), w1 = ad_end(q, W, Q);
        if (w < w0 || w >= w1) continue;
        s += gy[t * PQ + int64_t(p) * Q + q] / static_cast<float>((h1 - h0) * (w1 - w0));
      }
    }
    gx[i] = s;
  }
}

__global__ void upsample2x_fwd_kernel(int64_t total, int H, int W, const float* x, float* y) {
  // total = NC * 2H * 2W output elements
  const int64_t W2 = 2 * int64_t(W), plane = 4 * int64_t(H) * W;
  DFQ_GRID_LOOP(o, total) {
    const int64_t t = o / plane, r = o - t * plane;
    const int64_t oh = r / W2, ow = r - oh * W2;
    y[o] = x[(t * H + oh / 2) * W + ow / 2];
  }
}

__global__ void upsample2x_bwd_kernel(int64_t total, int H, int W, const float* gy, float* gx) {
  // total = NC * H * W input elements; the CPU's order: (g00 + g01) + (g10 + g11)
  DFQ_GRID_LOOP(i, total) {
    const int64_t r = i / W, w = i - r * W;  // r = t * H + h
    const float* g0 = gy + r * 4 * W;
    const float* g1 = g0 + 2 * W;
    gx[i] = (g0[2 * w] + g0[2 * w + 1]) + (g1[2 * w] + g1[2 * w + 1]);
  }
}

}  // namespace

void max_pool2d_forward(const Pool2dArgs& a, const float* x, float* y, int32_t* idx) {
  const int64_t total = int64_t(a.N) * a.C * a.P * a.Q;
  if (total <= 0) return;
  DFQ_LAUNCH(max_pool_fwd_kernel, grid_for(total), detail::kThreads, a, total, x, y, idx);
}

void max_pool2d_backward(const Pool2dArgs& a, const float* gy, const int32_t* idx, float* gx) {
  const int64_t total = int64_t(a.N) * a.C * a.H * a.W;
  if (total <= 0) return;
  DFQ_LAUNCH(max_pool_bwd_kernel, grid_for(total), detail::kThreads, a, total, gy, idx, gx);
}

void avg_pool2d_forward(const Pool2dArgs& a, const float* x, float* y) {
  const int64_t total = int64_t(a.N) * a.C * a.P * a.Q;
  if (total <= 0) return;
  const float inv = 1.f / static_cast<float>(a.R * a.S);
  DFQ_LAUNCH(avg_pool_fwd_kernel, grid_for(total), detail::kThreads, a, total, inv, x, y);
}

void avg_pool2d_backward(const Pool2dArgs& a, const float* gy, float* gx) {
  const int64_t total = int64_t(a.N) * a.C * a.H * a.W;
  if (total <= 0) return;
  const float inv = 1.f / static_cast<float>(a.R * a.S);
  DFQ_LAUNCH(avg_pool_bwd_kernel, grid_for(total), detail::kThreads, a, total, inv, gy, gx);
}

void adaptive_avg_pool2d_forward(int NC, int H, int W, int P, int Q, const float* x, float* y) {
  const int64_t total = int64_t(NC) * P * Q;
  if (total <= 0) return;
  DFQ_LAUNCH(adaptive_fwd_kernel, grid_for(total), detail::kThreads, total, H, W, P, Q, x, y);
}

void adaptive_avg_pool2d_backward(int NC, int H, int W, int P, int Q, const float* gy, float* gx) {
  const int64_t total = int64_t(NC) * H * W;
  if (total <= 0) return;
  if (P <= 0 || Q <= 0) {
    fill(total, 0.f, gx);
    return;
  }
  DFQ_LAUNCH(adaptive_bwd_kernel, grid_for(total), detail::kThreads, total, H, W, P, Q, gy, gx);
}

void upsample_nearest2x_forward(int NC, int H, int W, const float* x, float* y) {
  const int64_t total = int64_t(NC) * 4 * H * W;
  if (total <= 0) return;
  DFQ_LAUNCH(upsample2x_fwd_kernel, grid_for(total), detail::kThreads, total, H, W, x, y);
}

void upsample_nearest2x_backward(int NC, int H, int W, const float* gy, float* gx) {
  const int64_t total = int64_t(NC) * H * W;
  if (total <= 0) return;
  DFQ_LAUNCH(upsample2x_bwd_kernel, grid_for(total), detail::kThreads, total, H, W, gy, gx);
}

}  // namespace dfq::cuda
