// convert_weights — reads a PyTorch checkpoint (.pth of any torch version: ZIP, legacy stream or
// TAR; no Python) and writes dfq's flat weight file (docs/weights_format.md).
//
//   convert_weights IN.pth [-o OUT] [--arch NAME] [--list] [--verbose]
//
// Without --arch the architecture is recognised from the tensor names and shapes; either way the
// checkpoint is checked against it by name and shape before anything is written. pytorchcv
// checkpoints (engine/io/pytorchcv_names.h) are recognised by their names and renamed onto the
// equivalent dfq network while streaming. Any error: one message on stderr, exit status 1, and no
// output file (the writer renames a temporary at the end).
#include <sys/resource.h>

#include <algorithm>
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
#include "engine/io/pytorchcv_names.h"
#include "engine/io/weights.h"

using namespace dfq;

namespace {
const char* kUsage =
    "usage: convert_weights IN.pth [-o OUT] [--arch NAME] [--list] [--verbose]\n"
    "  Converts a PyTorch checkpoint (torch.save of a state dict, any torch version) into dfq's\n"
    "  flat weight format. torchvision state dicts keep their names; pytorchcv (osmr/pytorchcv)\n"
    "  state dicts are renamed onto the same dfq network:\n"
    "    pytorchcv resnet18, resnet34, resnet50b -> resnet18, resnet34, resnet50\n"
    "    pytorchcv resnet50 (stride on the 1x1)   -> pytorchcv_resnet50\n"
    "    pytorchcv mobilenetv2_w1                 -> pytorchcv_mobilenetv2_w1\n"
    "  pytorchcv's resnet50 and resnet50b have the same tensors: the file name (pytorchcv's\n"
    "  \"resnet50b-....pth\") or --arch decides, else resnet50.\n"
    "  -o OUT       output file (default: weights/<stem of IN>.bin; weights/ is created)\n"
    "  --arch NAME  resnet18|resnet34|resnet50|pytorchcv_resnet50|vgg11_bn|vgg13_bn|vgg16_bn|vgg19_bn|\n"
    "               mobilenet_v2|pytorchcv_mobilenetv2_w1 (default: recognised)\n"
    "  --list       print the tensors (name as stored, dtype, shape; for pytorchcv also the dfq name)\n"
    "               and write nothing\n"
    "  --verbose    print notes, the pytorchcv -> dfq mapping, wall time and peak memory\n";

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
    NamedShapes shapes;
    int64_t params = 0, buffers = 0;
    for (const PthTensor& t : ck.tensors) {
      shapes.push_back({t.name, t.shape});
      (is_buffer(t.name) ? buffers : params) += t.numel();
    }
    if (list) {
      // pytorchcv: the dfq name beside each stored one when the mapping fits, else why not
      std::vector<std::string> dfq_names(ck.tensors.size());
      std::string mapping;
      if (is_pytorchcv(shapes)) {
        try {
          PytorchcvMapping m = map_pytorchcv(shapes, arch, in);
          for (size_t k = 0; k < m.tensors.size(); ++k) {
            const PytorchcvEntry& e = m.tensors[k];
            dfq_names[k] = "-> " + e.dfq_name + (e.dfq_shape != e.shape ? " " + dims(e.dfq_shape) : "");
          }
          mapping = "pytorchcv " + m.model + " -> dfq " + m.arch + ", " + std::to_string(m.num_classes) + " classes";
        } catch (const std::exception& e) {
          mapping = std::string("pytorchcv names, but no dfq network: ") + e.what();
        }
      }
      int width = 48;
      for (const PthTensor& t : ck.tensors) width = std::max(width, static_cast<int>(std::min<size_t>(t.name.size(), 96)));
      for (size_t k = 0; k < ck.tensors.size(); ++k) {
        const PthTensor& t = ck.tensors[k];
        std::string dt = pickle::elem_name(t.src_type);
        if (t.converted()) dt += " -> float32";
        std::string line = dims(t.shape);
        if (!dfq_names[k].empty()) line += std::string(line.size() < 20 ? 20 - line.size() : 0, ' ') + " " + dfq_names[k];
        std::printf("%-*s %-20s %s\n", width, t.name.c_str(), dt.c_str(), line.c_str());
      }
      std::printf("%s: %s checkpoint, %zu tensors\n", in.c_str(), ck.container.c_str(), ck.tensors.size());
      if (!mapping.empty()) std::printf("%s\n", mapping.c_str());
      return 0;
    }
    const bool given = !arch.empty();
    std::string source;  // "pytorchcv resnet50" when renamed
    int num_classes = 0;
    if (is_pytorchcv(shapes)) {  // recognised, checked (--arch too) and renamed: names and shapes, not bytes
      PytorchcvMapping m;
      try {
        m = map_pytorchcv(shapes, arch, in);
      } catch (const std::exception& e) {
        throw std::runtime_error(in + ": " + e.what());
      }
      for (const std::string& n : m.notes) std::printf("note: %s\n", n.c_str());
      for (size_t k = 0; k < shapes.size(); ++k) shapes[k] = {m.tensors[k].dfq_name, m.tensors[k].dfq_shape};
      source = "pytorchcv " + m.model;
      arch = m.arch;
      num_classes = m.num_classes;
      if (verbose) std::printf("%s -> dfq %s (%zu tensors renamed)\n", source.c_str(), arch.c_str(), shapes.size());
    } else {
      if (!given) {
        arch = detect_arch(shapes);
      } else if (std::find(known_archs().begin(), known_archs().end(), arch) == known_archs().end()) {
        std::string names;
        for (const auto& a : known_archs()) names += (names.empty() ? "" : ", ") + a;
        throw std::runtime_error("unknown architecture '" + arch + "' (known: " + names + ")");
      }
      num_classes = detect_num_classes(arch, shapes);
    }
    // the (renamed) tensors against dfq's layout of arch; a pytorchcv network that checkpoint_arch
    // does not list was checked by map_pytorchcv alone
    if (std::find(known_archs().begin(), known_archs().end(), arch) != known_archs().end()) {
      std::string diff = check_arch(arch, num_classes, shapes);
      if (!diff.empty()) throw std::runtime_error(in + " does not match " + arch + ": " + diff);
    }

    if (out.empty()) {
      std::filesystem::path p(in);
      std::filesystem::create_directories("weights");
      out = "weights/" + p.stem().string() + ".bin";
    }
    std::vector<WeightWriter::Meta> metas;
    for (size_t k = 0; k < ck.tensors.size(); ++k) metas.push_back({shapes[k].first, ck.tensors[k].dtype, shapes[k].second});
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
    std::printf("architecture: %s (%s), %d classes\n", arch.c_str(),
                !source.empty() ? (source + ", renamed").c_str() : given ? "given" : "recognised from names and shapes", num_classes);
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
