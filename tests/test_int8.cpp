// test_int8.cpp — integer inference (quant/int8_inference.h, engine/kernels/cpu/onednn.h):
//  - oneDNN's u8 x s8 conv against the engine's float conv on integer-valued tensors, exact (odd sizes,
//    padding, stride 2, dilation, groups, depthwise, 1x1, a zero point);
//  - a quantized resnet18 / mobilenet_v2 with its layers in integers against its fake-quant forward
//    (asym W4 / W8, where W8 needs the zero-point term, sym; ReLU sites and layer inputs), and which
//    layers ran in integers;
//  - the compiled graph of a resnet18 / mobilenet_v2 (quant/int8_graph.h) against the same;
//  - evaluate --int8 / --compare, a method main's --int8 (squant_main), and their refusals.
// Without oneDNN (a build without libdnnl-dev) the cases print one line and check the refusal.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/kernels/cpu/onednn.h"
#include "models/registry.h"
#include "quant/int8_graph.h"
#include "quant/int8_inference.h"
#include "quant/qmodel.h"
#include "quant/zeroq.h"
#include "tests/test_util.h"

using namespace dfq;
using namespace dfq::quant;
using dfq::test::TempDir;

namespace {

bool skip_without_onednn() {
  if (onednn::available()) return false;
  std::printf("int8: built without oneDNN, skipped (apt-get install libdnnl-dev)\n");
  return true;
}

struct ConvCase {
  std::string what;
  int64_t c, h, w, o, k;
  int stride, pad, dil, groups;
  int32_t zero;
};

}  // namespace

TEST_CASE("int8: oneDNN's u8 x s8 conv is exact against the float conv on integer values (padding, stride, dilation, groups, depthwise, 1x1, zero point)") {
  if (skip_without_onednn()) {
    onednn::ConvShape s;
    s.c = s.h = s.w = s.o = 1;
    CHECK_THROWS_WITH(onednn::Int8Conv(s, {1}, {1.f}, 0), doctest::Contains("libdnnl-dev"));
    return;
  }
  const std::vector<ConvCase> cases = {
      {"3x3 pad 1", 5, 7, 9, 6, 3, 1, 1, 1, 1, 3},          {"3x3 stride 2", 8, 9, 7, 10, 3, 2, 1, 1, 1, 0},
      {"groups 2", 6, 6, 5, 4, 3, 1, 1, 1, 2, 11},          {"depthwise stride 2", 12, 11, 8, 12, 3, 2, 1, 1, 12, 9},
      {"1x1", 17, 4, 4, 13, 1, 1, 0, 1, 1, 128},            {"5x5 dilation 2 pad 3", 3, 10, 10, 5, 5, 1, 3, 2, 1, 2},
      {"7x7 stride 2 pad 3", 3, 16, 16, 8, 7, 2, 3, 1, 1, 255}, {"linear as 1x1 on 1x1", 40, 1, 1, 9, 1, 1, 0, 1, 1, 4},
  };
  Generator g(5);
  for (const ConvCase& k : cases) {
    CAPTURE(k.what);
    for (int64_t n : {1, 3}) {
      onednn::ConvShape s;
      s.c = k.c, s.h = k.h, s.w = k.w, s.o = k.o, s.kh = s.kw = k.k;
      s.stride_h = s.stride_w = k.stride, s.pad_h = s.pad_w = k.pad, s.dil_h = s.dil_w = k.dil, s.groups = k.groups;
      const int64_t cg = k.c / k.groups;
      std::vector<uint8_t> codes(size_t(n * k.h * k.w * k.c));
      std::vector<int8_t> w(size_t(k.o * cg * k.k * k.k));
      const std::vector<float> r = rand({int64_t(codes.size() + w.size())}, g, Device::CPU, 0.f, 1.f).to_vector();
      for (size_t i = 0; i < codes.size(); ++i) codes[i] = uint8_t(std::min(255.f, std::floor(r[i] * 256.f)));
      for (size_t i = 0; i < w.size(); ++i) w[i] = int8_t(int(std::min(254.f, std::floor(r[codes.size() + i] * 255.f))) - 127);
      onednn::Int8Conv conv(s, w, std::vector<float>(size_t(k.o), 1.f), k.zero);
      std::vector<float> got(size_t(n * s.out_h() * s.out_w() * k.o));
      conv.run(n, codes.data(), got.data());
      // the float conv of (c - zero) and w, both exact integers in float; its zero padding is a padded code == zero
      std::vector<float> xf(size_t(n * k.c * k.h * k.w)), wf(w.begin(), w.end());
      for (int64_t b = 0; b < n; ++b)
        for (int64_t c = 0; c < k.c; ++c)
          for (int64_t p = 0; p < k.h * k.w; ++p)
            xf[size_t((b * k.c + c) * k.h * k.w + p)] = float(int(codes[size_t((b * k.h * k.w + p) * k.c + c)]) - k.zero);
      Conv2dOptions o;
      o.stride = {k.stride, k.stride}, o.padding = {k.pad, k.pad}, o.dilation = {k.dil, k.dil}, o.groups = k.groups;
      const std::vector<float> want = conv2d(Tensor::from_vector(xf, {n, k.c, k.h, k.w}),
                                             Tensor::from_vector(wf, {k.o, cg, int64_t(k.k), int64_t(k.k)}), Tensor(), o)
                                          .to_vector();
      const int64_t P = s.out_h() * s.out_w();
      int64_t bad = 0;
      for (int64_t b = 0; b < n; ++b)
        for (int64_t oc = 0; oc < k.o; ++oc)
          for (int64_t p = 0; p < P; ++p)
            bad += got[size_t((b * P + p) * k.o + oc)] != want[size_t((b * k.o + oc) * P + p)];
      CHECK(bad == 0);
      // an output scale multiplies the exact sum once
      std::vector<float> sc(size_t(k.o));
      for (int64_t oc = 0; oc < k.o; ++oc) sc[size_t(oc)] = 0.25f * float(oc + 1);
      onednn::Int8Conv scaled(s, w, sc, k.zero);
      std::vector<float> got2(got.size());
      scaled.run(n, codes.data(), got2.data());
      int64_t bad2 = 0;
      for (size_t i = 0; i < got.size(); ++i) bad2 += got2[i] != got[i] * sc[i % size_t(k.o)];
      CHECK(bad2 == 0);
    }
  }
  onednn::ConvShape bad;
  bad.c = 6, bad.h = bad.w = 4, bad.o = 4, bad.groups = 4;
  CHECK_THROWS_WITH(onednn::Int8Conv(bad, std::vector<int8_t>(6), std::vector<float>(4, 1.f), 0), doctest::Contains("divisible"));
}

