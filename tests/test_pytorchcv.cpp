// test_pytorchcv.cpp — pytorchcv checkpoints through convert_weights (engine/io/pytorchcv_names.h):
// the generated pytorchcv state dicts against pytorchcv's own (../shared/golden state_dict_order
// files, fmnist_resnet18_pytorchcv.pth) and their dfq side against checkpoint_arch and the models;
// recognition and the resnet50 / resnet50b choice; the real Fashion-MNIST ResNet18 under pytorchcv
// names (same tensors, 91.44 / 99.95); pytorchcv's resnet50 (stride on the 1x1, .pth written here
// from the README's formula) and mobilenetv2_w1 (the golden formula .pth) against pytorchcv's eval
// logits; bad checkpoints.
// Every TEST_CASE is named "pytorchcv: ..." ("pytorchcv fmnist: ..." when it reads the real model).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/io/checkpoint_arch.h"
#include "engine/io/npy.h"
#include "engine/io/pth.h"
#include "engine/io/pytorchcv_names.h"
#include "engine/io/weights.h"
#include "models/eval.h"
#include "models/registry.h"
#include "tests/check.h"
#include "tests/pth_builder.h"
#include "tests/test_util.h"

using namespace dfq;
using namespace dfq::test;
namespace fs = std::filesystem;

namespace {
const std::string kGolden = std::string(DFQ_GOLDEN_DIR) + "/";

NamedShapes read_order(const std::string& file) { return test::read_state_dict_order(file); }

NamedShapes names_shapes(const PthCheckpoint& ck) {
  NamedShapes v;
  for (const PthTensor& t : ck.tensors) v.push_back({t.name, t.shape});
  return v;
}
NamedShapes source_side(const std::vector<PytorchcvEntry>& sd) {
  NamedShapes v;
  for (const auto& e : sd) v.push_back({e.name, e.shape});
  return v;
}
NamedShapes dfq_side(const std::vector<PytorchcvEntry>& sd) {
  NamedShapes v;
  for (const auto& e : sd) v.push_back({e.dfq_name, e.dfq_shape});
  return v;
}
void check_same(const NamedShapes& got, const NamedShapes& want, const std::string& label) {
  INFO(label);
  REQUIRE(got.size() == want.size());
  for (size_t k = 0; k < got.size(); ++k) {
    CHECK_MESSAGE(got[k].first == want[k].first, "entry " << k << ": " << got[k].first << " vs " << want[k].first);
    CHECK_MESSAGE(got[k].second == want[k].second, got[k].first << ": " << shape_str(got[k].second) << " vs " << shape_str(want[k].second));
  }
}

// The golden README's formula: s in [-1, 1) for element k of entry t.
double formula_s(int64_t k, int64_t t) {
  uint64_t v = (static_cast<uint64_t>(k) * 2654435761ull + static_cast<uint64_t>(t) * 97531ull) & 0xFFFFFFFFull;
  return 2.0 * (static_cast<double>(v) / 4294967296.0) - 1.0;
}
Tensor formula_input(const Shape& shape, int64_t t = 9999) {
  Tensor x = Tensor::empty(shape);
  float* p = x.data<float>();
  for (int64_t k = 0; k < x.numel(); ++k) p[k] = static_cast<float>(2.0 * formula_s(k, t));
  return x;
}

std::vector<int64_t> contiguous_stride(const Shape& s) {
  std::vector<int64_t> st(s.size());
  int64_t m = 1;
  for (size_t d = s.size(); d-- > 0;) st[d] = m, m *= s[d];
  return st;
}

// A ZIP .pth of a pytorchcv state dict (pytorchcv names: BNs are "*.bn") with every entry filled by
// the formula, t = its index; num_batches_tracked int64 0.
std::string formula_pth(const NamedShapes& sd) {
  std::vector<TensorSpec> specs;
  std::vector<std::pair<std::string, std::string>> records;
  std::map<std::string, int64_t> fan_in;
  for (int64_t t = 0; t < static_cast<int64_t>(sd.size()); ++t) {
    const std::string& name = sd[t].first;  // no structured binding: clang 14 cannot capture one in REQUIRE_MESSAGE
    const Shape& shape = sd[t].second;
    const std::string prefix = name.substr(0, name.rfind('.')), leaf = name.substr(name.rfind('.') + 1);
    const int64_t n = numel_of(shape);
    const std::string key = std::to_string(t);
    if (leaf == "num_batches_tracked") {
      specs.push_back({name, "LongStorage", key, 1, 0, {}, {}});
      records.push_back({key, raw_bytes(std::vector<int64_t>{0})});
      continue;
    }
    double a = 1, b = 0;  // value = b + a * s
    const bool bn = prefix.size() > 3 && prefix.compare(prefix.size() - 3, 3, ".bn") == 0;
    if (bn) {
      if (leaf == "weight" || leaf == "running_var") a = 0.25, b = 1;
      else a = 0.1;  // bias, running_mean
    } else if (leaf == "weight") {
      fan_in[prefix] = n / shape[0];
      a = std::sqrt(6.0 / static_cast<double>(fan_in[prefix]));
    } else {
      REQUIRE_MESSAGE((leaf == "bias" && fan_in.count(prefix)), name);
      a = 1.0 / std::sqrt(static_cast<double>(fan_in[prefix]));
    }
    std::vector<float> v(static_cast<size_t>(n));
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < n; ++k) v[k] = static_cast<float>(b == 0 ? formula_s(k, t) * a : b + a * formula_s(k, t));
    specs.push_back({name, "FloatStorage", key, n, 0, shape, contiguous_stride(shape)});
    records.push_back({key, raw_bytes(v)});
  }
  return zip_checkpoint(state_dict_pickle(specs), records);
}

