// elementwise.cu — CUDA twins of engine/kernels/cpu/elementwise.cpp (unary ops and their backward,
// broadcasting binary ops, axpy) plus add_bias_rows of the GEMM family.
// Rules: float math as the CPU reference writes it (expf/tanhf/logf/sqrtf; results agree to a few
// ulp, not bit for bit); one thread per output element in grid-stride loops; x may alias y in
// unary_forward (each element is read before it is written by the same thread).
#include "engine/kernels/cuda/common.cuh"
#include "engine/kernels/shape_util.h"

namespace dfq::cuda {
namespace {

template <UnaryOp OP>
__device__ __forceinline__ float unary_f(float x, float alpha) {
  if constexpr (OP == UnaryOp::Relu) return x > 0.f ? x : 0.f;
  else if constexpr (OP == UnaryOp::LeakyRelu) return x > 0.f ? x : alpha * x;
  else if constexpr (OP == UnaryOp::Relu6) return x > 0.f ? (x < 6.f ? x : 6.f) : 0.f;
  else if constexpr (OP == UnaryOp::Tanh) return tanhf(x);
  else if constexpr (OP == UnaryOp::Sqrt) return sqrtf(x);
  else if constexpr (OP == UnaryOp::Square) return x * x;
  else if constexpr (OP == UnaryOp::Exp) return expf(x);
  else if constexpr (OP == UnaryOp::Log) return logf(x);
  else if constexpr (OP == UnaryOp::Neg) return -x;
  else if constexpr (OP == UnaryOp::AddScalar) return x + alpha;
  else if constexpr (OP == UnaryOp::MulScalar) return x * alpha;
  else if constexpr (OP == UnaryOp::Abs) return fabsf(x);
  else return 1.f / (1.f + expf(-x));  // Sigmoid
}

template <UnaryOp OP>
__device__ __forceinline__ float unary_b(float x, float y, float gy, float alpha) {
  if constexpr (OP == UnaryOp::Relu) return x > 0.f ? gy : 0.f;
  else if constexpr (OP == UnaryOp::LeakyRelu) return x > 0.f ? gy : alpha * gy;
  else if constexpr (OP == UnaryOp::Relu6) return x > 0.f && x < 6.f ? gy : 0.f;
  else if constexpr (OP == UnaryOp::Tanh) return gy * (1.f - y * y);
  else if constexpr (OP == UnaryOp::Sqrt) return gy * 0.5f / y;
  else if constexpr (OP == UnaryOp::Square) return 2.f * x * gy;
  else if constexpr (OP == UnaryOp::Exp) return gy * y;
  else if constexpr (OP == UnaryOp::Log) return gy / x;
  else if constexpr (OP == UnaryOp::Neg) return -gy;
  else if constexpr (OP == UnaryOp::AddScalar) return gy;
  else if constexpr (OP == UnaryOp::MulScalar) return alpha * gy;
  else if constexpr (OP == UnaryOp::Abs) return x > 0.f ? gy : (x < 0.f ? -gy : 0.f);
  else return gy * y * (1.f - y);  // Sigmoid
}

// Which of x / y each op reads in backward (the other may be null).
constexpr bool reads_x(UnaryOp op) {
  return op == UnaryOp::Relu || op == UnaryOp::LeakyRelu || op == UnaryOp::Relu6 || op == UnaryOp::Square || op == UnaryOp::Log ||
         op == UnaryOp::Abs;
}
constexpr bool reads_y(UnaryOp op) {
  return op == UnaryOp::Tanh || op == UnaryOp::Sqrt || op == UnaryOp::Exp || op == UnaryOp::Sigmoid;
}

template <UnaryOp OP>
__global__ void unary_forward_kernel(float alpha, int64_t n, const float* x, float* y) {
  DFQ_GRID_LOOP(i, n) y[i] = unary_f<OP>(x[i], alpha);
}

template <UnaryOp OP>
__global__ void unary_backward_kernel(float alpha, int64_t n, const float* x, const float* y, const float* gy,
                                      float* gx) {
  DFQ_GRID_LOOP(i, n) {
    const float xv = reads_x(OP) ? x[i] : 0.f;
    const float yv = reads_y(OP) ? y[i] : 0.f;
    gx[i] = unary_b<OP>(xv, yv, gy[i], alpha);
  }
}

template <BinaryOp OP>
__device__ __forceinline__ float binary_f(float u, float v) {
  if constexpr (OP == BinaryOp::Add) return u + v;
  else if constexpr (OP == BinaryOp::Sub) return u - v;
  else if constexpr (OP == BinaryOp::Mul) return u * v;
  else return u / v;
}

// Both operands dense (stride 1) or scalars (stride 0) over the flattened index.
template <BinaryOp OP>
__global__ void binary_flat_kernel(int64_t n, const float* x, int64_t sx, const float* y, int64_t sy, float* out) {
  DFQ_GRID_LOOP(i, n) out[i] = binary_f<OP>(x[i * sx], y[i * sy]);
}

template <BinaryOp OP>
__global__ void binary_strided_kernel(BroadcastArgs a, int64_t n, const float* x, const float* y, float* out) {
  DFQ_GRID_LOOP(i, n) {
    int64_t ox = 0, oy = 0, lin = i;
    for (int d = a.ndim - 1; d >= 0; --d) {
      const int64_t s = a.shape[d], q = lin / s, c = lin - q * s;
      ox += c * a.stride_a[d];
      oy += c * a.stride_b[d];
      lin = q;
    }
    out[i] = binary_f<OP>(x[ox], y[oy]);
  }
}

template <BinaryOp OP>
void binary_impl(const BroadcastArgs& a, const float* x, const float* y, float* out) {
  int64_t total = 1;
  for (int d = 0; d < a.ndim; ++d) total *= a.shape[d];
  if (total <= 0) return;
  const BroadcastKind kind = broadcast_kind(a);
  const bool dense_x = kind.dense_x, dense_y = kind.dense_y;
  if (kind.flat()) {
    DFQ_LAUNCH(binary_flat_kernel<OP>, grid_for(total), detail::kThreads, total, x, dense_x ? 1 : 0, y,
               dense_y ? 1 : 0, out);
  } else {
    DFQ_LAUNCH(binary_strided_kernel<OP>, grid_for(total), detail::kThreads, a, total, x, y, out);
  }
}

__global__ void axpy_kernel(int64_t n, float alpha, const float* x, float* y) {
  DFQ_GRID_LOOP(i, n) y[i] += alpha * x[i];
}

__global__ void add_bias_rows_kernel(int64_t total, int N, const float* bias, float* y) {
  DFQ_GRID_LOOP(i, total) y[i] += bias[i % N];
}

template <UnaryOp OP>
void unary_fwd_launch(float alpha, int64_t n, const float* x, float* y) {
  DFQ_LAUNCH(unary_forward_kernel<OP>, grid_for(n), detail::kThreads, alpha, n, x, y);
}
template <UnaryOp OP>
void unary_bwd_launch(float alpha, int64_t n, const float* x, const float* y, const float* gy, float* gx) {
  DFQ_LAUNCH(unary_backward_kernel<OP>, grid_for(n), detail::kThreads, alpha, n, x, y, gy, gx);
}

}  // namespace

#define DFQ_UNARY_CASES(MACRO)                                                                       \
  MACRO(Relu) MACRO(LeakyRelu) MACRO(Tanh) MACRO(Sqrt) MACRO(Square) MACRO(Exp) MACRO(Log) MACRO(Neg) \
  MACRO(AddScalar) MACRO(MulScalar) MACRO(Abs) MACRO(Sigmoid) MACRO(Relu6)

void unary_forward(UnaryOp op, float alpha, int64_t n, const float* x, float* y) {
  if (n <= 0) return;
  switch (op) {
#define DFQ_CASE(name) \
  case UnaryOp::name: unary_fwd_launch<UnaryOp::name>(alpha, n, x, y); return;
    DFQ_UNARY_CASES(DFQ_CASE)
#undef DFQ_CASE
  }
  throw std::invalid_argument("dfq: cuda unary_forward: unknown op");
}

void unary_backward(UnaryOp op, float alpha, int64_t n, const float* x, const float* y, const float* gy, float* gx) {
  if (n <= 0) return;
  switch (op) {
#define DFQ_CASE(name) \
  case UnaryOp::name: unary_bwd_launch<UnaryOp::name>(alpha, n, x, y, gy, gx); return;
    DFQ_UNARY_CASES(DFQ_CASE)
#undef DFQ_CASE
  }
  throw std::invalid_argument("dfq: cuda unary_backward: unknown op");
}
#undef DFQ_UNARY_CASES

void binary_forward(BinaryOp op, const BroadcastArgs& a, const float* x, const float* y, float* out) {
  if (a.ndim < 0 || a.ndim > kMaxDims) throw std::invalid_argument("dfq: cuda binary_forward: bad ndim");
  switch (op) {
    case BinaryOp::Add: binary_impl<BinaryOp::Add>(a, x, y, out); return;
    case BinaryOp::Sub: binary_impl<BinaryOp::Sub>(a, x, y, out); return;
    case BinaryOp::Mul: binary_impl<BinaryOp::Mul>(a, x, y, out); return;
    case BinaryOp::Div: binary_impl<BinaryOp::Div>(a, x, y, out); return;
  }
  throw std::invalid_argument("dfq: cuda binary_forward: unknown op");
}

void axpy(int64_t n, float alpha, const float* x, float* y) {
  if (n <= 0) return;
  DFQ_LAUNCH(axpy_kernel, grid_for(n), detail::kThreads, n, alpha, x, y);
}

void add_bias_rows(int M, int N, const float* bias, float* y) {
  const int64_t total = int64_t(M) * N;
  if (M <= 0 || N <= 0) return;
  DFQ_LAUNCH(add_bias_rows_kernel, grid_for(total), detail::kThreads, total, N, bias, y);
}

}  // namespace dfq::cuda
