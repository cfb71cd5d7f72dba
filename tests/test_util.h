// test_util.h — small helpers shared by test files: a temporary directory, running one of the
// project's programs, and the real Fashion-MNIST ResNet18 loaded the user's way (.pth -> flat file).
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "engine/io/pth.h"
#include "engine/io/weights.h"
#include "models/registry.h"

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

// ../shared/golden/pth/fmnist_resnet18.pth -> flat weight file at `path`.
inline void convert_fmnist_resnet18(const std::string& path) {
  PthCheckpoint ck = read_pth(std::string(DFQ_GOLDEN_DIR) + "/pth/fmnist_resnet18.pth");
  std::vector<std::pair<std::string, Tensor>> sd;
  for (const PthTensor& t : ck.tensors) sd.push_back({t.name, t.load()});
  write_weight_file(path, "resnet18", 10, sd);
}

// The real model, loaded the user's way, on the CPU, in train mode (as create_model leaves it).
inline std::shared_ptr<models::Model> load_fmnist_resnet18() {
  TempDir dir("fmnist_model");
  const std::string path = dir / "fmnist_resnet18.bin";
  convert_fmnist_resnet18(path);
  auto model = models::create_model("resnet18", 10, 0, false);
  WeightFile f = WeightFile::open(path);
  load_state_dict(*model, f, true);
  return model;
}

}  // namespace dfq::test
