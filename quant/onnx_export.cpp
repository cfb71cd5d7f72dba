// onnx_export.cpp — see onnx_export.h.
#include "quant/onnx_export.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <memory>
#include <stdexcept>

#include "engine/io/dataset.h"
#include "engine/kernels/quant_math.h"
#include "models/mobilenet.h"
#include "models/resnet.h"

namespace dfq::quant {

using onnx::Attribute;
using onnx::Elem;

OnnxProfile parse_onnx_profile(const std::string& s) {
  if (s == "faithful") return OnnxProfile::Faithful;
  if (s == "ort") return OnnxProfile::Ort;
  if (s == "trt") return OnnxProfile::Trt;
  if (s == "float") return OnnxProfile::Float;
  throw std::invalid_argument("unknown ONNX profile '" + s + "' (known: faithful, ort, trt, float)");
}

const char* onnx_profile_name(OnnxProfile p) {
  switch (p) {
    case OnnxProfile::Faithful: return "faithful";
    case OnnxProfile::Ort: return "ort";
    case OnnxProfile::Trt: return "trt";
    case OnnxProfile::Float: return "float";
  }
  return "?";
}

std::pair<float, float> parse_input_range(const std::string& s) {
  if (s == "fashion-mnist")
    return {(0.f - FashionMnistDataset::kMean) / FashionMnistDataset::kStd, (1.f - FashionMnistDataset::kMean) / FashionMnistDataset::kStd};
  if (s == "imagenet") return {(0.f - 0.485f) / 0.229f, (1.f - 0.406f) / 0.225f};  // R's low end, B's high end
  const size_t comma = s.find(',');
  size_t a = 0, b = 0;
  float lo = 0, hi = 0;
  try {
    if (comma != std::string::npos) {
      lo = std::stof(s.substr(0, comma), &a);
      hi = std::stof(s.substr(comma + 1), &b);
    }
  } catch (const std::exception&) {
    a = 0;
  }
  if (comma == std::string::npos || a != comma || b != s.size() - comma - 1 || !(lo < hi) || !std::isfinite(lo) ||
      !std::isfinite(hi))
    throw std::invalid_argument("input range '" + s + "' is not fashion-mnist, imagenet or LO,HI with LO < HI");
  return {lo, hi};
}

namespace {

int64_t type_min(Elem t) { return t == Elem::Uint8 ? 0 : -128; }
int64_t type_max(Elem t) { return t == Elem::Uint8 ? 255 : 127; }

// One activation tensor's ONNX quantization: value = (code - zp) * s, codes kept in [cmin, cmax]
// (narrower than the container for < 8-bit grids: a Clip holds them there).
struct Grid {
  float s = 1.f;
  int64_t zp = 0;
  Elem type = Elem::Uint8;
  int64_t cmin = 0, cmax = 255;
};

// dfq's asymmetric k-bit grid of range {lo, hi} (quant_math.h) in uint8: code = q + 2^(k-1), so
// zp = 2^(k-1) - zero and the step is 1 / scale. dfq's ranges hold 0 (observers start at 0), so zp
// lies in [0, 2^k - 1].
Grid dfq_grid(int bits, float lo, float hi, const std::string& what) {
  if (bits > 8) throw std::runtime_error(what + ": " + std::to_string(bits) + "-bit activations do not fit ONNX's 8-bit Q/DQ");
  const QuantParams p = quant_params(bits, lo, hi);
  Grid g;
  g.s = 1.f / p.scale;
  g.zp = static_cast<int64_t>(static_cast<float>(1 << (bits - 1)) - p.zero);
  g.cmax = (int64_t(1) << bits) - 1;
  if (g.zp < 0 || g.zp > g.cmax)
    throw std::runtime_error(what + ": range [" + std::to_string(lo) + ", " + std::to_string(hi) +
                             "] does not hold 0, so its zero point does not fit uint8");
  return g;
}

// The same grid in int8 at zero point 0 (TensorRT): exact when the shifted codes fit int8 (every
// grid below 8 bits), else re-quantized symmetrically over its value range (127 levels).
Grid to_int8(const Grid& g, bool* requantized) {
  Grid r;
  r.type = Elem::Int8;
  if (g.cmin - g.zp >= -128 && g.cmax - g.zp <= 127) {
    r.s = g.s;
    r.cmin = g.cmin - g.zp;
    r.cmax = g.cmax - g.zp;
    *requantized = false;
    return r;
  }
  const float lo = static_cast<float>(g.cmin - g.zp) * g.s, hi = static_cast<float>(g.cmax - g.zp) * g.s;
  r.s = std::max(std::max(-lo, hi), 1e-8f) / 127.f;
  r.cmin = -128;
  r.cmax = 127;
  *requantized = true;
  return r;
}

// An added 8-bit quantizer's grid from its observed range: uint8 asymmetric (ort) or int8
// symmetric at zero point 0 (trt).
Grid observed_grid(float lo, float hi, bool sym) {
  if (!sym) return dfq_grid(8, lo, hi, "added quantizer");
  Grid g;
  g.type = Elem::Int8;
  g.s = std::max(std::max(-lo, hi), 1e-8f) / 127.f;
  g.cmin = -128;
  g.cmax = 127;
  return g;
}

// Symmetric per-channel codes of a latent weight (quant_math.h's sym grid: step = max|w| / L, codes
// in [-L, L]): what --weight_scheme sym would give, for exporting an asym model to ort / trt.
WeightCodes sym_requantized(const Tensor& weight, int bits) {
  WeightCodes c;
  c.scheme = WeightScheme::Sym;
  c.bits = bits;
  c.out_channels = weight.size(0);
  c.per_channel = weight.numel() / c.out_channels;
  const std::vector<float> w = weight.to_vector();
  c.q.resize(w.size());
  for (int64_t o = 0; o < c.out_channels; ++o) {
    const auto first = w.begin() + o * c.per_channel, last = first + c.per_channel;
    const auto [mn, mx] = std::minmax_element(first, last);
    const QuantParams p = sym_quant_params(bits, *mn, *mx);
    c.scale.push_back(p.scale);
    c.zero.push_back(0.f);
    for (int64_t j = 0; j < c.per_channel; ++j)
      c.q[size_t(o * c.per_channel + j)] = static_cast<int32_t>(quant_code(p, w[size_t(o * c.per_channel + j)]));
  }
  return c;
}

enum class Act { None, Relu, Relu6 };

class Builder {
 public:
  Builder(QuantizedModel& q, const OnnxExportOptions& o, const std::vector<std::pair<float, float>>* observed)
      : q_(q), o_(o), observed_(observed), layers_(q.weight_layers()) {
    const auto& convs = q.model().conv_layers();
    for (size_t i = 0; i < convs.size(); ++i) conv_index_[convs[i].second] = i;
    const auto& lins = q.model().linear_layers();
    for (size_t i = 0; i < lins.size(); ++i) linear_index_[lins[i].second] = convs.size() + i;
    inputs_placement_ = q.config().act_placement == ActPlacement::LayerInputs;
  }

