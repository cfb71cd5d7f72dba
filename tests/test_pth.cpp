// test_pth.cpp — the PyTorch checkpoint reader on real files (../shared/golden/pth: what torch
// 1.13 wrote, plus the emulated TAR and _rebuild_tensor v1 files) and on hand-made valid layouts:
// strides, storage offsets, shared storages, float16/bfloat16/float64/int64, wrappers, prefixes,
// the Python-2 OrderedDict, memo indices above 255, _metadata, deflated ZIP members.
// Every TEST_CASE is named "pth: ...".
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/io/checkpoint_arch.h"
#include "engine/io/pth.h"
#include "engine/io/zip.h"
#include "tests/check.h"
#include "tests/pth_builder.h"

using namespace dfq;
using namespace dfq::test;

namespace {
const std::string kPth = std::string(DFQ_GOLDEN_DIR) + "/pth/";

// The checkpoint owns a copy of the bytes (its tensors point into them).
PthCheckpoint read_bytes(const std::string& s) {
  auto buf = std::make_shared<std::string>(s);
  return read_pth(Bytes{reinterpret_cast<const uint8_t*>(buf->data()), buf->size(), buf}, "test");
}
std::vector<float> floats(const PthTensor& t) {
  REQUIRE(t.dtype == DType::F32);
  std::vector<float> v(t.numel());
  t.read_into(v.data());
  return v;
}
std::vector<uint8_t> bytes_of(const PthTensor& t) {
  std::vector<uint8_t> v(t.nbytes());
  t.read_into(v.data());
  return v;
}
const PthTensor& by_name(const PthCheckpoint& ck, const std::string& name) {
  for (const auto& t : ck.tensors)
    if (t.name == name) return t;
  FAIL("no tensor " << name);
  throw 0;
}
bool has_note(const PthCheckpoint& ck, const std::string& part) {
  for (const auto& n : ck.notes)
    if (n.find(part) != std::string::npos) return true;
  return false;
}
// Bitwise equality of floats (so -0 / NaN differences would show).
void check_bits(const std::vector<float>& got, const std::vector<float>& want, const std::string& label) {
  INFO(label);
  REQUIRE(got.size() == want.size());
  CHECK(std::memcmp(got.data(), want.data(), got.size() * 4) == 0);
}
}  // namespace

TEST_CASE("pth: the tiny golden files hold exactly their documented tensors") {
  std::vector<float> arange(108);
  for (int i = 0; i < 108; ++i) arange[i] = static_cast<float>(i) / 10.f;  // torch.arange(108) / 10 in float32
  for (auto entry : {std::pair{"tiny_zip.pth", "zip"}, {"tiny_tar.pth", "tar"}, {"tiny_legacy_v1.pth", "legacy stream"}}) {
    const char *file = entry.first, *container = entry.second;  // not a structured binding: INFO's lambda can't capture one in clang 14
    INFO(file);
    PthCheckpoint ck = read_pth(kPth + file);
    CHECK(ck.container == container);
    REQUIRE(ck.tensors.size() == 3);
    const PthTensor &w = ck.tensors[0], &rm = ck.tensors[1], &nbt = ck.tensors[2];
    CHECK(w.name == "conv.weight");
    CHECK(rm.name == "bn.running_mean");
    CHECK(nbt.name == "bn.num_batches_tracked");
    CHECK(w.shape == Shape{4, 3, 3, 3});
    check_bits(floats(w), arange, std::string(file) + " conv.weight");
    CHECK(rm.shape == Shape{4});
    check_bits(floats(rm), {0.5f, -1.f, 2.f, 0.25f}, std::string(file) + " bn.running_mean");
    CHECK(nbt.shape == Shape{});
    CHECK(nbt.dtype == DType::I64);
    CHECK(nbt.src_type == pickle::ElemType::I64);
    // as engine tensors (borrowed or copied)
    CHECK(w.load().to_vector() == arange);
    CHECK(nbt.load().to_vector_i64() == std::vector<int64_t>{7});
    CHECK(ck.notes.empty());
  }
}

