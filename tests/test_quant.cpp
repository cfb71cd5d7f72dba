// test_quant.cpp — the fake-quantizer (bit-exact against ../shared/golden/quant, the official
// ZeroQ/GDFQ formula), its STEs and range observers, the quantized model (per-call-site ranges,
// 32-bit == float, BN folding, save/load), the ZeroQ loss and distillation, and zeroq_main's CLI.
// TEST_CASEs that read the real Fashion-MNIST model have "fmnist" in their names.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "engine/io/npy.h"
#include "engine/io/weights.h"
#include "models/registry.h"
#include "quant/qmodel.h"
#include "quant/quantizer.h"
#include "quant/zeroq.h"
#include "tests/check.h"
#include "tests/test_util.h"

using namespace dfq;
using namespace dfq::quant;
using dfq::test::check_close;
using dfq::test::TempDir;

namespace {
const std::string kQuant = std::string(DFQ_GOLDEN_DIR) + "/quant/";

// Exact equality, element for element, reporting the first mismatch.
void check_bit_exact(const std::string& label, const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  size_t bad = 0, first = got.size();
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0) {
      if (!bad) first = i;
      ++bad;
    }
  INFO(label << ": " << bad << " of " << got.size() << " differ; first at " << first << ": got "
             << (bad ? got[first] : 0.f) << ", want " << (bad ? want[first] : 0.f));
  CHECK(bad == 0);
}

Tensor range_of(float lo, float hi) { return Tensor::from_vector({lo, hi}, {2, 1}); }

std::shared_ptr<models::Model> small_resnet(uint64_t seed = 3) { return dfq::test::resnet18_random_bn(seed, true); }
}  // namespace

TEST_CASE("quant: the fake-quantizer equals the official code bit for bit (golden)") {
  Tensor w = load_npy(kQuant + "weight.npy"), a = load_npy(kQuant + "act.npy");
  REQUIRE(w.shape() == Shape{16, 8, 3, 3});
  for (int k : {2, 4, 8}) {
    CAPTURE(k);
    check_bit_exact("weight per channel", quantize_weight(w, k).to_vector(),
                    load_npy(kQuant + "weight_w" + std::to_string(k) + "_perchannel.npy").to_vector());
    check_bit_exact("activation per tensor", quantize_per_tensor(a, k).to_vector(),
                    load_npy(kQuant + "act_a" + std::to_string(k) + "_pertensor.npy").to_vector());
    check_bit_exact("activation range [0, 2]", fake_quantize(a, k, range_of(0.f, 2.f)).to_vector(),
                    load_npy(kQuant + "act_a" + std::to_string(k) + "_clip2.npy").to_vector());
  }
}

TEST_CASE("quant: grid, clipping and degenerate ranges") {
  // 2 bits on [0, 3]: the grid is {0, 1, 2, 3}; 1.5 rounds half to even (2), 2.5 to 2, 7 clips to 3.
  Tensor x = Tensor::from_vector({-1.f, 0.f, 0.4f, 1.5f, 2.5f, 3.f, 7.f}, {7});
  std::vector<float> y = fake_quantize(x, 2, range_of(0.f, 3.f)).to_vector();
  CHECK(y == std::vector<float>{0.f, 0.f, 0.f, 2.f, 2.f, 3.f, 3.f});
  // lo == hi: the scale clamps at 1e-8 instead of dividing by zero; values stay finite.
  for (float v : fake_quantize(x, 4, range_of(1.f, 1.f)).to_vector()) CHECK(std::isfinite(v));
  // 32 bits returns the input itself; 25..31 bits are refused with a message.
  CHECK(fake_quantize(x, 32, range_of(0.f, 3.f)).same(x));
  CHECK_THROWS_WITH_AS(fake_quantize(x, 28, range_of(0.f, 3.f)), doctest::Contains("28 bits"), std::invalid_argument);
  CHECK_THROWS_AS(fake_quantize(x, 4, Tensor::from_vector({0.f, 1.f, 2.f, 3.f}, {2, 2})), std::invalid_argument);
}

