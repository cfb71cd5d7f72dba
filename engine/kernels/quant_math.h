// quant_math.h — the fake-quantizer's arithmetic, shared by the CPU kernels and their CUDA twins
// (host and device), so both round exactly alike. Every operation is one float32 operation
// rounded on its own, in the order of the official code's tensor ops (on the device through the
// _rn intrinsics, which the compiler never fuses into a multiply-add):
//   scale = (1 / max(hi - lo, 1e-8)) * (2^k - 1)   (PyTorch evaluates `n / t` as t.reciprocal() * n)
//   zero  = round(scale * lo) + 2^(k-1)
//   q     = clamp(round(scale * x - zero), -2^(k-1), 2^(k-1) - 1);   x_hat = (q + zero) / scale
// round = rintf (half to even in the default rounding mode, as torch.round).
#pragma once
#include <cmath>

#ifdef __CUDACC__
#define DFQ_HD __host__ __device__ __forceinline__
#else
#define DFQ_HD inline
#endif

namespace dfq {

namespace qmath {
#ifdef __CUDA_ARCH__
DFQ_HD float mul(float a, float b) { return __fmul_rn(a, b); }
DFQ_HD float add(float a, float b) { return __fadd_rn(a, b); }
DFQ_HD float sub(float a, float b) { return __fsub_rn(a, b); }
DFQ_HD float div(float a, float b) { return __fdiv_rn(a, b); }
#else
DFQ_HD float mul(float a, float b) { return a * b; }
DFQ_HD float add(float a, float b) { return a + b; }
DFQ_HD float sub(float a, float b) { return a - b; }
DFQ_HD float div(float a, float b) { return a / b; }
#endif
}  // namespace qmath

struct QuantParams {
  float scale, zero, qmin, qmax;
};

DFQ_HD QuantParams quant_params(int bits, float lo, float hi) {
  using namespace qmath;
  const float levels = static_cast<float>((1 << bits) - 1);  // exact for bits <= 24
  const float half = static_cast<float>(1 << (bits - 1));
  float d = sub(hi, lo);
  d = d > 1e-8f ? d : 1e-8f;  // torch.clamp(min=1e-8)
  const float scale = mul(div(1.f, d), levels);
  const float zero = add(rintf(mul(scale, lo)), half);
  return {scale, zero, -half, half - 1.f};
}

DFQ_HD float quant_value(const QuantParams& p, float x) {
  using namespace qmath;
  float q = rintf(sub(mul(p.scale, x), p.zero));
  q = q < p.qmin ? p.qmin : (q > p.qmax ? p.qmax : q);
  return div(add(q, p.zero), p.scale);
}

// One observer step on state = {lo, hi, beta_t} from batch = {min, max} (see kernel_list.inc).
DFQ_HD void range_step(bool ema, float beta, const float* batch, float* state) {
  using namespace qmath;
  if (!ema) {
    state[0] = batch[0] < state[0] ? batch[0] : state[0];
    state[1] = batch[1] > state[1] ? batch[1] : state[1];
    return;
  }
  state[2] = mul(state[2], beta);
  const float omb = sub(1.f, beta), den = sub(1.f, state[2]);
  state[0] = div(add(mul(state[0], beta), mul(batch[0], omb)), den);
  state[1] = div(add(mul(state[1], beta), mul(batch[1], omb)), den);
}

}  // namespace dfq
