// int8_common.cpp — see int8_common.h.
#include "quant/int8_common.h"

#include <algorithm>
#include <stdexcept>

namespace dfq::quant::int8 {

Grids activation_grids(QuantizedModel& q, const std::string& what) {
  Grids g;
  for (ActQuantizer& a : q.acts()) {
    if (a.observing()) throw std::invalid_argument(what + ": the activation ranges must be frozen (calibrated)");
    if (a.state.device() != Device::CPU) throw std::invalid_argument("int8 inference runs on the CPU: the model is on CUDA");
    if (a.bits() > 8) {
      g.grid_of_act.push_back(-1);
      continue;
    }
    auto [lo, hi] = a.range();
    Grid grid;
    grid.p = quant_params(a.bits(), lo, hi);
    grid.half = -grid.p.qmin;
    grid.zero_point = int32_t(grid.half - grid.p.zero);
    grid.bits = a.bits();
    g.grid_of_act.push_back(int(g.grids.size()));
    g.grids.push_back(grid);
  }
  return g;
}

Weights integer_weights(const WeightCodes& wc) {
  Weights W;
  W.sym = wc.scheme == WeightScheme::Sym;
  W.out_ch = wc.out_channels;
  W.wfac = wc.scale;
  W.w8.resize(wc.q.size());
  W.k.assign(size_t(wc.out_channels), 0.f);
  for (int64_t o = 0; o < wc.out_channels; ++o) {
    const int32_t* qr = wc.q.data() + o * wc.per_channel;
    int8_t* wr = W.w8.data() + o * wc.per_channel;
    const int32_t z = W.sym ? 0 : int32_t(wc.zero[size_t(o)]);
    int32_t lo = 0, hi = 0;
    for (int64_t j = 0; j < wc.per_channel; ++j) lo = std::min(lo, qr[j] + z), hi = std::max(hi, qr[j] + z);
    const bool fits = lo >= -128 && hi <= 127;  // w8 = q + z exactly
    if (!fits) W.k[size_t(o)] = float(z), W.corrected = true;
    for (int64_t j = 0; j < wc.per_channel; ++j) wr[j] = int8_t(fits ? qr[j] + z : qr[j]);  // q in s8 at <= 8 bits
  }
  return W;
}

std::unique_ptr<onednn::Int8Conv> window_sum_conv(const onednn::ConvShape& s, int32_t zero_point) {
  onednn::ConvShape ws = s;
  ws.o = s.groups;
  return std::make_unique<onednn::Int8Conv>(ws, std::vector<int8_t>(size_t(ws.o * (s.c / s.groups) * s.kh * s.kw), 1),
                                            std::vector<float>(size_t(ws.o), 1.f), zero_point);
}

onednn::ConvShape conv_shape(const nn::Conv2d* conv, int64_t c, int64_t h, int64_t w, int64_t o) {
  onednn::ConvShape s;
  s.c = c, s.h = h, s.w = w, s.o = o;
  if (conv) {
    s.kh = conv->weight.size(2), s.kw = conv->weight.size(3);
    s.stride_h = conv->opts.stride[0], s.stride_w = conv->opts.stride[1];
    s.pad_h = conv->opts.padding[0], s.pad_w = conv->opts.padding[1];
    s.dil_h = conv->opts.dilation[0], s.dil_w = conv->opts.dilation[1];
    s.groups = conv->opts.groups;
  }
  return s;
}

std::string float_layers_text(const std::map<std::string, std::vector<std::string>>& by_reason) {
  std::string r;
  for (const auto& [why, names] : by_reason) {
    std::string list;
    for (size_t i = 0; i < names.size(); ++i) {
      if (names.size() > 5 && i == 3) {
        list += ", ... (" + std::to_string(names.size() - 4) + " more), " + names.back();
        break;
      }
      list += (i ? ", " : "") + names[i];
    }
    r += "; float, " + why + ": " + list;
  }
  return r;
}

}  // namespace dfq::quant::int8
