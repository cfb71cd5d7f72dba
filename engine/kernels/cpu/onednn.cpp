// onednn.cpp — see onednn.h. The only file that includes oneDNN.
#include "engine/kernels/cpu/onednn.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>

#ifdef DFQ_HAVE_DNNL
#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace dfq::onednn {

namespace {
void check_conv(Conv::Kind kind, const ConvShape& s, size_t n8, size_t nf, size_t nscales, const Epilogue& ep) {
  auto bad = [](const std::string& m) { throw std::invalid_argument("conv (oneDNN): " + m); };
  if (s.c <= 0 || s.h <= 0 || s.w <= 0 || s.o <= 0 || s.kh <= 0 || s.kw <= 0) bad("non-positive size");
  if (s.groups <= 0 || s.c % s.groups || s.o % s.groups) bad("channels not divisible by groups");
  if (s.stride_h <= 0 || s.stride_w <= 0 || s.dil_h <= 0 || s.dil_w <= 0 || s.pad_h < 0 || s.pad_w < 0)
    bad("bad stride, dilation or padding");
  if (s.out_h() <= 0 || s.out_w() <= 0) bad("the kernel does not fit the padded input");
  const size_t nw = size_t(s.o * (s.c / s.groups) * s.kh * s.kw);
  if ((kind == Conv::Kind::Int8 ? n8 : nf) != nw) bad("weight count does not match the shape");
  if (nscales != size_t(s.o)) bad("one output scale per output channel expected");
  if (!ep.bias.empty() && ep.bias.size() != size_t(s.o)) bad("one bias per output channel expected");
  if (ep.residual == Epilogue::Residual::U8 && !(ep.res_scale > 0)) bad("a u8 residual needs a positive scale");
  if (ep.act == Epilogue::Act::Clip && !(ep.act_lo <= ep.act_hi)) bad("clip bounds out of order");
  if (ep.quantize && !(ep.q_max >= 0 && ep.q_max <= 255)) bad("codes must fit u8");
  if (!ep.window_k.empty()) {
    if (kind != Conv::Kind::Int8) bad("the window term is for int8 convs");
    if (ep.window_k.size() != size_t(s.o)) bad("one window factor per output channel expected");
    for (float k : ep.window_k)
      if (!(k != 0.f) || !std::isfinite(k)) bad("window factors must be finite and non-zero");
  }
}
}  // namespace

#ifdef DFQ_HAVE_DNNL

#if DNNL_VERSION_MAJOR != 2
// 3.x: primitive_desc constructors take the engine first and the descs directly; output scales
// become attr.set_scales_mask(DNNL_ARG_SRC / WEIGHTS / DST, ...) given at execution, and the bias is
// added after them (2.x adds it before: hence dfq's bias as a post-op here). A 3.x port goes here,
// and only here.
#error "dfq's oneDNN translation unit is written for the oneDNN 2.x API (Debian 12: libdnnl-dev 2.6)"
#endif

bool available() { return true; }

std::string version() {
  const dnnl_version_t* v = dnnl_version();
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}

namespace {
using md = dnnl::memory::desc;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}
dnnl::stream& cpu_stream() {
  static dnnl::stream s(cpu_engine());
  return s;
}
template <class F>
auto wrap(const char* what, F&& f) {
  try {
    return f();
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string(what) + ": " + e.what());
  }
}
}  // namespace

struct Conv::Impl {
  std::vector<int8_t> w8;
  std::vector<float> wf;     // F32: the weights times the scale (and the residual factor)
  std::vector<float> scale;  // Int8: the output scales (times the residual factor)
  std::vector<float> bias;   // the per-channel post-op add
  std::vector<float> wmul;   // the window term: out_scale * k (after acc / k + window)
  int32_t zero = 0;
  bool f32_quantize = false;  // F32 with a quantizing epilogue: f32 codes, rounded here to u8
  struct Prim {
    dnnl::convolution_forward conv;
    dnnl::memory weights;  // in the primitive's layout
    std::vector<float> f32_dst;
  };
  std::map<std::pair<int64_t, int>, Prim> by_batch;  // per batch size and thread count
  std::string last_impl;

  static dnnl::memory::dims weight_dims(const ConvShape& s) {
    if (s.groups == 1) return {s.o, s.c, s.kh, s.kw};
    return {s.groups, s.o / s.groups, s.c / s.groups, s.kh, s.kw};
  }

