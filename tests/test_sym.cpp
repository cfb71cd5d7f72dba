// test_sym.cpp — symmetric weights and integer weight files: the symmetric fake-quantizer against a
// scalar reference written here (fixed-grid clamps, ties at .5, an all-zero channel), its clip STE,
// the refusals (1 bit, --weight_scheme bogus), save / load of a symmetric model; the integer codes
// (weight_codes / dequantize_codes equal the forward's weight bit for bit); packed files (the same
// logits as the float file in both schemes, at 2 / 4 / 8 bits, mixed precision and SQuant grids;
// mis-shaped or corrupt code tensors refused; sizes), tools/pack_weights and evaluate --verbose.
// The CUDA twins of the symmetric kernels are rows of tests/test_cuda_twins_loss_optim_quant.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/io/weights.h"
#include "models/registry.h"
#include "quant/mixed_precision.h"
#include "quant/qmodel.h"
#include "quant/quantizer.h"
#include "quant/squant.h"
#include "quant/weight_codes.h"
#include "quant/zeroq.h"
#include "tests/check.h"
#include "tests/test_util.h"

using namespace dfq;
using namespace dfq::quant;
using dfq::test::TempDir;

namespace {

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) {
      MESSAGE("first difference at " << i << " of " << a.size() << ": " << a[i] << " vs " << b[i]);
      return false;
    }
  return true;
}

// The symmetric grid as the issue states it, one float32 operation at a time, the code an integer
// (as ONNX QuantizeLinear's: no -0, so x_hat of a code 0 is +0). Nothing here may fuse into a
// multiply-add: x / step and q * step are single operations.
float sym_reference(int bits, float lo, float hi, float x) {
  const float m = std::max(-lo, hi);
  const float L = float((1 << (bits - 1)) - 1);
  const float step = std::max(m, 1e-8f) / L;
  const int32_t q = int32_t(std::min(std::max(std::rint(x / step), -L), L));
  return float(q) * step;
}

std::shared_ptr<models::Model> small_resnet(uint64_t seed = 3) { return dfq::test::resnet18_random_bn(seed, true); }

QuantConfig config(int wbits, int abits, WeightScheme s) {
  QuantConfig c;
  c.wbits = wbits;
  c.abits = abits;
  c.weight_scheme = s;
  return c;
}

// The weight a layer's forward uses: its hook applied to its latent weight.
std::vector<Tensor> forward_weights(models::Model& m) {
  std::vector<Tensor> out;
  NoGradGuard ng;
  for (auto& [n, c] : m.conv_layers()) out.push_back(c->weight_hook ? c->weight_hook(c->weight) : c->weight);
  for (auto& [n, l] : m.linear_layers()) out.push_back(l->weight_hook ? l->weight_hook(l->weight) : l->weight);
  return out;
}

// Fixes every layer's grid to a narrower range than its weights (so codes clamp at both ends).
void fix_narrow_grids(QuantizedModel& q) {
  const auto layers = q.weight_layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    std::vector<float> r = minmax_rows(layers[i].weight.detach(), layers[i].weight.size(0)).to_vector();
    for (float& v : r) v *= 0.7f;
    q.fix_weight_range(i, Tensor::from_vector(r, {2, layers[i].weight.size(0)}));
  }
}

std::vector<float> logits(QuantizedModel& q, const Tensor& x) {
  NoGradGuard ng;
  return q.forward(x).to_vector();
}

std::vector<std::pair<std::string, Tensor>> entries_of(const std::string& path) {
  WeightFile f = WeightFile::open(path);
  std::vector<std::pair<std::string, Tensor>> t;
  for (const auto& e : f.entries()) t.push_back({e.name, f.get(e.name).clone()});
  return t;
}
Tensor& entry(std::vector<std::pair<std::string, Tensor>>& t, const std::string& name) {
  for (auto& [n, v] : t)
    if (n == name) return v;
  throw std::runtime_error("test: no entry " + name);
}
void erase_entry(std::vector<std::pair<std::string, Tensor>>& t, const std::string& name) {
  std::erase_if(t, [&](const auto& e) { return e.first == name; });
}

}  // namespace