  OnnxExport out;
  int observers = 0;

  // Faithful and Float write dfq's float graph (Float without any quantizer); ort / trt the integer one.
  bool faithful() const { return o_.profile == OnnxProfile::Faithful || o_.profile == OnnxProfile::Float; }
  bool no_quant() const { return o_.profile == OnnxProfile::Float; }
  bool trt() const { return o_.profile == OnnxProfile::Trt; }

  std::string node(const std::string& op, std::vector<std::string> in, std::vector<Attribute> attrs,
                   const std::string& hint, const std::string& domain = "") {
    onnx::Node n;
    n.op = op;
    n.domain = domain;
    n.name = hint + "/" + std::to_string(out.model.nodes.size());
    n.inputs = std::move(in);
    n.outputs = {n.name + ":0"};
    n.attrs = std::move(attrs);
    out.model.nodes.push_back(n);
    return n.outputs[0];
  }

  std::string init(onnx::Initializer t) {
    out.model.initializers.push_back(std::move(t));
    return out.model.initializers.back().name;
  }
  std::string scalar_f(const std::string& name, float v) { return init(onnx::make_float(name, {}, {v})); }

  // Q -> DQ on grid g (+ the Clip at the grid's code range when it is narrower than the container,
  // and for ort / trt one more Q -> DQ after it, so the consumer reads a DequantizeLinear).
  std::string qdq(const std::string& x, const Grid& g, const std::string& hint) {
    if (no_quant()) return x;
    const std::string s = scalar_f(hint + ".scale", g.s);
    const std::string z = init(onnx::make_int(hint + ".zero_point", g.type, {}, {g.zp}));
    std::string d = node("DequantizeLinear", {node("QuantizeLinear", {x, s, z}, {}, hint + ".q"), s, z}, {}, hint + ".dq");
    Grid out_grid = g;  // the grid of what d holds
    if (g.cmin > type_min(g.type) || g.cmax < type_max(g.type)) {
      const float lo = static_cast<float>(g.cmin - g.zp) * g.s, hi = static_cast<float>(g.cmax - g.zp) * g.s;
      d = node("Clip", {d, scalar_f(hint + ".clip_lo", lo), scalar_f(hint + ".clip_hi", hi)}, {}, hint + ".clip");
      if (!faithful()) {
        // ort: the codes re-quantized exactly onto m times as many uint8 steps, m = floor(255 / top
        // code) (17 at 4 bits): the same values on the grid s / m, which makes the consumer's int32
        // bias grid s_x * s_w m times finer (int_weight_inputs). ONNX Runtime then drops the Clip
        // (the finer Q saturates where it clips) and runs DQ -> Q between the fused kernels. trt keeps
        // the grid: TensorRT's bias is float.
        const int64_t m = !trt() && g.type == Elem::Uint8 && g.cmax > 0 ? 255 / g.cmax : 1;
        out_grid = Grid{g.s / static_cast<float>(m), g.zp * m, g.type, g.cmin * m, g.cmax * m};
        const std::string s2 = m == 1 ? s : scalar_f(hint + ".fine_scale", out_grid.s);
        const std::string z2 = m == 1 ? z : init(onnx::make_int(hint + ".fine_zero_point", g.type, {}, {out_grid.zp}));
        d = node("DequantizeLinear", {node("QuantizeLinear", {d, s2, z2}, {}, hint + ".q2"), s2, z2}, {}, hint + ".dq2");
      }
    }
    grid_[d] = out_grid;
    return d;
  }

  // The grid of activation quantizer `a` (dfq's, or its int8 form for trt).
  Grid act_grid(size_t a, const std::string& what) {
    const auto [lo, hi] = q_.acts()[a].range();
    Grid g = dfq_grid(q_.acts()[a].bits(), lo, hi, what);
    if (trt()) {
      bool requantized = false;
      g = to_int8(g, &requantized);
      if (requantized) ++requantized_sites_;
    }
    return g;
  }