// convert_weights ARGS: exit status; stdout into `out_log`, stderr into `err_log`.
int convert(const std::string& args, const std::string& out_log, const std::string& err_log) {
  std::string cmd = std::string(DFQ_CONVERT_WEIGHTS) + " " + args + " >" + out_log + " 2>" + err_log;
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

// Eval logits at 224 px of the two formula images, of the model in a converted weight file.
std::vector<float> logits_eval2(const std::string& weights) {
  auto m = models::load_model(weights, "", Device::CPU);
  NoGradGuard ng;
  return m->forward(formula_input({2, 3, 224, 224})).to_vector();
}
}  // namespace

TEST_CASE("pytorchcv: generated state dicts equal pytorchcv's own and, renamed, dfq's (checkpoint_arch and the models)") {
  // pytorchcv's side: the golden order files (pytorchcv 0.0.74) and the fmnist file's names
  check_same(source_side(pytorchcv_state_dict("resnet50", 10)), read_order(kGolden + "pytorchcv_resnet50/state_dict_order.txt"),
             "resnet50 vs pytorchcv");
  check_same(source_side(pytorchcv_state_dict("mobilenetv2_w1", 10)),
             read_order(kGolden + "pytorchcv_mobilenetv2_w1/state_dict_order.txt"), "mobilenetv2_w1 vs pytorchcv");
  check_same(source_side(pytorchcv_state_dict("resnet18", 10)), names_shapes(read_pth(kGolden + "pth/fmnist_resnet18_pytorchcv.pth")),
             "resnet18 vs the fmnist file");
  // dfq's side: torchvision's names in torchvision's order, so a converted file lists its tensors
  // in the model's state_dict order
  check_same(dfq_side(pytorchcv_state_dict("resnet18", 10)), names_shapes(read_pth(kGolden + "pth/fmnist_resnet18.pth")),
             "resnet18 renamed vs the torchvision fmnist file");
  for (const std::string& model : pytorchcv_models()) {
    const std::string arch = pytorchcv_dfq_arch(model);
    INFO(model << " -> " << arch);
    NamedShapes dfq = dfq_side(pytorchcv_state_dict(model, 7));
    check_same(dfq, expected_tensors(arch, 7), "vs checkpoint_arch");
    NamedShapes from_model;
    for (const auto& [n, t] : models::create_model(arch, 7, 0, false)->state_dict()) from_model.push_back({n, t.shape()});
    check_same(dfq, from_model, "vs the model's state_dict");
  }
  CHECK(pytorchcv_dfq_arch("resnet50") == "pytorchcv_resnet50");
  CHECK(pytorchcv_dfq_arch("resnet50b") == "resnet50");
  CHECK(pytorchcv_dfq_arch("mobilenetv2_w1") == "pytorchcv_mobilenetv2_w1");
  // mobilenetv2_w1: the contract of models/mobilenet (features.1 in the expanded layout, a 1x1
  // 32->32 expansion; the classifier reshaped from the 1x1 output conv, no bias)
  std::map<std::string, Shape> mb;
  for (const auto& [n, s] : dfq_side(pytorchcv_state_dict("mobilenetv2_w1", 10))) mb[n] = s;
  CHECK(mb.at("features.0.0.weight") == Shape{32, 3, 3, 3});
  CHECK(mb.at("features.1.conv.0.0.weight") == Shape{32, 32, 1, 1});
  CHECK(mb.at("features.1.conv.1.0.weight") == Shape{32, 1, 3, 3});
  CHECK(mb.at("features.1.conv.2.weight") == Shape{16, 32, 1, 1});
  CHECK(mb.at("features.1.conv.3.running_var") == Shape{16});
  CHECK(mb.at("features.17.conv.2.weight") == Shape{320, 960, 1, 1});
  CHECK(mb.at("features.18.0.weight") == Shape{1280, 320, 1, 1});
  CHECK(mb.at("classifier.1.weight") == Shape{10, 1280});
  CHECK(mb.count("classifier.1.bias") == 0);
}

