// onednn.cpp — see onednn.h. The only file that includes oneDNN.
#include "engine/kernels/cpu/onednn.h"

#include <map>
#include <stdexcept>

#ifdef DFQ_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace dfq::onednn {

namespace {
void check_shape(const ConvShape& s, size_t nweights, size_t nscales) {
  auto bad = [](const std::string& m) { throw std::invalid_argument("int8 conv: " + m); };
  if (s.c <= 0 || s.h <= 0 || s.w <= 0 || s.o <= 0 || s.kh <= 0 || s.kw <= 0) bad("non-positive size");
  if (s.groups <= 0 || s.c % s.groups || s.o % s.groups) bad("channels not divisible by groups");
  if (s.stride_h <= 0 || s.stride_w <= 0 || s.dil_h <= 0 || s.dil_w <= 0 || s.pad_h < 0 || s.pad_w < 0)
    bad("bad stride, dilation or padding");
  if (s.out_h() <= 0 || s.out_w() <= 0) bad("the kernel does not fit the padded input");
  if (nweights != size_t(s.o * (s.c / s.groups) * s.kh * s.kw)) bad("weight count does not match the shape");
  if (nscales != size_t(s.o)) bad("one output scale per output channel expected");
}
}  // namespace

#ifdef DFQ_HAVE_DNNL

#if DNNL_VERSION_MAJOR != 2
// 3.x: convolution_forward::primitive_desc takes the engine first and the descs directly, and the
// output scales become attr.set_scales_mask(DNNL_ARG_DST / WEIGHTS, ...) passed at execution time.
// Debian 12 ships 2.6; a 3.x port goes here (and only here).
#error "dfq's oneDNN translation unit is written for the oneDNN 2.x API (Debian 12: libdnnl-dev 2.6)"
#endif

bool available() { return true; }

std::string version() {
  const dnnl_version_t* v = dnnl_version();
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}

namespace {
dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}
dnnl::stream& cpu_stream() {
  static dnnl::stream s(cpu_engine());
  return s;
}
}  // namespace

struct Int8Conv::Impl {
  using md = dnnl::memory::desc;
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  std::vector<int8_t> w;  // the caller's weights, plain (g)oihw
  std::vector<float> scale;
  int32_t zero = 0;
  struct Prim {
    dnnl::convolution_forward conv;
    dnnl::memory weights;  // in the primitive's layout
  };
  std::map<int64_t, Prim> by_batch;
  std::string last_impl;

  dnnl::memory::dims weight_dims(const ConvShape& s) const {
    if (s.groups == 1) return {s.o, s.c, s.kh, s.kw};
    return {s.groups, s.o / s.groups, s.c / s.groups, s.kh, s.kw};
  }

  Prim& get(const ConvShape& s, int64_t n) {
    auto it = by_batch.find(n);
    if (it != by_batch.end()) return it->second;
    auto& eng = cpu_engine();
    const md src_md({n, s.c, s.h, s.w}, dt::u8, tag::nhwc);
    const md dst_md({n, s.o, s.out_h(), s.out_w()}, dt::f32, tag::nhwc);
    const md wei_any(weight_dims(s), dt::s8, tag::any);
    // oneDNN's dilation counts the gaps (0 = dense)
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_md,
                                      wei_any, dst_md, {s.stride_h, s.stride_w}, {s.dil_h - 1, s.dil_w - 1},
                                      {s.pad_h, s.pad_w}, {s.pad_h, s.pad_w});
    dnnl::primitive_attr attr;
    attr.set_output_scales(1 << 1, scale);  // mask: the output channel dimension
    if (zero) attr.set_zero_points(DNNL_ARG_SRC, 0, {zero});
    dnnl::convolution_forward::primitive_desc pd(d, attr, eng);
    last_impl = pd.impl_info_str();
    // the weights in this primitive's layout (reused from another batch size's when the layout is the same)
    dnnl::memory wm;
    for (auto& [k, p] : by_batch)
      if (p.weights.get_desc() == pd.weights_desc()) wm = p.weights;
    if (!wm) {
      dnnl::memory plain(md(weight_dims(s), dt::s8, s.groups == 1 ? tag::oihw : tag::goihw), eng, w.data());
      wm = dnnl::memory(pd.weights_desc(), eng);
      dnnl::reorder(plain, wm).execute(cpu_stream(), plain, wm);
      cpu_stream().wait();
    }
    return by_batch.emplace(n, Prim{dnnl::convolution_forward(pd), wm}).first->second;
  }
};

Int8Conv::Int8Conv(const ConvShape& shape, const std::vector<int8_t>& weights, const std::vector<float>& out_scale,
                   int32_t src_zero)
    : shape_(shape), impl_(std::make_unique<Impl>()) {
  check_shape(shape, weights.size(), out_scale.size());
  impl_->w = weights;
  impl_->scale = out_scale;
  impl_->zero = src_zero;
  try {
    impl_->get(shape_, 1);  // fails here, not at the first batch, when oneDNN has no kernel for it
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("int8 conv: oneDNN cannot make the primitive: ") + e.what());
  }
}

void Int8Conv::run(int64_t n, const uint8_t* src, float* dst) {
  if (n <= 0) throw std::invalid_argument("int8 conv: batch size must be positive");
  try {
    Impl::Prim& p = impl_->get(shape_, n);
    auto& eng = cpu_engine();
    const ConvShape& s = shape_;
    dnnl::memory src_m(Impl::md({n, s.c, s.h, s.w}, Impl::dt::u8, Impl::tag::nhwc), eng, const_cast<uint8_t*>(src));
    dnnl::memory dst_m(Impl::md({n, s.o, s.out_h(), s.out_w()}, Impl::dt::f32, Impl::tag::nhwc), eng, dst);
    p.conv.execute(cpu_stream(), {{DNNL_ARG_SRC, src_m}, {DNNL_ARG_WEIGHTS, p.weights}, {DNNL_ARG_DST, dst_m}});
    cpu_stream().wait();
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("int8 conv: oneDNN failed: ") + e.what());
  }
}

std::string Int8Conv::impl() const { return impl_->last_impl; }

#else  // built without oneDNN

bool available() { return false; }
std::string version() { return "not built with oneDNN"; }

struct Int8Conv::Impl {};

Int8Conv::Int8Conv(const ConvShape& shape, const std::vector<int8_t>& weights, const std::vector<float>& out_scale, int32_t)
    : shape_(shape) {
  check_shape(shape, weights.size(), out_scale.size());
  throw std::runtime_error(
      "int8 inference needs oneDNN, and this dfq was built without it (apt-get install libdnnl-dev, as "
      "scripts/setup.sh does, then re-run cmake)");
}
void Int8Conv::run(int64_t, const uint8_t*, float*) { throw std::runtime_error("int8 conv: not built with oneDNN"); }
std::string Int8Conv::impl() const { return ""; }

#endif

Int8Conv::~Int8Conv() = default;

}  // namespace dfq::onednn
