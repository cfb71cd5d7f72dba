// int8_graph.cpp — see int8_graph.h.
#include "quant/int8_graph.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <stdexcept>

#include "engine/autograd.h"
#include "engine/kernels/cpu/onednn.h"
#include "engine/kernels/kernels.h"
#include "engine/kernels/quant_math.h"
#include "engine/profile.h"
#include "quant/int8_common.h"
#include "quant/int8_inference.h"
#include "models/mobilenet.h"
#include "models/resnet.h"

namespace dfq::quant {

namespace {

using onednn::Epilogue;

using int8::Grid;

// One tensor of the pipeline, channels last: u8 codes on a grid, or float.
struct Val {
  bool u8 = false;
  int grid = -1;
  int64_t c = 0, h = 0, w = 0;
  std::vector<uint8_t> u;
  std::vector<float> f;
  int64_t per_image() const { return c * h * w; }
  void alloc(int64_t n) {
    if (u8) u.resize(size_t(n * per_image()));
    else f.resize(size_t(n * per_image()));
  }
  void* data() { return u8 ? static_cast<void*>(u.data()) : static_cast<void*>(f.data()); }
};

// A conv / linear's weights as the graph uses them.
struct LayerW {
  std::string name;
  int bits = 32;
  bool int8_ok = false;     // weights at <= 8 bits: W holds their integer form
  int8::Weights W;          // int8_common.h
  std::vector<float> wf;    // the fake-quantized float weight (the forward's)
  std::vector<float> bias;  // the layer's bias through its hook (empty: none)
  int64_t out_ch = 0;
};

enum class How { Int8Fused, Int8Corrected, Float };

}  // namespace

struct Int8Graph::Plan {
  std::vector<std::unique_ptr<Val>> vals;
  std::vector<std::function<void(int64_t)>> steps;
  std::map<std::pair<Val*, int>, Val*> quantized;  // (float value, grid) -> its codes
  Val* in = nullptr;
  Val* out = nullptr;
  int64_t n_alloc = 0;
  Val* val(bool u8, int grid, int64_t c, int64_t h, int64_t w) {
    auto v = std::make_unique<Val>();
    v->u8 = u8, v->grid = grid, v->c = c, v->h = h, v->w = w;
    vals.push_back(std::move(v));
    return vals.back().get();
  }
};

struct Int8Graph::State {
  QuantizedModel* q = nullptr;
  std::vector<Grid> grids;
  std::vector<int> grid_of_act;  // per activation quantizer, -1 when above 8 bits
  std::vector<LayerW> layers;
  std::map<const void*, size_t> layer_of;  // module -> layer index
  bool inputs = false;                     // ActPlacement::LayerInputs
  std::unique_ptr<Plan> plan;  // for one input size at a time: its buffers hold the whole forward
  std::pair<int64_t, int64_t> plan_hw{0, 0};
  std::vector<How> how;  // per layer, as compiled (the last plan)
  std::vector<std::string> why_float;
  std::string impl;
  bool ran = false;

  int site_grid(int site) const { return site >= 0 && size_t(site) < grid_of_act.size() ? grid_of_act[size_t(site)] : -1; }

  // ---- the steps ----------------------------------------------------------------------------
  Val* quantize(Plan& P, Val* x, int gi) {
    auto key = std::make_pair(x, gi);
    if (auto it = P.quantized.find(key); it != P.quantized.end()) return it->second;
    Val* y = P.val(true, gi, x->c, x->h, x->w);
    const Grid g = grids[size_t(gi)];
    P.steps.push_back([x, y, g](int64_t n) {
      profile::Scope ps("int8 graph: quantize");
      const int64_t total = n * x->per_image();
      const float* f = x->f.data();
      uint8_t* u = y->u.data();
      // quant_code's float ops (scale * x - zero, round half to even, clamp), written so that they vectorise
      const float sc = g.p.scale, zero = g.p.zero, lo = g.p.qmin, hi = g.p.qmax, half = g.half;
#pragma omp parallel for simd schedule(static)
      for (int64_t i = 0; i < total; ++i) {
        const float q = std::nearbyint(sc * f[i] - zero);
        u[i] = static_cast<uint8_t>(static_cast<int32_t>(std::min(std::max(q, lo), hi) + half));
      }
    });
    return P.quantized[key] = y;
  }

