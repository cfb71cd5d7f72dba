// common.cuh — helpers shared by the CUDA kernels (engine/kernels/cuda/*.cu), nothing else:
// grid-stride loops, warp / block reductions, the launch macro.
// Rules: every launch goes on dfq::cuda::stream() through DFQ_LAUNCH (which checks the launch);
// block reductions need blockDim.x to be a multiple of 32 (at most 1024) and are called by every
// thread of the block; indices are int64_t everywhere.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "engine/kernels/kernels.h"

// Launch `kernel<<<grid, block, 0, stream()>>>(args...)` and check it.
#define DFQ_LAUNCH(kernel, grid, block, ...)                                   \
  do {                                                                         \
    kernel<<<(grid), (block), 0, ::dfq::cuda::stream()>>>(__VA_ARGS__);        \
    DFQ_LAUNCH_CHECK();                                                        \
  } while (0)

namespace dfq::cuda::detail {

constexpr int kThreads = 256;

// for (int64_t i = first; i < n; i += stride) over the whole grid
#define DFQ_GRID_LOOP(i, n)                                                                      \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n);                     \
       i += int64_t(blockDim.x) * gridDim.x)

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

template <typename T>
__device__ __forceinline__ T warp_max(T v) {
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_down_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block; the result is returned to every thread.
template <typename T>
__device__ T block_sum(T v) {
  __shared__ T sh[32];
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();  // a previous call may still be reading sh[0]
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  if (wid == 0) {
    T t = lane < nw ? sh[lane] : T(0);
    t = warp_sum(t);
    if (lane == 0) sh[0] = t;
  }
  __syncthreads();
  return sh[0];
}

// Max over the block (fmax: NaN is ignored unless all are NaN); returned to every thread.
__device__ inline float block_max(float v) {
  __shared__ float sh[32];
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  if (wid == 0) {
    float t = lane < nw ? sh[lane] : -INFINITY;
    t = warp_max(t);
    if (lane == 0) sh[0] = t;
  }
  __syncthreads();
  return sh[0];
}

// Offset of the multi-index of `linear` (C order over shape[0..ndim)) through `stride`.
__device__ __forceinline__ int64_t strided_offset(int64_t linear, int ndim, const int64_t* shape,
                                                  const int64_t* stride) {
  int64_t off = 0;
  for (int d = ndim - 1; d >= 0; --d) {
    const int64_t s = shape[d];
    const int64_t q = linear / s;
    off += (linear - q * s) * stride[d];
    linear = q;
  }
  return off;
}

}  // namespace dfq::cuda::detail
