// common.h — helpers shared by the CPU reference kernels (engine/kernels/cpu/*.cpp), nothing else.
// Rules: OpenMP loops only for work big enough to pay for the fork (kParMin elements); parallel
// loops never share an accumulator, so every result is the same bit for bit on every run.
#pragma once
#include <cstdint>

namespace dfq::cpu::detail {

// Below this many elements a loop runs on one thread.
constexpr int64_t kParMin = 1 << 15;

// How many pieces the convolutions cut their GEMMs into (chunks of images, blocks of output rows),
// whatever the thread count: a BLAS GEMM's value for one output depends on the GEMM's shape
// (OpenBLAS's Haswell kernels on any split, its SkylakeX / Cooperlake small-matrix kernels on
// widths of 8, 16 and 32), so a split that followed the thread count made every result follow it
// (tests/test_repro.cpp). 2 is the split the 2-core reference machine always used; more threads
// do not speed those GEMMs up further (splits of 4 took ~10 % more CPU time in GDFQ's generator
// step on 2 cores, measured on a loaded machine).
constexpr int kFixedSplit = 2;

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
