// test_onnx.cpp — the ONNX exporter (quant/onnx_export.h) and its protobuf writer (engine/io/onnx.h):
// the wire bytes of known fields; a faithful graph, run by dfq's interpreter, computing the quantized
// model's logits (resnet18 and mobilenet_v2, 4 and 8 bits, ReLU sites and SQuant's layer inputs);
// the float profile computing the float model bit for bit; the ort profile's structure (every conv
// and linear between DequantizeLinear and QuantizeLinear, symmetric int8 weights, int32 biases) and
// its logits near dfq's; trt's int8 zero points; refusals (VGG, no calibration images, bad CLI input).
// ONNX Runtime itself checks the files in scripts/check_onnx.sh.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/io/onnx.h"
#include "models/mobilenet.h"
#include "models/registry.h"
#include "quant/onnx_export.h"
#include "quant/qmodel.h"
#include "tests/test_util.h"

using namespace dfq;
using namespace dfq::quant;
using dfq::test::TempDir;

namespace {

std::shared_ptr<models::Model> mobilenet_random_bn(uint64_t seed) {
  auto m = models::create_model("mobilenet_v2", 10, seed, true);
  Generator g(seed + 100);
  for (auto& [name, bn] : m->bn_layers()) {
    bn->running_mean.copy_(randn(bn->running_mean.shape(), g, Device::CPU, 0.f, 0.2f));
    bn->running_var.copy_(rand(bn->running_var.shape(), g, Device::CPU, 0.5f, 2.f));
    bn->weight.copy_(rand(bn->weight.shape(), g, Device::CPU, 0.5f, 1.5f));
    bn->bias.copy_(randn(bn->bias.shape(), g, Device::CPU, 0.f, 0.1f));
  }
  m->eval();
  return m;
}

// A quantized model with its activation ranges observed on one noise batch, then frozen.
std::unique_ptr<QuantizedModel> calibrated(std::shared_ptr<models::Model> m, int wbits, int abits,
                                           ActPlacement placement = ActPlacement::ReluSites,
                                           WeightScheme scheme = WeightScheme::Asym) {
  QuantConfig cfg;
  cfg.weight_scheme = scheme;
  cfg.wbits = wbits;
  cfg.abits = abits;
  cfg.act_placement = placement;
  auto q = std::make_unique<QuantizedModel>(m, cfg);
  Generator g(7);
  NoGradGuard ng;
  q->forward(randn({16, 3, 32, 32}, g));
  q->freeze();
  return q;
}

Tensor dfq_logits(QuantizedModel& q, const Tensor& x) {
  NoGradGuard ng;
  return q.forward(x);
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float e : v) m = std::max(m, double(std::fabs(e)));
  return m;
}

double max_diff(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  REQUIRE(x.size() == y.size());
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, double(std::fabs(x[i] - y[i])));
  return m;
}

// name -> the node producing it
std::map<std::string, const onnx::Node*> producers(const onnx::Model& m) {
  std::map<std::string, const onnx::Node*> p;
  for (const auto& n : m.nodes) p[n.outputs[0]] = &n;
  return p;
}

}  // namespace

