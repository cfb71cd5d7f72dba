// embed_optim.cu — CUDA twins of the embedding lookup (forward, backward by scatter-add) and the
// fused optimizer updates (SGD with momentum / Nesterov / weight decay, Adam), PyTorch semantics.
// Rules: embedding_backward accumulates with atomicAdd (repeated indices add up; the order of the
// additions, hence the last bits, may vary run to run). Indices outside [0, rows) cannot throw on
// the device: forward writes NaN for them, backward skips them (the table size is not an argument,
// so only negative indices are detectable there). Optimizer steps are one thread per parameter.
#include <cmath>

#include "engine/kernels/cuda/common.cuh"

namespace dfq::cuda {
namespace {

__global__ void embedding_fwd_kernel(int64_t total, int64_t dim, const int64_t* idx, const float* table, float* y) {
  DFQ_GRID_LOOP(t, total) {
    const int64_t i = t / dim, d = t - i * dim;
    const int64_t row = idx[i];
    y[t] = row >= 0 ? table[row * dim + d] : NAN;
  }
}

__global__ void embedding_bwd_kernel(int64_t total, int64_t dim, const int64_t* idx, const float* gy, float* gtable) {
  DFQ_GRID_LOOP(t, total) {
    const int64_t i = t / dim, d = t - i * dim;
    const int64_t row = idx[i];
    if (row >= 0) atomicAdd(gtable + row * dim + d, gy[t]);
  }
}

__global__ void sgd_kernel(SgdArgs a, int64_t n, float* p, const float* g, float* buf) {
  DFQ_GRID_LOOP(i, n) {
    float gi = g[i];
    if (a.weight_decay != 0.f) gi = gi + a.weight_decay * p[i];
    float d = gi;
    if (a.momentum != 0.f) {
      const float b = a.first_step ? gi : a.momentum * buf[i] + gi;
      buf[i] = b;
      d = a.nesterov ? gi + a.momentum * b : b;
    }
    p[i] -= a.lr * d;
  }
}

// Float constants formed on the host from AdamArgs' doubles, as the CPU kernel forms them.
struct AdamConsts { float b1, b2, omb1, omb2, eps, wd, step_size, bc2_sqrt; };
__global__ void adam_kernel(AdamConsts c, int64_t n, float* p, const float* g, float* m, float* v) {
  DFQ_GRID_LOOP(i, n) {
    float gi = g[i];
    if (c.wd != 0.f) gi = gi + c.wd * p[i];
    const float mi = c.b1 * m[i] + c.omb1 * gi;
    const float vi = c.b2 * v[i] + c.omb2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float denom = sqrtf(vi) / c.bc2_sqrt + c.eps;
    const float step_size = c.step_size;
    p[i] -= step_size * mi / denom;
  }
}

}  // namespace

void embedding_forward(int64_t n_idx, int64_t dim, const int64_t* idx, const float* table, float* y) {
  const int64_t total = n_idx * dim;
  if (n_idx <= 0 || dim <= 0) return;
  DFQ_LAUNCH(embedding_fwd_kernel, grid_for(total), detail::kThreads, total, dim, idx, table, y);
}

void embedding_backward(int64_t n_idx, int64_t dim, const int64_t* idx, const float* gy, float* gtable) {
  const int64_t total = n_idx * dim;
  if (n_idx <= 0 || dim <= 0) return;
  DFQ_LAUNCH(embedding_bwd_kernel, grid_for(total), detail::kThreads, total, dim, idx, gy, gtable);
}

void sgd_update(const SgdArgs& a, int64_t n, float* p, const float* g, float* momentum_buf) {
  if (n <= 0) return;
  if (a.momentum != 0.f && !momentum_buf) throw std::invalid_argument("dfq: cuda sgd_update: momentum needs a buffer");
  DFQ_LAUNCH(sgd_kernel, grid_for(n), detail::kThreads, a, n, p, g, momentum_buf);
}

void adam_update(const AdamArgs& a, int64_t n, float* p, const float* g, float* m, float* v) {
  if (n <= 0) return;
  if (a.step < 1) throw std::invalid_argument("dfq: cuda adam_update: step must be >= 1");
  const double bc1 = 1.0 - std::pow(double(a.beta1), double(a.step));
  const double bc2 = 1.0 - std::pow(double(a.beta2), double(a.step));
  AdamConsts c{static_cast<float>(a.beta1), static_cast<float>(a.beta2), static_cast<float>(1.0 - a.beta1),
               static_cast<float>(1.0 - a.beta2), static_cast<float>(a.eps), static_cast<float>(a.weight_decay),
               static_cast<float>(a.lr / bc1), static_cast<float>(std::sqrt(bc2))};
  DFQ_LAUNCH(adam_kernel, grid_for(n), detail::kThreads, c, n, p, g, m, v);
}

}  // namespace dfq::cuda
