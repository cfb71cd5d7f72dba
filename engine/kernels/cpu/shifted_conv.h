// shifted_conv.h — internal to the CPU convolution kernels (gemm_conv.cpp, shifted_conv.cpp,
// direct_conv.cpp, depthwise_conv.cpp).
#pragma once
#include <algorithm>

#include "engine/kernels/kernels.h"

namespace dfq::cpu::detail {

// The output columns q whose input column q*stride_w + w_off lies inside [0, W): [*lo, *hi),
// clamped to [0, Q). Shared by im2col, col2im and the shifted GEMMs' runs.
inline void valid_q_range(const Conv2dArgs& a, int w_off, int* lo, int* hi) {
  int q_lo = w_off >= 0 ? 0 : (-w_off + a.stride_w - 1) / a.stride_w;
  int q_hi = a.W - w_off <= 0 ? 0 : (a.W - w_off + a.stride_w - 1) / a.stride_w;
  *lo = std::min(q_lo, a.Q);
  *hi = std::max(*lo, std::min(q_hi, a.Q));
}

// y (N, K, PQ) += b[k]; gb[k] = sum over n and pixels of gy (in double)
void add_channel_bias(int64_t N, int64_t K, int64_t PQ, const float* b, float* y);
void channel_sums(int64_t N, int64_t K, int64_t PQ, const float* gy, float* gb);

// conv2d by shifted GEMMs (shifted_conv.cpp); the same contracts as conv2d_forward / _backward_*
// without the bias, for a.N >= 1 and a non-empty output
void shifted_conv_forward(const Conv2dArgs& a, const float* x, const float* w, float* y);
void shifted_conv_backward_data(const Conv2dArgs& a, const float* gy, const float* w, float* gx);
void shifted_conv_backward_filter(const Conv2dArgs& a, const float* x, const float* gy, float* gw);

// conv2d with few output channels, directly (direct_conv.cpp): for K <= 8, stride 1, no dilation
// or groups, pad < kernel; the same contracts as conv2d_forward / _backward_filter without the bias
bool direct_conv_applies(const Conv2dArgs& a);
void direct_conv_forward(const Conv2dArgs& a, const float* x, const float* w, float* y);
void direct_conv_backward_filter(const Conv2dArgs& a, const float* x, const float* gy, float* gw);

// depthwise conv2d, directly, vectorised across channels (depthwise_conv.cpp): for groups == C ==
// K, dilation 1, any filter size, stride and padding; the same contracts as conv2d_forward /
// _backward_* without the bias, for a.N >= 1
bool depthwise_conv_applies(const Conv2dArgs& a);
void depthwise_conv_forward(const Conv2dArgs& a, const float* x, const float* w, float* y);
void depthwise_conv_backward_data(const Conv2dArgs& a, const float* gy, const float* w, float* gx);
void depthwise_conv_backward_filter(const Conv2dArgs& a, const float* x, const float* gy, float* gw);
// Forces the vector width those kernels run at (tests: every width gives the same bytes): 4 floats
// (SSE), 8 (AVX2) or 16 (AVX-512F), the wide ones where built (GCC) and where the CPU has them;
// 0 = chosen per shape (the default). Returns the widest width this machine runs; throws
// std::invalid_argument for one it cannot.
int depthwise_conv_lanes(int lanes);

}  // namespace dfq::cpu::detail
