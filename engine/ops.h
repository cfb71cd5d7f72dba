// ops.h — the differentiable ops of the engine. Each op checks its arguments (one clear message on
// misuse), makes its inputs contiguous, calls the kernel of its inputs' device (dispatch.h) and
// records its backward (autograd.h). All inputs of one op must be on the same device.
// Float ops take float32 tensors; index tensors (labels, embedding ids) are int64.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/tensor.h"

namespace dfq {

// ---- random numbers (Philox 4x32-10; identical on CPU and CUDA for the same seed) ------------
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed; offset_ = offset; }
  // Reserves the counters for n draws and returns the first one.
  uint64_t advance(int64_t n) {
    uint64_t o = offset_;
    offset_ += static_cast<uint64_t>((n + 3) / 4);
    return o;
  }

 private:
  uint64_t seed_ = 0, offset_ = 0;
};
Tensor randn(const Shape& shape, Generator& gen, Device dev = Device::CPU, float mean = 0.f, float stddev = 1.f);
Tensor rand(const Shape& shape, Generator& gen, Device dev = Device::CPU, float lo = 0.f, float hi = 1.f);
Tensor randint(const Shape& shape, int64_t lo, int64_t hi, Generator& gen, Device dev = Device::CPU);

// ---- element-wise (broadcasting as NumPy/PyTorch, up to 6 dims) ------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add_scalar(const Tensor& x, float s);
Tensor mul_scalar(const Tensor& x, float s);
Tensor neg(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor relu6(const Tensor& x);  // min(max(x, 0), 6) (MobileNetV2)
Tensor leaky_relu(const Tensor& x, float negative_slope = 0.01f);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor square(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor abs(const Tensor& x);
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator+(const Tensor& a, float s) { return add_scalar(a, s); }
inline Tensor operator-(const Tensor& a, float s) { return add_scalar(a, -s); }
inline Tensor operator*(const Tensor& a, float s) { return mul_scalar(a, s); }
inline Tensor operator*(float s, const Tensor& a) { return mul_scalar(a, s); }
inline Tensor operator-(const Tensor& a) { return neg(a); }

// The shape two shapes broadcast to; throws naming both when they don't.
Shape broadcast_shapes(const Shape& a, const Shape& b);
// Sums g down to shape (the backward of broadcasting).
Tensor sum_to(const Tensor& g, const Shape& shape);
// Repeats x (broadcastable to shape) into a dense tensor of that shape.
Tensor expand(const Tensor& x, const Shape& shape);

// ---- reductions ------------------------------------------------------------------------------
// Losses and full reductions return 0-d tensors (shape [], one element), as PyTorch.
Tensor sum(const Tensor& x);  // all elements -> 0-d
// Over dims (an empty list means every dim, as torch.sum(x, dim=[]) in PyTorch 1.13).
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
// Variance over dims: unbiased divides by (n - 1), biased by n.
Tensor var(const Tensor& x, const std::vector<int64_t>& dims, bool unbiased, bool keepdim = false);

// ---- layers ----------------------------------------------------------------------------------
struct Conv2dOptions {
  std::array<int, 2> stride{1, 1}, padding{0, 0}, dilation{1, 1};
  int groups = 1;
};
// x (N,C,H,W), w (K,C/groups,R,S), b (K) or undefined
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& o = {});
// x (N,in), w (out,in), b (out) or undefined -> (N,out)
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);
// Matrix product of 2-D tensors (M,K) x (K,N)
Tensor matmul(const Tensor& a, const Tensor& b);

// Batch norm for x (N,C,H,W) or (N,C). training: batch statistics (biased var to normalise),
// and when running_mean/var are defined they are updated in place (momentum, unbiased var).
// Not training: running statistics. gamma/beta may be undefined (affine=false).
// If stats_out is given and training, it receives the batch mean and biased var (C), detached.
struct BatchStats { Tensor mean, var; };
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                  const Tensor& running_var, bool training, float momentum = 0.1f, float eps = 1e-5f,
                  BatchStats* stats_out = nullptr);

// Conditional batch norm (GDFQ's generator) with an optional leaky ReLU:
//   leaky_relu(gamma * batch_norm(x) + beta, slope), gamma / beta (N, C) per sample and channel,
// batch_norm without affine (batch statistics and the running-stat update when training, the
// running statistics otherwise); slope 1 means no activation. On the CPU one fused kernel forward
// and one backward (cpu::cond_batch_norm_*); on CUDA these four ops.
Tensor cond_batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                       const Tensor& running_var, bool training, float momentum, float eps, float slope = 1.f);

// Per-channel batch mean and biased variance of x (N, C, ...) over every dim but 1, as one (2, C)
// tensor [mean; var] (GDFQ's BNS loss on every BN input): one channel_mean_var kernel forward,
// backward dx = (g_mean + 2 g_var (x - mean)) / M in one channel_affine pass, where the same through
// mean() and var() takes a dozen passes and strided copies.
Tensor channel_moments(const Tensor& x);

Tensor max_pool2d(const Tensor& x, int kernel, int stride, int padding = 0);
Tensor avg_pool2d(const Tensor& x, int kernel, int stride, int padding = 0);
Tensor adaptive_avg_pool2d(const Tensor& x, int out_h, int out_w);
Tensor upsample_nearest2x(const Tensor& x);
// conv2d(upsample_nearest2x(x), w, b, padding 1) for a 3x3 weight (K, C, 3, 3), groups 1: on the CPU
// one fused kernel with 4/9 of the multiply-adds (cpu/shifted_conv.cpp), on CUDA the two ops.
Tensor upsample_nearest2x_conv3x3(const Tensor& x, const Tensor& w, const Tensor& b);
// idx (any shape, int64) -> idx.shape + (dim)
Tensor embedding(const Tensor& idx, const Tensor& table);
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);

// ---- softmax and losses (over the last dimension) --------------------------------------------
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);
// mean over rows of -logp[label]; logits (B,C), labels (B) int64
Tensor nll_loss(const Tensor& logp, const Tensor& labels);
Tensor cross_entropy(const Tensor& logits, const Tensor& labels);
// torch.nn.functional.kl_div(input (log-probabilities), target (probabilities), reduction):
// "mean" divides the sum by every element (B*C), "batchmean" by B, "sum" not at all.
Tensor kl_div(const Tensor& input, const Tensor& target, const std::string& reduction);
Tensor mse_loss(const Tensor& a, const Tensor& b);  // mean of squared differences

// ---- helpers ---------------------------------------------------------------------------------
// Row-wise argmax of (B,C) logits on the host; top-k hits for accuracy.
std::vector<int64_t> argmax_rows(const Tensor& logits);
// Number of rows whose label is among the k largest logits; a row with a NaN or an infinity is a
// miss. Throws std::out_of_range for a label outside [0, C).
int64_t topk_correct(const Tensor& logits, const Tensor& labels, int k);
int64_t nonfinite_rows(const Tensor& logits);  // rows holding a NaN or an infinity

}  // namespace dfq