  // ort / trt: x itself when a DequantizeLinear produced it, else x through an added, calibrated
  // 8-bit quantizer (an Observe node while calibrating).
  std::string dq_input(const std::string& x, const std::string& hint) {
    if (faithful() || grid_.count(x)) return x;
    // one added quantizer per tensor, however many consume it (a MobileNetV2 block output feeds the
    // next block's first conv and its residual add: two quantizers would keep ONNX Runtime from
    // fusing the conv that produces it)
    if (auto it = added_.find(x); it != added_.end()) return it->second;
    return added_[x] = add_quantizer(x, hint);
  }

  std::string add_quantizer(const std::string& x, const std::string& hint) {
    if (x == "input" && o_.input_range.first < o_.input_range.second) {  // the preprocessing's range
      ++out.added_quantizers;
      const auto [lo, hi] = o_.input_range;
      return qdq(x, observed_grid(std::min(lo, 0.f), std::max(hi, 0.f), trt()), "input.q");
    }
    const int id = observers++;
    ++out.added_quantizers;
    if (!observed_) {
      const std::string y = node("Observe", {x}, {Attribute::integer("id", id), Attribute::integer("sym", trt() ? 1 : 0)},
                                 hint + ".observe", "dfq");
      grid_[y] = Grid{};  // placeholder: consumers treat it as quantized; the grid is known after calibration
      placeholders_.insert(y);
      return y;
    }
    const auto [lo, hi] = observed_->at(size_t(id));
    return qdq(x, observed_grid(lo, hi, trt()), hint + ".added_q");
  }

  // A re-quantization of a value already on grid g (after a max-pool or a flatten): exact.
  std::string requant_same(const std::string& y, const std::string& x, const std::string& hint) {
    if (faithful()) return y;
    auto it = grid_.find(x);
    if (it == grid_.end()) return y;
    if (!observed_) {  // calibration pass: the placeholder grid; mark y as quantized the same way
      grid_[y] = it->second;
      if (is_placeholder(x)) placeholders_.insert(y);
      return y;
    }
    return qdq(y, it->second, hint);
  }

  std::string act_node(const std::string& y, Act act, const std::string& hint) {
    if (act == Act::Relu) return node("Relu", {y}, {}, hint + ".relu");
    if (act == Act::Relu6) return node("Clip", {y, scalar_f(hint + ".relu6_lo", 0.f), scalar_f(hint + ".relu6_hi", 6.f)}, {}, hint + ".relu6");
    return y;
  }

  // conv [+ BN] [+ ReLU / ReLU6] [+ the activation site's quantizer].
  std::string conv(const std::string& x_in, const nn::Conv2d& c, const nn::BatchNorm* bn, Act act, int site,
                   const std::string& name) {
    const size_t layer = conv_index_.at(&c);
    const std::string x = layer_input(x_in, layer, name);
    std::vector<Attribute> attrs = {
        Attribute::integers("kernel_shape", {c.weight.size(2), c.weight.size(3)}),
        Attribute::integers("strides", {c.opts.stride[0], c.opts.stride[1]}),
        Attribute::integers("pads", {c.opts.padding[0], c.opts.padding[1], c.opts.padding[0], c.opts.padding[1]}),
        Attribute::integers("dilations", {c.opts.dilation[0], c.opts.dilation[1]}),
        Attribute::integer("group", c.opts.groups)};
    std::string y;
    if (faithful()) {
      std::vector<std::string> in = {x, faithful_weight(layer, name)};
      if (c.bias.defined()) in.push_back(float_bias(c.bias, name));
      y = node("Conv", in, attrs, name);
      if (bn) y = batch_norm(y, *bn, name);
      y = act_node(y, act, name);
      if (site >= 0 && !inputs_placement_ && q_.acts()[size_t(site)].bits() < 32)
        y = qdq(y, act_grid(size_t(site), name), name + ".act_q");
      return y;
    }
    // ort / trt: BN folded into the per-channel weight scales and the bias.
    const int64_t K = c.weight.size(0);
    std::vector<float> a(size_t(K), 1.f), b(size_t(K), 0.f);
    if (bn) fold_coefficients(*bn, &a, &b);
    if (c.bias.defined()) {
      const std::vector<float> cb = bias_values(c.bias);
      for (int64_t k = 0; k < K; ++k) b[size_t(k)] = static_cast<float>(double(b[size_t(k)]) + double(cb[size_t(k)]) * a[size_t(k)]);
    }
    y = node("Conv", int_weight_inputs(x, layer, c.weight, a, b, name), attrs, name);
    ++out.int_convs;
    if (site >= 0 && !inputs_placement_ && q_.acts()[size_t(site)].bits() < 32) {
      const Grid g = act_grid(size_t(site), name);
      if (!implied(act, g)) y = act_node(y, act, name);
      return qdq(y, g, name + ".act_q");
    }
    return act_node(y, act, name);
  }

  std::string linear(const std::string& x_in, const nn::Linear& l, const std::string& name) {
    const size_t layer = linear_index_.at(&l);
    const std::string x = layer_input(x_in, layer, name);
    const std::vector<Attribute> attrs = {Attribute::integer("transB", 1)};
    if (faithful()) {
      std::vector<std::string> in = {x, faithful_weight(layer, name)};
      if (l.bias.defined()) in.push_back(float_bias(l.bias, name));
      return node("Gemm", in, attrs, name);
    }
    const int64_t N = l.weight.size(0);
    std::vector<float> a(size_t(N), 1.f), b(size_t(N), 0.f);
    if (l.bias.defined()) b = bias_values(l.bias);
    ++out.int_gemms;
    return node("Gemm", int_weight_inputs(x, layer, l.weight, a, b, name), attrs, name);
  }