TEST_CASE("quant: identity STE passes every gradient, the clip STE masks outside the range") {
  Tensor x = Tensor::from_vector({-0.5f, 0.2f, 0.9f, 1.7f}, {4});
  Tensor g = Tensor::from_vector({1.f, 2.f, 3.f, 4.f}, {4});
  for (Ste ste : {Ste::Identity, Ste::Clip}) {
    Tensor xi = x.clone().detach();
    xi.set_requires_grad(true);
    fake_quantize(xi, 4, range_of(0.f, 1.f), ste).backward(g);
    std::vector<float> want = ste == Ste::Identity ? std::vector<float>{1.f, 2.f, 3.f, 4.f}
                                                   : std::vector<float>{0.f, 2.f, 3.f, 0.f};
    CHECK(xi.grad().to_vector() == want);
  }
  // Weights: per-channel ranges are the weights' own min / max, so nothing is clipped.
  Tensor w = Tensor::from_vector({-1.f, 0.3f, 2.f, 0.5f, -0.25f, 0.75f}, {2, 3});
  w.set_requires_grad(true);
  quantize_weight(w, 2, Ste::Clip).backward(Tensor::ones({2, 3}));
  CHECK(w.grad().to_vector() == std::vector<float>(6, 1.f));
}

TEST_CASE("quant: observers — ZeroQ's cumulative min/max and GDFQ's compounded EMA") {
  ActQuantizer mm(8, Observer::MinMax, Ste::Identity, Device::CPU);
  mm.forward(Tensor::from_vector({0.f, 2.f, 1.f}, {3}));
  mm.forward(Tensor::from_vector({0.f, 1.f, 0.5f}, {3}));
  CHECK(mm.range() == std::pair<float, float>{0.f, 2.f});  // starts at [0, 0], keeps the widest
  mm.freeze();
  mm.forward(Tensor::from_vector({0.f, 5.f}, {2}));
  CHECK(mm.range().second == 2.f);  // frozen
  CHECK(mm.updates() == 2);

  // GDFQ: beta_t *= 0.9; x = (0.9 x + 0.1 m) / (1 - beta_t), with a constant batch max of 1. The
  // official buffers run 1, 5.3, 17.8, 47, ... peak near 3945 at update 21, ~3.6 at update 100,
  // 1.000 at 200 (dfq_algorithms.md §1.5).
  ActQuantizer ema(8, Observer::Ema, Ste::Identity, Device::CPU);
  Tensor ones = Tensor::ones({4});
  std::vector<float> hi;
  float ref = 0.f, bt = 1.f;
  for (int t = 1; t <= 200; ++t) {
    ema.forward(ones);
    hi.push_back(ema.range().second);
    bt = bt * 0.9f;  // the same float32 recurrence, written out
    ref = (ref * 0.9f + 1.f * (1.f - 0.9f)) / (1.f - bt);
    REQUIRE(hi.back() == ref);
  }
  CHECK(hi[0] == doctest::Approx(1.0));
  CHECK(hi[1] == doctest::Approx(5.263).epsilon(1e-3));
  int peak = int(std::max_element(hi.begin(), hi.end()) - hi.begin()) + 1;
  CHECK(peak == 21);
  CHECK(hi[20] == doctest::Approx(3945).epsilon(2e-3));
  CHECK(hi[99] == doctest::Approx(3.6).epsilon(0.05));
  CHECK(hi[199] == doctest::Approx(1.0).epsilon(1e-3));
}

TEST_CASE("quant: a quantized model at 32 bits is the float model; 16 bits is close") {
  auto m = small_resnet();
  Generator g(7);
  Tensor x = randn({2, 3, 32, 32}, g);
  NoGradGuard ng;
  std::vector<float> ref = m->forward(x).to_vector();
  {
    QuantConfig c;
    c.wbits = c.abits = 32;
    QuantizedModel q(m, c);
    check_bit_exact("W32A32 logits", q.forward(x).to_vector(), ref);
  }
  {
    QuantConfig c;
    c.wbits = c.abits = 16;
    QuantizedModel q(m, c);
    calibrate(q, x);
    std::vector<float> y = q.forward(x).to_vector();
    double maxr = 0;
    for (float v : ref) maxr = std::max(maxr, double(std::fabs(v)));
    check_close("W16A16 logits", y, ref, 2e-3 * maxr, 0);  // 16-bit grids: ~1e-4 relative per layer
    CHECK(y != ref);  // ... but quantized
  }
  // The hooks are gone with the wrapper: the model is float again.
  check_bit_exact("after the wrapper", m->forward(x).to_vector(), ref);
}

TEST_CASE("quant: cache_weights quantizes each weight once while it lives, and only without grad") {
  auto m = small_resnet();
  Generator g(8);
  Tensor x = randn({2, 3, 32, 32}, g);
  QuantConfig c;
  c.wbits = c.abits = 4;
  QuantizedModel q(m, c);
  calibrate(q, x);
  NoGradGuard ng;
  const std::vector<float> ref = q.forward(x).to_vector();
  Tensor w = m->conv_layers()[1].second->weight;
  const Tensor w0 = w.clone().detach();
  {
    auto cached = q.cache_weights();
    check_bit_exact("cached logits", q.forward(x).to_vector(), ref);  // same quantized weights
    w.copy_(mul_scalar(w0, -1.f));  // the caller broke its promise: the cache still holds the old weight
    check_bit_exact("cached after a weight change", q.forward(x).to_vector(), ref);
    set_grad_enabled(true);  // with grad on nothing is cached: the change shows
    CHECK(q.forward(x).to_vector() != ref);
    set_grad_enabled(false);
  }
  CHECK(q.forward(x).to_vector() != ref);  // the cache is gone with its scope
  w.copy_(w0);
  check_bit_exact("weight restored", q.forward(x).to_vector(), ref);
}