TEST_CASE("int8: oneDNN conv epilogues (bias, u8 / f32 residual, ReLU, ReLU6, quantize; int8 and float convs) give their definition's codes") {
  if (skip_without_onednn()) return;
  using onednn::Epilogue;
  struct EpCase {
    std::string what;
    bool int8;
    int groups;
    Epilogue::Act act;
    Epilogue::Residual res;
    bool quantize;
    bool window = false;  // the weight zero-point term (depthwise)
  };
  const std::vector<EpCase> cases = {
      {"int8, bias only, f32 out", true, 1, Epilogue::Act::None, Epilogue::Residual::None, false},
      {"int8, relu, quantize", true, 1, Epilogue::Act::Relu, Epilogue::Residual::None, true},
      {"int8, relu6, quantize", true, 1, Epilogue::Act::Clip, Epilogue::Residual::None, true},
      {"int8 depthwise, relu6, quantize", true, 16, Epilogue::Act::Clip, Epilogue::Residual::None, true},
      {"int8, u8 residual, relu, quantize", true, 1, Epilogue::Act::Relu, Epilogue::Residual::U8, true},
      {"int8, f32 residual, f32 out", true, 1, Epilogue::Act::None, Epilogue::Residual::F32, false},
      {"float conv, relu6, quantize", false, 1, Epilogue::Act::Clip, Epilogue::Residual::None, true},
      {"float conv, f32 residual, relu", false, 1, Epilogue::Act::Relu, Epilogue::Residual::F32, false},
      {"int8 depthwise, zero-point term, relu6, quantize", true, 16, Epilogue::Act::Clip, Epilogue::Residual::None, true, true},
      {"int8 depthwise, zero-point term, f32 residual, f32 out", true, 16, Epilogue::Act::None, Epilogue::Residual::F32, false, true},
  };
  Generator g(13);
  for (const EpCase& k : cases) {
    CAPTURE(k.what);
    const int64_t n = 2, C = 16, H = 12, W = 10, O = 16, cg = C / k.groups;
    onednn::ConvShape s;
    s.c = C, s.h = H, s.w = W, s.o = O, s.kh = s.kw = 3, s.pad_h = s.pad_w = 1, s.groups = k.groups;
    const int64_t P = H * W;  // stride 1, pad 1
    const std::vector<float> r = rand({n * P * C + O * cg * 9 + 2 * n * P * O}, g, Device::CPU, 0.f, 1.f).to_vector();
    size_t at = 0;
    std::vector<uint8_t> xc(size_t(n * P * C));
    std::vector<float> xf(xc.size());
    for (size_t i = 0; i < xc.size(); ++i, ++at) xc[i] = uint8_t(std::floor(r[at] * 15.99f)), xf[i] = r[at] * 2.f - 1.f;
    std::vector<int8_t> w8(size_t(O * cg * 9));
    std::vector<float> wf(w8.size());
    for (size_t i = 0; i < w8.size(); ++i, ++at) w8[i] = int8_t(std::floor(r[at] * 14.99f) - 7), wf[i] = (r[at] - 0.5f) * 0.3f;
    std::vector<uint8_t> ru(size_t(n * P * O));
    std::vector<float> rf(ru.size());
    for (size_t i = 0; i < ru.size(); ++i, ++at) ru[i] = uint8_t(std::floor(r[at] * 15.99f)), rf[i] = r[at + ru.size()] - 0.5f;
    std::vector<float> scale(static_cast<size_t>(O));
    Epilogue ep;
    ep.bias.resize(size_t(O));
    for (int64_t o = 0; o < O; ++o) scale[size_t(o)] = 0.011f * float(o + 1), ep.bias[size_t(o)] = 0.05f * float(o % 5 - 2);
    ep.act = k.act, ep.act_lo = 0, ep.act_hi = 0.6f;
    ep.residual = k.res, ep.res_scale = 7.5f, ep.res_zero = 2;
    ep.quantize = k.quantize, ep.q_scale = 21.f, ep.q_zero = 1, ep.q_max = 15;
    const int32_t zx = 3;
    std::vector<float> win;
    if (k.window) {
      ep.window_k.resize(size_t(O));
      for (int64_t o = 0; o < O; ++o) ep.window_k[size_t(o)] = float(int(o % 7) - 3 == 0 ? 5 : int(o % 7) - 3);
      win.resize(size_t(n * P * O));
      for (size_t i = 0; i < win.size(); ++i) win[i] = float(int(i % 23) - 11);
    }
    onednn::Conv conv(k.int8 ? onednn::Conv::Kind::Int8 : onednn::Conv::Kind::F32, s, k.int8 ? w8 : std::vector<int8_t>{},
                      k.int8 ? std::vector<float>{} : wf, scale, zx, ep);
    std::vector<uint8_t> yu(size_t(n * P * O));
    std::vector<float> yf(yu.size());
    const void* res = k.res == Epilogue::Residual::U8 ? static_cast<const void*>(ru.data())
                      : k.res == Epilogue::Residual::F32 ? static_cast<const void*>(rf.data()) : nullptr;
    conv.run(n, k.int8 ? static_cast<const void*>(xc.data()) : static_cast<const void*>(xf.data()), res,
             k.quantize ? static_cast<void*>(yu.data()) : static_cast<void*>(yf.data()), k.window ? win.data() : nullptr);
    int64_t off1 = 0, worse = 0;
    double fmax = 0;
    for (int64_t b = 0; b < n; ++b)
      for (int64_t oh = 0; oh < H; ++oh)
        for (int64_t ow = 0; ow < W; ++ow)
          for (int64_t o = 0; o < O; ++o) {
            const int64_t gr = o / (O / k.groups);
            double acc = 0;
            for (int64_t c = 0; c < cg; ++c)
              for (int64_t kh = 0; kh < 3; ++kh)
                for (int64_t kw = 0; kw < 3; ++kw) {
                  const int64_t ih = oh - 1 + kh, iw = ow - 1 + kw;
                  if (ih < 0 || iw < 0 || ih >= H || iw >= W) continue;
                  const size_t xi = size_t(((b * H + ih) * W + iw) * C + gr * cg + c), wi = size_t(((o * cg + c) * 3 + kh) * 3 + kw);
                  acc += k.int8 ? double(int(xc[xi]) - zx) * w8[wi] : double(xf[xi]) * wf[wi];
                }
            const size_t i = size_t(((b * H + oh) * W + ow) * O + o);
            double v = double(scale[size_t(o)]) * acc + ep.bias[size_t(o)];
            if (k.window) v += double(scale[size_t(o)]) * ep.window_k[size_t(o)] * win[i];
            if (k.res == Epilogue::Residual::U8) v += (double(ru[i]) - ep.res_zero) / ep.res_scale;
            if (k.res == Epilogue::Residual::F32) v += rf[i];
            if (k.act == Epilogue::Act::Relu) v = std::max(v, 0.0);
            if (k.act == Epilogue::Act::Clip) v = std::min(std::max(v, 0.0), double(ep.act_hi));
            if (k.quantize) {
              const double c = std::min(std::max(std::nearbyint(ep.q_scale * v + ep.q_zero), 0.0), double(ep.q_max));
              const double d = std::fabs(c - yu[i]);
              off1 += d == 1, worse += d > 1;
            } else {
              fmax = std::max(fmax, std::fabs(v - yf[i]));
            }
          }
    // a code one step off only where the value sits within a float rounding of a boundary
    CHECK(worse == 0);
    CHECK(off1 <= int64_t(yu.size()) / 500);
    CHECK(fmax < 1e-4);
  }
}

