// int8_inference.cpp — see int8_inference.h.
#include "quant/int8_inference.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <tuple>

#include "engine/autograd.h"
#include "engine/kernels/cpu/onednn.h"
#include "engine/kernels/quant_math.h"
#include "quant/int8_common.h"

namespace dfq::quant {

namespace {

using int8::Grid;

// x (N, C, P) float -> c (N, P, C) u8 on grid g; false when an element is not exactly on it.
bool to_codes(const float* x, int64_t n, int64_t ch, int64_t hw, const Grid& g, uint8_t* out) {
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (hw + kBlock - 1) / kBlock;
  int bad = 0;
#pragma omp parallel for collapse(2) schedule(static) reduction(| : bad)
  for (int64_t b = 0; b < n; ++b)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      if (bad) continue;
      const int64_t p0 = blk * kBlock, p1 = std::min(hw, p0 + kBlock);
      for (int64_t c = 0; c < ch && !bad; ++c) {
        const float* xr = x + (b * ch + c) * hw;
        uint8_t* o = out + b * hw * ch + c;
        for (int64_t p = p0; p < p1; ++p) {
          const float q = quant_code(g.p, xr[p]);
          bad |= dequant_code(g.p, q) != xr[p];
          o[p * ch] = static_cast<uint8_t>(q + g.half);
        }
      }
    }
  return !bad;
}

}  // namespace

struct Int8Inference::Layer {
  LayerStats st;
  nn::Conv2d* conv = nullptr;
  nn::Linear* lin = nullptr;
  int own_act = -1;  // LayerInputs: the layer's own quantizer
  std::shared_ptr<const std::vector<Grid>> grids;
  int last_grid = -1;
  int8::Weights W;  // the integer weights (int8_common.h)
  // prepared convs, per (h, w, grid)
  struct Prepared {
    std::unique_ptr<onednn::Int8Conv> conv, window_sum;
    std::vector<float> coef;  // m[o] * k[o]
  };
  std::map<std::tuple<int64_t, int64_t, int>, Prepared> prepared;
  std::string impl;
  std::vector<uint8_t> codes;
  std::vector<float> acc, sums;

  onednn::ConvShape shape(int64_t c, int64_t h, int64_t w) const { return int8::conv_shape(conv, c, h, w, W.out_ch); }

  Prepared& prepare(int64_t c, int64_t h, int64_t w, int gi) {
    auto key = std::make_tuple(h, w, gi);
    auto it = prepared.find(key);
    if (it != prepared.end()) return it->second;
    const Grid& g = (*grids)[size_t(gi)];
    const onednn::ConvShape s = shape(c, h, w);
    Prepared pr;
    std::vector<float> m(static_cast<size_t>(W.out_ch));
    for (size_t o = 0; o < m.size(); ++o) m[o] = float(W.per_unit(o, g.p.scale));
    pr.conv = std::make_unique<onednn::Int8Conv>(s, W.w8, m, g.zero_point);
    if (W.corrected) {
      pr.coef.resize(m.size());
      for (size_t o = 0; o < m.size(); ++o) pr.coef[o] = m[o] * W.k[o];
      pr.window_sum = int8::window_sum_conv(s, g.zero_point);
    }
    impl = pr.conv->impl();
    return prepared.emplace(key, std::move(pr)).first->second;
  }

  Tensor run_float(const Tensor& x) const {
    if (conv) return conv2d(x, nn::hooked(conv->weight_hook, conv->weight), nn::hooked(conv->bias_hook, conv->bias), conv->opts);
    return linear(x, nn::hooked(lin->weight_hook, lin->weight), nn::hooked(lin->bias_hook, lin->bias));
  }

  // The grid x lies on (codes written to `codes`), or -1.
  int find_grid(const Tensor& x, int64_t n, int64_t c, int64_t hw) {
    codes.resize(size_t(n * c * hw));
    auto try_grid = [&](int gi) { return gi >= 0 && to_codes(x.data<float>(), n, c, hw, (*grids)[size_t(gi)], codes.data()); };
    if (try_grid(last_grid)) return last_grid;
    if (own_act >= 0 && own_act != last_grid && try_grid(own_act)) return last_grid = own_act;
    for (int gi = 0; gi < int(grids->size()); ++gi)
      if (gi != last_grid && gi != own_act && try_grid(gi)) return last_grid = gi;
    return -1;
  }