  std::string add(const std::string& a, const std::string& b, const std::string& name) {
    return node("Add", {dq_input(a, name + ".in0"), dq_input(b, name + ".in1")}, {}, name);
  }

  // ResNet: relu(add) and its site.
  std::string relu_site(const std::string& x, int site, const std::string& name) {
    if (faithful() || inputs_placement_ || q_.acts()[size_t(site)].bits() >= 32) {
      std::string y = node("Relu", {x}, {}, name + ".relu");
      if (!inputs_placement_ && q_.acts()[size_t(site)].bits() < 32) y = qdq(y, act_grid(size_t(site), name), name + ".act_q");
      return y;
    }
    const Grid g = act_grid(size_t(site), name);
    return qdq(implied(Act::Relu, g) ? x : node("Relu", {x}, {}, name + ".relu"), g, name + ".act_q");
  }

  std::string max_pool(const std::string& x, int k, int s, int p, const std::string& name) {
    const std::string y = node("MaxPool", {x},
                               {Attribute::integers("kernel_shape", {k, k}), Attribute::integers("strides", {s, s}),
                                Attribute::integers("pads", {p, p, p, p})},
                               name);
    return requant_same(y, x, name + ".q");  // max commutes with a monotone quantizer: same grid, exact
  }

  // Global average pool, flatten (the classifier input; ort / trt quantize the pooled values).
  std::string pool_flatten(const std::string& x, const std::string& name) {
    std::string y = node("GlobalAveragePool", {x}, {}, name + ".pool");
    if (!faithful()) {
      // An average of values on x's grid lies in x's value range: an 8-bit grid over that range
      // never clips and needs no calibration (calibrated on distilled images, the pooled features
      // come out far smaller than real ones: fmnist_resnet18 [0, 1.4] against [0, 6.7], and real
      // images would be clipped).
      auto it = grid_.find(x);
      if (it != grid_.end() && (observed_ || !is_placeholder(x))) {
        const Grid& g = it->second;
        const float lo = static_cast<float>(g.cmin - g.zp) * g.s, hi = static_cast<float>(g.cmax - g.zp) * g.s;
        ++out.added_quantizers;
        y = qdq(y, observed_grid(lo, hi, trt()), name + ".pool_q");
      } else {
        y = dq_input(y, name + ".pool");
      }
    }
    const std::string f = node("Flatten", {y}, {Attribute::integer("axis", 1)}, name + ".flatten");
    return requant_same(f, y, name + ".flatten_q");
  }

  void finish(const std::string& logits, int classes) {
    onnx::Model& m = out.model;
    // any batch and image size: the networks are convolutional up to a global average pool
    m.inputs = {onnx::ValueInfo{"input", Elem::Float, {-1, 3, -1, -1}, {"N", "H", "W"}}};
    // the last node's output is renamed to the graph output
    for (auto& n : m.nodes)
      for (auto& s : n.outputs)
        if (s == logits) s = "logits";
    m.outputs = {onnx::ValueInfo{"logits", Elem::Float, {-1, classes}, {"N"}}};
    if (requantized_sites_)
      out.notes.push_back(std::to_string(requantized_sites_) +
                          " 8-bit activation sites re-quantized to int8 at zero point 0 (127 levels over their range; "
                          "dfq's uint8 grid has 255)");
  }

  static std::string input() { return "input"; }

  std::vector<std::string> weight_notes;

 private:
  QuantizedModel& q_;
  const OnnxExportOptions& o_;
  const std::vector<std::pair<float, float>>* observed_;
  std::vector<QuantizedModel::WeightLayer> layers_;
  std::map<const nn::Conv2d*, size_t> conv_index_;
  std::map<const nn::Linear*, size_t> linear_index_;
  std::map<std::string, Grid> grid_;  // float tensors produced by a DequantizeLinear (or its Clip): their grid
  std::map<std::string, std::string> added_;  // tensor -> its added quantizer's output
  std::set<std::string> placeholders_;        // calibration pass: tensors whose grid is not known yet
  bool is_placeholder(const std::string& x) const { return placeholders_.count(x) != 0; }
  bool inputs_placement_ = false;
  int requantized_sites_ = 0;

  // A ReLU / ReLU6 that the site's grid already applies (ort): uint8 at zero point 0 saturates
  // negatives to 0, and a top value at or below 6 clips what ReLU6 clips.
  bool implied(Act act, const Grid& g) const {
    if (trt() || act == Act::None) return act == Act::None;
    if (g.type != Elem::Uint8 || g.zp != 0 || g.cmin != 0) return false;
    return act == Act::Relu || static_cast<float>(g.cmax - g.zp) * g.s <= 6.f;
  }

  // SQuant's placement: the layer's input quantizer; ort / trt then make sure it is DQ-fed.
  std::string layer_input(const std::string& x, size_t layer, const std::string& name) {
    std::string y = x;
    if (inputs_placement_ && q_.acts()[layer].bits() < 32) y = qdq(x, act_grid(layer, name), name + ".in_q");
    return dq_input(y, name + ".in");
  }

  std::string batch_norm(const std::string& x, const nn::BatchNorm& bn, const std::string& name) {
    const int64_t C = bn.running_mean.numel();
    auto vec = [&](const Tensor& t, float def) { return t.defined() ? t.to_vector() : std::vector<float>(size_t(C), def); };
    return node("BatchNormalization",
                {x, init(onnx::make_float(name + ".bn.scale", {C}, vec(bn.weight, 1.f))),
                 init(onnx::make_float(name + ".bn.bias", {C}, vec(bn.bias, 0.f))),
                 init(onnx::make_float(name + ".bn.mean", {C}, bn.running_mean.to_vector())),
                 init(onnx::make_float(name + ".bn.var", {C}, bn.running_var.to_vector()))},
                {Attribute::real("epsilon", bn.eps)}, name + ".bn");
  }