TEST_CASE("pth: fmnist ZIP and legacy-stream files give identical tensors (122, resnet18, 10 classes)") {
  PthCheckpoint a = read_pth(kPth + "fmnist_resnet18.pth");
  PthCheckpoint b = read_pth(kPth + "fmnist_resnet18_legacy.pth");
  CHECK(a.container == "zip");
  CHECK(b.container == "legacy stream");
  REQUIRE(a.tensors.size() == 122);
  REQUIRE(b.tensors.size() == 122);
  int nbt = 0;
  NamedShapes shapes;
  for (size_t k = 0; k < a.tensors.size(); ++k) {
    const PthTensor &x = a.tensors[k], &y = b.tensors[k];
    INFO(x.name);
    REQUIRE(x.name == y.name);
    REQUIRE(x.shape == y.shape);
    REQUIRE(x.dtype == y.dtype);
    CHECK(bytes_of(x) == bytes_of(y));
    CHECK(x.direct() != nullptr);  // ZIP data is 64-byte aligned: used in place
    nbt += x.name.find("num_batches_tracked") != std::string::npos;
    shapes.push_back({x.name, x.shape});
  }
  CHECK(nbt == 20);
  CHECK(detect_arch(shapes) == "resnet18");
  CHECK(detect_num_classes("resnet18", shapes) == 10);
  CHECK(check_arch("resnet18", 10, shapes) == "");
  // torchvision's state-dict order, as expected_tensors() generates it
  NamedShapes want = expected_tensors("resnet18", 10);
  CHECK(want == shapes);
}

TEST_CASE("pth: strides, storage offsets, shared storages and dtype conversions") {
  std::vector<float> f(12);
  for (int i = 0; i < 12; ++i) f[i] = static_cast<float>(i);
  std::vector<double> d{1.5, -2.25, 3e-3};
  std::vector<uint16_t> h{0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00, 0x8000};  // 1, -2, 65504, 2^-24, inf, -0
  std::vector<uint16_t> bf{0x3F80, 0xC040, 0x4049};                         // 1, -3, 3.140625
  std::vector<int64_t> l{-5, int64_t{1} << 40};
  std::vector<TensorSpec> specs = {
      {"t.contig", "FloatStorage", "0", 12, 0, {2, 3}, {3, 1}},
      {"t.transposed", "FloatStorage", "0", 12, 0, {3, 2}, {1, 3}},
      {"t.offset", "FloatStorage", "0", 12, 6, {6}, {1}},
      {"t.step", "FloatStorage", "0", 12, 1, {3}, {4}},
      {"t.f64", "DoubleStorage", "1", 3, 0, {3}, {1}},
      {"t.f16", "HalfStorage", "2", 6, 0, {6}, {1}},
      {"t.bf16", "BFloat16Storage", "3", 3, 0, {3}, {1}},
      {"t.i64", "LongStorage", "4", 2, 0, {2}, {1}},
      {"t.empty", "FloatStorage", "0", 12, 0, {0, 3}, {3, 1}},
  };
  std::vector<std::pair<std::string, std::string>> recs = {
      {"0", raw_bytes(f)}, {"1", raw_bytes(d)}, {"2", raw_bytes(h)}, {"3", raw_bytes(bf)}, {"4", raw_bytes(l)}};
  std::string zip = zip_checkpoint(state_dict_pickle(specs), recs);
  std::vector<LegacyRecord> lrecs;
  const int64_t numels[] = {12, 3, 6, 3, 2};
  for (size_t k = 0; k < recs.size(); ++k) lrecs.push_back({recs[k].first, recs[k].second, numels[k]});
  std::string legacy = legacy_checkpoint(state_dict_pickle(specs, true), lrecs);
  for (const std::string* file : {&zip, &legacy}) {
    PthCheckpoint ck = read_bytes(*file);
    REQUIRE(ck.tensors.size() == specs.size());
    CHECK(floats(by_name(ck, "t.contig")) == std::vector<float>{0, 1, 2, 3, 4, 5});
    CHECK(floats(by_name(ck, "t.transposed")) == std::vector<float>{0, 3, 1, 4, 2, 5});
    CHECK(by_name(ck, "t.transposed").direct() == nullptr);
    CHECK(by_name(ck, "t.transposed").load().to_vector() == std::vector<float>{0, 3, 1, 4, 2, 5});
    CHECK(floats(by_name(ck, "t.offset")) == std::vector<float>{6, 7, 8, 9, 10, 11});
    CHECK(floats(by_name(ck, "t.step")) == std::vector<float>{1, 5, 9});
    CHECK(floats(by_name(ck, "t.f64")) == std::vector<float>{1.5f, -2.25f, static_cast<float>(3e-3)});
    std::vector<float> fh = floats(by_name(ck, "t.f16"));
    CHECK(fh[0] == 1.f);
    CHECK(fh[1] == -2.f);
    CHECK(fh[2] == 65504.f);
    CHECK(fh[3] == std::ldexp(1.f, -24));
    CHECK(std::isinf(fh[4]));
    CHECK((fh[5] == 0.f && std::signbit(fh[5])));
    CHECK(floats(by_name(ck, "t.bf16")) == std::vector<float>{1.f, -3.f, 3.140625f});
    CHECK(by_name(ck, "t.i64").load().to_vector_i64() == l);
    CHECK(by_name(ck, "t.empty").numel() == 0);
    CHECK(by_name(ck, "t.empty").load().shape() == Shape{0, 3});
    CHECK(has_note(ck, "converted float16 -> float32: 1"));
    CHECK(has_note(ck, "converted bfloat16 -> float32: 1"));
    CHECK(has_note(ck, "converted float64 -> float32: 1"));
  }
}

