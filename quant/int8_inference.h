// int8_inference.h — runs a fake-quantized model's convs and linears in integers on the CPU
// (oneDNN's u8 x s8 -> s32 kernels, engine/kernels/cpu/onednn.h), with the same results as the
// fake-quant evaluation up to float rounding.
//
// While an Int8Inference lives, every conv / linear of the QuantizedModel that can be run in
// integers is: its forward takes the (input-hooked) float input, finds the activation grid it lies
// on, and computes
//   y[n, o, p] = m[o] * sum (c - zx) * w8[o, .] + m[o] * k[o] * S[n, g(o), p] + bias[o]
// where c = the u8 codes of x on its grid (x = (c - zx) / sx; c = quant_math's q + 2^(A-1)),
// w8 the s8 weight codes and S the window sum of (c - zx) over the output's group:
//  - asymmetric weights w = (q + zw) / sw (quant_math.h): w8 = q + zw when that fits s8 for every
//    element of the channel (k = 0; always so at <= 7 bits when the channel spans 0), else w8 = q
//    and k = zw, whose term S comes from one more integer conv with all-one weights (groups output
//    channels: 1 / Cout of the MACs); m = 1 / (sx * sw);
//  - symmetric weights w = q * step: w8 = q, k = 0, m = step / sx;
//  - the bias (through the layer's bias hook) is added in float, the BN and what follows the layer
//    run as in the fake-quant model.
// Which grid an input lies on is not taken on trust: each batch's input is converted to codes and
// checked to give back every element exactly (dequant_code(code) == x); the grid found last is tried
// first, then every other activation quantizer's (A <= 8). An input on no grid (the image, an
// average pool's output, a residual sum) is run by the float conv, as without int8, and counted.
// So the results are the fake-quant model's whatever the placement, and report() says which layers
// ran in integers. Layers at > 8 weight bits stay float.
// Rules: the model on the CPU, its activation ranges frozen (evaluation); the weights must not change
// while it lives (their codes are taken once, at construction). Forwards without gradient only.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "quant/qmodel.h"

namespace dfq::quant {

class Int8Inference {
 public:
  // Throws std::runtime_error when built without oneDNN, std::invalid_argument when the model is
  // not on the CPU or a range is still observing.
  explicit Int8Inference(QuantizedModel& q);
  ~Int8Inference();
  Int8Inference(const Int8Inference&) = delete;
  Int8Inference& operator=(const Int8Inference&) = delete;

  struct LayerStats {
    std::string name;
    bool int8_capable = false;  // weights at <= 8 bits
    int64_t int8_batches = 0, float_batches = 0;
    bool corrected = false;     // some channel needs the zero-point term (k != 0)
  };
  std::vector<LayerStats> stats() const;
  // "int8: 20 of 21 convs / linears ran in integers (oneDNN 2.6.3, brgconv:avx512_core_vnni); float,
  // input on no activation grid: conv1"; before any forward it says so.
  std::string report() const;
  int64_t int8_layers() const;  // layers that ran at least one batch in integers

  struct Layer;  // per layer state (int8_inference.cpp)

 private:
  QuantizedModel& q_;
  std::vector<std::shared_ptr<Layer>> layers_;
};

}  // namespace dfq::quant