  Val* dequantize(Plan& P, Val* x) {
    Val* y = P.val(false, -1, x->c, x->h, x->w);
    const Grid g = grids[size_t(x->grid)];
    P.steps.push_back([x, y, g](int64_t n) {
      profile::Scope ps("int8 graph: dequantize");
      const int64_t total = n * x->per_image();
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < total; ++i) y->f[size_t(i)] = dequant_code(g.p, float(x->u[size_t(i)]) - g.half);
    });
    return y;
  }

  // One conv (or linear: a 1x1 conv on a 1x1 map), with its BN, act, residual and output quantizer.
  // next: under layer-input quantizers, the layer that alone consumes this output (its quantizer
  // then becomes this conv's epilogue: the same codes a separate quantize pass would give, but one
  // pass fewer), or null.
  Val* unit(Plan& P, const void* module, const nn::Conv2d* conv, const nn::BatchNorm* bn, Val* x, Epilogue::Act act,
            float act_hi, int out_site, Val* residual, const void* next = nullptr) {
    const size_t li = layer_of.at(module);
    const LayerW& L = layers[li];
    if (inputs && li < grid_of_act.size() && grid_of_act[li] >= 0 && !x->u8) x = quantize(P, x, grid_of_act[li]);
    if (!conv && (x->h != 1 || x->w != 1)) throw std::logic_error("int8 graph: a linear on a spatial map");
    const bool int8 = x->u8 && L.int8_ok;
    if (!int8 && x->u8) x = dequantize(P, x);
    how[li] = int8 ? (L.W.corrected ? How::Int8Corrected : How::Int8Fused) : How::Float;
    why_float[li] = int8 ? "" : !L.int8_ok ? "weights above 8 bits" : "input float";
    const onednn::ConvShape s = int8::conv_shape(conv, x->c, x->h, x->w, L.out_ch);
    // BN (eval) as the engine's kernel computes it: y = a * x + c0
    std::vector<float> a(size_t(s.o), 1.f), c0(size_t(s.o), 0.f);
    if (bn) {
      const std::vector<float> rm = bn->running_mean.to_vector(), rv = bn->running_var.to_vector();
      const std::vector<float> g = bn->weight.defined() ? bn->weight.to_vector() : std::vector<float>(size_t(s.o), 1.f);
      const std::vector<float> b = bn->bias.defined() ? bn->bias.to_vector() : std::vector<float>(size_t(s.o), 0.f);
      for (size_t o = 0; o < size_t(s.o); ++o) bn_eval_affine(rm[o], rv[o], bn->eps, g[o], b[o], a[o], c0[o]);
    }
    Epilogue ep;
    ep.bias.resize(size_t(s.o));
    for (size_t o = 0; o < size_t(s.o); ++o) ep.bias[o] = (L.bias.empty() ? 0.f : L.bias[o] * a[o]) + c0[o];
    if (residual) {
      ep.residual = residual->u8 ? Epilogue::Residual::U8 : Epilogue::Residual::F32;
      if (residual->u8) ep.res_scale = grids[size_t(residual->grid)].p.scale, ep.res_zero = float(grids[size_t(residual->grid)].zero_point);
    }
    ep.act = act;
    ep.act_lo = 0, ep.act_hi = act_hi;
    int og = inputs ? -1 : site_grid(out_site);
    if (inputs && next) {
      const size_t ni = layer_of.at(next);
      if (ni < grid_of_act.size()) og = grid_of_act[ni];
    }
    if (og >= 0) {
      const Grid& g = grids[size_t(og)];
      ep.quantize = true, ep.q_scale = g.p.scale, ep.q_zero = float(g.zero_point), ep.q_max = float((1 << g.bits) - 1);
    }
    Val* y = P.val(og >= 0, og, s.o, s.out_h(), s.out_w());
    if (residual && (residual->c != y->c || residual->h != y->h || residual->w != y->w))
      throw std::logic_error("int8 graph: the residual's shape differs from the conv's output");
    std::vector<float> scale(size_t(s.o));
    if (int8) {
      const float sx = grids[size_t(x->grid)].p.scale;
      for (size_t o = 0; o < size_t(s.o); ++o) scale[o] = float(L.W.per_unit(o, sx) * double(a[o]));
    } else {
      scale = a;
    }
    const int32_t zx = int8 ? grids[size_t(x->grid)].zero_point : 0;
    if (!(int8 && L.W.corrected)) {
      auto prim = std::make_shared<onednn::Conv>(int8 ? onednn::Conv::Kind::Int8 : onednn::Conv::Kind::F32, s,
                                                 int8 ? L.W.w8 : std::vector<int8_t>{}, int8 ? std::vector<float>{} : L.wf,
                                                 scale, zx, ep);
      if (int8 && impl.empty()) impl = prim->impl();
      const char* name = !int8 ? "int8 graph: f32 conv" : conv && conv->opts.groups > 1 ? "int8 graph: int8 grouped conv" : "int8 graph: int8 conv";
      P.steps.push_back([prim, x, residual, y, name](int64_t n) {
        profile::Scope ps(name);
        prim->run(n, x->data(), residual ? residual->data() : nullptr, y->data());
      });
      return y;
    }
    // The zero-point term: dst = scale * sum (c - zx) w8 + scale * k * S + bias (+ residual), act,
    // quantize, S the window sums of (c - zx) over each output's group (one more integer conv with
    // all-one weights, groups output channels).
    std::shared_ptr<onednn::Int8Conv> sums = int8::window_sum_conv(s, zx);
    auto S = std::make_shared<std::vector<float>>();
    const bool all_k = std::all_of(L.W.k.begin(), L.W.k.end(), [](float v) { return v != 0.f; });
    if (s.groups == s.o && all_k) {
      // depthwise: one window sum per output channel, so the term fuses into the conv's post-ops
      Epilogue wep = ep;
      wep.window_k = L.W.k;
      auto prim = std::make_shared<onednn::Conv>(onednn::Conv::Kind::Int8, s, L.W.w8, std::vector<float>{}, scale, zx, wep);
      if (impl.empty()) impl = prim->impl();
      P.steps.push_back([prim, sums, S, x, residual, y, s](int64_t n) {
        profile::Scope ps("int8 graph: int8 depthwise conv with the zero-point term");
        S->resize(size_t(n * s.out_h() * s.out_w() * s.o));
        sums->run(n, static_cast<const uint8_t*>(x->data()), S->data());
        prim->run(n, x->data(), residual ? residual->data() : nullptr, y->data(), S->data());
      });
      return y;
    }
    auto raw = std::make_shared<onednn::Int8Conv>(s, L.W.w8, scale, zx);
    if (impl.empty()) impl = raw->impl();
    std::vector<float> coef(size_t(s.o));
    for (size_t o = 0; o < size_t(s.o); ++o) coef[o] = scale[o] * L.W.k[o];
    auto acc = std::make_shared<std::vector<float>>();
    P.steps.push_back([raw, sums, acc, S, coef, ep, x, residual, y, s](int64_t n) {
      profile::Scope ps("int8 graph: int8 conv with the zero-point term");
      const int64_t PP = n * s.out_h() * s.out_w(), O = s.o, G = s.groups, opg = O / G;
      acc->resize(size_t(PP * O));
      S->resize(size_t(PP * G));
      raw->run(n, static_cast<const uint8_t*>(x->data()), acc->data());
      sums->run(n, static_cast<const uint8_t*>(x->data()), S->data());
      float* ap = acc->data();
      const float* sp = S->data();
      const float* cf = coef.data();
      const float* bs = ep.bias.data();
      const float lo = ep.act == Epilogue::Act::None ? -std::numeric_limits<float>::infinity() : ep.act_lo;
      const float hi = ep.act == Epilogue::Act::Clip ? ep.act_hi : std::numeric_limits<float>::infinity();
      const float inv_rs = 1.f / ep.res_scale;
      // one output position's O channels at a time, each stage a loop that vectorises
#pragma omp parallel for schedule(static)
      for (int64_t p = 0; p < PP; ++p) {
        float* v = ap + p * O;
        const float* sr = sp + p * G;
        if (G == 1) {
          const float s0 = sr[0];
#pragma omp simd
          for (int64_t o = 0; o < O; ++o) v[o] += cf[o] * s0 + bs[o];
        } else {
          for (int64_t o = 0; o < O; ++o) v[o] += cf[o] * sr[o / opg] + bs[o];
        }
        if (ep.residual == Epilogue::Residual::F32) {
          const float* r = residual->f.data() + p * O;
#pragma omp simd
          for (int64_t o = 0; o < O; ++o) v[o] += r[o];
        } else if (ep.residual == Epilogue::Residual::U8) {
          const uint8_t* r = residual->u.data() + p * O;
#pragma omp simd
          for (int64_t o = 0; o < O; ++o) v[o] += (float(r[o]) - ep.res_zero) * inv_rs;
        }
#pragma omp simd
        for (int64_t o = 0; o < O; ++o) v[o] = std::min(std::max(v[o], lo), hi);
        if (ep.quantize) {
          uint8_t* u = y->u.data() + p * O;
#pragma omp simd
          for (int64_t o = 0; o < O; ++o)
            u[o] = static_cast<uint8_t>(static_cast<int32_t>(std::min(std::max(std::nearbyint(ep.q_scale * v[o] + ep.q_zero), 0.f), ep.q_max)));
        } else {
          std::copy(v, v + O, y->f.data() + p * O);
        }
      }
    });
    return y;
  }

