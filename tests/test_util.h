// test_util.h — small helpers shared by test files: a temporary directory, running one of the
// project's programs, and the real Fashion-MNIST ResNet18 loaded the user's way (.pth -> flat file).
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "engine/io/image.h"
#include "engine/io/npy.h"
#include "engine/io/pth.h"
#include "engine/io/weights.h"
#include "models/registry.h"
#include "tests/check.h"

namespace dfq::test {

struct TempDir {
  std::filesystem::path p;
  explicit TempDir(const std::string& tag) {
    p = std::filesystem::temp_directory_path() / ("dfq_test_" + tag + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(p);
    std::filesystem::create_directories(p);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(p, ec);
  }
  std::string operator/(const std::string& name) const { return (p / name).string(); }
};

inline std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs `program args`, stdout+stderr into `log` (or discarded); returns the exit status (128: killed).
inline int run_program(const std::string& program, const std::string& args, const std::string& log = "") {
  std::string cmd = program + " " + args + " >" + (log.empty() ? std::string("/dev/null") : log) + " 2>&1";
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

// The number after "key": in a JSON text (a flat key, e.g. a manifest's
// "fmnist_mobilenet_v2/test_top1_percent"); NaN when absent.
inline double json_number(const std::string& text, const std::string& key) {
  const std::string k = "\"" + key + "\":";
  const size_t at = text.find(k);
  if (at == std::string::npos) return std::nan("");
  return std::strtod(text.c_str() + at + k.size(), nullptr);
}

// A gradient against a golden .npy at the README's tolerance: rel_max * max|r| + 1e-3 |r|.
inline void check_grad_npy(const std::string& label, const Tensor& got, const std::string& file, double rel_max = 1e-4) {
  Tensor ref = load_npy(file);
  REQUIRE_MESSAGE(got.defined(), label << ": no gradient");
  REQUIRE(got.shape() == ref.shape());
  std::vector<float> r = ref.to_vector();
  float maxr = 0;
  for (float v : r) maxr = std::max(maxr, std::fabs(v));
  check_close(label, got.to_vector(), r, rel_max * maxr, 1e-3);
}

// The goldens' train-mode step: `model` (already in train mode) on the first 16 images of
// input_dir's input64.npy / labels64_int64.npy (x requires grad), its logits and mean CE loss
// checked against golden_dir's train16_logits.npy / train16_loss.npy (1e-4 + 1e-4|r|); the loss
// is returned un-backpropagated, with x and the labels y.
struct Train16 { Tensor x, y, loss; };
inline Train16 golden_train16(models::Model& model, const std::string& input_dir, const std::string& golden_dir) {
  Tensor x = load_npy(input_dir + "input64.npy").narrow(0, 16).clone().set_requires_grad(true);
  Tensor y = load_npy(input_dir + "labels64_int64.npy").narrow(0, 16).clone();
  Tensor logits = model.forward(x);
  Tensor loss = cross_entropy(logits, y);
  check_close("train16_logits", logits.to_vector(), load_npy(golden_dir + "train16_logits.npy").to_vector(), 1e-4, 1e-4);
  check_close("train16_loss", loss.to_vector(), load_npy(golden_dir + "train16_loss.npy").to_vector(), 1e-4, 1e-4);
  return {x, y, loss};
}

// A golden state_dict_order.txt: "t name shape" lines in order, the shape as "64x3x7x7" / "scalar"
// (the first goldens) or Python's "(64, 3, 7, 7)" / "(64,)" / "()" (the zoo's): every non-digit
// separates. Throws on a missing file or an index out of order.
inline std::vector<std::pair<std::string, Shape>> read_state_dict_order(const std::string& file) {
  std::ifstream in(file);
  if (!in.good()) throw std::runtime_error("cannot open " + file);
  std::vector<std::pair<std::string, Shape>> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::istringstream ls(line);
    size_t t;
    std::string name, rest;
    ls >> t >> name;
    std::getline(ls, rest);
    if (t != out.size()) throw std::runtime_error(file + ": entry " + std::to_string(t) + " out of order");
    for (char& c : rest)
      if (c < '0' || c > '9') c = ' ';
    std::istringstream dims(rest);
    Shape s;
    for (int64_t d; dims >> d;) s.push_back(d);
    out.push_back({name, s});
  }
  return out;
}

// ../shared/golden/pth/<pth_name> (a 10-class `arch` state dict) -> flat weight file at `path`.
inline void convert_golden_pth(const std::string& pth_name, const std::string& arch, const std::string& path) {
  PthCheckpoint ck = read_pth(std::string(DFQ_GOLDEN_DIR) + "/pth/" + pth_name);
  std::vector<std::pair<std::string, Tensor>> sd;
  for (const PthTensor& t : ck.tensors) sd.push_back({t.name, t.load()});
  write_weight_file(path, arch, 10, sd);
}
inline void convert_fmnist_resnet18(const std::string& path) { convert_golden_pth("fmnist_resnet18.pth", "resnet18", path); }

// A real golden model, loaded the user's way, on the CPU, in train mode (as create_model leaves it).
inline std::shared_ptr<models::Model> load_golden_model(const std::string& pth_name, const std::string& arch) {
  TempDir dir("golden_model");
  const std::string path = dir / (arch + ".bin");
  convert_golden_pth(pth_name, arch, path);
  auto model = models::create_model(arch, 10, 0, false);
  WeightFile f = WeightFile::open(path);
  load_state_dict(*model, f, true);
  return model;
}
inline std::shared_ptr<models::Model> load_fmnist_resnet18() { return load_golden_model("fmnist_resnet18.pth", "resnet18"); }

// A program's refusals of bad input: each case's args (+ outs) must exit with rc, print message, and
// leave none of the output paths (nor their .tmp) behind.
struct RefusalCase {
  std::string args, message;
  int rc;
};
inline void check_refusals(const std::string& program, const std::vector<RefusalCase>& cases, const std::string& outs,
                           const std::string& log_path, const std::vector<std::string>& outputs) {
  for (const RefusalCase& c : cases) {
    CAPTURE(c.args);
    const int rc = run_program(program, c.args + outs, log_path);
    const std::string log = read_text(log_path);
    CAPTURE(log);
    CHECK(rc == c.rc);
    CHECK(log.find(c.message) != std::string::npos);
    for (const std::string& o : outputs) {
      CHECK_FALSE(std::filesystem::exists(o));
      CHECK_FALSE(std::filesystem::exists(o + ".tmp"));
    }
  }
}

// resnet18 with random BN running statistics (and, with affine, random BN weight and bias), in eval
// mode: folding, the statistics losses and the quantizers see non-trivial numbers.
inline std::shared_ptr<models::Model> resnet18_random_bn(uint64_t seed, bool affine) {
  auto m = models::create_model("resnet18", 10, seed, true);
  Generator g(seed + 100);
  for (auto& [name, bn] : m->bn_layers()) {
    bn->running_mean.copy_(randn(bn->running_mean.shape(), g, Device::CPU, 0.f, 0.2f));
    bn->running_var.copy_(rand(bn->running_var.shape(), g, Device::CPU, 0.5f, 2.f));
    if (affine) {
      bn->weight.copy_(rand(bn->weight.shape(), g, Device::CPU, 0.5f, 1.5f));
      bn->bias.copy_(randn(bn->bias.shape(), g, Device::CPU, 0.f, 0.1f));
    }
  }
  m->eval();
  return m;
}

// A two-class image folder for train/evaluate --data: DIR/c0/a.png, DIR/c1/a.png, 12x12 solid images.
inline void write_two_class_folder(const std::filesystem::path& dir) {
  for (int cls = 0; cls < 2; ++cls) {
    std::filesystem::create_directories(dir / ("c" + std::to_string(cls)));
    ImageU8 img;
    img.h = img.w = 12;
    img.data.assign(12 * 12 * 3, uint8_t(60 + 80 * cls));
    save_png((dir / ("c" + std::to_string(cls)) / "a.png").string(), img);
  }
}

}  // namespace dfq::test
