// convert_weights — reads a PyTorch checkpoint (.pth of any torch version: ZIP, legacy stream or
// TAR; no Python) and writes dfq's flat weight file (docs/weights_format.md).
//
//   convert_weights IN.pth [-o OUT] [--arch NAME] [--list] [--verbose]
//
// Without --arch the architecture is recognised from the tensor names and shapes; either way the
// checkpoint is checked against it by name and shape before anything is written. Any error: one
// message on stderr, exit status 1, and no output file (the writer renames a temporary at the end).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/io/checkpoint_arch.h"
#include "engine/io/flags.h"
#include "engine/io/json_out.h"
#include "engine/io/pth.h"
#include "engine/io/weights.h"

using namespace dfq;

namespace {
const char* kUsage =
    "usage: convert_weights IN.pth [-o OUT] [--arch NAME] [--list] [--verbose]\n"
    "  Converts a PyTorch checkpoint (torch.save of a state dict, any torch version) into dfq's\n"
    "  flat weight format.\n"
    "  -o OUT       output file (default: weights/<stem of IN>.bin; weights/ is created)\n"
    "  --arch NAME  resnet18|resnet34|resnet50|vgg11_bn|vgg13_bn|vgg16_bn|vgg19_bn (default: recognised)\n"
    "  --list       print the tensors (name, dtype, shape) and write nothing\n"
    "  --verbose    print notes, wall time and peak memory\n";

std::string thousands(int64_t v) {
  std::string s = std::to_string(v);
  for (int k = static_cast<int>(s.size()) - 3; k > 0; k -= 3) s.insert(static_cast<size_t>(k), ",");
  return s;
}
std::string mb(double bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f MB", bytes / 1e6);
  return b;
}
std::string dims(const Shape& s) {
  std::string r = "(";
  for (size_t k = 0; k < s.size(); ++k) r += (k ? ", " : "") + std::to_string(s[k]);
  return r + (s.size() == 1 ? ",)" : ")");
}
bool is_buffer(const std::string& n) {
  for (const char* t : {"running_mean", "running_var", "num_batches_tracked"}) {
    std::string tail = std::string(".") + t;
    if (n.size() >= tail.size() && n.compare(n.size() - tail.size(), tail.size(), tail) == 0) return true;
  }
  return false;
}
}  // namespace

int main(int argc, char** argv) {
  Flags flags(argc, argv, kUsage);
  std::string out = flags.str("-o", "");
  std::string arch = flags.str("--arch", "");
  bool list = flags.boolean("--list"), verbose = flags.boolean("--verbose");
  const std::vector<std::string> inputs = flags.positional();
  flags.done();
  if (inputs.size() != 1) flags.fail("expected exactly one input checkpoint");
  if (!out.empty())
    if (std::string p = output_file_problem(out); !p.empty()) flags.fail("-o " + out + ": " + p);
  const std::string in = inputs[0];
  auto t0 = std::chrono::steady_clock::now();
  try {
    PthCheckpoint ck = read_pth(in);
    for (const std::string& n : ck.notes) std::printf("note: %s\n", n.c_str());
    if (list) {
      for (const PthTensor& t : ck.tensors) {
        std::string dt = pickle::elem_name(t.src_type);
        if (t.converted()) dt += " -> float32";
        std::printf("%-48s %-20s %s\n", t.name.c_str(), dt.c_str(), dims(t.shape).c_str());
      }
      std::printf("%s: %s checkpoint, %zu tensors\n", in.c_str(), ck.container.c_str(), ck.tensors.size());
      return 0;
    }
    NamedShapes shapes;
    int64_t params = 0, buffers = 0;
    for (const PthTensor& t : ck.tensors) {
      shapes.push_back({t.name, t.shape});
      (is_buffer(t.name) ? buffers : params) += t.numel();
    }
    bool detected = arch.empty();
    if (detected) {
      arch = detect_arch(shapes);
    } else {
      bool known = false;
      std::string names;
      for (const auto& a : known_archs()) known |= a == arch, names += (names.empty() ? "" : ", ") + a;
      if (!known) throw std::runtime_error("unknown architecture '" + arch + "' (known: " + names + ")");
    }
    int num_classes = detect_num_classes(arch, shapes);
    std::string diff = check_arch(arch, num_classes, shapes);
    if (!diff.empty()) throw std::runtime_error(in + " does not match " + arch + ": " + diff);

    if (out.empty()) {
      std::filesystem::path p(in);
      std::filesystem::create_directories("weights");
      out = "weights/" + p.stem().string() + ".bin";
    }
    std::vector<WeightWriter::Meta> metas;
    for (const PthTensor& t : ck.tensors) metas.push_back({t.name, t.dtype, t.shape});
    WeightWriter w(out, arch, num_classes, std::move(metas));
    std::vector<uint8_t> buf;  // one converted tensor at a time
    uint64_t total = 0;
    for (const PthTensor& t : ck.tensors) {
      if (const void* p = t.direct()) {
        w.write(p, t.nbytes());
      } else {
        buf.resize(t.nbytes());
        t.read_into(buf.data());
        w.write(buf.data(), buf.size());
      }
      total += t.nbytes();
    }
    w.commit();
    std::printf("%s: %s checkpoint, %zu tensors\n", in.c_str(), ck.container.c_str(), ck.tensors.size());
    std::printf("architecture: %s (%s), %d classes\n", arch.c_str(), detected ? "recognised from names and shapes" : "given", num_classes);
    std::printf("parameters: %s (+ %s buffer elements)\n", thousands(params).c_str(), thousands(buffers).c_str());
    std::printf("wrote %s (%s of tensor data)\n", out.c_str(), mb(static_cast<double>(total)).c_str());
    if (verbose) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      struct rusage ru{};
      getrusage(RUSAGE_SELF, &ru);
      std::error_code ec;
      auto in_size = std::filesystem::file_size(in, ec);
      std::printf("time %.3f s, peak memory %s (ru_maxrss), input file %s\n", secs, mb(ru.ru_maxrss * 1024.0).c_str(),
                  mb(static_cast<double>(in_size)).c_str());
    }
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (msg.rfind("dfq: ", 0) == 0) msg = msg.substr(5);
    std::fprintf(stderr, "convert_weights: error: %s\n", msg.c_str());
    return 1;
  }
  return 0;
}