  Prim& get(Kind kind, const ConvShape& s, const Epilogue& ep, int64_t n) {
    const std::pair<int64_t, int> key{n, omp_get_max_threads()};
    auto it = by_batch.find(key);
    if (it != by_batch.end()) return it->second;
    auto& eng = cpu_engine();
    const bool i8 = kind == Kind::Int8;
    const md src_md({n, s.c, s.h, s.w}, i8 ? dt::u8 : dt::f32, tag::nhwc);
    const md dst_md({n, s.o, s.out_h(), s.out_w()}, ep.quantize && i8 ? dt::u8 : dt::f32, tag::nhwc);
    const md wei_any(weight_dims(s), i8 ? dt::s8 : dt::f32, tag::any);
    // oneDNN's dilation counts the gaps (0 = dense)
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_md,
                                      wei_any, dst_md, {s.stride_h, s.stride_w}, {s.dil_h - 1, s.dil_w - 1},
                                      {s.pad_h, s.pad_w}, {s.pad_h, s.pad_w});
    dnnl::primitive_attr attr;
    if (i8) {
      attr.set_output_scales(1 << 1, scale);  // mask: the output channel dimension
      if (zero) attr.set_zero_points(DNNL_ARG_SRC, 0, {zero});
    }
    // The epilogue in the working space k (the u8 residual's codes, else real values): see onednn.h.
    const float k = ep.residual == Epilogue::Residual::U8 ? ep.res_scale : 1.f;
    dnnl::post_ops po;
    const bool win = !ep.window_k.empty();
    if (win) {  // out_scale * k * (acc / k + window): the output scales are 1 / k then
      po.append_binary(dnnl::algorithm::binary_add, md({n, s.o, s.out_h(), s.out_w()}, dt::f32, tag::nhwc));
      po.append_binary(dnnl::algorithm::binary_mul, md({1, s.o, 1, 1}, dt::f32, tag::nhwc));
    }
    po.append_binary(dnnl::algorithm::binary_add, md({1, s.o, 1, 1}, dt::f32, tag::nhwc));
    if (ep.residual != Epilogue::Residual::None)
      po.append_binary(dnnl::algorithm::binary_add,
                       md({n, s.o, s.out_h(), s.out_w()}, ep.residual == Epilogue::Residual::U8 ? dt::u8 : dt::f32, tag::nhwc));
    if (ep.quantize) {
      // act then quantize as one clip in code space: q_scale * clip(y, lo, hi) + q_zero clipped to
      // [0, q_max] is clip(q_scale * y + q_zero, max(0, q_zero + q_scale * lo), min(q_max, q_zero +
      // q_scale * hi)) (q_scale > 0). One clip, not two: with the chain clip, linear, clip oneDNN 2.6's
      // int8 jit kernels wrote zeros (measured).
      float lo = 0.f, hi = ep.q_max;
      if (ep.act != Epilogue::Act::None) lo = std::max(0.f, ep.q_zero + ep.q_scale * ep.act_lo);
      if (ep.act == Epilogue::Act::Clip) hi = std::min(ep.q_max, ep.q_zero + ep.q_scale * ep.act_hi);
      po.append_eltwise(1.f, dnnl::algorithm::eltwise_linear, ep.q_scale / k, ep.q_zero);
      po.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, lo, hi);
    } else {
      if (ep.act == Epilogue::Act::Relu) po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
      if (ep.act == Epilogue::Act::Clip) po.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, k * ep.act_lo, k * ep.act_hi);
      if (k != 1.f) po.append_eltwise(1.f, dnnl::algorithm::eltwise_linear, 1.f / k, 0.f);
    }
    attr.set_post_ops(po);
    dnnl::convolution_forward::primitive_desc pd(d, attr, eng);
    last_impl = pd.impl_info_str();
    // the weights in this primitive's layout (reused from another batch size's when the layout is the same)
    dnnl::memory wm;
    for (auto& [b, p] : by_batch)
      if (p.weights.get_desc() == pd.weights_desc()) wm = p.weights;
    if (!wm) {
      void* data = i8 ? static_cast<void*>(w8.data()) : static_cast<void*>(wf.data());
      dnnl::memory plain(md(weight_dims(s), i8 ? dt::s8 : dt::f32, s.groups == 1 ? tag::oihw : tag::goihw), eng, data);
      wm = dnnl::memory(pd.weights_desc(), eng);
      dnnl::reorder(plain, wm).execute(cpu_stream(), plain, wm);
      cpu_stream().wait();
    }
    Prim p{dnnl::convolution_forward(pd), wm, {}};
    if (f32_quantize) p.f32_dst.resize(size_t(n * s.out_h() * s.out_w() * s.o));
    return by_batch.emplace(key, std::move(p)).first->second;
  }
};