  Tensor forward(const Tensor& x_in) {
    if (grad_enabled()) throw std::logic_error("int8 inference: a forward with gradient (evaluation only)");
    if (!st.int8_capable || x_in.device() != Device::CPU) {
      ++st.float_batches;
      return run_float(x_in);
    }
    const Tensor x = x_in.contiguous();
    const bool is_conv = conv != nullptr;
    if ((is_conv && x.dim() != 4) || (!is_conv && x.dim() != 2)) throw std::invalid_argument("int8 inference: unexpected input rank");
    const int64_t n = x.size(0), c = x.size(1), h = is_conv ? x.size(2) : 1, w = is_conv ? x.size(3) : 1;
    const int gi = find_grid(x, n, c, h * w);
    if (gi < 0) {
      ++st.float_batches;
      return run_float(x);
    }
    Prepared& pr = prepare(c, h, w, gi);
    const onednn::ConvShape& s = pr.conv->shape();
    const int64_t oh = s.out_h(), ow = s.out_w(), P = oh * ow, O = W.out_ch;
    acc.resize(size_t(n * P * O));
    pr.conv->run(n, codes.data(), acc.data());
    const int64_t G = s.groups, opg = O / G;
    if (st.corrected) {
      sums.resize(size_t(n * P * G));
      pr.window_sum->run(n, codes.data(), sums.data());
    }
    Tensor bias = is_conv ? nn::hooked(conv->bias_hook, conv->bias) : nn::hooked(lin->bias_hook, lin->bias);
    const float* b = bias.defined() ? bias.contiguous().data<float>() : nullptr;
    Tensor y = is_conv ? Tensor::empty({n, O, oh, ow}) : Tensor::empty({n, O});
    float* yp = y.data<float>();
    const float* ap = acc.data();
    const float* sp = sums.data();
    const float* coef = pr.coef.data();
    const bool corr = st.corrected;
    constexpr int64_t kBlock = 64;
    const int64_t blocks = (P + kBlock - 1) / kBlock;
    // (N, P, O) -> (N, O, P), with the zero-point term and the bias
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t bn = 0; bn < n; ++bn)
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t p0 = blk * kBlock, p1 = std::min(P, p0 + kBlock);
        for (int64_t o = 0; o < O; ++o) {
          float* yr = yp + (bn * O + o) * P;
          const float* ar = ap + bn * P * O + o;
          const float bo = b ? b[o] : 0.f;
          if (corr) {
            const float co = coef[o];
            const float* sr = sp + bn * P * G + o / opg;
            for (int64_t p = p0; p < p1; ++p) yr[p] = ar[p * O] + co * sr[p * G] + bo;
          } else {
            for (int64_t p = p0; p < p1; ++p) yr[p] = ar[p * O] + bo;
          }
        }
      }
    ++st.int8_batches;
    return y;
  }
};

Int8Inference::Int8Inference(QuantizedModel& q) : q_(q) {
  if (!onednn::available()) throw std::runtime_error(onednn::missing_message());
  int8::Grids G = int8::activation_grids(q, "int8 inference");
  auto grids = std::make_shared<std::vector<Grid>>(std::move(G.grids));
  const std::vector<int>& grid_of_act = G.grid_of_act;
  const auto wl = q.weight_layers();
  const auto& convs = q.model().conv_layers();
  const auto& lins = q.model().linear_layers();
  const bool inputs = q.config().act_placement == ActPlacement::LayerInputs;
  for (size_t i = 0; i < wl.size(); ++i) {
    auto L = std::make_shared<Layer>();
    L->st.name = wl[i].name;
    L->grids = grids;
    if (i < convs.size()) L->conv = convs[i].second;
    else L->lin = lins[i - convs.size()].second;
    if (L->conv && L->conv->weight.device() != Device::CPU) throw std::invalid_argument("int8 inference runs on the CPU: the model is on CUDA");
    if (inputs && i < grid_of_act.size()) L->own_act = grid_of_act[i];
    if (wl[i].bits <= 8) {
      L->W = int8::integer_weights(q.weight_codes(i));
      L->st.int8_capable = true;
      L->st.corrected = L->W.corrected;
    }
    std::shared_ptr<Layer> keep = L;
    auto fwd = [keep](const Tensor& x) { return keep->forward(x); };
    if (L->conv) L->conv->forward_override = fwd;
    else L->lin->forward_override = fwd;
    layers_.push_back(L);
  }
}

Int8Inference::~Int8Inference() {
  for (auto& L : layers_) {
    if (L->conv) L->conv->forward_override = nullptr;
    if (L->lin) L->lin->forward_override = nullptr;
  }
}

std::vector<Int8Inference::LayerStats> Int8Inference::stats() const {
  std::vector<LayerStats> out;
  for (const auto& L : layers_) out.push_back(L->st);
  return out;
}

int64_t Int8Inference::int8_layers() const {
  int64_t k = 0;
  for (const auto& L : layers_) k += L->st.int8_batches > 0;
  return k;
}

std::string Int8Inference::report() const {
  int64_t ran = 0, any = 0, corrected = 0;
  std::string impl;
  // the layers that ran (some batches) in float, grouped by why
  std::map<std::string, std::vector<std::string>> floats;
  for (const auto& L : layers_) {
    if (L->st.int8_batches + L->st.float_batches) ++ran;
    if (L->st.int8_batches) {
      ++any;
      corrected += L->st.corrected;
      if (impl.empty()) impl = L->impl;
    }
    if (L->st.float_batches)
      floats[!L->st.int8_capable ? "weights above 8 bits"
             : L->st.int8_batches ? "some batches' input on no activation grid"
                                  : "input on no activation grid"]
          .push_back(L->st.name);
  }
  if (!ran) return "int8: no forward has run yet";
  std::string r = "int8: " + std::to_string(any) + " of " + std::to_string(layers_.size()) +
                  " convs / linears ran in integers (" + onednn::version() + (impl.empty() ? "" : ", " + impl) + ")";
  if (corrected) r += ", " + std::to_string(corrected) + " with the weight zero-point term";
  r += int8::float_layers_text(floats);
  return r;
}

}  // namespace dfq::quant