  Val* max_pool(Plan& P, Val* x, int k, int stride, int pad) {
    auto pool = std::make_shared<onednn::MaxPool>(x->u8, x->c, x->h, x->w, k, stride, pad);
    Val* y = P.val(x->u8, x->grid, x->c, pool->out_h(), pool->out_w());
    P.steps.push_back([pool, x, y](int64_t n) {
      profile::Scope ps("int8 graph: max pool");
      pool->run(n, x->data(), y->data());
    });
    return y;
  }

  Val* global_avg_pool(Plan& P, Val* x) {
    if (x->h == 1 && x->w == 1) return x;  // the mean of one element: the codes pass through
    Val* y = P.val(false, -1, x->c, 1, 1);
    const Grid g = x->u8 ? grids[size_t(x->grid)] : Grid{};
    P.steps.push_back([x, y, g](int64_t n) {
      profile::Scope ps("int8 graph: average pool");
      const int64_t C = x->c, HW = x->h * x->w;
#pragma omp parallel for collapse(2) schedule(static)
      for (int64_t b = 0; b < n; ++b)
        for (int64_t c = 0; c < C; ++c) {
          double sum = 0;
          if (x->u8)
            for (int64_t p = 0; p < HW; ++p) sum += dequant_code(g.p, float(x->u[size_t((b * HW + p) * C + c)]) - g.half);
          else
            for (int64_t p = 0; p < HW; ++p) sum += x->f[size_t((b * HW + p) * C + c)];
          y->f[size_t(b * C + c)] = float(sum / double(HW));
        }
    });
    return y;
  }