  // BN(y) = a * y + b per channel (eval mode).
  static void fold_coefficients(const nn::BatchNorm& bn, std::vector<float>* a, std::vector<float>* b) {
    const std::vector<float> rm = bn.running_mean.to_vector(), rv = bn.running_var.to_vector();
    const std::vector<float> g = bn.weight.defined() ? bn.weight.to_vector() : std::vector<float>(rm.size(), 1.f);
    const std::vector<float> be = bn.bias.defined() ? bn.bias.to_vector() : std::vector<float>(rm.size(), 0.f);
    for (size_t k = 0; k < rm.size(); ++k) {
      const double s = double(g[k]) / std::sqrt(double(rv[k]) + double(bn.eps));
      (*a)[k] = static_cast<float>(s);
      (*b)[k] = static_cast<float>(double(be[k]) - double(rm[k]) * s);
    }
  }

  // The bias as dfq uses it: float, or fake-quantized per tensor when bias_bits < 32.
  std::vector<float> bias_values(const Tensor& bias) {
    const int bb = q_.config().bias_bits;
    if (bb >= 32 || no_quant()) return bias.to_vector();
    NoGradGuard ng;
    return quantize_per_tensor(bias.detach(), bb).to_vector();
  }

  std::string float_bias(const Tensor& bias, const std::string& name) {
    return init(onnx::make_float(name + ".bias", {bias.numel()}, bias_values(bias)));
  }

  // Faithful: the layer's codes through a per-channel DequantizeLinear (int8 codes, zero point
  // -zero, scale 1 / scale), or the float weight when it is not quantized.
  std::string faithful_weight(size_t layer, const std::string& name) {
    const Tensor& w = layers_[layer].weight;
    if (no_quant()) return init(onnx::make_float(name + ".weight", w.shape(), w.to_vector()));
    if (layers_[layer].bits >= 32) {
      ++out.float_layers;
      return init(onnx::make_float(name + ".weight", w.shape(), w.to_vector()));
    }
    if (layers_[layer].bits > 8)
      throw std::runtime_error(layers_[layer].name + ": " + std::to_string(layers_[layer].bits) +
                               "-bit weights do not fit ONNX's int8 DequantizeLinear");
    const WeightCodes c = q_.weight_codes(layer);
    const int64_t K = c.out_channels, per = c.per_channel;
    std::vector<int64_t> codes(c.q.begin(), c.q.end()), zp;
    std::vector<float> s;
    bool fits = true;
    for (int64_t o = 0; o < K; ++o) {
      // asym: (q + zero) / scale = (q - (-zero)) * (1 / scale); sym: q * step exactly as dfq computes it
      const bool sym = c.scheme == WeightScheme::Sym;
      zp.push_back(sym ? 0 : -static_cast<int64_t>(c.zero[size_t(o)]));
      s.push_back(sym ? c.scale[size_t(o)] : 1.f / c.scale[size_t(o)]);
      fits = fits && zp.back() >= -128 && zp.back() <= 127;
    }
    const std::string ws = init(onnx::make_float(name + ".weight_scale", {K}, s));
    if (!fits) {
      // A channel whose weights do not straddle 0 has its zero point outside int8: the layer's codes
      // go as int32 numerators q + zero (zero point 0), the same values.
      for (int64_t o = 0; o < K; ++o)
        for (int64_t j = 0; j < per; ++j) codes[size_t(o * per + j)] -= zp[size_t(o)];
      out.notes.push_back(layers_[layer].name + ": a channel's weights do not straddle 0, so its zero point does not fit "
                          "int8; the layer's codes are written as int32 (q - zero point)");
      const std::string wq = init(onnx::make_int(name + ".weight_q", Elem::Int32, w.shape(), codes));
      return node("DequantizeLinear", {wq, ws}, {Attribute::integer("axis", 0)}, name + ".weight_dq");
    }
    const std::string wq = init(onnx::make_int(name + ".weight_q", Elem::Int8, w.shape(), codes));
    const std::string wz = init(onnx::make_int(name + ".weight_zero_point", Elem::Int8, {K}, zp));
    return node("DequantizeLinear", {wq, ws, wz}, {Attribute::integer("axis", 0)}, name + ".weight_dq");
  }

