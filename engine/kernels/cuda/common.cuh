// common.cuh — helpers shared by the CUDA kernels (engine/kernels/cuda/*.cu), nothing else:
// grid-stride loops, warp / block reductions, the launch macro.
// Rules: every launch goes on dfq::cuda::stream() through DFQ_LAUNCH (which checks the launch);
// block reductions need blockDim.x to be a multiple of 32 (at most 1024) and are called by every
// thread of the block; indices are int64_t everywhere.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
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

// Few outputs, long reductions (reduce_sum, minmax_rows): each output's R elements are split over
// S blocks of `chunk` elements (>= 4096 each, about 4 blocks per SM in all); S == 1: one block each.
struct Split {
  int64_t S, chunk;
};
inline Split split_reduction(int64_t outputs, int64_t R) {
  const int64_t target = 4 * int64_t(sm_count());
  int64_t S = std::min<int64_t>({(target + outputs - 1) / outputs, (R + 4095) / 4096, 65535});
  if (S < 1) S = 1;
  const int64_t chunk = (R + S - 1) / S;
  return {(R + chunk - 1) / chunk, chunk};
}

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

// ---- per-channel reductions over x laid out (N, C, HW), split over the batch ----------------------
// Block (c, s) = (blockIdx.x, blockIdx.y) covers images [s * per, min((s + 1) * per, N)) of channel
// c; a second kernel combines the S partial results of a channel in split order (deterministic).
struct ChanSplit {
  int N, C, HW, S, per;
};

// Enough blocks to fill the GPU, at least ~4096 elements per block.
inline ChanSplit chan_split(int N, int C, int HW) {
  ChanSplit s{N, C, HW, 1, N};
  if (N <= 0 || C <= 0) return s;
  const int64_t target = 4 * int64_t(sm_count());
  int64_t S = (target + C - 1) / C;
  const int64_t by_size = std::max<int64_t>(1, int64_t(N) * HW / 4096);
  S = std::min<int64_t>({S, by_size, int64_t(N), 65535});
  s.per = static_cast<int>((N + S - 1) / S);
  s.S = (N + s.per - 1) / s.per;  // no empty split
  return s;
}

// Calls f(offset) for the elements of this block's (channel, split) that this thread owns.
template <typename F>
__device__ __forceinline__ void chan_for_each(const ChanSplit& s, int c, int split, F f) {
  const int n0 = split * s.per, n1 = min(n0 + s.per, s.N);
  if (s.HW >= 128) {
    for (int n = n0; n < n1; ++n) {
      const int64_t base = (int64_t(n) * s.C + c) * s.HW;
      for (int j = threadIdx.x; j < s.HW; j += blockDim.x) f(base + j);
    }
  } else {
    const int64_t m = int64_t(n1 - n0) * s.HW;
    for (int64_t i = threadIdx.x; i < m; i += blockDim.x) {
      const int64_t n = n0 + i / s.HW, j = i - (i / s.HW) * s.HW;
      f((n * s.C + c) * s.HW + j);
    }
  }
}

}  // namespace dfq::cuda::detail