TEST_CASE("sym: the symmetric fake-quantizer equals the scalar reference (clamps, ties at .5, an all-zero channel)") {
  // Random rows, each range asymmetric one way or the other, x wider than the range.
  Generator g(11);
  const int64_t R = 6, C = 50;
  Tensor x = rand({R, C}, g, Device::CPU, -2.f, 2.f);
  std::vector<float> r = {-1.f, -0.3f, -1.5f, -0.01f, 0.2f, -2.f, 0.5f, 1.2f, 0.4f, 0.01f, 1.f, -0.5f};  // lo[6], hi[6]
  const Tensor range = Tensor::from_vector(r, {2, R});
  const std::vector<float> xv = x.to_vector();
  for (int bits : {2, 3, 4, 8, 16}) {
    CAPTURE(bits);
    const std::vector<float> y = fake_quantize(x, bits, range, Ste::Identity, WeightScheme::Sym).to_vector();
    std::vector<float> want(xv.size());
    for (int64_t i = 0; i < R * C; ++i) want[size_t(i)] = sym_reference(bits, r[size_t(i / C)], r[size_t(R + i / C)], xv[size_t(i)]);
    CHECK(bit_equal(y, want));
  }
  // A fixed grid of [-7, 3.5] at 4 bits: m = 7, L = 7, step 1. Ties round to even, both clamps hit.
  Tensor t = Tensor::from_vector({0.5f, 1.5f, 2.5f, -2.5f, -3.5f, 6.5f, 7.49f, 7.5f, 100.f, -8.f, 3.2f, 0.f}, {1, 12});
  const std::vector<float> yt = fake_quantize(t, 4, Tensor::from_vector({-7.f, 3.5f}, {2, 1}), Ste::Identity, WeightScheme::Sym).to_vector();
  CHECK(bit_equal(yt, {0.f, 2.f, 2.f, -2.f, -4.f, 6.f, 7.f, 7.f, 7.f, -7.f, 3.f, 0.f}));
  // -0.4 rounds to code 0, whose value is +0 (not -0): the integer code has no sign.
  CHECK(std::signbit(fake_quantize(Tensor::from_vector({-0.4f}, {1, 1}), 4, Tensor::from_vector({-7.f, 7.f}, {2, 1}),
                                   Ste::Identity, WeightScheme::Sym).to_vector()[0]) == false);
  // An all-zero channel: m clamps at 1e-8, every code is 0, the values stay exactly 0 (finite).
  Tensor w = Tensor::from_vector({0.f, 0.f, 0.f, 0.5f, -1.f, 0.25f}, {2, 3});
  const std::vector<float> yw = quantize_weight(w, 4, Ste::Identity, WeightScheme::Sym).to_vector();
  for (int i = 0; i < 3; ++i) CHECK(yw[size_t(i)] == 0.f);
  // The second channel: m = 1, step = fl(1/7); 0.5 / step is just below 3.5 in float32 (code 3); -1 -> -7.
  const float step = 1.f / 7.f;
  CHECK(yw[3] == 3.f * step);
  CHECK(yw[4] == -7.f * step);
  CHECK(yw[5] == 2.f * step);
  // The symmetric grid is not the asymmetric one: the same weights differ.
  CHECK_FALSE(bit_equal(quantize_weight(x, 4).to_vector(), quantize_weight(x, 4, Ste::Identity, WeightScheme::Sym).to_vector()));
}

TEST_CASE("sym: the clip STE passes the gradient inside [-m, m], m = max(-lo, hi)") {
  Tensor x = Tensor::from_vector({-1.2f, -1.f, -0.5f, 0.7f, 1.f, 1.1f}, {6});
  Tensor g = Tensor::from_vector({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}, {6});
  const Tensor range = Tensor::from_vector({-1.f, 0.5f}, {2, 1});  // m = 1
  struct Case { WeightScheme s; std::vector<float> want; };
  for (const Case& c : {Case{WeightScheme::Sym, {0.f, 2.f, 3.f, 4.f, 5.f, 0.f}}, Case{WeightScheme::Asym, {0.f, 2.f, 3.f, 0.f, 0.f, 0.f}}}) {
    Tensor xi = x.clone().detach();
    xi.set_requires_grad(true);
    fake_quantize(xi, 4, range, Ste::Clip, c.s).backward(g);
    CHECK(xi.grad().to_vector() == c.want);
  }
}

