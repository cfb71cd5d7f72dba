// reduce.cu — CUDA twin of reduce_sum (engine/kernels/cpu/reduce.cpp).
// Rules: dims are merged into alternating kept / reduced groups exactly as the CPU does; each
// output is summed in double (per thread, then a block tree), so results are close to the CPU's
// (also double) but not bit-equal. Short reductions use one thread per output, long ones blocks per
// output (split over several blocks when there are few outputs, partials added in a fixed order:
// deterministic). An empty reduced set writes 0; nothing reduced is a copy.
#include <algorithm>
#include <stdexcept>

#include "engine/kernels/cuda/common.cuh"
#include "engine/kernels/shape_util.h"

namespace dfq::cuda {
namespace {

struct Groups {
  int nk = 0, nr = 0;
  int64_t ksize[kMaxDims], kstride[kMaxDims];  // kept groups, outer to inner
  int64_t rsize[kMaxDims], rstride[kMaxDims];  // reduced groups, outer to inner
};

// Offset of reduced index r (one reduced group: a plain stride, no division).
__device__ __forceinline__ int64_t red_offset(const Groups& g, int64_t r) {
  return g.nr == 1 ? r * g.rstride[0] : detail::strided_offset(r, g.nr, g.rsize, g.rstride);
}

__global__ void reduce_thread_kernel(Groups g, int64_t out_n, int64_t R, const float* x, float* y) {
  DFQ_GRID_LOOP(o, out_n) {
    const int64_t base = detail::strided_offset(o, g.nk, g.ksize, g.kstride);
    double acc = 0;
    for (int64_t r = 0; r < R; ++r) acc += x[base + red_offset(g, r)];
    y[o] = static_cast<float>(acc);
  }
}

// Block (o, s): output o, reduced indices [s * chunk, min((s + 1) * chunk, R)); with S == 1 the
// result goes to y, else to part[o * S + s] (double) for reduce_final_kernel.
__global__ void reduce_block_kernel(Groups g, int64_t R, int64_t chunk, int S, const float* x, float* y,
                                    double* part) {
  const int64_t o = blockIdx.x;
  const int s = blockIdx.y;
  const int64_t base = detail::strided_offset(o, g.nk, g.ksize, g.kstride);
  const int64_t r1 = min(R, (s + 1) * chunk);
  double acc = 0;
  for (int64_t r = s * chunk + threadIdx.x; r < r1; r += blockDim.x) acc += x[base + red_offset(g, r)];
  acc = detail::block_sum(acc);
  if (threadIdx.x == 0) {
    if (part) part[o * S + s] = acc;
    else y[o] = static_cast<float>(acc);
  }
}

// y[o] = sum of the S partials of output o, in split order (deterministic).
__global__ void reduce_final_kernel(int64_t out_n, int S, const double* part, float* y) {
  DFQ_GRID_LOOP(o, out_n) {
    double acc = 0;
    for (int s = 0; s < S; ++s) acc += part[o * S + s];
    y[o] = static_cast<float>(acc);
  }
}

}  // namespace

void reduce_sum(const ReduceArgs& a, const float* x, float* y) {
  if (a.ndim < 0 || a.ndim > kMaxDims) throw std::invalid_argument("dfq: cuda reduce_sum: bad ndim");
  int64_t total = 1, out_n = 1;
  for (int d = 0; d < a.ndim; ++d) {
    total *= a.shape[d];
    if (!a.reduce[d]) out_n *= a.shape[d];
  }
  if (out_n == 0) return;
  if (total == 0) {  // sum over an empty set
    fill(out_n, 0.f, y);
    return;
  }
  // Merge dims into alternating kept / reduced groups (size-1 dims dropped), as the CPU does.
  int64_t size[kMaxDims], stride[kMaxDims];
  bool red[kMaxDims];
  const int m = reduce_groups(a, size, red, stride);
  Groups g;
  for (int i = 0; i < m; ++i) {
    if (red[i]) {
      g.rsize[g.nr] = size[i];
      g.rstride[g.nr++] = stride[i];
    } else {
      g.ksize[g.nk] = size[i];
      g.kstride[g.nk++] = stride[i];
    }
  }
  if (g.nr == 0) {  // nothing reduced: a copy
    copy(total, x, y);
    return;
  }
  const int64_t R = total / out_n;
  const bool per_block = R > 128 && !(out_n >= 65536 && R <= 1024) && out_n < (int64_t(1) << 31);
  if (!per_block) {
    DFQ_LAUNCH(reduce_thread_kernel, grid_for(out_n), detail::kThreads, g, out_n, R, x, y);
    return;
  }
  // Few outputs, long reductions: split each output's range over S blocks (>= 4096 elements each).
  const auto [S, chunk] = detail::split_reduction(out_n, R);
  if (S == 1) {
    DFQ_LAUNCH(reduce_block_kernel, dim3(static_cast<unsigned>(out_n), 1), detail::kThreads, g, R, chunk, 1, x, y,
               nullptr);
    return;
  }
  DeviceBuffer part(size_t(out_n) * size_t(S) * sizeof(double));
  DFQ_LAUNCH(reduce_block_kernel, dim3(static_cast<unsigned>(out_n), static_cast<unsigned>(S)), detail::kThreads, g,
             R, chunk, static_cast<int>(S), x, y, part.as<double>());
  DFQ_LAUNCH(reduce_final_kernel, grid_for(out_n), detail::kThreads, out_n, static_cast<int>(S),
             part.as<const double>(), y);
}

}  // namespace dfq::cuda
