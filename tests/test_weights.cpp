// test_weights.cpp — dfq's flat weight file (engine/io/weights.h): a bit-exact round trip of the
// golden fmnist checkpoint, rejection of damaged files, load_state_dict's all-in-one error message,
// and the convert_weights program (bad inputs exit non-zero and leave no output file behind).
// Every TEST_CASE is named "weights: ...".
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/io/pth.h"
#include "engine/io/weights.h"
#include "engine/nn/module.h"
#include "tests/check.h"
#include "tests/pth_builder.h"

using namespace dfq;
using namespace dfq::test;
namespace fs = std::filesystem;

namespace {
const std::string kPth = std::string(DFQ_GOLDEN_DIR) + "/pth/";

// A fresh directory per test case, removed at the end.
struct TempDir {
  fs::path p;
  explicit TempDir(const std::string& tag) {
    p = fs::temp_directory_path() / ("dfq_test_" + tag + "_" + std::to_string(getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
  }
  ~TempDir() { std::error_code ec; fs::remove_all(p, ec); }
  std::string operator/(const std::string& name) const { return (p / name).string(); }
};

std::string error_of_open(const std::string& path) {
  try {
    WeightFile::open(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

struct Tiny : nn::Module {
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm> bn;
  explicit Tiny(Generator& g) {
    conv = register_module("conv", std::make_shared<nn::Conv2d>(3, 4, 3, Conv2dOptions{}, false, g));
    bn = register_module("bn", std::make_shared<nn::BatchNorm>(4));
  }
};

int run(const std::string& args) {
  std::string cmd = std::string(DFQ_CONVERT_WEIGHTS) + " " + args + " >/dev/null 2>&1";
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}
}  // namespace

TEST_CASE("weights: fmnist checkpoint -> flat file -> tensors, bit-exact") {
  TempDir dir("roundtrip");
  PthCheckpoint ck = read_pth(kPth + "fmnist_resnet18.pth");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& t : ck.tensors) tensors.push_back({t.name, t.load()});
  const std::string path = dir / "fmnist.bin";
  write_weight_file(path, "resnet18", 10, tensors);
  CHECK_FALSE(fs::exists(path + ".tmp"));
  WeightFile f = WeightFile::open(path);
  CHECK(f.arch() == "resnet18");
  CHECK(f.num_classes() == 10);
  REQUIRE(f.entries().size() == 122);
  for (size_t k = 0; k < tensors.size(); ++k) {
    const std::string& name = tensors[k].first;  // not a structured binding: INFO's lambda can't capture one in clang 14
    const Tensor& t = tensors[k].second;
    const WeightFile::Entry& e = f.entries()[k];
    INFO(name);
    CHECK(e.name == name);
    CHECK(e.offset % 64 == 0);
    Tensor g = f.get(name);
    REQUIRE(g.shape() == t.shape());
    REQUIRE(g.dtype() == t.dtype());
    CHECK(std::memcmp(g.raw_data(), t.raw_data(), e.nbytes) == 0);
  }
  CHECK_THROWS_WITH_AS(f.get("no.such"), doctest::Contains("no tensor named 'no.such'"), std::runtime_error);
  // the mapping outlives the WeightFile through the borrowed tensor
  Tensor w = WeightFile::open(path).get("fc.bias");
  CHECK(w.to_vector() == tensors.back().second.to_vector());
  // writing into a missing directory fails and leaves nothing
  CHECK_THROWS_AS(write_weight_file(dir / "nope/x.bin", "resnet18", 10, tensors), std::runtime_error);
  CHECK_FALSE(fs::exists(dir / "nope"));
}

TEST_CASE("weights: damaged files are rejected with a reason") {
  TempDir dir("damaged");
  const std::string path = dir / "t.bin";
  write_weight_file(path, "tiny", 3,
                    {{"a", Tensor::from_vector({1, 2, 3}, {3})}, {"b", Tensor::from_vector_i64({7}, {})},
                     {"c", Tensor::from_vector_u8({1, 2}, {2})}});
  WeightFile ok = WeightFile::open(path);
  CHECK(ok.entries().size() == 3);
  CHECK(ok.get("b").to_vector_i64() == std::vector<int64_t>{7});
  CHECK(ok.get("c").to_vector_u8() == std::vector<uint8_t>{1, 2});
  const std::string good = read_file(path);
  auto damaged = [&](std::string bytes) {
    write_file(dir / "d.bin", bytes);
    return error_of_open(dir / "d.bin");
  };
  CHECK(damaged(good.substr(0, good.size() - 1)).find("truncated") != std::string::npos);
  CHECK(damaged(good.substr(0, 40)).find("too short") != std::string::npos);
  for (size_t n = 0; n < good.size(); n += 7) CHECK(damaged(good.substr(0, n)) != "");
  std::string c = good;
  c[0] = 'X';
  CHECK(damaged(c).find("bad magic") != std::string::npos);
  c = good;
  c[8] = 2;
  CHECK(damaged(c).find("version 2") != std::string::npos);
  c = good;
  c.back() ^= 1;
  CHECK(damaged(c).find("data checksum") != std::string::npos);
  c = good;
  c[70] ^= 1;
  CHECK(damaged(c).find("header checksum") != std::string::npos);
  CHECK(error_of_open(dir / "missing.bin").find("cannot open") != std::string::npos);
  for (size_t k = 0; k < good.size(); ++k) {  // no single flipped byte goes unnoticed
    c = good;
    c[k] ^= 0x10;
    CHECK(damaged(c) != "");
  }
}

TEST_CASE("weights: load_state_dict copies by name and names every problem at once") {
  Generator g(1);
  Tiny src(g), dst(g);
  for (auto& [n, t] : src.state_dict())
    if (t.dtype() == DType::F32) t.fill_(0.5f);
  TempDir dir("load");
  std::vector<std::pair<std::string, Tensor>> sd = src.state_dict();
  write_weight_file(dir / "ok.bin", "tiny", 0, sd);
  load_state_dict(dst, WeightFile::open(dir / "ok.bin"));
  for (auto& [n, t] : dst.state_dict())
    if (t.dtype() == DType::F32) CHECK(t.to_vector() == std::vector<float>(t.numel(), 0.5f));

  // without num_batches_tracked (2017 files): fine
  std::vector<std::pair<std::string, Tensor>> no_nbt;
  for (auto& e : sd)
    if (e.first != "bn.num_batches_tracked") no_nbt.push_back(e);
  write_weight_file(dir / "nonbt.bin", "tiny", 0, no_nbt);
  CHECK_NOTHROW(load_state_dict(dst, WeightFile::open(dir / "nonbt.bin")));

  // mis-shaped conv.weight, missing bn.bias and bn.running_var, unexpected fc.weight
  std::vector<std::pair<std::string, Tensor>> bad;
  for (auto& e : sd)
    if (e.first == "conv.weight") bad.push_back({e.first, Tensor::zeros({4, 3, 5, 5})});
    else if (e.first != "bn.bias" && e.first != "bn.running_var") bad.push_back(e);
  bad.push_back({"fc.weight", Tensor::zeros({2, 2})});
  write_weight_file(dir / "bad.bin", "tiny", 0, bad);
  WeightFile bf = WeightFile::open(dir / "bad.bin");
  std::string msg;
  try {
    load_state_dict(dst, bf);
  } catch (const std::runtime_error& e) {
    msg = e.what();
  }
  INFO(msg);
  CHECK(msg.find("1 mis-shaped: conv.weight (file f32[4, 3, 5, 5], model f32[4, 3, 3, 3])") != std::string::npos);
  CHECK(msg.find("2 missing: bn.bias, bn.running_var") != std::string::npos);
  CHECK(msg.find("1 unexpected: fc.weight") != std::string::npos);
  // nothing was copied
  CHECK(dst.bn->running_mean.to_vector() == std::vector<float>(4, 0.5f));
  // non-strict: missing / unexpected tolerated, a wrong shape still refused
  std::string msg2;
  try {
    load_state_dict(dst, bf, false);
  } catch (const std::runtime_error& e) {
    msg2 = e.what();
  }
  CHECK(msg2.find("conv.weight") != std::string::npos);
  CHECK(msg2.find("bn.bias") == std::string::npos);
}

TEST_CASE("weights: convert_weights converts fmnist_resnet18.pth, and on bad input exits non-zero leaving no file") {
  TempDir dir("cli");
  const std::string out = dir / "out.bin";
  auto no_output = [&] { return !fs::exists(out) && !fs::exists(out + ".tmp"); };
  // good: the golden model, recognised as resnet18 with 10 classes
  REQUIRE(run(kPth + "fmnist_resnet18.pth -o " + out) == 0);
  WeightFile f = WeightFile::open(out);
  CHECK(f.arch() == "resnet18");
  CHECK(f.num_classes() == 10);
  CHECK(f.entries().size() == 122);
  fs::remove(out);
  CHECK(run("--list " + kPth + "tiny_tar.pth") == 0);
  // bad: missing file, refused global, truncated file, not a checkpoint, unknown architecture,
  // a shape mismatch, an unknown --arch, a bad flag
  std::string evil = zip_checkpoint(PickleWriter().proto().global("os", "system").str("true").raw("\x85").reduce().stop().b, {});
  write_file(dir / "evil.pth", evil);
  write_file(dir / "trunc.pth", read_file(kPth + "fmnist_resnet18.pth").substr(0, 3000000));
  write_file(dir / "junk.pth", "not a checkpoint");
  for (const std::string& args :
       {std::string(dir / "missing.pth"), dir / "evil.pth", dir / "trunc.pth", dir / "junk.pth", kPth + "tiny_zip.pth",
        kPth + "fmnist_resnet18.pth --arch resnet50", kPth + "fmnist_resnet18.pth --arch alexnet",
        kPth + "fmnist_resnet18.pth --bogus"}) {
    INFO(args);
    CHECK(run(args + " -o " + out) != 0);
    CHECK(no_output());
  }
  // the message names the problem
  std::string cmd = std::string(DFQ_CONVERT_WEIGHTS) + " " + dir / "evil.pth" + " -o " + out + " 2>" + dir / "err.txt";
  CHECK(std::system(cmd.c_str()) != 0);
  CHECK(read_file(dir / "err.txt").find("refused global os.system") != std::string::npos);
}