namespace {

struct ModelCase {
  std::string what, arch;
  int wbits, abits;
  WeightScheme scheme;
  ActPlacement placement;
  int64_t expect_int8;  // layers that must run in integers
  bool corrected;       // some layer needs the zero-point term
};

// max |a - b| / max |b|
double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0, d = 0;
  for (size_t i = 0; i < b.size(); ++i) m = std::max(m, double(std::fabs(b[i]))), d = std::max(d, double(std::fabs(a[i] - b[i])));
  return d / m;
}

}  // namespace

TEST_CASE("int8: a quantized resnet18 / mobilenet_v2 in integers gives its fake-quant logits (asym W4 / W8 with the zero-point term, sym, ReLU sites and layer inputs)") {
  if (skip_without_onednn()) {
    auto m = dfq::test::resnet18_random_bn(3, true);
    QuantizedModel q(m, QuantConfig{});
    CHECK_THROWS_WITH(Int8Inference{q}, doctest::Contains("libdnnl-dev"));
    return;
  }
  // resnet18 at 32 px: conv1 sees the image (float); every other conv and the fc (after a 1x1
  // average pool) see a ReLU site's grid. mobilenet_v2 with ReLU sites: the expand convs and the last
  // 1x1 conv see a block output (float); with layer inputs every layer but the first is quantized.
  const std::vector<ModelCase> cases = {
      {"resnet18 W4A4 asym", "resnet18", 4, 4, WeightScheme::Asym, ActPlacement::ReluSites, 20, false},
      {"resnet18 W8A8 asym", "resnet18", 8, 8, WeightScheme::Asym, ActPlacement::ReluSites, 20, true},
      {"resnet18 W4A8 sym", "resnet18", 4, 8, WeightScheme::Sym, ActPlacement::ReluSites, 20, false},
      {"resnet18 W3A4 layer inputs", "resnet18", 3, 4, WeightScheme::Asym, ActPlacement::LayerInputs, 20, false},
      {"mobilenet_v2 W4A4 asym", "mobilenet_v2", 4, 4, WeightScheme::Asym, ActPlacement::ReluSites, 35, false},
      {"mobilenet_v2 W8A8 layer inputs", "mobilenet_v2", 8, 8, WeightScheme::Asym, ActPlacement::LayerInputs, 52, true},
  };
  Generator g(7);
  const Tensor x = randn({4, 3, 32, 32}, g);
  for (const ModelCase& k : cases) {
    CAPTURE(k.what);
    auto m = k.arch == "resnet18" ? dfq::test::resnet18_random_bn(3, true) : models::create_model(k.arch, 10, 3, true);
    m->eval();
    QuantConfig c;
    c.wbits = k.wbits, c.abits = k.abits, c.weight_scheme = k.scheme, c.act_placement = k.placement;
    QuantizedModel q(m, c);
    calibrate(q, x);
    NoGradGuard ng;
    const std::vector<float> want = q.forward(x).to_vector();
    std::vector<float> got;
    {
      Int8Inference i8(q);
      CHECK(i8.report().find("no forward") != std::string::npos);
      got = q.forward(x).to_vector();
      const auto st = i8.stats();
      int64_t ints = 0, corrected = 0;
      for (const auto& s : st) ints += s.int8_batches == 1, corrected += s.corrected;
      CHECK(ints == k.expect_int8);
      CHECK(i8.int8_layers() == k.expect_int8);
      CHECK((corrected > 0) == k.corrected);
      CHECK(st[0].int8_batches == 0);  // the image is on no grid
      CHECK(st[0].float_batches == 1);
      MESSAGE(i8.report());
      CHECK(i8.report().find(std::to_string(k.expect_int8) + " of " + std::to_string(st.size())) != std::string::npos);
    }
    // the same logits up to float rounding (a code can flip at a rounding boundary in a later layer:
    // a few images' logits move by a step; the argmax is checked on real images by evaluate --compare)
    const double e = rel_err(got, want);
    MESSAGE("max relative logit difference " << e);
    CHECK(e < 2e-2);
    int64_t close = 0;
    for (size_t i = 0; i < want.size(); ++i) close += std::fabs(got[i] - want[i]) <= 1e-3 * (1 + std::fabs(want[i]));
    CHECK(double(close) >= 0.9 * double(want.size()));
    // the hooks are gone: the forward is the fake-quant one again, bit for bit
    CHECK(q.forward(x).to_vector() == want);
  }
}

