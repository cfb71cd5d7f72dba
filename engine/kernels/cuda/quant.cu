// quant.cu — CUDA twins of engine/kernels/cpu/quant.cpp (the fake-quantizer).
// Rules: the arithmetic is quant_math.h's, shared with the CPU (the _rn intrinsics keep nvcc from
// fusing multiply-adds), so results equal the CPU's bit for bit; min/max are exact in any order.
// Ranges stay on the device: fake_quant reads lo/hi through pointers, range_update runs as one
// thread, so a quantized forward never synchronises with the host.
#include <algorithm>

#include "engine/kernels/cuda/common.cuh"
#include "engine/kernels/quant_math.h"

namespace dfq::cuda {
namespace {

// Min and max over the block, returned to thread 0 (blockDim.x a multiple of 32).
__device__ void block_minmax(float& mn, float& mx) {
  __shared__ float smn[32], smx[32];
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  for (int o = 16; o > 0; o >>= 1) {
    mn = fminf(mn, __shfl_down_sync(0xffffffffu, mn, o));
    mx = fmaxf(mx, __shfl_down_sync(0xffffffffu, mx, o));
  }
  if (lane == 0) { smn[wid] = mn; smx[wid] = mx; }
  __syncthreads();
  if (wid == 0) {
    mn = lane < nw ? smn[lane] : INFINITY;
    mx = lane < nw ? smx[lane] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) {
      mn = fminf(mn, __shfl_down_sync(0xffffffffu, mn, o));
      mx = fmaxf(mx, __shfl_down_sync(0xffffffffu, mx, o));
    }
  }
}

// Block (r, s) covers row r's columns [s * chunk, min(cols, (s + 1) * chunk)): writes lo/hi[r * S + s].
__global__ void minmax_kernel(int64_t cols, int64_t chunk, int S, const float* x, float* lo, float* hi) {
  const int64_t r = blockIdx.x;
  const int s = blockIdx.y;
  const float* p = x + r * cols;
  const int64_t c1 = min(cols, (s + 1) * chunk);
  float mn = INFINITY, mx = -INFINITY;
  for (int64_t i = s * chunk + threadIdx.x; i < c1; i += blockDim.x) {
    const float v = p[i];
    mn = fminf(mn, v);
    mx = fmaxf(mx, v);
  }
  block_minmax(mn, mx);
  if (threadIdx.x == 0) {
    lo[r * S + s] = mn;
    hi[r * S + s] = mx;
  }
}

__global__ void minmax_final_kernel(int64_t rows, int S, const float* plo, const float* phi, float* lo, float* hi) {
  DFQ_GRID_LOOP(r, rows) {
    float mn = plo[r * S], mx = phi[r * S];
    for (int s = 1; s < S; ++s) {
      mn = fminf(mn, plo[r * S + s]);
      mx = fmaxf(mx, phi[r * S + s]);
    }
    lo[r] = mn;
    hi[r] = mx;
  }
}

__global__ void fake_quant_kernel(int64_t n, int64_t cols, int bits, bool sym, const float* x, const float* lo,
                                  const float* hi, float* y) {
  DFQ_GRID_LOOP(i, n) {
    const int64_t r = i / cols;
    y[i] = quant_value(grid_params(bits, sym, lo[r], hi[r]), x[i]);
  }
}

__global__ void fake_quant_backward_clip_kernel(int64_t n, int64_t cols, bool sym, const float* x, const float* lo,
                                                const float* hi, const float* gy, float* gx) {
  DFQ_GRID_LOOP(i, n) {
    const int64_t r = i / cols;
    gx[i] = in_clip_range(sym, lo[r], hi[r], x[i]) ? gy[i] : 0.f;
  }
}

__global__ void range_update_kernel(bool ema, float beta, const float* batch, float* state) {
  range_step(ema, beta, batch, state);
}

}  // namespace

void minmax_rows(int64_t rows, int64_t cols, const float* x, float* lo, float* hi) {
  if (rows == 0) return;
  // Few rows, long rows: split each row over S blocks, then combine.
  const auto [S, chunk] = detail::split_reduction(rows, cols);
  if (S == 1) {
    DFQ_LAUNCH(minmax_kernel, dim3(static_cast<unsigned>(rows), 1), detail::kThreads, cols, chunk, 1, x, lo, hi);
    return;
  }
  DeviceBuffer part(size_t(rows) * size_t(S) * 2 * sizeof(float));
  float* plo = part.as<float>();
  float* phi = plo + rows * S;
  DFQ_LAUNCH(minmax_kernel, dim3(static_cast<unsigned>(rows), static_cast<unsigned>(S)), detail::kThreads, cols, chunk,
             static_cast<int>(S), x, plo, phi);
  DFQ_LAUNCH(minmax_final_kernel, grid_for(rows), detail::kThreads, rows, static_cast<int>(S), plo, phi, lo, hi);
}

void fake_quant(int64_t n, int64_t cols, int bits, bool sym, const float* x, const float* lo, const float* hi, float* y) {
  if (n == 0) return;
  DFQ_LAUNCH(fake_quant_kernel, grid_for(n), detail::kThreads, n, cols, bits, sym, x, lo, hi, y);
}

void fake_quant_backward_clip(int64_t n, int64_t cols, bool sym, const float* x, const float* lo, const float* hi,
                              const float* gy, float* gx) {
  if (n == 0) return;
  DFQ_LAUNCH(fake_quant_backward_clip_kernel, grid_for(n), detail::kThreads, n, cols, sym, x, lo, hi, gy, gx);
}

void range_update(bool ema, float beta, const float* batch, float* state) {
  DFQ_LAUNCH(range_update_kernel, 1, 1, ema, beta, batch, state);
}

}  // namespace dfq::cuda
