// norm.cu — CUDA twins of the per-channel statistics: channel_mean_var and batch norm (train and
// eval, forward and backward) over x (N, C, HW); engine/kernels/cpu/{reduce,batch_norm}.cpp.
// Rules: per-channel sums run one block per channel, accumulated in double (two passes for the
// variance: mean first, then squared deviations), so they are close to the CPU's double sums but not
// bit-equal. The per-element formulas are the CPU's: y = x * scale + shift with scale / shift
// computed per channel in double (no FMA contraction in the apply step), gx in double. Running
// stats: running_var gets the unbiased var * M / (M - 1), M = N * HW (the biased var when M == 1);
// an empty batch leaves them alone and writes save_mean = 0, save_invstd = 1 / sqrt(eps).
#include "engine/kernels/cuda/common.cuh"

namespace dfq::cuda {
namespace {

constexpr int kStatThreads = 512;

__device__ __forceinline__ int64_t chan_offset(int64_t i, int c, int C, int HW) {
  const int64_t n = i / HW;
  return (n * C + c) * HW + (i - n * HW);
}

// Per channel: biased mean / var in double. Outputs (each optional): mean, var; train mode:
// save_mean, save_invstd, running stats, and scale_shift (2C: y = x * scale[c] + shift[c]).
struct StatsOut {
  float* mean = nullptr;
  float* var = nullptr;
  float* save_mean = nullptr;
  float* save_invstd = nullptr;
  float* running_mean = nullptr;
  float* running_var = nullptr;
  float* scale_shift = nullptr;
  const float* gamma = nullptr;
  const float* beta = nullptr;
  float eps = 0.f, momentum = 0.f;
};

__global__ void channel_stats_kernel(int N, int C, int HW, const float* x, StatsOut o) {
  const int64_t M = int64_t(N) * HW;
  for (int c = blockIdx.x; c < C; c += gridDim.x) {  // uniform over the block
    double s = 0;
    for (int64_t i = threadIdx.x; i < M; i += blockDim.x) s += x[chan_offset(i, c, C, HW)];
    s = detail::block_sum(s);
    const double mu = M > 0 ? s / double(M) : 0.0;
    double q = 0;
    for (int64_t i = threadIdx.x; i < M; i += blockDim.x) {
      const double d = double(x[chan_offset(i, c, C, HW)]) - mu;
      q += d * d;
    }
    q = detail::block_sum(q);
    if (threadIdx.x == 0) {
      const double v = M > 0 ? q / double(M) : 0.0;
      const double invstd = 1.0 / sqrt(v + double(o.eps));
      if (o.mean) o.mean[c] = static_cast<float>(mu);
      if (o.var) o.var[c] = static_cast<float>(v);
      if (o.save_mean) o.save_mean[c] = static_cast<float>(mu);
      if (o.save_invstd) o.save_invstd[c] = static_cast<float>(invstd);
      if (o.scale_shift) {
        const double g = o.gamma ? o.gamma[c] : 1.0, b = o.beta ? o.beta[c] : 0.0;
        o.scale_shift[c] = static_cast<float>(invstd * g);
        o.scale_shift[C + c] = static_cast<float>(b - mu * invstd * g);
      }
      if (o.running_mean && M > 0) {
        const double m = o.momentum;
        const double vu = M > 1 ? v * double(M) / double(M - 1) : v;
        o.running_mean[c] = static_cast<float>((1.0 - m) * o.running_mean[c] + m * mu);
        if (o.running_var) o.running_var[c] = static_cast<float>((1.0 - m) * o.running_var[c] + m * vu);
      }
    }
  }
}

// Eval mode: scale / shift from the running stats, one thread per channel.
__global__ void eval_scale_shift_kernel(int C, float eps, const float* gamma, const float* beta, const float* rm,
                                        const float* rv, float* scale_shift) {
  DFQ_GRID_LOOP(c, C) {
    const double invstd = 1.0 / sqrt(double(rv[c]) + eps);
    const double g = gamma ? gamma[c] : 1.0, b = beta ? beta[c] : 0.0;
    scale_shift[c] = static_cast<float>(invstd * g);
    scale_shift[C + c] = static_cast<float>(b - rm[c] * invstd * g);
  }
}

// y = x * scale[c] + shift[c], rounded as the CPU does (no FMA)
__global__ void bn_apply_kernel(int64_t total, int C, int HW, const float* x, const float* ss, float* y) {
  DFQ_GRID_LOOP(i, total) {
    const int c = static_cast<int>((i / HW) % C);
    y[i] = __fadd_rn(__fmul_rn(x[i], ss[c]), ss[C + c]);
  }
}

// sums[c] = sum gy, sums[C + c] = sum gy * xhat (double); invstd from `invstd` or, in eval mode,
// 1/sqrt(running_var + eps). ggamma / gbeta (optional) get the sums.
__global__ void bn_grad_sums_kernel(int N, int C, int HW, float eps, const float* x, const float* gy,
                                    const float* mean, const float* invstd, const float* running_var, double* sums,
                                    float* ggamma, float* gbeta) {
  const int64_t M = int64_t(N) * HW;
  for (int c = blockIdx.x; c < C; c += gridDim.x) {
    const double mu = mean[c];
    const double is = invstd ? double(invstd[c]) : 1.0 / sqrt(double(running_var[c]) + eps);
    double sg = 0, sgx = 0;
    for (int64_t i = threadIdx.x; i < M; i += blockDim.x) {
      const int64_t o = chan_offset(i, c, C, HW);
      const double g = gy[o];
      sg += g;
      sgx += g * ((double(x[o]) - mu) * is);
    }
    sg = detail::block_sum(sg);
    sgx = detail::block_sum(sgx);
    if (threadIdx.x == 0) {
      if (sums) {
        sums[c] = sg;
        sums[C + c] = sgx;
      }
      if (ggamma) ggamma[c] = static_cast<float>(sgx);
      if (gbeta) gbeta[c] = static_cast<float>(sg);
    }
  }
}

// gx = k * (gy - mean(gy) - xhat * mean(gy * xhat)), k = gamma * invstd, in double as the CPU.
__global__ void bn_backward_train_gx_kernel(int64_t total, int C, int HW, int64_t M, const float* x, const float* gy,
                                            const float* gamma, const float* mean, const float* invstd,
                                            const double* sums, float* gx) {
  DFQ_GRID_LOOP(i, total) {
    const int c = static_cast<int>((i / HW) % C);
    const double is = invstd[c], k = (gamma ? double(gamma[c]) : 1.0) * is;
    const double xhat = (double(x[i]) - double(mean[c])) * is;
    const double mg = sums[c] / double(M), mgx = sums[C + c] / double(M);
    gx[i] = static_cast<float>(k * (double(gy[i]) - mg - xhat * mgx));
  }
}

// gx = gy * k, k = float(gamma / sqrt(running_var + eps)) as the CPU rounds it
__global__ void bn_backward_eval_gx_kernel(int64_t total, int C, int HW, float eps, const float* gy,
                                           const float* gamma, const float* rv, float* gx) {
  DFQ_GRID_LOOP(i, total) {
    const int c = static_cast<int>((i / HW) % C);
    const float k = static_cast<float>((gamma ? double(gamma[c]) : 1.0) * (1.0 / sqrt(double(rv[c]) + eps)));
    gx[i] = gy[i] * k;
  }
}

unsigned channel_grid(int C) { return static_cast<unsigned>(C < 65535 ? C : 65535); }

}  // namespace

void channel_mean_var(int N, int C, int HW, const float* x, float* mean, float* var) {
  if (C <= 0 || N < 0 || HW < 0) return;
  StatsOut o;
  o.mean = mean;
  o.var = var;
  DFQ_LAUNCH(channel_stats_kernel, channel_grid(C), kStatThreads, N, C, HW, x, o);
}

void batch_norm_forward_train(const BatchNormArgs& a, const float* x, const float* gamma, const float* beta,
                              float* running_mean, float* running_var, float* y, float* save_mean, float* save_invstd) {
  if (a.C <= 0 || a.N < 0 || a.HW < 0) return;
  const int64_t total = int64_t(a.N) * a.C * a.HW;
  DeviceBuffer ss(2 * size_t(a.C) * sizeof(float));
  StatsOut o;
  o.save_mean = save_mean;
  o.save_invstd = save_invstd;
  o.running_mean = running_mean;
  o.running_var = running_var;
  o.scale_shift = ss.as<float>();
  o.gamma = gamma;
  o.beta = beta;
  o.eps = a.eps;
  o.momentum = a.momentum;
  DFQ_LAUNCH(channel_stats_kernel, channel_grid(a.C), kStatThreads, a.N, a.C, a.HW, x, o);
  if (total > 0)
    DFQ_LAUNCH(bn_apply_kernel, grid_for(total), detail::kThreads, total, a.C, a.HW, x, ss.as<const float>(), y);
}

void batch_norm_forward_eval(const BatchNormArgs& a, const float* x, const float* gamma, const float* beta,
                             const float* running_mean, const float* running_var, float* y) {
  const int64_t total = int64_t(a.N) * a.C * a.HW;
  if (a.C <= 0 || total <= 0) return;
  DeviceBuffer ss(2 * size_t(a.C) * sizeof(float));
  DFQ_LAUNCH(eval_scale_shift_kernel, grid_for(a.C), detail::kThreads, a.C, a.eps, gamma, beta, running_mean,
             running_var, ss.as<float>());
  DFQ_LAUNCH(bn_apply_kernel, grid_for(total), detail::kThreads, total, a.C, a.HW, x, ss.as<const float>(), y);
}

void batch_norm_backward_train(const BatchNormArgs& a, const float* x, const float* gy, const float* gamma,
                               const float* save_mean, const float* save_invstd, float* gx, float* ggamma,
                               float* gbeta) {
  if (a.C <= 0 || a.N < 0 || a.HW < 0) return;
  const int64_t M = int64_t(a.N) * a.HW, total = M * a.C;
  DeviceBuffer sums(gx && total > 0 ? 2 * size_t(a.C) * sizeof(double) : 0);
  DFQ_LAUNCH(bn_grad_sums_kernel, channel_grid(a.C), kStatThreads, a.N, a.C, a.HW, a.eps, x, gy, save_mean,
             save_invstd, nullptr, sums.as<double>(), ggamma, gbeta);
  if (gx && total > 0)
    DFQ_LAUNCH(bn_backward_train_gx_kernel, grid_for(total), detail::kThreads, total, a.C, a.HW, M, x, gy, gamma,
               save_mean, save_invstd, sums.as<const double>(), gx);
}

void batch_norm_backward_eval(const BatchNormArgs& a, const float* x, const float* gy, const float* gamma,
                              const float* running_mean, const float* running_var, float* gx, float* ggamma,
                              float* gbeta) {
  if (a.C <= 0 || a.N < 0 || a.HW < 0) return;
  const int64_t total = int64_t(a.N) * a.C * a.HW;
  if (ggamma || gbeta)
    DFQ_LAUNCH(bn_grad_sums_kernel, channel_grid(a.C), kStatThreads, a.N, a.C, a.HW, a.eps, x, gy, running_mean,
               nullptr, running_var, nullptr, ggamma, gbeta);
  if (gx && total > 0)
    DFQ_LAUNCH(bn_backward_eval_gx_kernel, grid_for(total), detail::kThreads, total, a.C, a.HW, a.eps, gy, gamma,
               running_var, gx);
}

}  // namespace dfq::cuda