TEST_CASE("int8: the compiled graph (resnet18, mobilenet_v2) gives the fake-quant logits: fused epilogues, the zero-point term, ReLU sites and layer inputs, 32 and 64 px") {
  if (skip_without_onednn()) {
    auto m = dfq::test::resnet18_random_bn(3, true);
    QuantizedModel q(m, QuantConfig{});
    CHECK_THROWS_WITH(Int8Graph{q}, doctest::Contains("libdnnl-dev"));
    return;
  }
  struct GraphCase {
    ModelCase m;
    int px;
    int64_t expect_int8;
  };
  // at 64 px resnet18's last map is 2x2: the average pool is float, and so is the classifier
  const std::vector<GraphCase> cases = {
      {{"resnet18 W4A4 asym", "resnet18", 4, 4, WeightScheme::Asym, ActPlacement::ReluSites, 20, false}, 32, 20},
      {{"resnet18 W8A8 asym", "resnet18", 8, 8, WeightScheme::Asym, ActPlacement::ReluSites, 20, true}, 32, 20},
      {{"resnet18 W4A8 sym", "resnet18", 4, 8, WeightScheme::Sym, ActPlacement::ReluSites, 20, false}, 64, 19},
      {{"resnet18 W3A4 layer inputs", "resnet18", 3, 4, WeightScheme::Asym, ActPlacement::LayerInputs, 20, false}, 32, 20},
      {{"resnet18 W8A8 sym layer inputs", "resnet18", 8, 8, WeightScheme::Sym, ActPlacement::LayerInputs, 20, false}, 64, 20},
      {{"mobilenet_v2 W4A4 asym", "mobilenet_v2", 4, 4, WeightScheme::Asym, ActPlacement::ReluSites, 35, false}, 32, 35},
      {{"mobilenet_v2 W8A8 layer inputs", "mobilenet_v2", 8, 8, WeightScheme::Asym, ActPlacement::LayerInputs, 52, true}, 32, 52},
      {{"mobilenet_v2 W6A8 sym layer inputs", "mobilenet_v2", 6, 8, WeightScheme::Sym, ActPlacement::LayerInputs, 52, false}, 64, 52},
  };
  for (const GraphCase& k : cases) {
    CAPTURE(k.m.what);
    CAPTURE(k.px);
    Generator g(11);
    const Tensor x = randn({8, 3, int64_t(k.px), int64_t(k.px)}, g);
    auto m = k.m.arch == "resnet18" ? dfq::test::resnet18_random_bn(5, true) : models::create_model(k.m.arch, 10, 5, true);
    m->eval();
    QuantConfig c;
    c.wbits = k.m.wbits, c.abits = k.m.abits, c.weight_scheme = k.m.scheme, c.act_placement = k.m.placement;
    QuantizedModel q(m, c);
    calibrate(q, x);
    NoGradGuard ng;
    const std::vector<float> want = q.forward(x).to_vector();
    Int8Graph graph(q);
    CHECK(graph.report().find("no forward") != std::string::npos);
    const std::vector<float> got = graph.forward(x).to_vector();
    REQUIRE(got.size() == want.size());
    MESSAGE(graph.report());
    CHECK(graph.int8_layers() == k.expect_int8);
    CHECK((graph.report().find("zero-point term") != std::string::npos) == k.m.corrected);
    // Fused epilogues round in oneDNN's order (scale, adds, act, quantize in one chain), so a value
    // within a rounding of a code boundary takes the neighbouring code, hundreds of times per image
    // at A8 (each one step), and the logits move by a little everywhere; a wrong scale, zero point or
    // epilogue moves them by their own size (the Conv tests below check the epilogue code by code).
    const double e = rel_err(got, want);
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size(); ++i) num += std::fabs(got[i] - want[i]), den += std::fabs(want[i]);
    MESSAGE("max relative logit difference " << e << ", mean " << num / den);
    CHECK(e < 1e-1);
    CHECK(num / den < 3e-2);
    int64_t agree = 0;
    for (size_t r = 0; r < want.size() / 10; ++r) {
      auto a = want.begin() + int64_t(r * 10), b = got.begin() + int64_t(r * 10);
      agree += std::max_element(a, a + 10) - a == std::max_element(b, b + 10) - b;
    }
    CHECK(agree >= 7);
    // another batch size, then the first again: the same numbers
    const Tensor x1 = x.narrow(0, 1);
    const std::vector<float> one = graph.forward(x1).to_vector();
    CHECK(rel_err(one, std::vector<float>(got.begin(), got.begin() + int64_t(one.size()))) < 1e-6);
    CHECK(graph.forward(x).to_vector() == got);
  }
  auto vgg = models::create_model("vgg16_bn", 10, 1, true);
  CHECK_FALSE(Int8Graph::supports(*vgg));
}