  // ---- the architectures ---------------------------------------------------------------------
  std::unique_ptr<Plan> compile(models::Model& m, int64_t H, int64_t W) {
    auto P = std::make_unique<Plan>();
    how.assign(layers.size(), How::Float);
    why_float.assign(layers.size(), "not reached");
    Val* x = P->in = P->val(false, -1, 3, H, W);
    constexpr float kInf = std::numeric_limits<float>::infinity();
    if (auto* r = dynamic_cast<models::ResNet*>(&m)) {
      // the stem: conv1, bn1, relu (site "relu"), max pool 3/2/1
      Val* h = unit(*P, r->conv1.get(), r->conv1.get(), r->bn1.get(), x, Epilogue::Act::Relu, kInf, stem_site(m), nullptr);
      h = max_pool(*P, h, 3, 2, 1);
      for (auto& b : r->blocks) {
        Val* in = h;
        Val* t = unit(*P, b->conv1.get(), b->conv1.get(), b->bn1.get(), in, Epilogue::Act::Relu, kInf, b->sites[0], nullptr,
                      b->conv2.get());
        nn::Conv2d* last = b->conv2.get();
        nn::BatchNorm* last_bn = b->bn2.get();
        if (b->conv3) {
          t = unit(*P, b->conv2.get(), b->conv2.get(), b->bn2.get(), t, Epilogue::Act::Relu, kInf, b->sites[1], nullptr,
                   b->conv3.get());
          last = b->conv3.get(), last_bn = b->bn3.get();
        }
        Val* identity = b->ds_conv ? unit(*P, b->ds_conv.get(), b->ds_conv.get(), b->ds_bn.get(), in, Epilogue::Act::None, 0, -1, nullptr) : in;
        h = unit(*P, last, last, last_bn, t, Epilogue::Act::Relu, kInf, b->sites.back(), identity);
      }
      h = global_avg_pool(*P, h);
      P->out = unit(*P, r->fc.get(), nullptr, nullptr, h, Epilogue::Act::None, 0, -1, nullptr);
    } else if (auto* mb = dynamic_cast<models::MobileNetV2*>(&m)) {
      auto conv_unit = [&](const models::MobileNetV2::ConvUnit& u, Val* in, Val* residual, const void* next = nullptr) {
        const bool relu6 = u.site >= 0;
        return unit(*P, u.conv.get(), u.conv.get(), u.bn.get(), in, relu6 ? Epilogue::Act::Clip : Epilogue::Act::None, 6.f,
                    u.site, residual, next);
      };
      // Inside a block each unit's output feeds the next unit alone. The stem's and a block's output
      // feed the next block's first unit, and its residual add when it has one (then it stays float).
      auto sole_consumer = [&](size_t next_block) -> const void* {
        if (next_block == mb->blocks.size()) return mb->head.conv.get();
        return mb->blocks[next_block].residual ? nullptr : mb->blocks[next_block].units[0].conv.get();
      };
      Val* h = conv_unit(mb->stem, x, nullptr, sole_consumer(0));
      for (size_t bi = 0; bi < mb->blocks.size(); ++bi) {
        const auto& b = mb->blocks[bi];
        Val* y = h;
        for (size_t i = 0; i < b.units.size(); ++i) {
          const bool last = i + 1 == b.units.size();
          y = conv_unit(b.units[i], y, b.residual && last ? h : nullptr, last ? sole_consumer(bi + 1) : b.units[i + 1].conv.get());
        }
        h = y;
      }
      h = conv_unit(mb->head, h, nullptr);
      h = global_avg_pool(*P, h);
      P->out = unit(*P, mb->fc.get(), nullptr, nullptr, h, Epilogue::Act::None, 0, -1, nullptr);
    } else {
      throw std::invalid_argument("int8 graph: " + m.arch + " is not a ResNet or MobileNetV2");
    }
    if (P->out->u8) throw std::logic_error("int8 graph: the logits are quantized");
    return P;
  }

