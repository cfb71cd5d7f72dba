// test_int8.cpp — integer inference (quant/int8_inference.h, engine/kernels/cpu/onednn.h):
//  - oneDNN's u8 x s8 conv against the engine's float conv on integer-valued tensors, exact (odd sizes,
//    padding, stride 2, dilation, groups, depthwise, 1x1, a zero point);
//  - a quantized resnet18 / mobilenet_v2 with its layers in integers against its fake-quant forward
//    (asym W4 / W8, where W8 needs the zero-point term, sym; ReLU sites and layer inputs), and which
//    layers ran in integers;
//  - evaluate --int8 / --compare and their refusals.
// Without oneDNN (a build without libdnnl-dev) the cases print one line and check the refusal.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/kernels/cpu/onednn.h"
#include "models/registry.h"
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
  CHECK(out.find("ran in integers") != std::string::npos);
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