  // ort / trt: [x, DQ(int8 sym codes, s_w * |a|), DQ(int32 bias, s_x * s_w')] for a folded layer
  // y = a * (W x) + b. Asymmetric models: the latent weights re-quantized symmetrically.
  std::vector<std::string> int_weight_inputs(const std::string& x, size_t layer, const Tensor& w,
                                             const std::vector<float>& a, const std::vector<float>& b,
                                             const std::string& name) {
    const int bits = layers_[layer].bits;
    if (bits > 8)
      throw std::runtime_error(layers_[layer].name + ": " + std::to_string(bits) +
                               "-bit weights do not fit int8 (the ort / trt profiles quantize every conv and linear)");
    const bool sym = q_.config().weight_scheme == WeightScheme::Sym;
    if (!sym && !noted_requant_) {
      weight_notes.push_back("weights: dfq's asymmetric per-channel grids re-quantized symmetrically from the latent "
                             "weights (int8, zero point 0), as --weight_scheme sym would (quantize with it for an "
                             "exact export); BN folded into the scales");
      noted_requant_ = true;
    }
    const int64_t K = w.size(0);
    const WeightCodes c = sym ? q_.weight_codes(layer) : sym_requantized(w, bits);
    // The int32 bias lives on the accumulator's grid s_x * s_w: with 4-bit weights and activations
    // that grid is coarse (fmnist_mobilenet_v2's first depthwise conv: steps of 0.49, so the bias
    // moves by up to 0.25 and W4A4 top-1 falls from 47.6 to 28.7). The k-bit codes (|q| <= L) are
    // therefore written multiplied by m = floor(127 / L) with the scale divided by m: the same
    // weights, an m times finer bias grid (m = 18 at 4 bits, 1 at 8). A < 8-bit input gets the same
    // treatment in qdq (x 17 at 4 bits): together 306 times finer, and MobileNetV2 W4A4 under ONNX
    // Runtime goes from 45.20 (weights only) to 47.85 against dfq's 47.60 (docs/onnx_export.md).
    const int64_t L = (int64_t(1) << (bits - 1)) - 1, mult = 127 / L;
    std::vector<int64_t> codes(c.q.begin(), c.q.end());
    std::vector<float> ws(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) {
      ws[size_t(k)] = c.scale[size_t(k)] * std::fabs(a[size_t(k)]) / static_cast<float>(mult);
      const int64_t sign = a[size_t(k)] < 0 ? -1 : 1;
      for (int64_t j = 0; j < c.per_channel; ++j) codes[size_t(k * c.per_channel + j)] *= sign * mult;
    }
    const std::string wq = init(onnx::make_int(name + ".weight_q", Elem::Int8, w.shape(), codes));
    const std::string wsn = init(onnx::make_float(name + ".weight_scale", {K}, ws));
    const std::string wz = init(onnx::make_int(name + ".weight_zero_point", Elem::Int8, {K}, std::vector<int64_t>(size_t(K), 0)));
    const std::string wdq = node("DequantizeLinear", {wq, wsn, wz}, {Attribute::integer("axis", 0)}, name + ".weight_dq");
    // The bias at scale s_x * s_w'[k]. The calibration pass (input scales not known yet for added
    // quantizers) runs with the float bias: it differs from the int32 one by under half a step.
    if (!observed_) return {x, wdq, init(onnx::make_float(name + ".bias", {K}, b))};
    const float sx = grid_.at(x).s;
    std::vector<int64_t> bq(static_cast<size_t>(K));
    std::vector<float> bs(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) {
      bs[size_t(k)] = sx * ws[size_t(k)];
      const double v = std::nearbyint(double(b[size_t(k)]) / double(bs[size_t(k)]));
      if (std::fabs(v) > 2147483647.0)
        throw std::runtime_error(layers_[layer].name + ": bias " + std::to_string(b[size_t(k)]) + " does not fit int32 at scale " +
                                 std::to_string(bs[size_t(k)]));
      bq[size_t(k)] = static_cast<int64_t>(v);
    }
    const std::string bqn = init(onnx::make_int(name + ".bias_q", Elem::Int32, {K}, bq));
    const std::string bsn = init(onnx::make_float(name + ".bias_scale", {K}, bs));
    return {x, wdq, node("DequantizeLinear", {bqn, bsn}, {Attribute::integer("axis", 0)}, name + ".bias_dq")};
  }

  bool noted_requant_ = false;
};

// A conv's state-dict name (the node names follow it).
std::string name_of(const models::Model& m, const nn::Conv2d* c) {
  for (const auto& [n, p] : m.conv_layers())
    if (p == c) return n;
  throw std::logic_error("ONNX export: a conv the model does not track");
}

// The graph of a ResNet (basic or bottleneck blocks).
std::string build_resnet(Builder& b, models::ResNet& m) {
  auto name_of = [&](const nn::Conv2d* c) { return quant::name_of(m, c); };
  std::string h = b.conv(b.input(), *m.conv1, m.bn1.get(), Act::Relu, m.act_site_index("relu"), "conv1");
  h = b.max_pool(h, 3, 2, 1, "maxpool");
  for (const auto& blk : m.blocks) {
    std::string out = b.conv(h, *blk->conv1, blk->bn1.get(), Act::Relu, blk->sites[0], name_of(blk->conv1.get()));
    if (blk->conv3) {
      out = b.conv(out, *blk->conv2, blk->bn2.get(), Act::Relu, blk->sites[1], name_of(blk->conv2.get()));
      out = b.conv(out, *blk->conv3, blk->bn3.get(), Act::None, -1, name_of(blk->conv3.get()));
    } else {
      out = b.conv(out, *blk->conv2, blk->bn2.get(), Act::None, -1, name_of(blk->conv2.get()));
    }
    const std::string identity =
        blk->ds_conv ? b.conv(h, *blk->ds_conv, blk->ds_bn.get(), Act::None, -1, name_of(blk->ds_conv.get())) : h;
    const std::string base = name_of(blk->conv1.get());
    const std::string prefix = base.substr(0, base.rfind('.'));
    h = b.relu_site(b.add(out, identity, prefix + ".add"), blk->sites.back(), prefix);
  }
  return b.linear(b.pool_flatten(h, "avgpool"), *m.fc, "fc");
}

std::string build_mobilenet(Builder& b, models::MobileNetV2& m) {
  auto name_of = [&](const nn::Conv2d* c) { return quant::name_of(m, c); };
  auto unit = [&](const std::string& x, const models::MobileNetV2::ConvUnit& u) {
    return b.conv(x, *u.conv, u.bn.get(), u.site >= 0 ? Act::Relu6 : Act::None, u.site, name_of(u.conv.get()));
  };
  std::string h = unit(b.input(), m.stem);
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    std::string y = h;
    for (const auto& u : m.blocks[i].units) y = unit(y, u);
    h = m.blocks[i].residual ? b.add(h, y, "block" + std::to_string(i + 1) + ".add") : y;
  }
  h = unit(h, m.head);
  return b.linear(b.pool_flatten(h, "avgpool"), *m.fc, "classifier");
}

std::string build(Builder& b, QuantizedModel& q) {
  auto model = q.model_ptr();
  if (auto* r = dynamic_cast<models::ResNet*>(model.get())) return build_resnet(b, *r);
  if (auto* mb = dynamic_cast<models::MobileNetV2*>(model.get())) return build_mobilenet(b, *mb);
  throw std::runtime_error("ONNX export supports the ResNets and MobileNetV2, not " + model->arch);
}

// ---- the interpreter ----------------------------------------------------------------------------

struct Observers {
  std::vector<std::pair<float, float>> range;  // {lo, hi} per Observe id, starting at {0, 0}
};

class Runner {
 public:
  explicit Runner(const onnx::Model& m) : m_(m) {
    for (const auto& t : m.initializers) init_[t.name] = &t;
  }