TEST_CASE("int8: an input on no activation grid runs the float conv and is counted; gradient mode and a model still observing are refused") {
  if (skip_without_onednn()) return;
  auto m = dfq::test::resnet18_random_bn(3, true);
  QuantConfig c;
  c.wbits = 4, c.abits = 4;
  QuantizedModel q(m, c);
  CHECK_THROWS_WITH(Int8Inference{q}, doctest::Contains("frozen"));
  Generator g(8);
  const Tensor x = randn({2, 3, 32, 32}, g);
  calibrate(q, x);
  Int8Inference i8(q);
  // layer1.0.conv1 fed a float map directly: on no grid
  auto* conv = q.model().conv_layers()[1].second;
  NoGradGuard ng;
  const Tensor y = conv->forward(randn({2, 64, 8, 8}, g));
  CHECK(y.shape() == Shape{2, 64, 8, 8});
  CHECK(i8.stats()[1].float_batches == 1);
  CHECK(i8.stats()[1].int8_batches == 0);
  CHECK(i8.report().find("float, input on no activation grid: layer1.0.conv1") != std::string::npos);
  {
    set_grad_enabled(true);
    CHECK_THROWS_WITH(q.forward(x), doctest::Contains("gradient"));
    set_grad_enabled(false);
  }
}

