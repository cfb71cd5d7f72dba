// quant_math.h — the fake-quantizer's arithmetic, shared by the CPU kernels and their CUDA twins
// (host and device), so both round exactly alike. Every operation is one float32 operation
// rounded on its own, in the order of the official code's tensor ops (on the device through the
// _rn intrinsics, which the compiler never fuses into a multiply-add):
//   scale = (1 / max(hi - lo, 1e-8)) * (2^k - 1)   (PyTorch evaluates `n / t` as t.reciprocal() * n)
//   zero  = round(scale * lo) + 2^(k-1)
//   q     = clamp(round(scale * x - zero), -2^(k-1), 2^(k-1) - 1);   x_hat = (q + zero) / scale
// round = rintf (half to even in the default rounding mode, as torch.round).
// The symmetric weight grid (QuantConfig::weight_scheme = Sym; not in the official code) is ONNX
// QuantizeLinear / DequantizeLinear with zero point 0 on the narrow integer range:
//   m = max(-lo, hi);  L = 2^(k-1) - 1;  step = max(m, 1e-8) / L
//   q = clamp(round(x / step), -L, L);   x_hat = q * step        (x / step, not x * (1 / step))
// Both grids are one QuantParams (sym says which; for sym, scale holds the step and zero is 0), and
// every user (kernels, SQuant, the integer codes of qmodel.h) goes through quant_coord / quant_code /
// dequant_code, so a code and its value are computed by the same float operations everywhere.
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
  float scale, zero, qmin, qmax;  // sym: scale = the step, zero = 0, qmin = -qmax
  bool sym;
};

// The official asymmetric grid of [lo, hi] at `bits` (1..24).
DFQ_HD QuantParams quant_params(int bits, float lo, float hi) {
  using namespace qmath;
  const float levels = static_cast<float>((1 << bits) - 1);  // exact for bits <= 24
  const float half = static_cast<float>(1 << (bits - 1));
  float d = sub(hi, lo);
  d = d > 1e-8f ? d : 1e-8f;  // torch.clamp(min=1e-8)
  const float scale = mul(div(1.f, d), levels);
  const float zero = add(rintf(mul(scale, lo)), half);
  return {scale, zero, -half, half - 1.f, false};
}

// The symmetric grid of [lo, hi] at `bits` (2..24; 1 bit has L = 0 and is refused by the callers).
DFQ_HD QuantParams sym_quant_params(int bits, float lo, float hi) {
  using namespace qmath;
  const float L = static_cast<float>((1 << (bits - 1)) - 1);
  const float nlo = -lo;  // negation is exact
  float m = nlo > hi ? nlo : hi;
  m = m > 1e-8f ? m : 1e-8f;
  return {div(m, L), 0.f, -L, L, true};
}

DFQ_HD QuantParams grid_params(int bits, bool sym, float lo, float hi) {
  return sym ? sym_quant_params(bits, lo, hi) : quant_params(bits, lo, hi);
}

// x on the grid's integer axis, not yet rounded: scale * x - zero (asym) or x / step (sym).
DFQ_HD float quant_coord(const QuantParams& p, float x) {
  using namespace qmath;
  return p.sym ? div(x, p.scale) : sub(mul(p.scale, x), p.zero);
}

// The integer code of x: round, then clamp to [qmin, qmax] (rintf may give -0 for code 0).
DFQ_HD float quant_code(const QuantParams& p, float x) {
  const float q = rintf(quant_coord(p, x));
  return q < p.qmin ? p.qmin : (q > p.qmax ? p.qmax : q);
}

// The value of code q: (q + zero) / scale (asym) or q * step (sym). A code is an integer, without a
// sign of zero: for sym a -0 code is taken as +0, so that its value is +0 as DequantizeLinear's int 0
// gives (asym needs nothing: -0 + zero is never -0, zero being round(.) + 2^(k-1), 2^(k-1) >= 1).
DFQ_HD float dequant_code(const QuantParams& p, float q) {
  using namespace qmath;
  return p.sym ? mul(q == 0.f ? 0.f : q, p.scale) : div(add(q, p.zero), p.scale);
}

DFQ_HD float quant_value(const QuantParams& p, float x) { return dequant_code(p, quant_code(p, x)); }

// The clip STE's pass-through interval of the range [lo, hi]: itself (asym), [-m, m] (sym).
DFQ_HD bool in_clip_range(bool sym, float lo, float hi, float x) {
  if (!sym) return x >= lo && x <= hi;
  const float nlo = -lo, m = nlo > hi ? nlo : hi;
  return x >= -m && x <= m;
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