  static int stem_site(const models::Model& m) {
    const auto& sites = m.act_sites();
    auto it = std::find(sites.begin(), sites.end(), "relu");
    return it == sites.end() ? -1 : int(it - sites.begin());
  }
};

bool Int8Graph::supports(const models::Model& m) {
  return dynamic_cast<const models::ResNet*>(&m) || dynamic_cast<const models::MobileNetV2*>(&m);
}

Int8Graph::Int8Graph(QuantizedModel& q) : s_(std::make_unique<State>()) {
  if (!onednn::available()) throw std::runtime_error(onednn::missing_message());
  if (!supports(q.model())) throw std::invalid_argument("int8 graph: " + q.model().arch + " is not a ResNet or MobileNetV2");
  State& S = *s_;
  S.q = &q;
  S.inputs = q.config().act_placement == ActPlacement::LayerInputs;
  int8::Grids G = int8::activation_grids(q, "int8 graph");
  S.grids = std::move(G.grids);
  S.grid_of_act = std::move(G.grid_of_act);
  NoGradGuard ng;
  const auto wl = q.weight_layers();
  const auto& convs = q.model().conv_layers();
  const auto& lins = q.model().linear_layers();
  for (size_t i = 0; i < wl.size(); ++i) {
    LayerW L;
    L.name = wl[i].name;
    L.bits = wl[i].bits;
    const bool is_conv = i < convs.size();
    const nn::Conv2d* c = is_conv ? convs[i].second : nullptr;
    const nn::Linear* l = is_conv ? nullptr : lins[i - convs.size()].second;
    if ((c ? c->weight : l->weight).device() != Device::CPU) throw std::invalid_argument("int8 inference runs on the CPU: the model is on CUDA");
    S.layer_of[c ? static_cast<const void*>(c) : static_cast<const void*>(l)] = i;
    const Tensor wq = c ? nn::hooked(c->weight_hook, c->weight) : nn::hooked(l->weight_hook, l->weight);
    L.wf = wq.contiguous().to_vector();
    L.out_ch = wq.size(0);
    const Tensor b = c ? nn::hooked(c->bias_hook, c->bias) : nn::hooked(l->bias_hook, l->bias);
    if (b.defined()) L.bias = b.to_vector();
    if (L.bits <= 8) {
      L.W = int8::integer_weights(q.weight_codes(i));
      L.int8_ok = true;
    }
    S.layers.push_back(std::move(L));
  }
}

