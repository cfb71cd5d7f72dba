// quantizer.h — the fake-quantizer of the official ZeroQ / GDFQ code (../shared/docs/dfq_algorithms.md
// §1) as differentiable ops, and the per-tensor activation quantizer with its range observer.
//
// Rules:
//  - Arithmetic: engine/kernels/quant_math.h (bit-exact with the official code on CPU and CUDA).
//  - Weights have two grids (WeightScheme): Asym, the official min/max grid with a zero point, and
//    Sym, zero point 0 on [-L, L], L = 2^(b-1) - 1, step = max(-lo, hi) / L (ONNX QuantizeLinear's
//    narrow symmetric int range; not in the official code). Sym needs at least 2 bits. Both take
//    the same (2, rows) range, so a fixed grid serves either. Activations are always Asym.
//  - Backward (STE): Ste::Identity passes the gradient through unchanged, clipped values included
//    (official GDFQ; no gradient reaches the range); Ste::Clip zeroes it outside [lo, hi] (Sym:
//    outside [-m, m], m = max(-lo, hi)).
//  - bits >= 32 means "not quantized": the op returns its input (so a 32-bit model is the float
//    model exactly). 1..24 bits are quantized; 25..31 are refused (float32 cannot hold the grid).
//  - Ranges live on the tensor's device and are never read back during a forward.
#pragma once
#include <cstdint>
#include <string>

#include "engine/ops.h"

namespace dfq::quant {

enum class Ste { Identity, Clip };
enum class Observer { MinMax, Ema };  // ZeroQ's cumulative min/max; GDFQ's EMA (beta 0.9)
enum class WeightScheme { Asym, Sym };  // the official asymmetric weight grid; symmetric (zero point 0)
Ste parse_ste(const std::string& s);  // "identity" | "clip"; throws std::invalid_argument
const char* ste_name(Ste s);
const char* observer_name(Observer o);
WeightScheme parse_weight_scheme(const std::string& s);  // "asym" | "sym"; throws std::invalid_argument
const char* weight_scheme_name(WeightScheme s);          // "asym" | "sym"

// Throws unless bits is in 1..24 or >= 32.
void check_bits(int bits, const char* what);
// check_bits, and for Sym also refuses 1 bit (its grid would be {0} alone).
void check_weight_bits(int bits, WeightScheme scheme, const char* what);

// Row ranges of x viewed as (rows, numel / rows): returns (2, rows): [0] = min, [1] = max. No grad.
Tensor minmax_rows(const Tensor& x, int64_t rows);

// Fake-quantize x with the ranges `range` (2, rows) of x viewed as (rows, numel / rows) on the
// scheme's grid; differentiable in x through the STE.
Tensor fake_quantize(const Tensor& x, int bits, const Tensor& range, Ste ste = Ste::Identity,
                     WeightScheme scheme = WeightScheme::Asym);

// Per-output-channel weight quantization (dim 0), the range recomputed from w on every call.
Tensor quantize_weight(const Tensor& w, int bits, Ste ste = Ste::Identity, WeightScheme scheme = WeightScheme::Asym);
// Per-tensor (bias): the tensor's own min/max.
Tensor quantize_per_tensor(const Tensor& x, int bits, Ste ste = Ste::Identity);

// One activation quantizer (one ReLU call site): per-tensor range in `state` = {lo, hi, beta_t}
// (zeros and beta_t = 1 at start, as the official buffers), updated by the observer before
// quantizing while observing, then frozen.
class ActQuantizer {
 public:
  ActQuantizer(int bits, Observer obs, Ste ste, Device dev, float beta = 0.9f);
  Tensor forward(const Tensor& x);
  void freeze() { observing_ = false; }
  void unfreeze() { observing_ = true; }
  bool observing() const { return observing_; }
  int bits() const { return bits_; }
  int64_t updates() const { return updates_; }
  void set_updates(int64_t n) { updates_ = n; }  // checkpoints
  // {lo, hi} on the host (synchronises).
  std::pair<float, float> range() const;
  Tensor state;  // (3) float: lo, hi, beta_t

 private:
  int bits_;
  Observer obs_;
  Ste ste_;
  float beta_;
  bool observing_ = true;
  int64_t updates_ = 0;
};

}  // namespace dfq::quant
