// shape_util.h — host-side shape analysis shared by the CPU kernels and their CUDA twins (plain
// C++, no device code): grouping a reduction's dims, classifying a broadcast.
#pragma once
#include <cstdint>

#include "engine/kernels/kernels.h"

namespace dfq {

// Merges a ReduceArgs' dims into alternating groups of kept / reduced dims (size-1 dims dropped,
// neighbours of the same kind merged). Writes size[g], red[g] and the dense stride[g] of each
// group of the input, outer to inner; returns the number of groups.
inline int reduce_groups(const ReduceArgs& a, int64_t* size, bool* red, int64_t* stride) {
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
  for (int g = m - 1; g >= 0; --g) {
    stride[g] = s;
    s *= size[g];
  }
  return m;
}

// Whether each operand of a broadcast is read densely (its strides are the output's) or is a
// single scalar (every stride 0): the two fast paths of binary_forward.
struct BroadcastKind {
  bool dense_x = true, dense_y = true, scalar_x = true, scalar_y = true;
  bool flat() const { return (dense_x || scalar_x) && (dense_y || scalar_y); }
};
inline BroadcastKind broadcast_kind(const BroadcastArgs& a) {
  BroadcastKind k;
  int64_t expect = 1;
  for (int d = a.ndim - 1; d >= 0; --d) {
    if (a.shape[d] != 1) {
      k.dense_x &= a.stride_a[d] == expect;
      k.dense_y &= a.stride_b[d] == expect;
      k.scalar_x &= a.stride_a[d] == 0;
      k.scalar_y &= a.stride_b[d] == 0;
    }
    expect *= a.shape[d];
  }
  return k;
}

}  // namespace dfq