TEST_CASE("pth: state dict under 'state_dict' / 'model', 'module.' prefix, non-tensor entries") {
  std::vector<float> f{1, 2, 3, 4};
  std::vector<TensorSpec> specs = {{"module.fc.weight", "FloatStorage", "0", 4, 0, {2, 2}, {2, 1}},
                                   {"module.fc.bias", "FloatStorage", "0", 4, 2, {2}, {1}}};
  for (const char* key : {"state_dict", "model"}) {
    INFO(key);
    PthCheckpoint ck = read_bytes(zip_checkpoint(state_dict_pickle(specs, false, key), {{"0", raw_bytes(f)}}));
    REQUIRE(ck.tensors.size() == 2);
    CHECK(ck.tensors[0].name == "fc.weight");
    CHECK(ck.tensors[1].name == "fc.bias");
    CHECK(floats(ck.tensors[1]) == std::vector<float>{3, 4});
    CHECK(has_note(ck, std::string("under '") + key + "'"));
    CHECK(has_note(ck, "'module.' prefix from 2"));
  }
  // a bare dict with a non-tensor value: skipped, with a note
  PickleWriter p;
  p.proto().empty_dict().mark().str("w").global("torch._utils", "_rebuild_tensor").mark();
  p.mark().str("storage").global("torch", "FloatStorage").str("0").str("cpu").integer(4).tuple().persid();
  p.integer(0).ints({4}).ints({1}).tuple().reduce().str("epoch").integer(90).setitems().stop();
  PthCheckpoint ck = read_bytes(zip_checkpoint(p.b, {{"0", raw_bytes(f)}}));
  REQUIRE(ck.tensors.size() == 1);
  CHECK(floats(ck.tensors[0]) == f);
  CHECK(has_note(ck, "skipped 1 non-tensor entry (e.g. 'epoch')"));
}

