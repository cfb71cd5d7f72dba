// memory_rng.cpp — CPU reference kernels: fill, copies (dense, strided, blocks), dtype casts and the
// Philox random draws. Rules: element i of a draw is exactly philox::*_at(seed, offset, i), the same
// function the CUDA twins call, so CPU and GPU give identical numbers for the same (seed, offset).
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "engine/kernels/cpu/common.h"
#include "engine/kernels/kernels.h"
#include "engine/kernels/philox.h"

namespace dfq::cpu {
using detail::kParMin;

void fill(int64_t n, float value, float* y) {
#pragma omp parallel for schedule(static) if (n > 4 * kParMin)
  for (int64_t i = 0; i < n; ++i) y[i] = value;
}

void fill_i64(int64_t n, int64_t value, int64_t* y) {
#pragma omp parallel for schedule(static) if (n > 4 * kParMin)
  for (int64_t i = 0; i < n; ++i) y[i] = value;
}

void copy(int64_t n, const float* x, float* y) {
  if (n <= 0 || x == y) return;
  std::memmove(y, x, static_cast<size_t>(n) * sizeof(float));
}

namespace {
// Dense y (a.shape) = strided view of x. Rows along the last dimension, in parallel.
template <typename T>
void strided_copy_impl(const StridedArgs& a, const T* x, T* y) {
  int nd = a.ndim;
  if (nd == 0) {
    y[0] = x[0];
    return;
  }
  int64_t total = detail::prod(nd, a.shape);
  if (total == 0) return;
  int64_t inner = a.shape[nd - 1], st = a.stride[nd - 1];
  int64_t rows = total / inner;
#pragma omp parallel for schedule(static) if (total > kParMin)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + detail::strided_offset(r, nd - 1, a.shape, a.stride);
    T* yr = y + r * inner;
    if (st == 1) {
      std::memcpy(yr, xr, static_cast<size_t>(inner) * sizeof(T));
    } else {
      for (int64_t i = 0; i < inner; ++i) yr[i] = xr[i * st];
    }
  }
}
}  // namespace

void strided_copy(const StridedArgs& a, const float* x, float* y) { strided_copy_impl(a, x, y); }
void strided_copy_i64(const StridedArgs& a, const int64_t* x, int64_t* y) { strided_copy_impl(a, x, y); }
void strided_copy_u8(const StridedArgs& a, const uint8_t* x, uint8_t* y) { strided_copy_impl(a, x, y); }

void block_copy(int64_t outer, int64_t len, const float* x, int64_t x_stride, int64_t x_offset, float* y,
                int64_t y_stride, int64_t y_offset) {
  if (outer <= 0 || len <= 0) return;
#pragma omp parallel for schedule(static) if (outer * len > kParMin && outer > 1)
  for (int64_t o = 0; o < outer; ++o)
    std::memmove(y + o * y_stride + y_offset, x + o * x_stride + x_offset, static_cast<size_t>(len) * sizeof(float));
}

void u8_to_f32(int64_t n, const uint8_t* x, float scale, float shift, float* y) {
#pragma omp parallel for schedule(static) if (n > kParMin)
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(x[i]) * scale + shift;
}

void i64_to_f32(int64_t n, const int64_t* x, float* y) {
#pragma omp parallel for schedule(static) if (n > kParMin)
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(x[i]);
}

// ---- Philox draws: each element independent, so any thread split gives the same numbers ----------
void philox_normal(int64_t n, uint64_t seed, uint64_t offset, float mean, float stddev, float* y) {
  const int64_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n > 4096)
  for (int64_t b = 0; b < blocks; ++b) {
    philox::U4 r = philox::philox4x32_10(offset + static_cast<uint64_t>(b), seed);
    for (int64_t base = 0; base < 4 && 4 * b + base < n; base += 2) {  // Box-Muller pairs (0,1), (2,3)
      double u1 = (static_cast<double>(r.x[base] >> 8) + 1.0) * (1.0 / 16777216.0);
      double u2 = philox::to_unit(r.x[base + 1]);
      double rad = std::sqrt(-2.0 * std::log(u1)), ang = 6.283185307179586476925 * u2;
      y[4 * b + base] = static_cast<float>(mean + stddev * (rad * std::cos(ang)));
      if (4 * b + base + 1 < n) y[4 * b + base + 1] = static_cast<float>(mean + stddev * (rad * std::sin(ang)));
    }
  }
}

// One Philox block per 4 elements (the same arithmetic as uniform_at / normal_at, bit for bit).
void philox_uniform(int64_t n, uint64_t seed, uint64_t offset, float lo, float hi, float* y) {
  const int64_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n > 4096)
  for (int64_t b = 0; b < blocks; ++b) {
    philox::U4 r = philox::philox4x32_10(offset + static_cast<uint64_t>(b), seed);
    for (int64_t l = 0; l < 4 && 4 * b + l < n; ++l)
      y[4 * b + l] = static_cast<float>(lo + (static_cast<double>(hi) - lo) * philox::to_unit(r.x[l]));
  }
}

void philox_randint(int64_t n, uint64_t seed, uint64_t offset, int64_t lo, int64_t hi, int64_t* y) {
  if (n <= 0) return;
  if (hi <= lo) throw std::invalid_argument("dfq: philox_randint needs lo < hi");
#pragma omp parallel for schedule(static) if (n > 4096)
  for (int64_t i = 0; i < n; ++i) y[i] = philox::randint_at(seed, offset, i, lo, hi);
}

}  // namespace dfq::cpu