TEST_CASE("pytorchcv: each model recognised; resnet50 vs resnet50b by --arch, file name or default; layouts that fit none") {
  for (const std::string& model : pytorchcv_models()) {
    INFO(model);
    NamedShapes sd = source_side(pytorchcv_state_dict(model, 7)), no_nbt;
    for (const auto& e : sd)
      if (e.first.find("num_batches_tracked") == std::string::npos) no_nbt.push_back(e);
    for (const NamedShapes* t : {&sd, &no_nbt}) {
      CHECK(is_pytorchcv(*t));
      PytorchcvMapping m = map_pytorchcv(*t, pytorchcv_dfq_arch(model));
      CHECK(m.model == model);
      CHECK(m.arch == pytorchcv_dfq_arch(model));
      CHECK(m.num_classes == 7);
      REQUIRE(m.tensors.size() == t->size());
      for (size_t k = 0; k < t->size(); ++k) CHECK(m.tensors[k].name == (*t)[k].first);
    }
    if (model != "resnet50b") CHECK(map_pytorchcv(sd).model == model);  // recognised without --arch
  }
  CHECK_FALSE(is_pytorchcv(expected_tensors("resnet18", 10)));
  // resnet50 / resnet50b: the same tensors
  NamedShapes r50 = source_side(pytorchcv_state_dict("resnet50", 10));
  PytorchcvMapping m = map_pytorchcv(r50, "", "/x/checkpoint.pth");
  CHECK(m.arch == "pytorchcv_resnet50");
  REQUIRE(m.notes.size() == 1);
  CHECK(m.notes[0].find("give --arch resnet50 for resnet50b") != std::string::npos);
  CHECK(map_pytorchcv(r50, "", "/x/resnet50b-0611-8d2a66a4.pth").arch == "resnet50");  // pytorchcv's model store names
  CHECK(map_pytorchcv(r50, "", "/x/resnet50-0633-b00d1c8e.pth").arch == "pytorchcv_resnet50");
  CHECK(map_pytorchcv(r50, "resnet50", "/x/resnet50-0633-b00d1c8e.pth").arch == "resnet50");  // --arch wins
  CHECK(map_pytorchcv(r50, "pytorchcv_resnet50").notes.empty());
  CHECK_THROWS_WITH_AS(map_pytorchcv(r50, "resnet34"), doctest::Contains("--arch resnet34 does not fit this pytorchcv resnet50 checkpoint"),
                       std::runtime_error);
  // units per stage that fit no model: the first stage that differs is named
  NamedShapes r18 = source_side(pytorchcv_state_dict("resnet18", 10)), odd = r18;
  for (const auto& [n, s] : r18)
    if (n.rfind("features.stage3.unit2.", 0) == 0)
      for (const char* u : {"unit3.", "unit4.", "unit5."}) odd.push_back({"features.stage3." + std::string(u) + n.substr(22), s});
  CHECK_THROWS_WITH_AS(map_pytorchcv(odd), doctest::Contains("basic units [2,2,5,2] per stage, but stage3 has 5 units: not resnet18/resnet34"),
                       std::runtime_error);
  NamedShapes r101 = r50;  // stage3 of resnet101: 23 units
  for (int u = 7; u <= 23; ++u)
    for (const auto& [n, s] : r50)
      if (n.rfind("features.stage3.unit6.", 0) == 0) r101.push_back({"features.stage3.unit" + std::to_string(u) + n.substr(21), s});
  CHECK_THROWS_WITH_AS(map_pytorchcv(r101), doctest::Contains("bottleneck units [3,4,23,3] per stage, but stage3 has 23 units: not resnet50/resnet50b"),
                       std::runtime_error);
  NamedShapes mb = source_side(pytorchcv_state_dict("mobilenetv2_w1", 10)), narrow;
  for (auto [n, s] : mb) {
    if (n == "features.init_block.conv.weight") s[0] = 24;
    narrow.push_back({n, s});
  }
  CHECK_THROWS_WITH_AS(map_pytorchcv(narrow), doctest::Contains("a width other than 1"), std::runtime_error);
  NamedShapes no_expansion;  // mobilenetv2b_w1's first unit
  for (const auto& [n, s] : mb)
    if (n.rfind("features.stage1.unit1.conv1.", 0) != 0) no_expansion.push_back({n, s});
  CHECK_THROWS_WITH_AS(map_pytorchcv(no_expansion), doctest::Contains("without an expansion conv in stage1.unit1"), std::runtime_error);
  CHECK_THROWS_WITH_AS(map_pytorchcv({{"features.init_block.weight", {1}}, {"output.weight", {10, 4}}}),
                       doctest::Contains("neither ResNet's"), std::runtime_error);
}

