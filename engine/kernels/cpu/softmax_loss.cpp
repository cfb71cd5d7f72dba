// softmax_loss.cpp — CPU reference softmax / log_softmax (row-wise), NLL loss, the point-wise
// KL-divergence term, and embedding lookup / scatter-add.
// Rules: row sums (max-shifted exp sums, softmax backward dot products) and the NLL mean
// accumulate in double, one row per thread; embedding_backward sums repeated indices in index
// order (threads split the columns, never the indices), so everything is deterministic.
// nll_forward over zero rows gives NaN (mean of nothing), as PyTorch does.
#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/kernels/cpu/common.h"
#include "engine/kernels/kernels.h"

namespace dfq::cpu {
using detail::kParMin;

void softmax_forward(int64_t rows, int64_t cols, bool log, const float* x, float* y) {
#pragma omp parallel for schedule(static) if (rows * cols > kParMin / 4 && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    float mx = -INFINITY;
    for (int64_t j = 0; j < cols; ++j) mx = std::max(mx, xr[j]);
    if (std::isinf(mx) && mx < 0) mx = 0.f;  // all -inf: avoid (-inf) - (-inf)
    double s = 0;
    for (int64_t j = 0; j < cols; ++j) s += std::exp(double(xr[j]) - mx);
    if (log) {
      const double lse = std::log(s);
      for (int64_t j = 0; j < cols; ++j) yr[j] = static_cast<float>(double(xr[j]) - mx - lse);
    } else {
      const double inv = 1.0 / s;
      for (int64_t j = 0; j < cols; ++j) yr[j] = static_cast<float>(std::exp(double(xr[j]) - mx) * inv);
    }
  }
}

void softmax_backward(int64_t rows, int64_t cols, bool log, const float* y, const float* gy, float* gx) {
#pragma omp parallel for schedule(static) if (rows * cols > kParMin / 4 && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const float* yr = y + r * cols;
    const float* gr = gy + r * cols;
    float* gxr = gx + r * cols;
    double s = 0;
    if (log) {  // gx = gy - exp(y) * sum(gy)
      for (int64_t j = 0; j < cols; ++j) s += gr[j];
      for (int64_t j = 0; j < cols; ++j) gxr[j] = static_cast<float>(gr[j] - std::exp(double(yr[j])) * s);
    } else {  // gx = y * (gy - sum(gy * y))
      for (int64_t j = 0; j < cols; ++j) s += double(gr[j]) * yr[j];
      for (int64_t j = 0; j < cols; ++j) gxr[j] = static_cast<float>(yr[j] * (gr[j] - s));
    }
  }
}

void nll_forward(int64_t rows, int64_t cols, const float* logp, const int64_t* labels, float* loss) {
  if (rows <= 0) {
    loss[0] = std::numeric_limits<float>::quiet_NaN();
    return;
  }
  double s = 0;
  for (int64_t r = 0; r < rows; ++r) s += logp[r * cols + labels[r]];
  loss[0] = static_cast<float>(-s / double(rows));
}

void nll_backward(int64_t rows, int64_t cols, const int64_t* labels, const float* gloss, float* glogp) {
  if (rows <= 0) return;
  const float v = static_cast<float>(-double(gloss[0]) / double(rows));
#pragma omp parallel for schedule(static) if (rows * cols > kParMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    float* g = glogp + r * cols;
    std::fill(g, g + cols, 0.f);
    g[labels[r]] = v;
  }
}

void kl_div_forward(int64_t n, const float* input, const float* target, float* y) {
#pragma omp parallel for schedule(static) if (n > kParMin)
  for (int64_t i = 0; i < n; ++i) {
    const float t = target[i];
    y[i] = t == 0.f ? 0.f : t * (std::log(t) - input[i]);
  }
}

void kl_div_backward(int64_t n, const float* input, const float* target, const float* gy, float* ginput,
                     float* gtarget) {
#pragma omp parallel for schedule(static) if (n > kParMin)
  for (int64_t i = 0; i < n; ++i) {
    const float t = target[i];
    if (ginput) ginput[i] = -t * gy[i];
    if (gtarget) gtarget[i] = t == 0.f ? 0.f : (std::log(t) + 1.f - input[i]) * gy[i];
  }
}

void embedding_forward(int64_t n_idx, int64_t dim, const int64_t* idx, const float* table, float* y) {
#pragma omp parallel for schedule(static) if (n_idx * dim > kParMin && n_idx > 1)
  for (int64_t i = 0; i < n_idx; ++i) std::copy(table + idx[i] * dim, table + (idx[i] + 1) * dim, y + i * dim);
}

void embedding_backward(int64_t n_idx, int64_t dim, const int64_t* idx, const float* gy, float* gtable) {
  if (n_idx <= 0 || dim <= 0) return;
  constexpr int64_t kBlock = 64;
  const int64_t nblk = (dim + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n_idx * dim > kParMin && nblk > 1)
  for (int64_t b = 0; b < nblk; ++b) {
    const int64_t j0 = b * kBlock, j1 = std::min(dim, j0 + kBlock);
    for (int64_t i = 0; i < n_idx; ++i) {
      float* dst = gtable + idx[i] * dim;
      const float* src = gy + i * dim;
      for (int64_t j = j0; j < j1; ++j) dst[j] += src[j];
    }
  }
}

}  // namespace dfq::cpu
