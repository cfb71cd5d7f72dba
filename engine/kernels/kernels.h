// kernels.h — the one list of compute kernels, declared twice: dfq::cpu (the reference) and
// dfq::cuda (the GPU twin, same name and same argument list).
//
// Rules (see ../shared/docs/style.md):
//  - Kernels take raw pointers and small argument structs, never Tensor objects. All buffers are
//    dense (C order) unless an argument says otherwise. float32 unless the type says otherwise.
//  - Backward kernels say which outputs they overwrite (=) and which they accumulate into (+=).
//  - CUDA kernels run on the engine's current stream (dfq::cuda::stream()) and are asynchronous;
//    every pointer a CUDA kernel gets is a device pointer, unless its comment says "host".
//  - Adding a kernel = one DFQ_KERNEL line in kernel_list.inc + a CPU definition + a CUDA
//    definition. When CUDA is not built, cuda_stub.cpp defines every dfq::cuda kernel to throw
//    "not implemented on CUDA"; when it is built, a missing twin is a link error.
#pragma once
#include <cmath>
#include <cstdint>

namespace dfq {

constexpr int kMaxDims = 6;

// Convolution, NCHW input (N,C,H,W), weight (K,C/groups,R,S), output (N,K,P,Q).
struct Conv2dArgs {
  int N, C, H, W;        // input
  int K, R, S;           // output channels, kernel height, kernel width
  int stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
  int P, Q;              // output height, width (filled by conv2d_out_size)
};
inline void conv2d_out_size(Conv2dArgs& a) {
  a.P = (a.H + 2 * a.pad_h - a.dil_h * (a.R - 1) - 1) / a.stride_h + 1;
  a.Q = (a.W + 2 * a.pad_w - a.dil_w * (a.S - 1) - 1) / a.stride_w + 1;
}

// Pooling (max and avg), NCHW, window R x S. Output (N,C,P,Q). PyTorch semantics, ceil_mode=false;
// avg pooling counts padding in the divisor (count_include_pad=true, PyTorch's default).
struct Pool2dArgs {
  int N, C, H, W;
  int R, S, stride_h, stride_w, pad_h, pad_w;
  int P, Q;
};
inline void pool2d_out_size(Pool2dArgs& a) {
  a.P = (a.H + 2 * a.pad_h - a.R) / a.stride_h + 1;
  a.Q = (a.W + 2 * a.pad_w - a.S) / a.stride_w + 1;
}

// Batch norm over (N, C, HW): statistics per channel over N and HW. batch_norm1d uses HW = 1.
struct BatchNormArgs {
  int N, C, HW;
  float eps;
  float momentum;  // running = (1 - momentum) * running + momentum * batch (PyTorch convention)
};
// One channel of an eval-mode BN as y = scale * x + shift, in the CPU kernel's float operations
// (batch_norm_forward_eval; quant/int8_graph.cpp folds BN into its convs with the same numbers).
inline void bn_eval_affine(float mean, float var, float eps, float gamma, float beta, float& scale, float& shift) {
  const double invstd = 1.0 / std::sqrt(double(var) + eps);
  scale = static_cast<float>(invstd * gamma);
  shift = static_cast<float>(beta - mean * invstd * gamma);
}

// Broadcasting element-wise: out has shape[0..ndim), dense; a and b are read through their own
// strides (0 on broadcast dimensions). Dims are padded on the left to ndim.
struct BroadcastArgs {
  int ndim;
  int64_t shape[kMaxDims];
  int64_t stride_a[kMaxDims];
  int64_t stride_b[kMaxDims];
};

// A strided view of ndim dims read into a dense output of the same shape (contiguous(), expand).
struct StridedArgs {
  int ndim;
  int64_t shape[kMaxDims];
  int64_t stride[kMaxDims];  // in elements, may be 0 (broadcast)
};

// Reduction by summation: input dense of shape[0..ndim); output dense of the same shape with every
// dimension where reduce[d] != 0 of size 1.
struct ReduceArgs {
  int ndim;
  int64_t shape[kMaxDims];
  int reduce[kMaxDims];
};

enum class UnaryOp : int {
  Relu,       // y = max(x, 0)
  LeakyRelu,  // y = x > 0 ? x : alpha * x
  Tanh,
  Sqrt,
  Square,
  Exp,
  Log,
  Neg,
  AddScalar,  // y = x + alpha
  MulScalar,  // y = x * alpha
  Abs,
  Sigmoid,
  Relu6,      // y = min(max(x, 0), 6); gradient 0 where x <= 0 or x >= 6 (PyTorch's hardtanh_backward)
};

enum class BinaryOp : int { Add, Sub, Mul, Div };

// SGD with PyTorch's semantics (torch.optim.SGD, dampening 0):
//   g = grad + wd * p; buf = first ? g : momentum * buf + g; d = nesterov ? g + momentum * buf : buf;
//   p -= lr * d. With momentum == 0 the buffer is not touched (may be null).
struct SgdArgs {
  float lr, momentum, weight_decay;
  bool nesterov;
  bool first_step;  // the momentum buffer is initialised with g on the first step
};

// Adam with PyTorch's semantics (torch.optim.Adam, amsgrad false, L2 weight decay added to grad):
//   g = grad + wd * p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// The hyper-parameters are doubles, as PyTorch's Python floats: 1 - beta is formed in double and
// then rounded to float, exactly as torch.optim does for float32 parameters.
struct AdamArgs {
  double lr, beta1, beta2, eps, weight_decay;
  int64_t step;  // t, 1-based, already incremented for this update
};

#define DFQ_KERNEL(name, params) void name params;
namespace cpu {
#include "engine/kernels/kernel_list.inc"
}
namespace cuda {
#include "engine/kernels/kernel_list.inc"
}
#undef DFQ_KERNEL

namespace cpu {
// The CPU convolution has two algorithms with the same results up to float summation order:
// im2col + one wide GEMM, and shifted GEMMs on a channel-major (C, H*W, N) copy of the batch (one
// GEMM per kernel tap and run of contiguous output pixels; no column matrix and no zero-padding
// terms, which is what ResNet's 4x4 .. 1x1 maps at 32x32 inputs are mostly made of). Auto picks per
// shape; tests and bench force one to check / time both.
// Auto also runs special cases no setting forces: few output channels (<= 8) directly, without
// GEMM (conv_algo_for says Direct), and their data gradient as a flipped forward conv; depthwise
// convs (groups == C == K, dilation 1) directly, vectorised across channels (Depthwise).
// OneDnn: oneDNN's float kernels (engine/kernels/cpu/onednn.h), for the forward only, chosen by Auto
// on maps larger than 8x8 (see gemm_conv.cpp); like Direct and Depthwise it cannot be forced.
enum class ConvAlgo { Auto, Im2col, Shifted, Direct, Depthwise, OneDnn };
void set_conv_algo(ConvAlgo algo);
ConvAlgo conv_algo_for(const Conv2dArgs& a);  // the algorithm the current setting runs for this shape

// Nearest 2x up-sampling then a 3x3 convolution with stride 1, padding 1, no groups (GDFQ's
// generator), fused: x (N, C, H, W), w (K, C, 3, 3), b (K) or null -> y (N, K, 2H, 2W) as
// conv2d(upsample_nearest2x(x)) up to float summation order, in 4/9 of its multiply-adds (see
// cpu/shifted_conv.cpp). CPU only: on CUDA the op runs the two kernels.
struct Up2ConvArgs {
  int N, C, H, W, K;
};
// xt (optional, N*C*H*W floats) receives x's channel-major copy, which the backward's filter
// gradient can then take instead of making it again.
void conv2d_up2_forward(const Up2ConvArgs& a, const float* x, const float* w, const float* b, float* y, float* xt = nullptr);
// gx (N, C, H, W), gw (K, C, 3, 3), gb (K): each computed when not null; gy's channel-major copy
// is made once for both gradients; xt: the forward's copy of x, or null
void conv2d_up2_backward(const Up2ConvArgs& a, const float* x, const float* gy, const float* w, float* gx, float* gw, float* gb,
                         const float* xt = nullptr);

// Conditional batch norm + leaky ReLU over (N, C, HW), fused (GDFQ's generator):
//   y = leaky_relu(gamma[n,c] * (x - mean_c) * invstd_c + beta[n,c], slope)
// with gamma, beta (N, C); batch statistics and the running-stat update of batch_norm_forward_train
// when training, the running statistics otherwise; slope 1 = no activation. The forward saves mean
// and invstd (C) for the backward, which recomputes the pre-activation from x, writes gx (N, C, HW)
// and ggamma, gbeta (N, C) (each may be null). CPU only: on CUDA the op runs batch_norm, mul, add
// and leaky_relu.
struct CondBnArgs {
  int N, C, HW;
  float eps, momentum, slope;
  bool training;
};
void cond_batch_norm_forward(const CondBnArgs& a, const float* x, const float* gamma, const float* beta,
                             float* running_mean, float* running_var, float* y, float* save_mean, float* save_invstd);
void cond_batch_norm_backward(const CondBnArgs& a, const float* x, const float* gy, const float* gamma, const float* beta,
                              const float* save_mean, const float* save_invstd, float* gx, float* ggamma, float* gbeta);
}  // namespace cpu

}  // namespace dfq
