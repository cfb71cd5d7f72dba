// softmax_loss.cu — CUDA twins of softmax / log_softmax (forward and backward, row-wise over the
// last dimension), the NLL loss and the point-wise KL-divergence term.
// Rules: one block per row for the row reductions (max, then the sum of exponentials in double,
// exp / log in double, as the CPU does: results agree to the last bit or so); the NLL mean is
// summed in double by one block; zero rows give a NaN loss (mean of nothing). Labels outside
// [0, cols) cannot throw on the device: they make the loss NaN and are ignored by the backward.
#include <algorithm>

#include "engine/kernels/cuda/common.cuh"

namespace dfq::cuda {
namespace {

constexpr int kRowThreads = 256;

__global__ void softmax_fwd_kernel(int64_t rows, int64_t cols, bool log, const float* x, float* y) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {  // uniform over the block
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) mx = fmaxf(mx, xr[j]);
    mx = detail::block_max(mx);
    if (isinf(mx) && mx < 0) mx = 0.f;  // all -inf: avoid (-inf) - (-inf), as the CPU
    double s = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += exp(double(xr[j]) - mx);
    s = detail::block_sum(s);
    if (log) {
      const double lse = ::log(s);
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = static_cast<float>(double(xr[j]) - mx - lse);
    } else {
      const double inv = 1.0 / s;
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
        yr[j] = static_cast<float>(exp(double(xr[j]) - mx) * inv);
    }
  }
}

// softmax: gx = y * (gy - sum(gy * y)); log_softmax: gx = gy - exp(y) * sum(gy); in double as the CPU
__global__ void softmax_bwd_kernel(int64_t rows, int64_t cols, bool log, const float* y, const float* gy,
                                   float* gx) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* yr = y + r * cols;
    const float* gr = gy + r * cols;
    float* out = gx + r * cols;
    double s = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += log ? double(gr[j]) : double(gr[j]) * yr[j];
    s = detail::block_sum(s);
    if (log) {
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
        out[j] = static_cast<float>(gr[j] - exp(double(yr[j])) * s);
    } else {
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) out[j] = static_cast<float>(yr[j] * (gr[j] - s));
    }
  }
}

__global__ void nll_fwd_kernel(int64_t rows, int64_t cols, const float* logp, const int64_t* labels, float* loss) {
  double s = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    const int64_t c = labels[r];
    s += (c >= 0 && c < cols) ? double(logp[r * cols + c]) : double(NAN);
  }
  s = detail::block_sum(s);
  if (threadIdx.x == 0) loss[0] = static_cast<float>(-s / double(rows));
}

__global__ void nll_bwd_kernel(int64_t total, int64_t rows, int64_t cols, const int64_t* labels, const float* gloss,
                               float* glogp) {
  const float v = static_cast<float>(-double(gloss[0]) / double(rows));
  DFQ_GRID_LOOP(i, total) {
    const int64_t r = i / cols, c = i - r * cols;
    glogp[i] = labels[r] == c ? v : 0.f;
  }
}

__global__ void nan_kernel(float* y) { y[0] = NAN; }

__global__ void kl_fwd_kernel(int64_t n, const float* input, const float* target, float* y) {
  DFQ_GRID_LOOP(i, n) {
    const float t = target[i];
    y[i] = t == 0.f ? 0.f : t * (logf(t) - input[i]);
  }
}

__global__ void kl_bwd_kernel(int64_t n, const float* input, const float* target, const float* gy, float* ginput,
                              float* gtarget) {
  DFQ_GRID_LOOP(i, n) {
    const float t = target[i], g = gy[i];
    if (ginput) ginput[i] = -t * g;
    if (gtarget) gtarget[i] = t == 0.f ? 0.f : (logf(t) + 1.f - input[i]) * g;
  }
}

unsigned row_grid(int64_t rows) { return static_cast<unsigned>(std::min<int64_t>(rows, int64_t(1) << 20)); }

}  // namespace

void softmax_forward(int64_t rows, int64_t cols, bool log, const float* x, float* y) {
  if (rows <= 0 || cols <= 0) return;
  DFQ_LAUNCH(softmax_fwd_kernel, row_grid(rows), kRowThreads, rows, cols, log, x, y);
}

void softmax_backward(int64_t rows, int64_t cols, bool log, const float* y, const float* gy, float* gx) {
  if (rows <= 0 || cols <= 0) return;
  DFQ_LAUNCH(softmax_bwd_kernel, row_grid(rows), kRowThreads, rows, cols, log, y, gy, gx);
}

void nll_forward(int64_t rows, int64_t cols, const float* logp, const int64_t* labels, float* loss) {
  if (rows <= 0) {  // mean of nothing: NaN, as the CPU and PyTorch
    DFQ_LAUNCH(nan_kernel, 1, 1, loss);
    return;
  }
  DFQ_LAUNCH(nll_fwd_kernel, 1, 1024, rows, cols, logp, labels, loss);
}

void nll_backward(int64_t rows, int64_t cols, const int64_t* labels, const float* gloss, float* glogp) {
  const int64_t total = rows * cols;
  if (rows <= 0 || cols <= 0) return;
  DFQ_LAUNCH(nll_bwd_kernel, grid_for(total), detail::kThreads, total, rows, cols, labels, gloss, glogp);
}

void kl_div_forward(int64_t n, const float* input, const float* target, float* y) {
  if (n <= 0) return;
  DFQ_LAUNCH(kl_fwd_kernel, grid_for(n), detail::kThreads, n, input, target, y);
}

void kl_div_backward(int64_t n, const float* input, const float* target, const float* gy, float* ginput,
                     float* gtarget) {
  if (n <= 0 || (!ginput && !gtarget)) return;
  DFQ_LAUNCH(kl_bwd_kernel, grid_for(n), detail::kThreads, n, input, target, gy, ginput, gtarget);
}

}  // namespace dfq::cuda