TEST_CASE("quant: resnet18 has one range per ReLU call site, all distinct") {
  auto m = small_resnet();
  QuantConfig c;
  c.wbits = c.abits = 8;
  QuantizedModel q(m, c);
  REQUIRE(q.acts().size() == m->act_sites().size());
  CHECK(q.acts().size() == 17);  // stem + 8 BasicBlocks x 2 calls of their one ReLU module
  Generator g(11);
  calibrate(q, randn({4, 3, 32, 32}, g));
  std::set<float> his;
  for (auto& a : q.acts()) {
    CHECK(a.range().first == 0.f);  // post-ReLU
    CHECK(a.range().second > 0.f);
    CHECK_FALSE(a.observing());
    his.insert(a.range().second);
  }
  CHECK(his.size() == q.acts().size());
  // The two calls of layer1.0's ReLU module get two different ranges.
  int s0 = m->act_site_index("layer1.0.relu:0"), s1 = m->act_site_index("layer1.0.relu:1");
  CHECK(q.acts()[s0].range().second != q.acts()[s1].range().second);
}

TEST_CASE("quant: mobilenet_v2 — every conv (depthwise included) and every ReLU6 quantized, and the report says so") {
  auto m = models::create_model("mobilenet_v2", 10, 5);
  Generator g(12);
  Tensor x = randn({2, 3, 32, 32}, g);
  m->eval();
  Tensor fp;
  {
    NoGradGuard ng;
    fp = m->forward(x);
  }
  QuantConfig c;
  c.wbits = c.abits = 4;
  QuantizedModel q(m, c);
  const QuantizedModel::Coverage cov = q.coverage();
  CHECK(cov.convs == 52);
  CHECK(cov.convs_total == 52);
  CHECK(cov.linears == 1);
  CHECK(cov.linears_total == 1);
  CHECK(cov.sites == 35);  // one per ReLU6 module; the official code on torchvision's MobileNetV2: 0
  CHECK(cov.float_layers.empty());
  const std::string rep = q.coverage_report();
  CHECK(rep.find("quantized: 52 of 52 convs and 1 of 1 linears at W4") != std::string::npos);
  CHECK(rep.find("35 activation sites at A4") != std::string::npos);
  CHECK(rep.find("17 linear-bottleneck outputs") != std::string::npos);
  CHECK(rep.find("10 residual adds") != std::string::npos);
  CHECK(rep.find("NOT QUANTIZED") == std::string::npos);
  // Every site fires once per forward, and the depthwise weights really are on the 4-bit grid.
  int calls = 0;
  auto inner = m->act_hook;
  m->act_hook = [&](int site, const Tensor& a) {
    ++calls;
    return inner(site, a);
  };
  calibrate(q, x);
  CHECK(calls == 35);
  m->act_hook = inner;
  for (auto& a : q.acts()) {
    CHECK(a.range().first == 0.f);
    CHECK(a.range().second > 0.f);
    CHECK(a.range().second <= 6.f);  // post-ReLU6
  }
  auto* dw = m->conv_layers()[1].second;  // features.1.conv.0.0, the first depthwise conv
  CHECK(m->conv_layers()[1].first == "features.1.conv.0.0");
  REQUIRE(dw->weight_hook);
  std::vector<float> wq = dw->weight_hook(dw->weight).to_vector();
  for (int ch = 0; ch < 32; ++ch) {
    std::set<float> levels(wq.begin() + ch * 9, wq.begin() + ch * 9 + 9);
    CHECK(levels.size() <= 16);
  }
  NoGradGuard ng;
  Tensor y = q.forward(x);
  CHECK(y.shape() == fp.shape());
  std::vector<float> yv = y.to_vector(), fv = fp.to_vector();
  float diff = 0, mag = 0;
  for (size_t i = 0; i < yv.size(); ++i) diff = std::max(diff, std::fabs(yv[i] - fv[i])), mag = std::max(mag, std::fabs(fv[i]));
  CHECK(diff > 1e-2f * mag);  // 4 bits change the logits (tiny ones: a fresh torchvision-initialised net)
}

