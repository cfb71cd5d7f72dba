// norm.cu — CUDA twins of the per-channel statistics: channel_mean_var and batch norm (train and
// eval, forward and backward) over x (N, C, HW); engine/kernels/cpu/{reduce,batch_norm}.cpp.
// Rules: per-channel sums run on (channel, batch split) blocks in double (two passes per chunk for
// the variance: chunk mean, then squared deviations), then one thread per channel combines the
// splits in a fixed order (Chan's merge for mean / var): deterministic, close to the CPU's double
// sums, not bit-equal. The per-element formulas are the CPU's: y = x * scale + shift with scale and
// shift computed per channel in double (no FMA contraction in the apply step), gx in double. Running
// stats: running_var gets the unbiased var * M / (M - 1), M = N * HW (the biased var when M == 1);
// an empty batch leaves them alone and writes save_mean = 0, save_invstd = 1 / sqrt(eps).
#include "engine/kernels/cuda/common.cuh"

namespace dfq::cuda {
namespace {

constexpr int kStatThreads = 256;

// Per-channel outputs of the statistics (each optional): mean, var; train mode: save_mean,
// save_invstd, running stats, and scale_shift (2C: y = x * scale[c] + shift[c]).
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

// part[(c * S + s) * 3 + {0,1,2}] = count, mean, sum of squared deviations of block (c, s)'s chunk
// (two passes over the chunk, in double).
__global__ void stats_partial_kernel(detail::ChanSplit sp, const float* x, double* part) {
  const int c = blockIdx.x, s = blockIdx.y;
  const int n0 = s * sp.per, n1 = min(n0 + sp.per, sp.N);
  const double cnt = double(int64_t(n1 - n0) * sp.HW);
  double sum = 0;
  detail::chan_for_each(sp, c, s, [&](int64_t o) { sum += x[o]; });
  sum = detail::block_sum(sum);
  const double mu = cnt > 0 ? sum / cnt : 0.0;
  double q = 0;
  detail::chan_for_each(sp, c, s, [&](int64_t o) {
    const double d = double(x[o]) - mu;
    q += d * d;
  });
  q = detail::block_sum(q);
  if (threadIdx.x == 0) {
    double* p = part + (int64_t(c) * sp.S + s) * 3;
    p[0] = cnt;
    p[1] = mu;
    p[2] = q;
  }
}

// One thread per channel: merges the splits in order (Chan et al.), then writes the outputs.
__global__ void stats_final_kernel(detail::ChanSplit sp, const double* part, StatsOut o) {
  const int C = sp.C;
  DFQ_GRID_LOOP(ci, C) {
    const int c = static_cast<int>(ci);
    double n = 0, mu = 0, m2 = 0;
    for (int s = 0; s < sp.S; ++s) {
      const double* p = part + (int64_t(c) * sp.S + s) * 3;
      if (p[0] <= 0) continue;
      const double nt = n + p[0], d = p[1] - mu;
      mu += d * (p[0] / nt);
      m2 += p[2] + d * d * (n * p[0] / nt);
      n = nt;
    }
    const double v = n > 0 ? m2 / n : 0.0;
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
    if (o.running_mean && n > 0) {
      const double m = o.momentum;
      const double vu = n > 1 ? v * n / (n - 1) : v;
      o.running_mean[c] = static_cast<float>((1.0 - m) * o.running_mean[c] + m * mu);
      if (o.running_var) o.running_var[c] = static_cast<float>((1.0 - m) * o.running_var[c] + m * vu);
    }
  }
}

// Statistics of x (N, C, HW) into o: partial kernel over (C, S) blocks, then the merge.
void channel_stats(int N, int C, int HW, const float* x, const StatsOut& o) {
  const detail::ChanSplit sp = detail::chan_split(N, C, HW);
  DeviceBuffer part(size_t(C) * sp.S * 3 * sizeof(double));
  DFQ_LAUNCH(stats_partial_kernel, dim3(C, sp.S), kStatThreads, sp, x, part.as<double>());
  DFQ_LAUNCH(stats_final_kernel, grid_for(C), detail::kThreads, sp, part.as<const double>(), o);
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

// part[(c * S + s) * 2 + {0,1}] = sum gy, sum gy * xhat over block (c, s)'s chunk (double); invstd
// from `invstd` or, in eval mode, 1/sqrt(running_var + eps).
__global__ void grad_sums_partial_kernel(detail::ChanSplit sp, float eps, const float* x, const float* gy,
                                         const float* mean, const float* invstd, const float* running_var,
                                         double* part) {
  const int c = blockIdx.x, s = blockIdx.y;
  const double mu = mean[c];
  const double is = invstd ? double(invstd[c]) : 1.0 / sqrt(double(running_var[c]) + eps);
  double sg = 0, sgx = 0;
  detail::chan_for_each(sp, c, s, [&](int64_t o) {
    const double g = gy[o];
    sg += g;
    sgx += g * ((double(x[o]) - mu) * is);
  });
  sg = detail::block_sum(sg);
  sgx = detail::block_sum(sgx);
  if (threadIdx.x == 0) {
    double* p = part + (int64_t(c) * sp.S + s) * 2;
    p[0] = sg;
    p[1] = sgx;
  }
}

// One thread per channel: sums the splits in order; sums[c] = sum gy, sums[C + c] = sum gy * xhat
// (optional), ggamma / gbeta (optional).
__global__ void grad_sums_final_kernel(detail::ChanSplit sp, const double* part, double* sums, float* ggamma,
                                       float* gbeta) {
  const int C = sp.C;
  DFQ_GRID_LOOP(ci, C) {
    const int c = static_cast<int>(ci);
    double sg = 0, sgx = 0;
    for (int s = 0; s < sp.S; ++s) {
      sg += part[(int64_t(c) * sp.S + s) * 2];
      sgx += part[(int64_t(c) * sp.S + s) * 2 + 1];
    }
    if (sums) {
      sums[c] = sg;
      sums[C + c] = sgx;
    }
    if (ggamma) ggamma[c] = static_cast<float>(sgx);
    if (gbeta) gbeta[c] = static_cast<float>(sg);
  }
}

void grad_sums(const BatchNormArgs& a, const float* x, const float* gy, const float* mean, const float* invstd,
               const float* running_var, double* sums, float* ggamma, float* gbeta) {
  const detail::ChanSplit sp = detail::chan_split(a.N, a.C, a.HW);
  DeviceBuffer part(size_t(a.C) * sp.S * 2 * sizeof(double));
  DFQ_LAUNCH(grad_sums_partial_kernel, dim3(a.C, sp.S), kStatThreads, sp, a.eps, x, gy, mean, invstd, running_var,
             part.as<double>());
  DFQ_LAUNCH(grad_sums_final_kernel, grid_for(a.C), detail::kThreads, sp, part.as<const double>(), sums, ggamma,
             gbeta);
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

}  // namespace

__global__ void channel_affine_kernel(int64_t total, int C, int HW, const float* x, const float* scale, const float* shift,
                                      float* y) {
  DFQ_GRID_LOOP(i, total) {
    const int c = static_cast<int>((i / HW) % C);
    y[i] = __fadd_rn(__fmul_rn(x[i], scale[c]), shift[c]);
  }
}

void channel_affine(int N, int C, int HW, const float* x, const float* scale, const float* shift, float* y) {
  const int64_t total = int64_t(N) * C * HW;
  if (total <= 0) return;
  DFQ_LAUNCH(channel_affine_kernel, grid_for(total), detail::kThreads, total, C, HW, x, scale, shift, y);
}

void channel_mean_var(int N, int C, int HW, const float* x, float* mean, float* var) {
  if (C <= 0 || N < 0 || HW < 0) return;
  StatsOut o;
  o.mean = mean;
  o.var = var;
  channel_stats(N, C, HW, x, o);
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
  channel_stats(a.N, a.C, a.HW, x, o);
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
  grad_sums(a, x, gy, save_mean, save_invstd, nullptr, sums.as<double>(), ggamma, gbeta);
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
    grad_sums(a, x, gy, running_mean, nullptr, running_var, nullptr, ggamma, gbeta);
  if (gx && total > 0)
    DFQ_LAUNCH(bn_backward_eval_gx_kernel, grid_for(total), detail::kThreads, total, a.C, a.HW, a.eps, gy, gamma,
               running_var, gx);
}

}  // namespace dfq::cuda