TEST_CASE("pytorchcv fmnist: resnet18 under pytorchcv names converts to exactly the torchvision file's tensors, 91.44 / 99.95") {
  TempDir dir("pcv_fmnist");
  const std::string pcv = dir / "pcv.bin", tv = dir / "tv.bin";
  REQUIRE(convert(kGolden + "pth/fmnist_resnet18_pytorchcv.pth --verbose -o " + pcv, dir / "out.txt", dir / "err.txt") == 0);
  CHECK(read_text(dir / "out.txt").find("pytorchcv resnet18 -> dfq resnet18") != std::string::npos);
  REQUIRE(convert(kGolden + "pth/fmnist_resnet18.pth -o " + tv, dir / "out2.txt", dir / "err2.txt") == 0);
  WeightFile a = WeightFile::open(pcv), b = WeightFile::open(tv);
  CHECK(a.arch() == "resnet18");
  CHECK(a.num_classes() == 10);
  CHECK(b.arch() == "resnet18");
  REQUIRE(a.entries().size() == b.entries().size());
  for (size_t k = 0; k < a.entries().size(); ++k) {
    const WeightFile::Entry &x = a.entries()[k], &y = b.entries()[k];
    INFO(y.name);
    CHECK(x.name == y.name);
    CHECK(x.dtype == y.dtype);
    CHECK(x.shape == y.shape);
    REQUIRE(x.nbytes == y.nbytes);
    CHECK(std::memcmp(a.get(x.name).raw_data(), b.get(y.name).raw_data(), x.nbytes) == 0);
  }
  // --list names the stored tensors and where they go
  REQUIRE(convert("--list " + kGolden + "pth/fmnist_resnet18_pytorchcv.pth", dir / "list.txt", dir / "err3.txt") == 0);
  std::string list = read_text(dir / "list.txt");
  CHECK(list.find("features.stage4.unit2.body.conv2.bn.running_var") != std::string::npos);
  CHECK(list.find("-> layer4.1.bn2.running_var") != std::string::npos);
  CHECK(list.find("pytorchcv resnet18 -> dfq resnet18, 10 classes") != std::string::npos);
  // the real test set, through the model the converted file builds
  auto model = models::load_model(pcv, "", Device::CPU);
  auto ds = models::open_dataset("fashion-mnist", "");
  models::EvalResult r = models::evaluate(*model, *ds, Device::CPU, 256, "pytorchcv fmnist resnet18");
  CHECK(r.images == 10000);
  CHECK(r.top1_hits == 9144);  // manifest.json: fmnist_resnet18/test_top1_percent 91.44
  CHECK(r.top5_hits == 9995);  // test_top5_percent 99.95
  CHECK(r.nonfinite == 0);
}