TEST_CASE("quant: a Conv2d the model does not track is reported as not quantized") {
  struct Untracked : models::Model {
    Untracked() : Model("untracked", 2) {
      Generator g(1);
      Conv2dOptions o;
      a = register_module("a", std::make_shared<nn::Conv2d>(3, 2, 1, o, false, g));
      b = register_module("b", std::make_shared<nn::Conv2d>(2, 2, 1, o, false, g));
      track("a", a.get());  // b is forgotten
    }
    Tensor forward(const Tensor& x) override { return adaptive_avg_pool2d(b->forward(a->forward(x)), 1, 1).flatten(1); }
    std::shared_ptr<nn::Conv2d> a, b;
  };
  QuantConfig c;
  QuantizedModel q(std::make_shared<Untracked>(), c);
  const QuantizedModel::Coverage cov = q.coverage();
  CHECK(cov.convs == 1);
  CHECK(cov.convs_total == 2);
  REQUIRE(cov.float_layers.size() == 1);
  CHECK(cov.float_layers[0] == "b");
  CHECK(q.coverage_report().find("NOT QUANTIZED (untracked by the model): b") != std::string::npos);
}

TEST_CASE("quant: first/last layer bits, bias bits and BN folding") {
  auto m = small_resnet();
  Generator g(5);
  Tensor x = randn({2, 3, 32, 32}, g);
  NoGradGuard ng;
  std::vector<float> ref = m->forward(x).to_vector();
  double maxr = 0;
  for (float v : ref) maxr = std::max(maxr, double(std::fabs(v)));
  {  // folding keeps the float function (weights rescaled, BN a pure shift)
    auto f = small_resnet();
    fold_batch_norms(*f);
    for (auto& [name, bn] : f->bn_layers()) CHECK(bn->running_mean.to_vector() == std::vector<float>(bn->running_mean.numel(), 0.f));
    check_close("folded logits", f->forward(x).to_vector(), ref, 1e-4 * maxr, 1e-4);
  }
  {  // W2 everywhere but 8-bit first/last: different from all-W2, and the config says so
    QuantConfig a, b;
    a.wbits = b.wbits = 2;
    a.abits = b.abits = 32;
    b.first_last_bits = 8;
    std::vector<float> ya, yb;
    { QuantizedModel q(m, a); ya = q.forward(x).to_vector(); }
    { QuantizedModel q(m, b); yb = q.forward(x).to_vector(); }
    CHECK(ya != yb);
    CHECK(b.str().find("first/last layer W8") != std::string::npos);
  }
  {  // -qb: the fc bias is quantized per tensor
    QuantConfig c;
    c.wbits = c.abits = 32;
    c.bias_bits = 2;
    QuantizedModel q(m, c);
    CHECK(q.forward(x).to_vector() != ref);
  }
}

TEST_CASE("quant: a saved quantized model loads back with the same bits, ranges and logits") {
  TempDir dir("qsave");
  auto m = small_resnet();
  Generator g(9);
  Tensor x = randn({3, 3, 32, 32}, g);
  QuantConfig c;
  c.wbits = 4;
  c.abits = 6;
  c.fold_bn = true;
  QuantizedModel q(m, c);
  calibrate(q, x);
  NoGradGuard ng;
  std::vector<float> want = q.forward(x).to_vector();
  q.save(dir / "q.bin");
  CHECK(is_quantized_file(dir / "q.bin"));
  auto back = load_quantized(dir / "q.bin", "resnet18", Device::CPU);
  CHECK(back->config().wbits == 4);
  CHECK(back->config().abits == 6);
  CHECK(back->config().fold_bn);
  check_bit_exact("reloaded logits", back->forward(x).to_vector(), want);
  CHECK_THROWS_WITH(load_quantized(dir / "q.bin", "vgg16_bn", Device::CPU), doctest::Contains("not a vgg16_bn"));
  // A float weight file is not a quantized one.
  write_weight_file(dir / "f.bin", "resnet18", 10, m->state_dict());
  CHECK_FALSE(is_quantized_file(dir / "f.bin"));
  CHECK_THROWS_WITH(load_quantized(dir / "f.bin", "", Device::CPU), doctest::Contains("not a quantized model"));
}

TEST_CASE("quant: --bits parsing") {
  QuantConfig c;
  parse_bits("4/8", c);
  CHECK(c.wbits == 4);
  CHECK(c.abits == 8);
  for (const char* bad : {"4", "4/", "/4", "a/b", "4/8/2", "4/27", "0/4", "4.5/4"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(parse_bits(bad, c), std::invalid_argument);
  }
}
