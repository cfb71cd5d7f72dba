// squant.h — SQuant (Guo et al., ICLR 2022) as its official code does it (clevercool/SQuant at
// 9cc77fc: quant_modules.py, squant-kernel/quant_kernel.cu, squant_function.py, main.py):
//  - weights: the asymmetric per-output-channel min/max grid (the ZeroQ formula, quant_math.h),
//    x = scale * w - zero, rounded to nearest; then SQuant-K, per kernel (output channel, input
//    channel), flips the round(|E|) elements whose rounding error is largest towards the side that
//    cancels the kernel's error sum E (clamped elements are never candidates; 1x1 kernels and
//    linears skip the pass), leaving one candidate per kernel; then SQuant-C flips those per output
//    channel the same way. Codes are clamped to the grid and dequantized; the layer's grid is fixed
//    (QuantizedModel::fix_weight_range) so every forward uses these codes. With symmetric weights
//    (QuantConfig::weight_scheme, not in the official code) the same flips run on the symmetric grid
//    of the same min / max (x = w / step, codes in [-L, L]);
//  - activations: one batch of noise through the model (official: U[0, 1); dfq's default N(0, 1), see
//    NoiseKind); each quantizer's range is set from the
//    first input it sees (upstream layers already quantized, as the official lazy init), at k times
//    the std of its positive values ([-k std / 1.25, k std / 1.25] when the input has negatives,
//    quant_modules.py L204-218), capped at the input's max below 6 bits; k = 12 / 14 / 25 for
//    4 / 6 / 8 bits (run.sh -s). Placed on every conv / linear input (ActPlacement::LayerInputs).
// Where dfq deviates, and why, is said at the line that does it (squant.cpp) and in quant/README.md.
// Everything here is deterministic: no thread count or tie order changes a code.
#pragma once
#include <cstdint>
#include <string>

#include "quant/qmodel.h"

namespace dfq::quant {

// Which flip passes run: the official --mode squant (both), squant-k, squant-c, squant-e (neither:
// round to nearest). Throws std::invalid_argument naming the modes.
struct SquantPasses {
  bool kernel = true, channel = true;
};
SquantPasses parse_squant_mode(const std::string& mode);

struct FlipCounts {
  int64_t kernel = 0, channel = 0;  // elements flipped by each pass (a channel-pass undo counts as one)
};

// One layer: x (K, C, RS) holds scale * w - zero per output channel (not yet rounded); writes the
// integer codes, clamped to [tmin, tmax], into q (K, C, RS). The kernel pass runs only when RS > 1.
// Output channels are independent (run in parallel; the result does not depend on the thread count).
FlipCounts squant_round(const float* x, int64_t K, int64_t C, int64_t RS, float tmin, float tmax,
                        const SquantPasses& passes, float* q);

// Every weight layer of q below 32 bits: its per-channel min/max grid, SQuant's codes on it, the
// dequantized values written into the latent weight, the grid fixed. Throws on a non-finite weight.
struct SquantWeightStats {
  int layers = 0;
  int64_t weights = 0;
  FlipCounts flips;
  double ms = 0;
};
SquantWeightStats squant_weights(QuantizedModel& q, const SquantPasses& passes = {});

// The official k of the clip rule for abits (run.sh): <= 4 -> 12, 5..6 -> 14, >= 7 -> 25 (the
// official runs use 4, 6 and 8; the bands between them are dfq's).
double squant_sigma_for_bits(int abits);
// The calibration batch (N, 3, size, size) from the engine's Philox stream. Uniform is the official
// torch.rand (main.py L85-88), fed to the model as it is. Normal (dfq's default) is N(0, 1): the
// official batch does not have the moments of the inputs a model takes (normalised data: mean 0,
// std 1 per channel, where U[0, 1) has 0.5 and 0.29), so every range it gives comes out too narrow
// (Fashion-MNIST ResNet18, 4 bits: about half of what test images give); quant/README.md has the
// figures.
enum class NoiseKind { Normal, Uniform };
NoiseKind parse_noise_kind(const std::string& s);  // "normal" | "uniform"; throws std::invalid_argument
Tensor squant_noise(int64_t batch, int size, uint64_t seed, Device dev, NoiseKind kind = NoiseKind::Normal);
// Sets and freezes every activation range of q by the clip rule with k = sigma, from one forward of
// noise (quantizers at 32 bits are only frozen). Returns the number of ranges set and the time.
struct ClipStats {
  int ranges = 0;
  double ms = 0;
};
ClipStats squant_clip_activations(QuantizedModel& q, const Tensor& noise, double sigma);

// --weight_round for any method: "nearest" does nothing (the min/max fake-quantizer at every
// forward); "squant" runs squant_weights with both passes. Returns the line to print ("" for nearest).
std::string apply_weight_round(QuantizedModel& q, const std::string& weight_round);

}  // namespace dfq::quant
