// elementwise.cpp — CPU reference kernels: unary ops and their backward, broadcasting binary ops,
// axpy. Rules: float math (as PyTorch does for float32); each output element depends only on its
// own inputs, so the OpenMP split never changes a result. x may alias y in unary_forward.
#include <algorithm>
#include <cmath>

#include "engine/kernels/cpu/common.h"
#include "engine/kernels/kernels.h"
#include "engine/kernels/shape_util.h"

namespace dfq::cpu {
using detail::kParMin;

namespace {
template <typename F>
void map_n(int64_t n, F f) {
#pragma omp parallel for schedule(static) if (n > kParMin)
  for (int64_t i = 0; i < n; ++i) f(i);
}
}  // namespace

void unary_forward(UnaryOp op, float alpha, int64_t n, const float* x, float* y) {
  switch (op) {
    case UnaryOp::Relu: map_n(n, [&](int64_t i) { y[i] = x[i] > 0.f ? x[i] : 0.f; }); break;
    case UnaryOp::LeakyRelu: map_n(n, [&](int64_t i) { y[i] = x[i] > 0.f ? x[i] : alpha * x[i]; }); break;
    case UnaryOp::Tanh: map_n(n, [&](int64_t i) { y[i] = std::tanh(x[i]); }); break;
    case UnaryOp::Sqrt: map_n(n, [&](int64_t i) { y[i] = std::sqrt(x[i]); }); break;
    case UnaryOp::Square: map_n(n, [&](int64_t i) { y[i] = x[i] * x[i]; }); break;
    case UnaryOp::Exp: map_n(n, [&](int64_t i) { y[i] = std::exp(x[i]); }); break;
    case UnaryOp::Log: map_n(n, [&](int64_t i) { y[i] = std::log(x[i]); }); break;
    case UnaryOp::Neg: map_n(n, [&](int64_t i) { y[i] = -x[i]; }); break;
    case UnaryOp::AddScalar: map_n(n, [&](int64_t i) { y[i] = x[i] + alpha; }); break;
    case UnaryOp::MulScalar: map_n(n, [&](int64_t i) { y[i] = x[i] * alpha; }); break;
    case UnaryOp::Abs: map_n(n, [&](int64_t i) { y[i] = std::fabs(x[i]); }); break;
    case UnaryOp::Sigmoid: map_n(n, [&](int64_t i) { y[i] = 1.f / (1.f + std::exp(-x[i])); }); break;
    case UnaryOp::Relu6: map_n(n, [&](int64_t i) { y[i] = x[i] > 0.f ? (x[i] < 6.f ? x[i] : 6.f) : 0.f; }); break;
  }
}

void unary_backward(UnaryOp op, float alpha, int64_t n, const float* x, const float* y, const float* gy,
                    float* gx) {
  switch (op) {
    case UnaryOp::Relu: map_n(n, [&](int64_t i) { gx[i] = x[i] > 0.f ? gy[i] : 0.f; }); break;
    case UnaryOp::LeakyRelu: map_n(n, [&](int64_t i) { gx[i] = x[i] > 0.f ? gy[i] : alpha * gy[i]; }); break;
    case UnaryOp::Relu6: map_n(n, [&](int64_t i) { gx[i] = x[i] > 0.f && x[i] < 6.f ? gy[i] : 0.f; }); break;
    case UnaryOp::Tanh: map_n(n, [&](int64_t i) { gx[i] = gy[i] * (1.f - y[i] * y[i]); }); break;
    case UnaryOp::Sqrt: map_n(n, [&](int64_t i) { gx[i] = gy[i] * 0.5f / y[i]; }); break;
    case UnaryOp::Square: map_n(n, [&](int64_t i) { gx[i] = 2.f * x[i] * gy[i]; }); break;
    case UnaryOp::Exp: map_n(n, [&](int64_t i) { gx[i] = gy[i] * y[i]; }); break;
    case UnaryOp::Log: map_n(n, [&](int64_t i) { gx[i] = gy[i] / x[i]; }); break;
    case UnaryOp::Neg: map_n(n, [&](int64_t i) { gx[i] = -gy[i]; }); break;
    case UnaryOp::AddScalar: map_n(n, [&](int64_t i) { gx[i] = gy[i]; }); break;
    case UnaryOp::MulScalar: map_n(n, [&](int64_t i) { gx[i] = alpha * gy[i]; }); break;
    case UnaryOp::Abs:
      map_n(n, [&](int64_t i) { gx[i] = x[i] > 0.f ? gy[i] : (x[i] < 0.f ? -gy[i] : 0.f); });
      break;
    case UnaryOp::Sigmoid: map_n(n, [&](int64_t i) { gx[i] = gy[i] * y[i] * (1.f - y[i]); }); break;
  }
}

namespace {
inline float apply(BinaryOp op, float u, float v) {
  switch (op) {
    case BinaryOp::Add: return u + v;
    case BinaryOp::Sub: return u - v;
    case BinaryOp::Mul: return u * v;
    case BinaryOp::Div: return u / v;
  }
  return 0.f;
}

// One row of the last dimension; the common stride patterns get their own (vectorisable) loops.
template <BinaryOp OP>
void binary_row(int64_t n, const float* x, int64_t sx, const float* y, int64_t sy, float* out) {
  if (sx == 1 && sy == 1) {
    for (int64_t i = 0; i < n; ++i) out[i] = apply(OP, x[i], y[i]);
  } else if (sx == 1 && sy == 0) {
    float v = y[0];
    for (int64_t i = 0; i < n; ++i) out[i] = apply(OP, x[i], v);
  } else if (sx == 0 && sy == 1) {
    float u = x[0];
    for (int64_t i = 0; i < n; ++i) out[i] = apply(OP, u, y[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = apply(OP, x[i * sx], y[i * sy]);
  }
}

template <BinaryOp OP>
void binary_impl(const BroadcastArgs& a, const float* x, const float* y, float* out) {
  int nd = a.ndim;
  if (nd == 0) {
    out[0] = apply(OP, x[0], y[0]);
    return;
  }
  int64_t total = detail::prod(nd, a.shape);
  if (total == 0) return;
  // Fold the dims into one row when both operands are dense (or a whole operand is a scalar).
  const BroadcastKind kind = broadcast_kind(a);
  const bool dense_x = kind.dense_x, dense_y = kind.dense_y;
  if (kind.flat()) {
    int64_t sx = dense_x ? 1 : 0, sy = dense_y ? 1 : 0;
    constexpr int64_t kChunk = 1 << 14;
    int64_t chunks = (total + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (total > kParMin)
    for (int64_t c = 0; c < chunks; ++c) {
      int64_t b = c * kChunk, e = std::min(total, b + kChunk);
      binary_row<OP>(e - b, x + b * sx, sx, y + b * sy, sy, out + b);
    }
    return;
  }
  int64_t inner = a.shape[nd - 1], rows = total / inner;
#pragma omp parallel for schedule(static) if (total > kParMin)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t ox = detail::strided_offset(r, nd - 1, a.shape, a.stride_a);
    int64_t oy = detail::strided_offset(r, nd - 1, a.shape, a.stride_b);
    binary_row<OP>(inner, x + ox, a.stride_a[nd - 1], y + oy, a.stride_b[nd - 1], out + r * inner);
  }
}
}  // namespace

void binary_forward(BinaryOp op, const BroadcastArgs& a, const float* x, const float* y, float* out) {
  switch (op) {
    case BinaryOp::Add: binary_impl<BinaryOp::Add>(a, x, y, out); break;
    case BinaryOp::Sub: binary_impl<BinaryOp::Sub>(a, x, y, out); break;
    case BinaryOp::Mul: binary_impl<BinaryOp::Mul>(a, x, y, out); break;
    case BinaryOp::Div: binary_impl<BinaryOp::Div>(a, x, y, out); break;
  }
}

void axpy(int64_t n, float alpha, const float* x, float* y) {
#pragma omp parallel for schedule(static) if (n > kParMin)
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

}  // namespace dfq::cpu