TEST_CASE("int8: evaluate --int8 --compare on a saved quantized model, and its refusals") {
  TempDir dir("int8");
  auto m = dfq::test::resnet18_random_bn(4, true);
  write_weight_file(dir / "float.bin", "resnet18", 10, m->state_dict());
  QuantConfig c;
  c.wbits = 4, c.abits = 8;
  QuantizedModel q(m, c);
  Generator g(9);
  calibrate(q, randn({4, 3, 32, 32}, g));
  q.save(dir / "q.bin");
  dfq::test::write_two_class_folder(dir.p / "data");
  const std::string log = dir / "log.txt";
  if (!onednn::available()) {
    std::printf("int8: built without oneDNN, evaluate --int8 checked for its refusal only\n");
    CHECK(dfq::test::run_program(DFQ_EVALUATE, "--weights " + dir / "q.bin" + " --data " + dir / "data" + " --int8", log) == 2);
    CHECK(dfq::test::read_text(log).find("libdnnl-dev") != std::string::npos);
    return;
  }
  const std::string json = dir / "e.json";
  REQUIRE(dfq::test::run_program(DFQ_EVALUATE, "--weights " + dir / "q.bin" + " --data " + dir / "data" + " --int8 --compare --json " + json, log) == 0);
  const std::string out = dfq::test::read_text(log), js = dfq::test::read_text(json);
  CAPTURE(out);
  CHECK(out.find("int8 graph: ") != std::string::npos);
  CHECK(out.find("convs / linears in integers") != std::string::npos);
  CHECK(out.find("argmax agreement") != std::string::npos);
  CHECK(dfq::test::json_number(js, "int8_layers") >= 19);
  CHECK(dfq::test::json_number(js, "agreement") == doctest::Approx(100.0));
  CHECK(dfq::test::json_number(js, "top1") == doctest::Approx(dfq::test::json_number(js, "fake_top1")));
  dfq::test::check_refusals(DFQ_EVALUATE,
                            {{"--weights " + dir / "float.bin" + " --data " + dir / "data" + " --int8", "is a float model", 1},
                             {"--weights " + dir / "q.bin" + " --data " + dir / "data" + " --compare", "--compare goes with --int8", 2},
                             {"--weights " + dir / "q.bin" + " --data " + dir / "data" + " --int8 --device cuda", "runs on the CPU", 2}},
                            " --json " + dir / "bad.json", log, {dir / "bad.json"});
}