Conv::Conv(Kind kind, const ConvShape& shape, const std::vector<int8_t>& weights_s8, const std::vector<float>& weights_f32,
           const std::vector<float>& out_scale, int32_t src_zero, const Epilogue& ep)
    : kind_(kind), shape_(shape), ep_(ep), impl_(std::make_unique<Impl>()) {
  check_conv(kind, shape, weights_s8.size(), weights_f32.size(), out_scale.size(), ep);
  const float k = ep.residual == Epilogue::Residual::U8 ? ep.res_scale : 1.f;
  Impl& I = *impl_;
  I.bias.assign(size_t(shape.o), 0.f);
  for (int64_t o = 0; o < shape.o; ++o)
    I.bias[size_t(o)] = k * (ep.bias.empty() ? 0.f : ep.bias[size_t(o)]) - (ep.residual == Epilogue::Residual::U8 ? ep.res_zero : 0.f);
  if (kind == Kind::Int8) {
    I.w8 = weights_s8;
    I.zero = src_zero;
    I.scale = out_scale;
    for (float& v : I.scale) v *= k;
    if (!ep.window_k.empty()) {
      I.wmul = I.scale;
      for (int64_t o = 0; o < shape.o; ++o) {
        I.wmul[size_t(o)] *= ep.window_k[size_t(o)];
        I.scale[size_t(o)] = 1.f / ep.window_k[size_t(o)];
      }
    }
  } else {
    I.wf = weights_f32;
    const size_t per = I.wf.size() / size_t(shape.o);
    for (int64_t o = 0; o < shape.o; ++o)
      for (size_t j = 0; j < per; ++j) I.wf[size_t(o) * per + j] *= k * out_scale[size_t(o)];
    I.f32_quantize = ep.quantize;  // oneDNN 2.6 has no f32 conv with a u8 output
  }
  wrap("conv (oneDNN): cannot make the primitive", [&] { return &I.get(kind_, shape_, ep_, 1); });
}

void Conv::run(int64_t n, const void* src, const void* residual, void* dst, const float* window) {
  if (n <= 0) throw std::invalid_argument("conv (oneDNN): batch size must be positive");
  if ((ep_.residual != Epilogue::Residual::None) != (residual != nullptr))
    throw std::invalid_argument("conv (oneDNN): the residual is given if and only if the epilogue has one");
  if (ep_.window_k.empty() != (window == nullptr))
    throw std::invalid_argument("conv (oneDNN): the window sums are given if and only if the epilogue has the window term");
  wrap("conv (oneDNN) failed", [&] {
    Impl& I = *impl_;
    Impl::Prim& p = I.get(kind_, shape_, ep_, n);
    auto& eng = cpu_engine();
    const ConvShape& s = shape_;
    const bool i8 = kind_ == Kind::Int8;
    const md out_f32({n, s.o, s.out_h(), s.out_w()}, dt::f32, tag::nhwc);
    dnnl::memory src_m(md({n, s.c, s.h, s.w}, i8 ? dt::u8 : dt::f32, tag::nhwc), eng, const_cast<void*>(src));
    void* out = I.f32_quantize ? static_cast<void*>(p.f32_dst.data()) : dst;
    dnnl::memory dst_m(ep_.quantize && i8 ? md({n, s.o, s.out_h(), s.out_w()}, dt::u8, tag::nhwc) : out_f32, eng, out);
    dnnl::memory bias_m(md({1, s.o, 1, 1}, dt::f32, tag::nhwc), eng, I.bias.data());
    const int first = window ? 2 : 0;  // the window term's two post-ops come first
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src_m},
                                               {DNNL_ARG_WEIGHTS, p.weights},
                                               {DNNL_ARG_DST, dst_m},
                                               {DNNL_ARG_ATTR_MULTIPLE_POST_OP(first) | DNNL_ARG_SRC_1, bias_m}};
    if (window) {
      args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] = dnnl::memory(out_f32, eng, const_cast<float*>(window));
      args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1] =
          dnnl::memory(md({1, s.o, 1, 1}, dt::f32, tag::nhwc), eng, I.wmul.data());
    }
    if (residual)
      args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(first + 1) | DNNL_ARG_SRC_1] =
          dnnl::memory(md({n, s.o, s.out_h(), s.out_w()}, ep_.residual == Epilogue::Residual::U8 ? dt::u8 : dt::f32, tag::nhwc),
                       eng, const_cast<void*>(residual));
    p.conv.execute(cpu_stream(), args);
    cpu_stream().wait();
    if (I.f32_quantize) {  // the codes, already clipped to [0, q_max], rounded half to even as oneDNN's u8 conversion
      const float* f = p.f32_dst.data();
      uint8_t* u = static_cast<uint8_t*>(dst);
      const int64_t total = int64_t(p.f32_dst.size());
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < total; ++i) u[i] = static_cast<uint8_t>(std::nearbyint(f[i]));
    }
    return 0;
  });
}