Int8Graph::~Int8Graph() = default;

Tensor Int8Graph::forward(const Tensor& x_in) {
  if (grad_enabled()) throw std::logic_error("int8 graph: a forward with gradient (evaluation only)");
  if (x_in.device() != Device::CPU) throw std::invalid_argument("int8 graph: the input must be on the CPU");
  if (x_in.dim() != 4 || x_in.size(1) != 3) throw std::invalid_argument("int8 graph: expected input (N,3,H,W), got " + x_in.str());
  State& S = *s_;
  const Tensor x = x_in.contiguous();
  const int64_t n = x.size(0), H = x.size(2), W = x.size(3);
  if (!S.plan || S.plan_hw != std::make_pair(H, W)) {
    S.plan.reset();
    S.plan = S.compile(S.q->model(), H, W);
    S.plan_hw = {H, W};
  }
  Plan& P = *S.plan;
  if (P.n_alloc != n) {
    for (auto& v : P.vals) v->alloc(n);
    P.n_alloc = n;
  }
  // NCHW -> NHWC
  {
    profile::Scope ps("int8 graph: to channels last");
    const float* src = x.data<float>();
    float* dst = P.in->f.data();
    const int64_t HW = H * W;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < n; ++b)
      for (int64_t p = 0; p < HW; ++p)
        for (int64_t c = 0; c < 3; ++c) dst[(b * HW + p) * 3 + c] = src[(b * 3 + c) * HW + p];
  }
  for (auto& step : P.steps) step(n);
  S.ran = true;
  const int64_t classes = P.out->c;
  std::vector<float> logits(P.out->f.begin(), P.out->f.begin() + n * classes);
  return Tensor::from_vector(logits, {n, classes});
}

int64_t Int8Graph::int8_layers() const {
  int64_t k = 0;
  if (s_->ran)
    for (How h : s_->how) k += h != How::Float;
  return k;
}

std::string Int8Graph::report() const {
  const State& S = *s_;
  if (!S.ran) return "int8 graph: no forward has run yet";
  int64_t fused = 0, corrected = 0;
  std::map<std::string, std::vector<std::string>> floats;
  for (size_t i = 0; i < S.how.size(); ++i) {
    fused += S.how[i] == How::Int8Fused;
    corrected += S.how[i] == How::Int8Corrected;
    if (S.how[i] == How::Float) floats[S.why_float[i]].push_back(S.layers[i].name);
  }
  std::string r = "int8 graph: " + std::to_string(fused + corrected) + " of " + std::to_string(S.layers.size()) +
                  " convs / linears in integers (" + onednn::version() + (S.impl.empty() ? "" : ", " + S.impl) + "), " +
                  std::to_string(fused) + " with fused epilogues";
  if (corrected) r += ", " + std::to_string(corrected) + " with the weight zero-point term";
  r += int8::float_layers_text(floats);
  return r;
}

models::EvalResult evaluate_int8(QuantizedModel& q, Dataset& ds, int64_t batch, const std::string& label,
                                 std::vector<int64_t>* predictions, std::string* report, int64_t* int8_layers) {
  if (Int8Graph::supports(q.model())) {
    Int8Graph graph(q);
    models::EvalResult r = models::evaluate(q.model(), ds, Device::CPU, batch, label, predictions,
                                            [&graph](const Tensor& x) { return graph.forward(x); });
    if (report) *report = graph.report();
    if (int8_layers) *int8_layers = graph.int8_layers();
    return r;
  }
  Int8Inference layers(q);
  models::EvalResult r = models::evaluate(q.model(), ds, Device::CPU, batch, label, predictions);
  if (report) *report = layers.report();
  if (int8_layers) *int8_layers = layers.int8_layers();
  return r;
}

}  // namespace dfq::quant
