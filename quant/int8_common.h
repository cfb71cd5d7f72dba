// int8_common.h — what the two integer paths (int8_inference.h layer by layer, int8_graph.h compiled)
// share: the activation grids as u8 codes, a layer's integer weights as s8 with the zero-point term,
// and the report's list of layers that stayed float. Internal to quant/.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/kernels/cpu/onednn.h"
#include "engine/kernels/quant_math.h"
#include "quant/qmodel.h"

namespace dfq::quant::int8 {

// One activation quantizer's grid: x = (c - zero_point) / p.scale, c = quant_math's q + half in
// [0, 2^bits - 1].
struct Grid {
  QuantParams p;
  float half = 0;
  int32_t zero_point = 0;
  int bits = 8;
};

// Every activation quantizer's grid; grid_of_act[i] indexes grids, -1 for one above 8 bits. Throws
// std::invalid_argument ("what: ...") for a range still observing or a model on CUDA.
struct Grids {
  std::vector<Grid> grids;
  std::vector<int> grid_of_act;
};
Grids activation_grids(QuantizedModel& q, const std::string& what);

// A layer's weight codes (weight_codes, <= 8 bits) as the integer convs take them:
//  - symmetric w = q * step: w8 = q, k = 0, wfac = step;
//  - asymmetric w = (q + z) / s: w8 = q + z where that fits s8 for the whole channel (k = 0), else
//    w8 = q and k = z (the zero-point term k * window sum, int8_inference.h); wfac = s.
struct Weights {
  bool sym = false, corrected = false;  // corrected: some channel has k != 0
  int64_t out_ch = 0;
  std::vector<int8_t> w8;
  std::vector<float> k, wfac;
  // Channel o's real value of one unit of sum (c - zp) * w8 on an input grid of scale sx:
  // 1 / (sx * sw) (asym), step / sx (sym); in double, the callers round once.
  double per_unit(size_t o, float sx) const {
    return sym ? double(wfac[o]) / double(sx) : 1.0 / (double(sx) * double(wfac[o]));
  }
};
Weights integer_weights(const WeightCodes& wc);

// The zero-point term's window sums S of (c - zero_point) for conv shape s: an integer conv with
// all-one weights and one output channel per group, out_scale 1 (S exact in float below 2^24).
std::unique_ptr<onednn::Int8Conv> window_sum_conv(const onednn::ConvShape& s, int32_t zero_point);

// The shape of conv (null: a linear, a 1x1 conv on a 1x1 map) on a (c, h, w) input with o outputs.
onednn::ConvShape conv_shape(const nn::Conv2d* conv, int64_t c, int64_t h, int64_t w, int64_t o);

// "; float, WHY: a, b, c, ... (N more), z" for each reason (first three and the last of a long list).
std::string float_layers_text(const std::map<std::string, std::vector<std::string>>& by_reason);

}  // namespace dfq::quant::int8