TEST_CASE("pytorchcv: resnet50 (stride on the first 1x1) from the formula: converted, eval logits at 224 px equal pytorchcv's") {
  TempDir dir("pcv_r50");
  NamedShapes order = read_order(kGolden + "pytorchcv_resnet50/state_dict_order.txt");
  write_file(dir / "formula.pth", formula_pth(order));  // 94 MB; pytorchcv's resnet50, 10 classes
  const std::string out = dir / "r50.bin";
  REQUIRE(convert((dir / "formula.pth") + " --verbose -o " + out, dir / "out.txt", dir / "err.txt") == 0);
  std::string log = read_text(dir / "out.txt");
  CHECK(log.find("pytorchcv resnet50 -> dfq pytorchcv_resnet50") != std::string::npos);
  CHECK(log.find("note: pytorchcv resnet50 and resnet50b have the same tensors") != std::string::npos);
  CHECK(WeightFile::open(out).arch() == "pytorchcv_resnet50");
  Tensor want = load_npy(kGolden + "pytorchcv_resnet50/logits_eval2.npy");
  REQUIRE(want.shape() == Shape{2, 10});
  check_close("pytorchcv resnet50 eval logits", logits_eval2(out), want.to_vector(), 1e-4, 1e-4);
  // the same file under pytorchcv's resnet50b name is the torchvision network: other logits
  fs::create_symlink(dir / "formula.pth", dir / "resnet50b-0000-00000000.pth");
  const std::string outb = dir / "r50b.bin";
  REQUIRE(convert((dir / "resnet50b-0000-00000000.pth") + " -o " + outb, dir / "out2.txt", dir / "err2.txt") == 0);
  CHECK(WeightFile::open(outb).arch() == "resnet50");
  std::vector<float> b = logits_eval2(outb), w = want.to_vector();
  double diff = 0;
  for (size_t k = 0; k < w.size(); ++k) diff = std::max(diff, std::fabs(double(b[k]) - double(w[k])));
  CHECK(diff > 1e-2);  // where the stride sits matters
}

TEST_CASE("pytorchcv: mobilenetv2_w1 (formula weights, 10 classes) converted, eval logits at 224 px equal pytorchcv's") {
  TempDir dir("pcv_mb");
  const std::string out = dir / "mb.bin";
  REQUIRE(convert(kGolden + "pth/pytorchcv_mobilenetv2_w1_formula10.pth --verbose -o " + out, dir / "out.txt", dir / "err.txt") == 0);
  CHECK(read_text(dir / "out.txt").find("pytorchcv mobilenetv2_w1 -> dfq pytorchcv_mobilenetv2_w1") != std::string::npos);
  WeightFile f = WeightFile::open(out);
  CHECK(f.arch() == "pytorchcv_mobilenetv2_w1");
  CHECK(f.num_classes() == 10);
  REQUIRE(f.find("classifier.1.weight") != nullptr);
  CHECK(f.find("classifier.1.weight")->shape == Shape{10, 1280});  // output.weight (10, 1280, 1, 1), reshaped
  Tensor want = load_npy(kGolden + "pytorchcv_mobilenetv2_w1/logits_eval2.npy");
  REQUIRE(want.shape() == Shape{2, 10});
  check_close("pytorchcv mobilenetv2_w1 eval logits", logits_eval2(out), want.to_vector(), 1e-4, 1e-4);
}