std::string Conv::impl() const { return impl_->last_impl; }

namespace {
struct F32Prim {
  dnnl::convolution_forward conv;
  dnnl::memory src, weights, dst;  // in the kernel's layouts (empty when it is the plain one)
  dnnl::memory::desc src_plain, w_plain, dst_plain;
};
}  // namespace

void f32_conv_forward_nchw(const F32ConvShape& s, const float* x, const float* w, const float* b, float* y) {
  wrap("float conv (oneDNN) failed", [&] {
    // per shape and thread count (oneDNN partitions the work for the thread count it is made with)
    static std::map<std::pair<decltype(s.key()), int>, std::unique_ptr<F32Prim>> cache[2];  // [has bias]
    auto& eng = cpu_engine();
    auto& strm = cpu_stream();
    const int64_t oh = (s.h + 2 * s.pad_h - s.dil_h * (s.kh - 1) - 1) / s.stride_h + 1;
    const int64_t ow = (s.w + 2 * s.pad_w - s.dil_w * (s.kw - 1) - 1) / s.stride_w + 1;
    auto& slot = cache[b ? 1 : 0][{s.key(), omp_get_max_threads()}];
    if (!slot) {
      auto p = std::make_unique<F32Prim>();
      p->src_plain = md({s.n, s.c, s.h, s.w}, dt::f32, tag::nchw);
      p->w_plain = md({s.o, s.c, s.kh, s.kw}, dt::f32, tag::oihw);
      p->dst_plain = md({s.n, s.o, oh, ow}, dt::f32, tag::nchw);
      const md src_any({s.n, s.c, s.h, s.w}, dt::f32, tag::any), w_any({s.o, s.c, s.kh, s.kw}, dt::f32, tag::any);
      const md dst_any({s.n, s.o, oh, ow}, dt::f32, tag::any), b_md({s.o}, dt::f32, tag::x);
      const dnnl::memory::dims st{s.stride_h, s.stride_w}, dl{s.dil_h - 1, s.dil_w - 1}, pd_{s.pad_h, s.pad_w};
      auto d = b ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                                   src_any, w_any, b_md, dst_any, st, dl, pd_, pd_)
                 : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                                   src_any, w_any, dst_any, st, dl, pd_, pd_);
      dnnl::convolution_forward::primitive_desc pd(d, eng);
      p->conv = dnnl::convolution_forward(pd);
      if (pd.src_desc() != p->src_plain) p->src = dnnl::memory(pd.src_desc(), eng);
      if (pd.weights_desc() != p->w_plain) p->weights = dnnl::memory(pd.weights_desc(), eng);
      if (pd.dst_desc() != p->dst_plain) p->dst = dnnl::memory(pd.dst_desc(), eng);
      slot = std::move(p);
    }
    F32Prim& p = *slot;
    dnnl::memory xs(p.src_plain, eng, const_cast<float*>(x)), ws(p.w_plain, eng, const_cast<float*>(w)), ys(p.dst_plain, eng, y);
    if (p.src) dnnl::reorder(xs, p.src).execute(strm, xs, p.src);
    if (p.weights) dnnl::reorder(ws, p.weights).execute(strm, ws, p.weights);
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, p.src ? p.src : xs},
                                               {DNNL_ARG_WEIGHTS, p.weights ? p.weights : ws},
                                               {DNNL_ARG_DST, p.dst ? p.dst : ys}};
    if (b) args[DNNL_ARG_BIAS] = dnnl::memory(md({s.o}, dt::f32, tag::x), eng, const_cast<float*>(b));
    p.conv.execute(strm, args);
    if (p.dst) dnnl::reorder(p.dst, ys).execute(strm, p.dst, ys);
    strm.wait();
    return 0;
  });
}