TEST_CASE("pth: Python-2 OrderedDict, LONG_BINPUT/LONG_BINGET above 255, _metadata BUILD") {
  std::vector<float> f{1, 2, 3};
  PickleWriter p;
  p.proto();
  for (uint32_t i = 0; i < 300; ++i) p.str("pad").long_put(i).raw("0");  // 300 memo entries, popped
  p.global("torch", "FloatStorage").long_put(1000).raw("0");
  // Python 2: OrderedDict([[k, v], ...]) with SHORT_BINSTRING keys
  p.global("collections", "OrderedDict").empty_list().mark();
  for (const char* name : {"a", "b"}) {
    p.empty_list().mark().py2str(name).global("torch._utils", "_rebuild_tensor_v2").mark();
    p.mark().py2str("storage").long_get(1000).py2str("0").py2str("cpu").integer(3).tuple().persid();
    p.integer(name[0] == 'a' ? 0 : 1).ints({name[0] == 'a' ? 3 : 2}).ints({1}).newfalse().none().tuple().reduce();
    p.appends();
  }
  p.appends().raw("\x85").reduce();
  // instance state {'_metadata': OrderedDict([('', {'version': 1})])}
  p.empty_dict().str("_metadata").global("collections", "OrderedDict").empty_tuple().reduce();
  p.mark().str("").empty_dict().str("version").integer(1).setitem().setitems().setitem().build().stop();
  PthCheckpoint ck = read_bytes(zip_checkpoint(p.b, {{"0", raw_bytes(f)}}));
  REQUIRE(ck.tensors.size() == 2);
  CHECK(ck.tensors[0].name == "a");
  CHECK(floats(ck.tensors[0]) == f);
  CHECK(floats(ck.tensors[1]) == std::vector<float>{2, 3});
  CHECK(ck.notes.empty());  // _metadata is not an entry
}

TEST_CASE("pth: Parameter wrappers, legacy Tensor + BUILD, a big-endian ZIP") {
  auto v2 = [](PickleWriter& p, int64_t off) {  // _rebuild_tensor_v2(storage '0', off, (2,), (1,), False, None)
    p.global("torch._utils", "_rebuild_tensor_v2").mark();
    p.mark().str("storage").global("torch", "FloatStorage").str("0").str("cpu").integer(4).tuple().persid();
    p.integer(off).ints({2}).ints({1}).newfalse().none().tuple().reduce();
  };
  PickleWriter p;
  p.proto().empty_dict().mark();
  p.str("param");  // _rebuild_parameter(tensor, True, OrderedDict())
  p.global("torch._utils", "_rebuild_parameter").mark();
  v2(p, 0);
  p.raw("\x88").global("collections", "OrderedDict").empty_tuple().reduce().tuple().reduce();
  p.str("typed");  // _rebuild_from_type_v2(_rebuild_tensor_v2, Parameter, (args), {})
  p.global("torch._tensor", "_rebuild_from_type_v2").mark().global("torch._utils", "_rebuild_tensor_v2");
  p.global("torch.nn.parameter", "Parameter").mark();
  p.mark().str("storage").global("torch", "FloatStorage").str("0").str("cpu").integer(4).tuple().persid();
  p.integer(2).ints({2}).ints({1}).newfalse().none().tuple().empty_dict().tuple().reduce();
  p.str("old");  // torch.FloatTensor() then BUILD (storage, offset, size, stride)
  p.global("torch", "FloatTensor").empty_tuple().reduce().mark();
  p.mark().str("storage").global("torch", "FloatStorage").str("0").str("cpu").integer(4).tuple().persid();
  p.integer(1).ints({2}).ints({1}).tuple().build();
  p.setitems().stop();
  std::vector<float> f{1, 2, 3, 4};
  for (bool big : {false, true}) {
    std::string rec = raw_bytes(f);
    if (big)
      for (size_t k = 0; k < rec.size(); k += 4) std::swap(rec[k], rec[k + 3]), std::swap(rec[k + 1], rec[k + 2]);
    std::vector<std::pair<std::string, std::string>> m{{"archive/data.pkl", p.b}, {"archive/data/0", rec}};
    if (big) m.push_back({"archive/byteorder", "big"});
    PthCheckpoint ck = read_bytes(make_zip(m));
    INFO(big);
    REQUIRE(ck.tensors.size() == 3);
    CHECK(floats(by_name(ck, "param")) == std::vector<float>{1, 2});
    CHECK(floats(by_name(ck, "typed")) == std::vector<float>{3, 4});
    CHECK(floats(by_name(ck, "old")) == std::vector<float>{2, 3});
    if (big) CHECK(by_name(ck, "param").direct() == nullptr);  // byte-swapped copy
    CHECK(by_name(ck, "old").load().to_vector() == std::vector<float>{2, 3});
  }
}

