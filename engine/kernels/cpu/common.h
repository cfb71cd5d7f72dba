// common.h — helpers shared by the CPU reference kernels (engine/kernels/cpu/*.cpp), nothing else.
// Rules: OpenMP loops only for work big enough to pay for the fork (kParMin elements); parallel
// loops never share an accumulator, so every result is the same bit for bit on every run.
#pragma once
#include <cstdint>

namespace dfq::cpu::detail {

// Below this many elements a loop runs on one thread.
constexpr int64_t kParMin = 1 << 15;

// Offset of the multi-index of `linear` (over shape[0..ndim), C order) through `stride`.
inline int64_t strided_offset(int64_t linear, int ndim, const int64_t* shape, const int64_t* stride) {
  int64_t off = 0;
  for (int d = ndim - 1; d >= 0; --d) {
    int64_t i = linear % shape[d];
    linear /= shape[d];
    off += i * stride[d];
  }
  return off;
}

inline int64_t prod(int ndim, const int64_t* shape) {
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= shape[d];
  return n;
}

}  // namespace dfq::cpu::detail