struct MaxPool::Impl {
  std::map<std::pair<int64_t, int>, dnnl::pooling_forward> by_batch;  // per batch size and thread count
};

MaxPool::MaxPool(bool u8, int64_t c, int64_t h, int64_t w, int kernel, int stride, int pad)
    : u8_(u8), c_(c), h_(h), w_(w), kernel_(kernel), stride_(stride), pad_(pad), impl_(std::make_unique<Impl>()) {
  if (c <= 0 || h <= 0 || w <= 0 || kernel <= 0 || stride <= 0 || pad < 0 || out_h() <= 0 || out_w() <= 0)
    throw std::invalid_argument("max pool (oneDNN): bad shape");
}

void MaxPool::run(int64_t n, const void* src, void* dst) {
  wrap("max pool (oneDNN) failed", [&] {
    auto& eng = cpu_engine();
    const dt t = u8_ ? dt::u8 : dt::f32;
    const md src_md({n, c_, h_, w_}, t, tag::nhwc), dst_md({n, c_, out_h(), out_w()}, t, tag::nhwc);
    const std::pair<int64_t, int> key{n, omp_get_max_threads()};
    auto it = impl_->by_batch.find(key);
    if (it == impl_->by_batch.end()) {
      dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max, src_md, dst_md,
                                    {stride_, stride_}, {kernel_, kernel_}, {pad_, pad_}, {pad_, pad_});
      it = impl_->by_batch.emplace(key, dnnl::pooling_forward(dnnl::pooling_forward::primitive_desc(d, eng))).first;
    }
    dnnl::memory s(src_md, eng, const_cast<void*>(src)), o(dst_md, eng, dst);
    it->second.execute(cpu_stream(), {{DNNL_ARG_SRC, s}, {DNNL_ARG_DST, o}});
    cpu_stream().wait();
    return 0;
  });
}

#else  // built without oneDNN

bool available() { return false; }
std::string version() { return "not built with oneDNN"; }


struct Conv::Impl {};
struct MaxPool::Impl {};

Conv::Conv(Kind kind, const ConvShape& shape, const std::vector<int8_t>& weights_s8, const std::vector<float>& weights_f32,
           const std::vector<float>& out_scale, int32_t, const Epilogue& ep)
    : kind_(kind), shape_(shape), ep_(ep) {
  check_conv(kind, shape, weights_s8.size(), weights_f32.size(), out_scale.size(), ep);
  throw std::runtime_error(missing_message());
}
void Conv::run(int64_t, const void*, const void*, void*, const float*) { throw std::runtime_error(missing_message()); }
std::string Conv::impl() const { return ""; }
MaxPool::MaxPool(bool u8, int64_t c, int64_t h, int64_t w, int kernel, int stride, int pad)
    : u8_(u8), c_(c), h_(h), w_(w), kernel_(kernel), stride_(stride), pad_(pad) {
  throw std::runtime_error(missing_message());
}
void MaxPool::run(int64_t, const void*, void*) { throw std::runtime_error(missing_message()); }
void f32_conv_forward_nchw(const F32ConvShape&, const float*, const float*, const float*, float*) {
  throw std::runtime_error(missing_message());
}

#endif

Conv::~Conv() = default;
MaxPool::~MaxPool() = default;

Int8Conv::Int8Conv(const ConvShape& shape, const std::vector<int8_t>& weights, const std::vector<float>& out_scale,
                   int32_t src_zero)
    : conv_(Conv::Kind::Int8, shape, weights, {}, out_scale, src_zero, Epilogue{}) {}

const char* missing_message() {
  return "int8 inference needs oneDNN, and this dfq was built without it (apt-get install libdnnl-dev, as "
         "scripts/setup.sh does, then re-run cmake)";
}

}  // namespace dfq::onednn