  Tensor run(const Tensor& x, Observers* obs) {
    NoGradGuard ng;
    std::map<std::string, Value> v;
    v["input"] = {x.contiguous(), Elem::Float};
    for (const onnx::Node& n : m_.nodes) v[n.outputs[0]] = eval(n, v, obs);
    auto it = v.find(m_.outputs.at(0).name);
    if (it == v.end()) throw std::runtime_error("onnx graph: no node produces " + m_.outputs[0].name);
    return it->second.t;
  }

 private:
  struct Value {
    Tensor t;  // integer types hold their integer values as floats
    Elem type = Elem::Float;
  };
  const onnx::Model& m_;
  std::map<std::string, const onnx::Initializer*> init_;
  std::map<std::string, Value> cache_;  // decoded initializers

  const Value& get(const std::string& name, std::map<std::string, Value>& v) {
    auto it = v.find(name);
    if (it != v.end()) return it->second;
    auto c = cache_.find(name);
    if (c != cache_.end()) return c->second;
    auto ii = init_.find(name);
    if (ii == init_.end()) throw std::runtime_error("onnx graph: unknown tensor " + name);
    const onnx::Initializer& t = *ii->second;
    Shape shape(t.dims.begin(), t.dims.end());
    return cache_[name] = Value{Tensor::from_vector(onnx::values(t), shape), t.type};
  }

  static int64_t ints_at(const onnx::Node& n, const std::string& a, size_t i, int64_t def) {
    const Attribute* p = n.attr(a);
    return p && i < p->ints.size() ? p->ints[i] : def;
  }

  // QuantizeLinear's code: x / scale rounded half to even, plus the zero point, saturated to [lo, hi].
  static float q_code(float x, float scale, float zp, float lo, float hi) {
    const float c = rintf(x / scale) + zp;
    return c < lo ? lo : (c > hi ? hi : c);
  }

  // Per-tensor or per-axis (axis 0) parameters of a Q / DQ node.
  static void qparams(const Value& s, const Value* z, int64_t rows, std::vector<float>* sv, std::vector<float>* zv) {
    *sv = s.t.to_vector();
    *zv = z ? z->t.to_vector() : std::vector<float>(sv->size(), 0.f);
    if (sv->size() != 1 && int64_t(sv->size()) != rows) throw std::runtime_error("onnx graph: Q/DQ scale does not fit axis 0");
  }