TEST_CASE("onnx writer: wire bytes of known fields, integer ranges") {
  onnx::Model m;
  m.producer = "dfq";
  const std::vector<uint8_t> b = onnx::serialize(m);
  REQUIRE(b.size() > 7);
  // ModelProto.ir_version (field 1, varint) = 7; producer_name (field 2, bytes) = "dfq"
  CHECK(b[0] == 0x08);
  CHECK(b[1] == 0x07);
  CHECK(b[2] == 0x12);
  CHECK(b[3] == 0x03);
  CHECK(std::string(b.begin() + 4, b.begin() + 7) == "dfq");
  // the opset import {domain "", version 13} closes the message: field 8 { field 1 "", field 2 = 13 }
  CHECK(std::vector<uint8_t>(b.end() - 6, b.end()) == std::vector<uint8_t>{0x42, 0x04, 0x0a, 0x00, 0x10, 0x0d});
  // a negative int64 is a 10-byte varint; raw data is little-endian
  onnx::Initializer t = onnx::make_int("t", onnx::Elem::Int32, {2}, {-1, 300});
  CHECK(t.raw == std::vector<uint8_t>{0xff, 0xff, 0xff, 0xff, 0x2c, 0x01, 0x00, 0x00});
  CHECK(onnx::values(t) == std::vector<float>{-1.f, 300.f});
  CHECK_THROWS_WITH_AS(onnx::make_int("w", onnx::Elem::Int8, {1}, {128}), doctest::Contains("does not fit int8"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(onnx::make_float("f", {3}, {1.f}), doctest::Contains("do not fit"), std::invalid_argument);
}

TEST_CASE("onnx export: the faithful graph computes the quantized model's logits") {
  struct Case {
    std::string label;
    bool mobilenet;
    int wbits, abits;
    ActPlacement placement;
    WeightScheme scheme = WeightScheme::Asym;
  };
  const Case cases[] = {{"resnet18 W8A8", false, 8, 8, ActPlacement::ReluSites},
                        {"resnet18 W4A4", false, 4, 4, ActPlacement::ReluSites},
                        {"resnet18 W4A4 sym", false, 4, 4, ActPlacement::ReluSites, WeightScheme::Sym},
                        {"mobilenet_v2 W8A8 sym", true, 8, 8, ActPlacement::ReluSites, WeightScheme::Sym},
                        {"resnet18 W4A4 layer inputs (SQuant)", false, 4, 4, ActPlacement::LayerInputs},
                        {"mobilenet_v2 W4A4", true, 4, 4, ActPlacement::ReluSites},
                        {"mobilenet_v2 W8A8 layer inputs (SQuant)", true, 8, 8, ActPlacement::LayerInputs}};
  Generator g(11);
  const Tensor x = randn({32, 3, 32, 32}, g);
  for (const Case& c : cases) {
    CAPTURE(c.label);
    auto q = calibrated(c.mobilenet ? mobilenet_random_bn(3) : dfq::test::resnet18_random_bn(3, true), c.wbits, c.abits,
                        c.placement, c.scheme);
    OnnxExportOptions o;
    const OnnxExport e = export_onnx(*q, o);
    const Tensor want = dfq_logits(*q, x), got = run_onnx_graph(e.model, x);
    // The graph's scales are 1 / dfq's scale and QuantizeLinear divides by them: an activation
    // within an ulp of a rounding boundary may take the neighbouring code in one of the two, and the
    // difference propagates. Nothing else differs, so nearly every image agrees to float rounding.
    const double scale = max_abs(want.to_vector());
    const int64_t n = want.size(0);
    int close = 0, agree = 0;
    const std::vector<int64_t> aw = argmax_rows(want), ag = argmax_rows(got);
    for (int64_t i = 0; i < n; ++i) {
      close += max_diff(want.select(i), got.select(i)) <= 1e-5 * scale;
      agree += aw[size_t(i)] == ag[size_t(i)];
    }
    CAPTURE(close);
    CAPTURE(agree);
    CHECK(close >= n * 3 / 4);
    CHECK(agree >= n - 2);
    // Q/DQ where dfq quantizes: one QuantizeLinear per activation quantizer that quantizes
    int qs = 0, dqw = 0;
    for (const auto& n : e.model.nodes) {
      qs += n.op == "QuantizeLinear";
      dqw += n.op == "DequantizeLinear" && n.inputs[0].find("weight_q") != std::string::npos;
    }
    int sites = 0;
    for (auto& a : q->acts()) sites += a.bits() < 32;
    CHECK(qs == sites);
    CHECK(dqw == int(q->weight_layers().size()));
  }
}

TEST_CASE("onnx export: the float profile computes the float model bit for bit") {
  auto m = dfq::test::resnet18_random_bn(5, true);
  Generator g(12);
  const Tensor x = randn({4, 3, 32, 32}, g);
  Tensor want;
  {
    NoGradGuard ng;
    want = m->forward(x);
  }
  auto q = calibrated(m, 4, 4);
  OnnxExportOptions o;
  o.profile = OnnxProfile::Float;
  const OnnxExport e = export_onnx(*q, o);
  for (const auto& n : e.model.nodes) CHECK(n.op.find("Quantize") == std::string::npos);
  CHECK(run_onnx_graph(e.model, x).to_vector() == want.to_vector());
}

TEST_CASE("onnx export: ort / trt put every conv and linear between DequantizeLinear and QuantizeLinear") {
  Generator g(13);
  const Tensor calib = randn({32, 3, 32, 32}, g), x = randn({6, 3, 32, 32}, g);
  for (bool mobilenet : {false, true}) {
    for (OnnxProfile p : {OnnxProfile::Ort, OnnxProfile::Trt}) {
      CAPTURE(mobilenet);
      CAPTURE(onnx_profile_name(p));
      auto q = calibrated(mobilenet ? mobilenet_random_bn(4) : dfq::test::resnet18_random_bn(4, true), 8, 8);
      OnnxExportOptions o;
      o.profile = p;
        o.calib = calib;
      const OnnxExport e = export_onnx(*q, o);
      const auto prod = producers(e.model);
      std::map<std::string, std::vector<const onnx::Node*>> consumers;
      for (const auto& n : e.model.nodes)
        for (const auto& i : n.inputs) consumers[i].push_back(&n);
      auto from_dq = [&](const std::string& t) { return prod.count(t) && prod.at(t)->op == "DequantizeLinear"; };
      int convs = 0, gemms = 0;
      for (const auto& n : e.model.nodes) {
        if (n.op != "Conv" && n.op != "Gemm") continue;
        (n.op == "Conv" ? convs : gemms)++;
        CAPTURE(n.name);
        REQUIRE(n.inputs.size() == 3);
        for (const auto& i : n.inputs) CHECK(from_dq(i));
        // weights: int8 codes, zero point 0, per channel; bias: int32
        const onnx::Node& wdq = *prod.at(n.inputs[1]);
        CHECK(e.model.find_initializer(wdq.inputs[0])->type == onnx::Elem::Int8);
        for (float z : onnx::values(*e.model.find_initializer(wdq.inputs[2]))) CHECK(z == 0.f);
        CHECK(e.model.find_initializer(prod.at(n.inputs[2])->inputs[0])->type == onnx::Elem::Int32);
        if (n.op == "Conv") {
          // the output goes into a QuantizeLinear (ort: directly; trt: through its ReLU / Clip)
          std::string out = n.outputs[0];
          if (p == OnnxProfile::Trt && consumers[out].size() == 1 && consumers[out][0]->op != "QuantizeLinear")
            out = consumers[out][0]->outputs[0];
          REQUIRE(!consumers[out].empty());
          for (const onnx::Node* c : consumers[out]) CHECK(c->op == "QuantizeLinear");
        }
      }
      CHECK(convs == int(q->model().conv_layers().size()));
      CHECK(gemms == 1);
      CHECK(e.added_quantizers > 0);
      if (p == OnnxProfile::Trt)
        for (const auto& n : e.model.nodes)
          if (n.op == "QuantizeLinear") {
            const onnx::Initializer* z = e.model.find_initializer(n.inputs[2]);
            CHECK(z->type == onnx::Elem::Int8);
            CHECK(onnx::values(*z) == std::vector<float>{0.f});
          }
      // Its logits stay near dfq's (8-bit: the added quantizers and the re-quantized weights cost little).
      const Tensor want = dfq_logits(*q, x), got = run_onnx_graph(e.model, x);
      const double rel = max_diff(want, got) / max_abs(want.to_vector());
      CAPTURE(rel);
      CHECK(std::isfinite(rel));
      CHECK(rel < 0.1);
    }
  }
}

TEST_CASE("onnx export: ort re-quantizes a 4-bit input onto 17x finer uint8 steps, exactly") {
  Generator g(19);
  const Tensor calib = randn({16, 3, 32, 32}, g), x = randn({4, 3, 32, 32}, g);
  auto q = calibrated(dfq::test::resnet18_random_bn(8, true), 4, 4, ActPlacement::ReluSites, WeightScheme::Sym);
  for (OnnxProfile p : {OnnxProfile::Ort, OnnxProfile::Trt}) {
    const std::string profile = onnx_profile_name(p);
    CAPTURE(profile);
    OnnxExportOptions o;
    o.profile = p;
    o.calib = calib;
    const OnnxExport e = export_onnx(*q, o);
    const auto prod = producers(e.model);
    auto value = [&](const std::string& t) { return onnx::values(*e.model.find_initializer(t)).at(0); };
    int fine = 0;
    for (const auto& n : e.model.nodes) {
      if (n.op != "QuantizeLinear" || n.name.find(".q2/") == std::string::npos) continue;
      // Q2 <- Clip <- DQ <- Q: Q2's grid is Q's with m = 17 (ort) or the same grid (trt)
      const onnx::Node& clip = *prod.at(n.inputs[0]);
      REQUIRE(clip.op == "Clip");
      const onnx::Node& q1 = *prod.at(prod.at(clip.inputs[0])->inputs[0]);
      REQUIRE(q1.op == "QuantizeLinear");
      const float m = p == OnnxProfile::Ort ? 17.f : 1.f;
      CHECK(value(n.inputs[1]) == doctest::Approx(value(q1.inputs[1]) / m).epsilon(1e-6));
      CHECK(value(n.inputs[2]) == value(q1.inputs[2]) * m);
      ++fine;
    }
    CHECK(fine > 0);
    CHECK(std::isfinite(max_abs(run_onnx_graph(e.model, x).to_vector())));
  }
}

TEST_CASE("onnx export: a packed file exports the same graph as its float file") {
  TempDir dir("onnx_packed");
  for (WeightScheme scheme : {WeightScheme::Asym, WeightScheme::Sym}) {
    auto q = calibrated(dfq::test::resnet18_random_bn(6, true), 4, 4, ActPlacement::ReluSites, scheme);
    q->save(dir / "f.bin");
    q->save(dir / "p.bin", /*packed=*/true);
    OnnxExportOptions o;
    const auto a = onnx::serialize(export_onnx(*load_quantized(dir / "f.bin", "", Device::CPU), o).model);
    const auto b = onnx::serialize(export_onnx(*load_quantized(dir / "p.bin", "", Device::CPU), o).model);
    CHECK(a == b);
    CHECK(std::filesystem::file_size(dir / "p.bin") < std::filesystem::file_size(dir / "f.bin") / 6);
  }
}

TEST_CASE("onnx export: refusals") {
  auto vgg = models::create_model("vgg11_bn", 10, 0, true);
  auto q = calibrated(vgg, 8, 8);
  OnnxExportOptions o;
  CHECK_THROWS_WITH(export_onnx(*q, o), doctest::Contains("not vgg11_bn"));
  auto r = calibrated(dfq::test::resnet18_random_bn(1, false), 8, 8);
  o.profile = OnnxProfile::Ort;
  CHECK_THROWS_WITH(export_onnx(*r, o), doctest::Contains("needs calibration images"));
  CHECK_THROWS_AS(parse_onnx_profile("tensorrt"), std::invalid_argument);
  CHECK(parse_input_range("-1,2.5") == std::pair<float, float>{-1.f, 2.5f});
  CHECK(parse_input_range("fashion-mnist").first < -0.8f);
  for (const char* bad : {"2,1", "1", "a,b", "1,2,3", "nan,1"}) CHECK_THROWS_AS(parse_input_range(bad), std::invalid_argument);
}

TEST_CASE("export_onnx CLI: writes the file, refuses bad input") {
  TempDir dir("export_onnx_cli");
  auto q = calibrated(dfq::test::resnet18_random_bn(2, true), 4, 4);
  const std::string qbin = dir / "q.bin", fbin = dir / "float.bin", out = dir / "m.onnx";
  q->save(qbin);
  write_weight_file(fbin, "resnet18", 10, q->model().state_dict());
  const std::string log = dir / "log.txt";
  REQUIRE(dfq::test::run_program(DFQ_EXPORT_ONNX, qbin + " -o " + out, log) == 0);
  CHECK(std::filesystem::file_size(out) > 11'000'000);  // 11.2 M int8 weight codes
  std::filesystem::remove(out);
  dfq::test::check_refusals(DFQ_EXPORT_ONNX,
                            {{fbin, "is a float model, not a quantized one", 1},
                             {dir / "missing.bin", "no such file", 2},
                             {qbin + " --profile ort", "needs --calib", 2},
                             {qbin + " --profile tensorrt", "tensorrt", 2},
                             {qbin + " --calib noise", "--calib is for the ort / trt profiles", 2},
                             {qbin + " --score", "need --dataset", 2},
                             {qbin + " --profile ort --calib noise --input_range 3,1", "--input_range", 2},
                             {qbin + " --input_range fashion-mnist", "--input_range is for the ort / trt profiles", 2}},
                            " -o " + out, log, {out});
}