TEST_CASE("pth: deflated ZIP members read the same as stored ones") {
  std::string orig = read_file(kPth + "tiny_zip.pth");
  Bytes ob{reinterpret_cast<const uint8_t*>(orig.data()), orig.size(), nullptr};
  ZipReader z(ob, "tiny_zip");
  std::vector<std::pair<std::string, std::string>> members;
  for (const ZipEntry& e : z.entries()) {
    Bytes b = z.read(e);
    members.push_back({e.name, std::string(reinterpret_cast<const char*>(b.data), b.size)});
  }
  REQUIRE(members.size() >= 4);
  std::string deflated = make_zip(members, true);
  CHECK(deflated.size() < orig.size());
  PthCheckpoint a = read_bytes(orig), b = read_bytes(deflated);
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (size_t k = 0; k < a.tensors.size(); ++k) {
    CHECK(a.tensors[k].name == b.tensors[k].name);
    CHECK(bytes_of(a.tensors[k]) == bytes_of(b.tensors[k]));
  }
}

TEST_CASE("pth: architecture recognition for every known architecture") {
  for (const std::string& arch : known_archs()) {
    INFO(arch);
    NamedShapes full = expected_tensors(arch, 7), no_nbt;
    for (const auto& e : full)
      if (e.first.find("num_batches_tracked") == std::string::npos) no_nbt.push_back(e);
    for (const NamedShapes* t : {&full, &no_nbt}) {
      // pytorchcv_resnet50 has resnet50's tensors (only a stride differs): names and shapes say resnet50
      CHECK(detect_arch(*t) == (arch == "pytorchcv_resnet50" ? "resnet50" : arch));
      CHECK(detect_num_classes(arch, *t) == 7);
      CHECK(check_arch(arch, 7, *t) == "");
    }
  }
  // the counts of ../shared/docs/pth_format.md §8
  CHECK(expected_tensors("resnet18", 1000).size() == 122);
  CHECK(expected_tensors("vgg16_bn", 1000).size() == 97);
  int64_t params = 0;
  for (const auto& [n, s] : expected_tensors("resnet18", 1000))
    if (n.find("running_") == std::string::npos && n.find("num_batches") == std::string::npos) params += numel_of(s);
  CHECK(params == 11689512);
  params = 0;
  for (const auto& [n, s] : expected_tensors("vgg16_bn", 1000))
    if (n.find("running_") == std::string::npos && n.find("num_batches") == std::string::npos) params += numel_of(s);
  CHECK(params == 138365992);
  // unknown layouts and mismatches are named
  CHECK_THROWS_WITH_AS(detect_arch({{"conv.weight", {4, 3, 3, 3}}}), doctest::Contains("unknown architecture"), std::runtime_error);
  NamedShapes r18 = expected_tensors("resnet18", 10);
  r18[0].second = {64, 3, 3, 3};
  r18.push_back({"extra.weight", {1}});
  std::string diff = check_arch("resnet18", 10, r18);
  CHECK(diff.find("conv1.weight") != std::string::npos);
  CHECK(diff.find("extra.weight") != std::string::npos);
}