TEST_CASE("pytorchcv: a checkpoint with a missing, mis-shaped or extra tensor: one message naming it, exit 1, no file") {
  TempDir dir("pcv_bad");
  // pytorchcv resnet18 names and shapes, every float tensor a view of one shared zero storage
  NamedShapes good = source_side(pytorchcv_state_dict("resnet18", 10));
  auto write = [&](const NamedShapes& sd, const std::string& path) {
    int64_t most = 1;
    for (const auto& [n, s] : sd) most = std::max(most, numel_of(s));
    std::vector<TensorSpec> specs;
    for (const auto& [n, s] : sd) {
      if (n.find("num_batches_tracked") != std::string::npos) specs.push_back({n, "LongStorage", "1", 1, 0, {}, {}});
      else specs.push_back({n, "FloatStorage", "0", most, 0, s, contiguous_stride(s)});
    }
    write_file(path, zip_checkpoint(state_dict_pickle(specs), {{"0", std::string(static_cast<size_t>(most) * 4, '\0')},
                                                               {"1", raw_bytes(std::vector<int64_t>{0})}}));
  };
  write(good, dir / "good.pth");
  REQUIRE(convert((dir / "good.pth") + " -o " + dir / "good.bin", dir / "out.txt", dir / "err.txt") == 0);
  CHECK(WeightFile::open(dir / "good.bin").arch() == "resnet18");

  auto edited = [&](const std::string& name, const Shape* reshape, bool drop) {
    NamedShapes v;
    for (const auto& e : good) {
      if (e.first == name && drop) continue;
      v.push_back({e.first, e.first == name && reshape ? *reshape : e.second});
    }
    return v;
  };
  const Shape one_by_one{64, 64, 1, 1}, narrow_head{10, 511};
  NamedShapes extra = good;
  extra.push_back({"features.stage1.unit1.body.conv4.conv.weight", {64, 64, 1, 1}});
  struct Case { std::string label; NamedShapes sd; std::string args, want; };
  const std::vector<Case> cases = {
      {"missing", edited("features.stage2.unit1.identity_conv.conv.weight", nullptr, true), "",
       "does not match pytorchcv resnet18: 1 missing: features.stage2.unit1.identity_conv.conv.weight"},
      {"mis-shaped conv", edited("features.stage1.unit1.body.conv1.conv.weight", &one_by_one, false), "",
       "1 mis-shaped: features.stage1.unit1.body.conv1.conv.weight [64, 64, 1, 1] (pytorchcv resnet18 has [64, 64, 3, 3])"},
      {"mis-shaped head", edited("output.weight", &narrow_head, false), "",
       "1 mis-shaped: output.weight [10, 511] (pytorchcv resnet18 has [10, 512])"},
      {"extra", extra, "", "1 unexpected: features.stage1.unit1.body.conv4.conv.weight"},
      {"missing head", edited("output.weight", nullptr, true), "", "pytorchcv resnet18 checkpoint without output.weight"},
      {"--arch", good, " --arch resnet50", "--arch resnet50 does not fit this pytorchcv resnet18 checkpoint"},
  };
  for (const Case& c : cases) {
    INFO(c.label);
    const std::string in = dir / (c.label + ".pth"), out = dir / (c.label + ".bin");
    write(c.sd, in);
    CHECK(convert("'" + in + "'" + c.args + " -o '" + out + "'", dir / "out.txt", dir / "err.txt") == 1);
    std::string err = read_text(dir / "err.txt");
    INFO(err);
    CHECK(err.find(c.want) != std::string::npos);
    CHECK(err.rfind("convert_weights: error: ", 0) == 0);
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);  // one message
    CHECK_FALSE(fs::exists(out));
    CHECK_FALSE(fs::exists(out + ".tmp"));
  }
}
