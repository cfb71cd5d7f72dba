// reduce.cu — CUDA twin of reduce_sum (engine/kernels/cpu/reduce.cpp).
// Rules: dims are merged into alternating kept / reduced groups exactly as the CPU does; each
// output is summed in double (per thread, then a block tree), so results are close to the CPU's
// (also double) but not bit-equal. Small reductions use one thread per output, large ones one block
// per output. An empty reduced set writes 0; nothing reduced is a copy.
#include <algorithm>
#include <stdexcept>

#include "engine/kernels/cuda/common.cuh"

namespace dfq::cuda {
namespace {

struct Groups {
  int nk = 0, nr = 0;
  int64_t ksize[kMaxDims], kstride[kMaxDims];  // kept groups, outer to inner
  int64_t rsize[kMaxDims], rstride[kMaxDims];  // reduced groups, outer to inner
};

__global__ void reduce_thread_kernel(Groups g, int64_t out_n, int64_t R, const float* x, float* y) {
  DFQ_GRID_LOOP(o, out_n) {
    const int64_t base = detail::strided_offset(o, g.nk, g.ksize, g.kstride);
    double acc = 0;
    for (int64_t r = 0; r < R; ++r) acc += x[base + detail::strided_offset(r, g.nr, g.rsize, g.rstride)];
    y[o] = static_cast<float>(acc);
  }
}

__global__ void reduce_block_kernel(Groups g, int64_t out_n, int64_t R, const float* x, float* y) {
  for (int64_t o = blockIdx.x; o < out_n; o += gridDim.x) {  // uniform over the block
    const int64_t base = detail::strided_offset(o, g.nk, g.ksize, g.kstride);
    double acc = 0;
    for (int64_t r = threadIdx.x; r < R; r += blockDim.x)
      acc += x[base + detail::strided_offset(r, g.nr, g.rsize, g.rstride)];
    acc = detail::block_sum(acc);
    if (threadIdx.x == 0) y[o] = static_cast<float>(acc);
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
  int m = 0;
  for (int d = 0; d < a.ndim; ++d) {
    if (a.shape[d] == 1) continue;
    const bool r = a.reduce[d] != 0;
    if (m > 0 && red[m - 1] == r) {
      size[m - 1] *= a.shape[d];
    } else {
      size[m] = a.shape[d];
      red[m] = r;
      ++m;
    }
  }
  int64_t s = 1;
  for (int i = m - 1; i >= 0; --i) {
    stride[i] = s;
    s *= size[i];
  }
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
  const bool per_block = R > 128 && !(out_n >= 65536 && R <= 1024);
  if (per_block) {
    const unsigned grid = static_cast<unsigned>(std::min<int64_t>(out_n, int64_t(1) << 20));
    DFQ_LAUNCH(reduce_block_kernel, grid, detail::kThreads, g, out_n, R, x, y);
  } else {
    DFQ_LAUNCH(reduce_thread_kernel, grid_for(out_n), detail::kThreads, g, out_n, R, x, y);
  }
}

}  // namespace dfq::cuda
