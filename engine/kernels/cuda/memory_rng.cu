// memory_rng.cu — CUDA twins of engine/kernels/cpu/memory_rng.cpp: fill, copies (dense, strided,
// blocks), dtype casts and the Philox random draws.
// Rules: grid-stride loops on the engine stream, asynchronous; element i of a draw is exactly
// philox::*_at(seed, offset, i), the function the CPU kernels call, so results are bit-identical.
#include <stdexcept>

#include "engine/kernels/cuda/common.cuh"
#include "engine/kernels/philox.h"

namespace dfq::cuda {
namespace {

template <typename T>
__global__ void fill_kernel(int64_t n, T value, T* y) {
  DFQ_GRID_LOOP(i, n) y[i] = value;
}

template <typename T>
__global__ void strided_copy_kernel(StridedArgs a, int64_t total, const T* x, T* y) {
  DFQ_GRID_LOOP(i, total) y[i] = x[detail::strided_offset(i, a.ndim, a.shape, a.stride)];
}

__global__ void block_copy_kernel(int64_t outer, int64_t len, const float* x, int64_t x_stride, int64_t x_offset,
                                  float* y, int64_t y_stride, int64_t y_offset) {
  DFQ_GRID_LOOP(t, outer * len) {
    const int64_t o = t / len, i = t - o * len;
    y[o * y_stride + y_offset + i] = x[o * x_stride + x_offset + i];
  }
}

__global__ void u8_to_f32_kernel(int64_t n, const uint8_t* x, float scale, float shift, float* y) {
  // no FMA contraction: the same rounding as the CPU, so decoded images match bit for bit
  DFQ_GRID_LOOP(i, n) y[i] = __fadd_rn(__fmul_rn(static_cast<float>(x[i]), scale), shift);
}

__global__ void i64_to_f32_kernel(int64_t n, const int64_t* x, float* y) {
  DFQ_GRID_LOOP(i, n) y[i] = static_cast<float>(x[i]);
}

__global__ void philox_normal_kernel(int64_t n, uint64_t seed, uint64_t offset, float mean, float stddev, float* y) {
  DFQ_GRID_LOOP(i, n) y[i] = philox::normal_at(seed, offset, i, mean, stddev);
}

__global__ void philox_uniform_kernel(int64_t n, uint64_t seed, uint64_t offset, float lo, float hi, float* y) {
  DFQ_GRID_LOOP(i, n) y[i] = philox::uniform_at(seed, offset, i, lo, hi);
}

__global__ void philox_randint_kernel(int64_t n, uint64_t seed, uint64_t offset, int64_t lo, int64_t hi, int64_t* y) {
  DFQ_GRID_LOOP(i, n) y[i] = philox::randint_at(seed, offset, i, lo, hi);
}

template <typename T>
void strided_copy_impl(const StridedArgs& a, const T* x, T* y) {
  if (a.ndim < 0 || a.ndim > kMaxDims) throw std::invalid_argument("dfq: cuda strided_copy: bad ndim");
  int64_t total = 1;
  for (int d = 0; d < a.ndim; ++d) total *= a.shape[d];
  if (total <= 0) return;  // ndim == 0 gives total 1: the scalar
  DFQ_LAUNCH(strided_copy_kernel<T>, grid_for(total), detail::kThreads, a, total, x, y);
}

}  // namespace

void fill(int64_t n, float value, float* y) {
  if (n <= 0) return;
  DFQ_LAUNCH(fill_kernel<float>, grid_for(n), detail::kThreads, n, value, y);
}

void fill_i64(int64_t n, int64_t value, int64_t* y) {
  if (n <= 0) return;
  DFQ_LAUNCH(fill_kernel<int64_t>, grid_for(n), detail::kThreads, n, value, y);
}

void copy(int64_t n, const float* x, float* y) {
  if (n <= 0 || x == y) return;
  DFQ_CUDA_CHECK(cudaMemcpyAsync(y, x, static_cast<size_t>(n) * sizeof(float), cudaMemcpyDeviceToDevice, stream()));
}

void strided_copy(const StridedArgs& a, const float* x, float* y) { strided_copy_impl(a, x, y); }
void strided_copy_i64(const StridedArgs& a, const int64_t* x, int64_t* y) { strided_copy_impl(a, x, y); }
void strided_copy_u8(const StridedArgs& a, const uint8_t* x, uint8_t* y) { strided_copy_impl(a, x, y); }

void block_copy(int64_t outer, int64_t len, const float* x, int64_t x_stride, int64_t x_offset, float* y,
                int64_t y_stride, int64_t y_offset) {
  if (outer <= 0 || len <= 0) return;
  DFQ_LAUNCH(block_copy_kernel, grid_for(outer * len), detail::kThreads, outer, len, x, x_stride, x_offset, y,
             y_stride, y_offset);
}

void u8_to_f32(int64_t n, const uint8_t* x, float scale, float shift, float* y) {
  if (n <= 0) return;
  DFQ_LAUNCH(u8_to_f32_kernel, grid_for(n), detail::kThreads, n, x, scale, shift, y);
}

void i64_to_f32(int64_t n, const int64_t* x, float* y) {
  if (n <= 0) return;
  DFQ_LAUNCH(i64_to_f32_kernel, grid_for(n), detail::kThreads, n, x, y);
}

void philox_normal(int64_t n, uint64_t seed, uint64_t offset, float mean, float stddev, float* y) {
  if (n <= 0) return;
  DFQ_LAUNCH(philox_normal_kernel, grid_for(n), detail::kThreads, n, seed, offset, mean, stddev, y);
}

void philox_uniform(int64_t n, uint64_t seed, uint64_t offset, float lo, float hi, float* y) {
  if (n <= 0) return;
  DFQ_LAUNCH(philox_uniform_kernel, grid_for(n), detail::kThreads, n, seed, offset, lo, hi, y);
}

void philox_randint(int64_t n, uint64_t seed, uint64_t offset, int64_t lo, int64_t hi, int64_t* y) {
  if (n <= 0) return;
  if (hi <= lo) throw std::invalid_argument("dfq: philox_randint needs lo < hi");
  DFQ_LAUNCH(philox_randint_kernel, grid_for(n), detail::kThreads, n, seed, offset, lo, hi, y);
}

}  // namespace dfq::cuda