TEST_CASE("sym: 1-bit symmetric weights and --weight_scheme bogus are refused with a message") {
  Tensor x = Tensor::from_vector({0.5f, -0.5f}, {1, 2});
  CHECK_THROWS_WITH_AS(fake_quantize(x, 1, Tensor::from_vector({-1.f, 1.f}, {2, 1}), Ste::Identity, WeightScheme::Sym),
                       doctest::Contains("at least 2 bits"), std::invalid_argument);
  CHECK_NOTHROW(fake_quantize(x, 1, Tensor::from_vector({-1.f, 1.f}, {2, 1})));  // asymmetric 1 bit stays
  auto m = small_resnet();
  QuantConfig c;
  c.wbits = 1;
  c.weight_scheme = WeightScheme::Sym;
  CHECK_THROWS_WITH_AS(QuantizedModel(m, c), doctest::Contains("at least 2 bits"), std::invalid_argument);
  c.wbits = 4;
  c.layer_wbits.assign(21, 4);
  c.layer_wbits[3] = 1;
  CHECK_THROWS_WITH_AS(QuantizedModel(m, c), doctest::Contains("at least 2 bits"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_weight_scheme("bogus"), doctest::Contains("known: asym, sym"), std::invalid_argument);
  TempDir dir("sym_cli");
  auto f = models::create_model("resnet18", 10, 1, false);
  write_weight_file(dir / "r18.bin", "resnet18", 10, f->state_dict());
  const std::string w = "--weights " + (dir / "r18.bin") + " --iters 1";
  const std::string outs = " --save " + (dir / "q.bin") + " --json " + (dir / "r.json");
  for (const char* prog : {DFQ_ZEROQ_MAIN, DFQ_SQUANT_MAIN, DFQ_GDFQ_MAIN}) {
    const std::string it = std::string(prog) == DFQ_ZEROQ_MAIN ? w : "--weights " + (dir / "r18.bin");
    dfq::test::check_refusals(prog,
                              {{it + " --weight_scheme bogus", "--weight_scheme", 2},
                               {it + " --bits 1/8 --weight_scheme sym", "at least 2 bits", 2},
                               {it + " -qw 1 --weight_scheme sym", "at least 2 bits", 2},
                               {it + " --packed", "--packed needs --save", 2}},
                              std::string(" --json ") + (dir / "r.json"), dir / "log.txt", {dir / "r.json"});
    CHECK(dfq::test::run_program(prog, "--help", dir / "log.txt") == 0);
    const std::string help = dfq::test::read_text(dir / "log.txt");
    CHECK(help.find("--weight_scheme") != std::string::npos);
    CHECK(help.find("--packed") != std::string::npos);
  }
  dfq::test::check_refusals(DFQ_ZEROQ_MAIN, {{w + " --weight_scheme sym --mp_avg_bits 3 --mp_bits 1,4,8", "at least 2 bits", 2}},
                            outs, dir / "log.txt", {dir / "q.bin", dir / "r.json"});
}

TEST_CASE("sym: the quantized model uses the symmetric grid, says so, and saves / loads it") {
  TempDir dir("sym_save");
  auto m = small_resnet();
  Generator g(5);
  Tensor x = randn({3, 3, 32, 32}, g);
  QuantConfig c = config(4, 8, WeightScheme::Sym);
  QuantizedModel q(m, c);
  CHECK(c.str().find("sym weights") != std::string::npos);
  CHECK(q.coverage_report().find("per channel, symmetric") != std::string::npos);
  {  // every layer's forward weight is the symmetric quantizer's
    const auto fw = forward_weights(*m);
    const auto layers = q.weight_layers();
    for (size_t i = 0; i < layers.size(); ++i)
      CHECK(bit_equal(fw[i].to_vector(), quantize_weight(layers[i].weight, 4, Ste::Identity, WeightScheme::Sym).to_vector()));
  }
  calibrate(q, x);
  const std::vector<float> want = logits(q, x);
  q.save(dir / "sym.bin");
  WeightFile f = WeightFile::open(dir / "sym.bin");
  REQUIRE(f.find("quant.weight_scheme"));
  CHECK(f.get("quant.weight_scheme").to_vector_i64() == std::vector<int64_t>{1});
  CHECK(f.get("quant.config").to_vector_i64()[0] == 2);  // an optional tensor: version 2
  auto back = load_quantized(dir / "sym.bin", "resnet18", Device::CPU);
  CHECK(back->config().weight_scheme == WeightScheme::Sym);
  CHECK(bit_equal(logits(*back, x), want));
  {  // an asymmetric file has no scheme tensor and stays version 1
    auto m2 = small_resnet();
    QuantConfig a = c;
    a.weight_scheme = WeightScheme::Asym;
    QuantizedModel qa(m2, a);
    qa.save(dir / "asym.bin");
    WeightFile fa = WeightFile::open(dir / "asym.bin");
    CHECK_FALSE(fa.find("quant.weight_scheme"));
    CHECK(fa.get("quant.config").to_vector_i64()[0] == 1);
    CHECK(load_quantized(dir / "asym.bin", "", Device::CPU)->config().weight_scheme == WeightScheme::Asym);
  }
  {  // the scheme tensor in a version-1 file, or holding anything but {1}, is refused
    auto t = entries_of(dir / "sym.bin");
    std::vector<int64_t> conf = entry(t, "quant.config").to_vector_i64();
    conf[0] = 1;
    entry(t, "quant.config") = Tensor::from_vector_i64(conf, {8});
    write_weight_file(dir / "v1.bin", "resnet18", 10, t);
    CHECK_THROWS_WITH(load_quantized(dir / "v1.bin", "", Device::CPU), doctest::Contains("version 1 with quant.weight_scheme"));
    t = entries_of(dir / "sym.bin");
    entry(t, "quant.weight_scheme") = Tensor::from_vector_i64({0}, {1});
    write_weight_file(dir / "s0.bin", "resnet18", 10, t);
    CHECK_THROWS_WITH(load_quantized(dir / "s0.bin", "", Device::CPU), doctest::Contains("must be int64 {1}"));
  }
}

TEST_CASE("codes: dequantize_codes(weight_codes(i)) is the forward's weight bit for bit (resnet18, 2 / 4 / 8 bits, both schemes, fixed grids)") {
  auto m = small_resnet();
  for (WeightScheme s : {WeightScheme::Asym, WeightScheme::Sym})
    for (int bits : {2, 4, 8})
      for (bool fixed : {false, true}) {
        CAPTURE(std::string(weight_scheme_name(s)));
        CAPTURE(bits);
        CAPTURE(fixed);
        QuantConfig c = config(bits, 32, s);
        QuantizedModel q(m, c);
        if (fixed) fix_narrow_grids(q);
        const auto fw = forward_weights(*m);
        const auto layers = q.weight_layers();
        int64_t clamped = 0;
        for (size_t i = 0; i < layers.size(); ++i) {
          CAPTURE(layers[i].name);
          const WeightCodes wc = q.weight_codes(i);
          CHECK(wc.scheme == s);
          CHECK(wc.bits == bits);
          CHECK(wc.out_channels == layers[i].weight.size(0));
          const int32_t half = 1 << (bits - 1), qmin = s == WeightScheme::Sym ? -(half - 1) : -half;
          int64_t outside = 0;
          for (int32_t v : wc.q) {
            outside += v < qmin || v > half - 1 ? 1 : 0;
            clamped += v == qmin || v == half - 1 ? 1 : 0;
          }
          CHECK(outside == 0);
          if (s == WeightScheme::Sym)
            for (float z : wc.zero) CHECK(z == 0.f);
          CHECK(bit_equal(dequantize_codes(wc, layers[i].weight.shape()).to_vector(), fw[i].to_vector()));
        }
        CHECK(clamped > 0);
      }
  // Codes of a float layer, a mis-shaped target and an out-of-range code are refused.
  QuantConfig c;
  c.wbits = 4;
  c.first_last_bits = 32;
  QuantizedModel q(m, c);
  CHECK_THROWS_WITH(q.weight_codes(0), doctest::Contains("not quantized"));
  WeightCodes wc = q.weight_codes(1);
  CHECK_THROWS_WITH(dequantize_codes(wc, {3, 3}), doctest::Contains("does not hold"));
  wc.q[5] = 8;
  CHECK_THROWS_WITH(dequantize_codes(wc, q.weight_layers()[1].weight.shape()), doctest::Contains("outside [-8, 7]"));
}

TEST_CASE("packed: a packed file gives exactly the float file's logits (both schemes, 2 / 4 / 8 bits, mixed precision, SQuant grids)") {
  TempDir dir("packed");
  Generator g(21);
  Tensor x = randn({2, 3, 32, 32}, g);
  struct Case { std::string what; int bits; WeightScheme s; bool mixed, squant; };
  std::vector<Case> cases;
  for (WeightScheme s : {WeightScheme::Asym, WeightScheme::Sym}) {
    for (int b : {2, 4, 8}) cases.push_back({"uniform", b, s, false, false});
    cases.push_back({"mixed", 4, s, true, false});
    cases.push_back({"squant", 4, s, false, true});
  }
  for (const Case& k : cases) {
    CAPTURE(k.what);
    CAPTURE(k.bits);
    CAPTURE(std::string(weight_scheme_name(k.s)));
    auto m = small_resnet();
    QuantConfig c = config(k.bits, 8, k.s);
    if (k.mixed) {  // 2..8 bits, one layer at 16 (stays float32 in the packed file)
      const int cycle[] = {2, 3, 4, 5, 6, 8, 7};
      for (size_t i = 0; i < 21; ++i) c.layer_wbits.push_back(cycle[i % 7]);
      c.layer_wbits[7] = 16;
    }
    if (k.squant) c.act_placement = ActPlacement::LayerInputs;
    QuantizedModel q(m, c);
    if (k.squant) squant_weights(q);
    calibrate(q, x);
    const std::vector<float> want = logits(q, x);
    q.save(dir / "f.bin");
    q.save(dir / "p.bin", /*packed=*/true);
    CHECK_FALSE(is_packed_file(dir / "f.bin"));
    CHECK(is_packed_file(dir / "p.bin"));
    WeightFile pf = WeightFile::open(dir / "p.bin");
    CHECK(pf.get("quant.config").to_vector_i64()[0] == 2);
    CHECK_FALSE(pf.find("conv1.weight"));
    REQUIRE(pf.find("quant.codes.conv1"));
    CHECK(pf.find("quant.codes.conv1")->shape == Shape{64, k.mixed ? 74 : k.bits <= 4 ? 74 : 147});
    CHECK_FALSE(pf.find("quant.weight_range.conv1"));  // the codes carry the grid
    auto from_float = load_quantized(dir / "f.bin", "resnet18", Device::CPU);
    auto from_packed = load_quantized(dir / "p.bin", "resnet18", Device::CPU);
    CHECK(bit_equal(logits(*from_float, x), want));
    CHECK(bit_equal(logits(*from_packed, x), want));
    const auto layers = from_packed->weight_layers();
    for (size_t i = 0; i < layers.size(); ++i) {
      CHECK(from_packed->pinned(i) == (layers[i].bits <= 8));
      CHECK(bool(pf.find("quant.codes." + layers[i].name)) == (layers[i].bits <= 8));
    }
    CHECK(from_packed->coverage_report().find("from integer codes") != std::string::npos);
    // Saving the loaded model packed again gives the same bytes; unpacked is refused (codes are final).
    from_packed->save(dir / "p2.bin", true);
    CHECK(dfq::test::read_text(dir / "p2.bin") == dfq::test::read_text(dir / "p.bin"));
    CHECK_THROWS_WITH(from_packed->save(dir / "u.bin"), doctest::Contains("save the model packed"));
    CHECK_FALSE(std::filesystem::exists(dir / "u.bin"));
    // A pinned layer cannot be re-gridded or re-rounded, and a changed weight is caught.
    CHECK_THROWS_WITH(from_packed->fix_weight_range(0, Tensor()), doctest::Contains("pinned"));
    CHECK_THROWS_WITH(squant_weights(*from_packed), doctest::Contains("pinned"));
    {
      NoGradGuard ng;
      Tensor w0 = layers[0].weight;
      w0.copy_(w0 * 1.5f);
    }
    CHECK_THROWS_WITH(from_packed->weight_codes(0), doctest::Contains("was changed"));
    CHECK_THROWS_WITH(from_packed->save(dir / "p3.bin", true), doctest::Contains("was changed"));
  }
}

TEST_CASE("packed: mis-shaped, missing, corrupt or mixed code tensors are refused with a clear message") {
  TempDir dir("packed_bad");
  auto m = small_resnet();
  QuantConfig c = config(4, 8, WeightScheme::Sym);
  QuantizedModel q(m, c);
  q.save(dir / "p.bin", true);
  REQUIRE_NOTHROW(load_quantized(dir / "p.bin", "", Device::CPU));
  struct Bad { std::string what, message; std::function<void(std::vector<std::pair<std::string, Tensor>>&)> edit; };
  const std::vector<Bad> bad = {
      {"codes one byte short per row", "quant.codes.conv1 is u8 (64, 73); conv1 ((64, 3, 7, 7) at 4 bits) needs u8 (64, 74)",
       [](auto& t) { entry(t, "quant.codes.conv1") = Tensor::from_vector_u8(std::vector<uint8_t>(64 * 73, 0x88), {64, 73}); }},
      {"codes as float", "needs u8 (64, 74)",
       [](auto& t) { entry(t, "quant.codes.conv1") = Tensor::zeros({64, 74}); }},
      {"scales missing", "quant.wscale.conv1 is missing", [](auto& t) { erase_entry(t, "quant.wscale.conv1"); }},
      {"scales mis-shaped", "quant.wscale.fc is f32 (9)",
       [](auto& t) { entry(t, "quant.wscale.fc") = Tensor::ones({9}); }},
      {"stored 0 is no symmetric code", "not a 4-bit sym code",
       [](auto& t) {
         std::vector<uint8_t> u(size_t(entry(t, "quant.codes.layer1.0.conv1").numel()), 0x88);
         u[100] = 0x80;
         entry(t, "quant.codes.layer1.0.conv1") = Tensor::from_vector_u8(u, entry(t, "quant.codes.layer1.0.conv1").shape());
       }},
      {"padding nibble", "padding nibble",
       [](auto& t) {
         Tensor& u = entry(t, "quant.codes.conv1");  // 147 codes a row: the last byte's high nibble pads
         u.data<uint8_t>()[73] |= 0x10;
       }},
      {"non-zero symmetric zero point", "symmetric codes have 0",
       [](auto& t) { entry(t, "quant.wzero.conv1") = Tensor::ones({64}); }},
      {"negative scale", "has scale",
       [](auto& t) { entry(t, "quant.wscale.conv1") = Tensor::full({64}, -1.f); }},
      {"codes beside the float weight", "holds both conv1.weight and quant.codes.conv1",
       [&](auto& t) { t.push_back({"conv1.weight", m->conv_layers()[0].second->weight.clone()}); }},
      {"one layer left float", "has no quant.codes.fc",
       [&](auto& t) {
         for (const char* p : {"quant.codes.fc", "quant.wscale.fc", "quant.wzero.fc"}) erase_entry(t, p);
         t.push_back({"fc.weight", m->linear_layers()[0].second->weight.clone()});
       }},
      {"a stray scale", "quant.wscale.conv9 belongs to no conv / linear of resnet18",
       [](auto& t) { t.push_back({"quant.wscale.conv9", Tensor::ones({4})}); }},
      {"scales without codes", "quant.codes.fc is missing",
       [&](auto& t) {
         erase_entry(t, "quant.codes.fc");
         t.push_back({"fc.weight", m->linear_layers()[0].second->weight.clone()});
       }},
      {"codes in a version-1 file", "version 1 with",
       [](auto& t) {
         erase_entry(t, "quant.weight_scheme");
         std::vector<int64_t> conf = entry(t, "quant.config").to_vector_i64();
         conf[0] = 1;
         entry(t, "quant.config") = Tensor::from_vector_i64(conf, {8});
       }},
  };
  for (const Bad& b : bad) {
    CAPTURE(b.what);
    auto t = entries_of(dir / "p.bin");
    b.edit(t);
    write_weight_file(dir / "bad.bin", "resnet18", 10, t);
    CHECK_THROWS_WITH(load_quantized(dir / "bad.bin", "", Device::CPU), doctest::Contains(b.message.c_str()));
  }
  // A truncated file is refused when it is opened.
  const std::string bytes = dfq::test::read_text(dir / "p.bin");
  std::ofstream(dir / "cut.bin", std::ios::binary).write(bytes.data(), std::streamsize(bytes.size() - 1000));
  CHECK_THROWS(load_quantized(dir / "cut.bin", "", Device::CPU));
}

TEST_CASE("packed: a W4 resnet18 file is about 1/8 of the float one, plus BN and scales; pack_weights and evaluate --verbose") {
  TempDir dir("packed_size");
  auto m = small_resnet();
  QuantConfig c = config(4, 8, WeightScheme::Asym);
  QuantizedModel q(m, c);
  q.save(dir / "f.bin");
  q.save(dir / "p.bin", true);
  const WeightStorage f = weight_storage(WeightFile::open(dir / "f.bin"), *m);
  const WeightStorage p = weight_storage(WeightFile::open(dir / "p.bin"), *m);
  CHECK(f.weights == 11172032);  // resnet18's convs and linear, 10 classes
  CHECK(f.weight_bytes == f.float32_bytes());
  CHECK(f.bytes_per_weight() == 4.0);
  int64_t channels = 0, codes = 0;
  for (const auto& L : q.weight_layers()) {
    const int64_t K = L.weight.size(0);
    channels += K;
    codes += K * packed_row_bytes(4, L.weight.numel() / K);
  }
  CHECK(p.weight_bytes == uint64_t(codes + 8 * channels));
  CHECK(p.bytes_per_weight() < 0.51);
  // The rest of the file (BN, biases, ranges, table, 64-byte padding) is what it was.
  const double rest = double(f.file_bytes - f.weight_bytes);
  CHECK(double(p.file_bytes) > double(f.file_bytes) / 8);
  CHECK(double(p.file_bytes) < double(f.float32_bytes()) / 8 + rest + 8.0 * channels + 3 * 64 * 21 + 4096);
  // tools/pack_weights writes the same file as save(packed) and prints both sizes; refuses the wrong inputs.
  const std::string pw = DFQ_PACK_WEIGHTS;
  REQUIRE(dfq::test::run_program(pw, (dir / "f.bin") + " -o " + (dir / "t.bin"), dir / "log.txt") == 0);
  std::string log = dfq::test::read_text(dir / "log.txt");
  CAPTURE(log);
  CHECK(dfq::test::read_text(dir / "t.bin") == dfq::test::read_text(dir / "p.bin"));
  CHECK(log.find(std::to_string(f.file_bytes) + " -> " + std::to_string(p.file_bytes) + " bytes") != std::string::npos);
  CHECK(log.find("0.5") != std::string::npos);
  write_weight_file(dir / "float.bin", "resnet18", 10, m->state_dict());
  dfq::test::check_refusals(pw,
                            {{dir / "float.bin", "is a float model", 1},
                             {dir / "p.bin", "already packed", 1},
                             {dir / "missing.bin", "missing.bin: no such file", 2},
                             {dir / "f.bin " + dir / "p.bin", "exactly one input", 2}},
                            " -o " + (dir / "out.bin"), dir / "log.txt", {dir / "out.bin"});
  // evaluate --verbose: the scheme, the file size, the float32 size and the bytes per weight.
  dfq::test::write_two_class_folder(dir.p / "val");
  REQUIRE(dfq::test::run_program(DFQ_EVALUATE, "--weights " + (dir / "p.bin") + " --data " + (dir / "val") + " --verbose",
                                 dir / "log.txt") == 0);
  log = dfq::test::read_text(dir / "log.txt");
  CHECK(log.find("asym weights") != std::string::npos);
  CHECK(log.find("(" + std::to_string(p.file_bytes) + " bytes)") != std::string::npos);
  CHECK(log.find("44.69 MB as float32") != std::string::npos);
  CHECK(log.find("bytes per weight") != std::string::npos);
}

TEST_CASE("sym: mixed precision's sensitivity follows the scheme") {
  auto m = small_resnet();
  Generator g(4);
  Tensor x = randn({2, 3, 32, 32}, g);
  const std::vector<int> bits(21, 3);
  const double ka = joint_sensitivity(*m, x, bits, WeightScheme::Asym), ks = joint_sensitivity(*m, x, bits, WeightScheme::Sym);
  // The same as a quantized model at W3A32 in each scheme.
  for (WeightScheme s : {WeightScheme::Asym, WeightScheme::Sym}) {
    std::vector<float> ref;
    {
      NoGradGuard ng;
      ref = m->forward(x).to_vector();
    }
    QuantConfig c = config(3, 32, s);
    QuantizedModel q(m, c);
    const double kl = mean_kl(ref, logits(q, x), 2, 10);
    CHECK(kl == (s == WeightScheme::Sym ? ks : ka));
  }
  CHECK(ka != ks);
  CHECK_THROWS_WITH(measure_sensitivity(*m, x, {1, 4}, nullptr, WeightScheme::Sym), doctest::Contains("at least 2 bits"));
}

TEST_CASE("sym: zeroq_main / squant_main --weight_scheme sym --save --packed write packed symmetric models that evaluate loads") {
  TempDir dir("sym_mains");
  auto m = models::create_model("resnet18", 10, 1, true);
  write_weight_file(dir / "r18.bin", "resnet18", 10, m->state_dict());
  struct Run { const char* prog; std::string args; };
  const Run runs[] = {{DFQ_ZEROQ_MAIN, " --iters 2 --batch_size 2 --img_size 32"}, {DFQ_SQUANT_MAIN, " --noise_batch 4 --img_size 32"}};
  for (const Run& r : runs) {
    CAPTURE(r.prog);
    const std::string args = "--weights " + (dir / "r18.bin") + " --bits 4/4 --weight_scheme sym" + r.args + " --save " +
                             (dir / "q.bin") + " --packed --json " + (dir / "r.json");
    REQUIRE(dfq::test::run_program(r.prog, args, dir / "log.txt") == 0);
    const std::string log = dfq::test::read_text(dir / "log.txt");
    CAPTURE(log);
    CHECK(log.find("W4A4 (sym weights") != std::string::npos);
    CHECK(log.find("per channel, symmetric") != std::string::npos);
    CHECK(log.find("(packed: integer weight codes)") != std::string::npos);
    CHECK(dfq::test::read_text(dir / "r.json").find("\"weight_scheme\": \"sym\"") != std::string::npos);
    CHECK(is_packed_file(dir / "q.bin"));
    auto q = load_quantized(dir / "q.bin", "resnet18", Device::CPU);
    CHECK(q->config().weight_scheme == WeightScheme::Sym);
    for (size_t i = 0; i < q->weight_layers().size(); ++i) CHECK(q->pinned(i));
  }
}