  Value eval(const onnx::Node& n, std::map<std::string, Value>& v, Observers* obs) {
    auto in = [&](size_t i) -> const Value& { return get(n.inputs.at(i), v); };
    const std::string& op = n.op;
    if (op == "Conv") {
      Conv2dOptions o;
      o.stride = {int(ints_at(n, "strides", 0, 1)), int(ints_at(n, "strides", 1, 1))};
      o.padding = {int(ints_at(n, "pads", 0, 0)), int(ints_at(n, "pads", 1, 0))};
      o.dilation = {int(ints_at(n, "dilations", 0, 1)), int(ints_at(n, "dilations", 1, 1))};
      o.groups = n.attr("group") ? int(n.attr("group")->i) : 1;
      return {conv2d(in(0).t, in(1).t, n.inputs.size() > 2 ? in(2).t : Tensor(), o), Elem::Float};
    }
    if (op == "BatchNormalization")
      return {batch_norm(in(0).t, in(1).t, in(2).t, in(3).t, in(4).t, false, 0.1f, n.attr("epsilon")->f), Elem::Float};
    if (op == "Relu") return {relu(in(0).t), Elem::Float};
    if (op == "Add") return {add(in(0).t, in(1).t), Elem::Float};
    if (op == "MaxPool")
      return {max_pool2d(in(0).t, int(ints_at(n, "kernel_shape", 0, 1)), int(ints_at(n, "strides", 0, 1)), int(ints_at(n, "pads", 0, 0))),
              Elem::Float};
    if (op == "GlobalAveragePool") return {adaptive_avg_pool2d(in(0).t, 1, 1), Elem::Float};
    if (op == "Flatten") return {in(0).t.flatten(1), Elem::Float};
    if (op == "Gemm") {
      if (!n.attr("transB") || n.attr("transB")->i != 1) throw std::runtime_error("onnx graph: Gemm without transB = 1");
      return {linear(in(0).t, in(1).t, n.inputs.size() > 2 ? in(2).t : Tensor()), Elem::Float};
    }
    if (op == "Clip") {
      const float lo = in(1).t.item(), hi = in(2).t.item();
      std::vector<float> x = in(0).t.to_vector();
      for (float& e : x) e = e < lo ? lo : (e > hi ? hi : e);
      return {Tensor::from_vector(x, in(0).t.shape()), Elem::Float};
    }
    if (op == "QuantizeLinear" || op == "DequantizeLinear") {
      const Value& x = in(0);
      const Value* z = n.inputs.size() > 2 ? &in(2) : nullptr;
      const int64_t rows = x.t.dim() > 0 ? x.t.size(0) : 1;
      std::vector<float> s, zp;
      qparams(in(1), z, rows, &s, &zp);
      std::vector<float> d = x.t.to_vector();
      const int64_t per = s.size() == 1 ? int64_t(d.size()) : int64_t(d.size()) / rows;
      if (op == "QuantizeLinear") {
        const Elem t = z ? z->type : Elem::Uint8;
        const float lo = float(type_min(t)), hi = float(type_max(t));
        for (size_t i = 0; i < d.size(); ++i) {
          const size_t r = s.size() == 1 ? 0 : size_t(int64_t(i) / per);
          d[i] = q_code(d[i], s[r], zp[r], lo, hi);
        }
        return {Tensor::from_vector(d, x.t.shape()), t};
      }
      for (size_t i = 0; i < d.size(); ++i) {
        const size_t r = s.size() == 1 ? 0 : size_t(int64_t(i) / per);
        d[i] = static_cast<float>(static_cast<int64_t>(d[i]) - static_cast<int64_t>(zp[r])) * s[r];
      }
      return {Tensor::from_vector(d, x.t.shape()), Elem::Float};
    }
    if (op == "Observe") {
      if (!obs) throw std::runtime_error("onnx graph: an Observe node outside calibration");
      const size_t id = size_t(n.attr("id")->i);
      const bool sym = n.attr("sym")->i != 0;
      if (obs->range.size() <= id) obs->range.resize(id + 1, {0.f, 0.f});
      std::vector<float> d = in(0).t.to_vector();
      auto& [lo, hi] = obs->range[id];
      for (float e : d) lo = std::min(lo, e), hi = std::max(hi, e);
      const Grid g = observed_grid(lo, hi, sym);  // observe, then quantize with the range so far (dfq's observer)
      for (float& e : d)
        e = static_cast<float>(static_cast<int64_t>(q_code(e, g.s, float(g.zp), float(type_min(g.type)), float(type_max(g.type)))) -
                               g.zp) * g.s;
      return {Tensor::from_vector(d, in(0).t.shape()), Elem::Float};
    }
    throw std::runtime_error("onnx graph: op " + op + " is not supported by dfq's interpreter");
  }
};

class GraphModel : public models::Model {
 public:
  GraphModel(onnx::Model m, const std::string& arch, int classes) : Model(arch, classes), m_(std::move(m)), runner_(m_) {}
  Tensor forward(const Tensor& x) override { return runner_.run(x.cpu(), nullptr); }

 private:
  onnx::Model m_;
  Runner runner_;
};

}  // namespace

Tensor run_onnx_graph(const onnx::Model& m, const Tensor& x) { return Runner(m).run(x.cpu(), nullptr); }

std::shared_ptr<models::Model> onnx_graph_model(onnx::Model m, const std::string& arch, int num_classes) {
  return std::make_shared<GraphModel>(std::move(m), arch, num_classes);
}

OnnxExport export_onnx(QuantizedModel& q, const OnnxExportOptions& o) {
  if (q.model().parameters().empty() || q.model().parameters()[0].device() != Device::CPU)
    throw std::runtime_error("ONNX export: the quantized model must be on the CPU");
  auto make = [&](const std::vector<std::pair<float, float>>* observed) {
    Builder b(q, o, observed);
    const std::string logits = build(b, q);
    b.finish(logits, q.model().num_classes);
    b.out.notes.insert(b.out.notes.begin(), b.weight_notes.begin(), b.weight_notes.end());
    return std::move(b.out);
  };
  if (o.profile == OnnxProfile::Faithful || o.profile == OnnxProfile::Float) return make(nullptr);
  if (!o.calib.defined() || o.calib.dim() != 4 || o.calib.size(1) != 3 || o.calib.size(0) < 1)
    throw std::runtime_error(std::string("the ") + onnx_profile_name(o.profile) +
                             " profile needs calibration images (N,3,H,W) for the quantizers it adds");
  OnnxExport pass1 = make(nullptr);
  Observers obs;
  Runner runner(pass1.model);
  const Tensor calib = o.calib.cpu().contiguous();
  for (int64_t i = 0; i < calib.size(0); i += o.calib_batch)
    runner.run(calib.narrow(i, std::min(o.calib_batch, calib.size(0) - i)), &obs);
  obs.range.resize(size_t(pass1.added_quantizers), {0.f, 0.f});
  OnnxExport e = make(&obs.range);
  const bool fixed_input = o.input_range.first < o.input_range.second;
  e.notes.push_back(std::to_string(e.added_quantizers) +
                    " 8-bit quantizers added where dfq's graph has none (the image, conv outputs entering an add, "
                    "residual sums, the pooled classifier input); the pooled input's on its input's range, the "
                    "others min/max-calibrated on " +
                    std::to_string(calib.size(0)) + " images" +
                    (fixed_input ? " (the image's on the given input range [" + std::to_string(o.input_range.first) + ", " +
                                       std::to_string(o.input_range.second) + "])"
                                 : ""));
  return e;
}

}  // namespace dfq::quant
