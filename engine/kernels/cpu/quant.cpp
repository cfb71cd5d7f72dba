// quant.cpp — CPU reference kernels of the fake-quantizer (kernel_list.inc, "fake quantization").
// Rules: the arithmetic is engine/kernels/quant_math.h's (float32, each operation rounded on its
// own in the official code's op order, -ffp-contract=off; round half to even with rintf in the
// default rounding mode). The asymmetric grid is bit-exact with the official ZeroQ/GDFQ
// quantizer (../shared/golden/quant). Each element is independent: the OpenMP split never
// changes a result.
#include <algorithm>
#include <cmath>

#include "engine/kernels/cpu/common.h"
#include "engine/kernels/kernels.h"
#include "engine/kernels/quant_math.h"

namespace dfq::cpu {
using detail::kParMin;

void minmax_rows(int64_t rows, int64_t cols, const float* x, float* lo, float* hi) {
#pragma omp parallel for schedule(static) if (rows * cols > kParMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = x + r * cols;
    float mn = p[0], mx = p[0];
    for (int64_t i = 1; i < cols; ++i) {
      mn = std::min(mn, p[i]);
      mx = std::max(mx, p[i]);
    }
    lo[r] = mn;
    hi[r] = mx;
  }
}

namespace {
// The grid kind as a template argument, so that each loop's quant_value has no branch left in it.
template <bool Sym>
void fake_quant_rows(int64_t n, int64_t cols, int bits, const float* x, const float* lo, const float* hi, float* y) {
  const int64_t rows = n / cols;
  if (rows == 1) {  // per-tensor: one range, split the elements
    const QuantParams p = grid_params(bits, Sym, lo[0], hi[0]);
#pragma omp parallel for schedule(static) if (n > kParMin)
    for (int64_t i = 0; i < n; ++i) y[i] = quant_value(p, x[i]);
    return;
  }
#pragma omp parallel for schedule(static) if (n > kParMin)
  for (int64_t r = 0; r < rows; ++r) {
    const QuantParams p = grid_params(bits, Sym, lo[r], hi[r]);
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    for (int64_t i = 0; i < cols; ++i) yr[i] = quant_value(p, xr[i]);
  }
}
}  // namespace

void fake_quant(int64_t n, int64_t cols, int bits, bool sym, const float* x, const float* lo, const float* hi, float* y) {
  if (n == 0) return;
  if (sym)
    fake_quant_rows<true>(n, cols, bits, x, lo, hi, y);
  else
    fake_quant_rows<false>(n, cols, bits, x, lo, hi, y);
}

void fake_quant_backward_clip(int64_t n, int64_t cols, bool sym, const float* x, const float* lo, const float* hi,
                              const float* gy, float* gx) {
#pragma omp parallel for schedule(static) if (n > kParMin)
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = i / cols;
    gx[i] = in_clip_range(sym, lo[r], hi[r], x[i]) ? gy[i] : 0.f;
  }
}

void range_update(bool ema, float beta, const float* batch, float* state) {
  range_step(ema, beta, batch, state);
}

}  // namespace dfq::cpu