TEST_CASE("int8: a method main's --int8 evaluates its model both ways (squant_main), and refuses CUDA and no data") {
  TempDir dir("int8m");
  auto m = dfq::test::resnet18_random_bn(6, true);
  write_weight_file(dir / "r18.bin", "resnet18", 10, m->state_dict());
  dfq::test::write_two_class_folder(dir.p / "data");
  const std::string log = dir / "log.txt", json = dir / "r.json";
  const std::string base = "--weights " + (dir / "r18.bin") + " --bits 4/4 --noise_batch 4 --img_size 32";
  if (!onednn::available()) {
    std::printf("int8: built without oneDNN, squant_main --int8 checked for its refusal only\n");
    CHECK(dfq::test::run_program(DFQ_SQUANT_MAIN, base + " --data " + dir / "data" + " --int8", log) == 2);
    CHECK(dfq::test::read_text(log).find("libdnnl-dev") != std::string::npos);
    return;
  }
  REQUIRE(dfq::test::run_program(DFQ_SQUANT_MAIN, base + " --data " + dir / "data" + " --int8 --json " + json, log) == 0);
  const std::string out = dfq::test::read_text(log), js = dfq::test::read_text(json);
  CAPTURE(out);
  CHECK(out.find("int8 graph: ") != std::string::npos);
  CHECK(out.find("argmax agreement") != std::string::npos);
  CHECK(dfq::test::json_number(js, "int8_layers") >= 19);
  CHECK(dfq::test::json_number(js, "int8_agreement") == doctest::Approx(100.0));
  CHECK(dfq::test::json_number(js, "int8_top1") == doctest::Approx(dfq::test::json_number(js, "q_top1")));
  dfq::test::check_refusals(DFQ_SQUANT_MAIN,
                            {{base + " --data " + dir / "data" + " --int8 --device cuda", "--int8 runs on the CPU", 2},
                             {base + " --int8", "it needs --dataset or --data", 2}},
                            " --json " + dir / "bad.json", log, {dir / "bad.json"});
}
