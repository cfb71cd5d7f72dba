// checkpoint_arch.cpp — see checkpoint_arch.h. The layouts follow torchvision's resnet.py / vgg.py.
// detect_arch returns the first entry of kResNets that fits, so resnet50 before pytorchcv_resnet50.
#include "engine/io/checkpoint_arch.h"

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

namespace dfq {

namespace {
struct ResNetSpec { const char* name; int blocks[4]; bool bottleneck; };
constexpr ResNetSpec kResNets[] = {{"resnet18", {2, 2, 2, 2}, false}, {"resnet34", {3, 4, 6, 3}, false},
                                   {"resnet50", {3, 4, 6, 3}, true},
                                   // pytorchcv's resnet50 (stride on the first 1x1): resnet50's tensors
                                   {"pytorchcv_resnet50", {3, 4, 6, 3}, true}};
// VGG configurations: channels, 0 = max pool
const std::map<std::string, std::vector<int>> kVggs = {
    {"vgg11_bn", {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0}},
    {"vgg13_bn", {64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0}},
    {"vgg16_bn", {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0}},
    {"vgg19_bn", {64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0}}};

void bn(NamedShapes& out, const std::string& p, int64_t c) {
  for (const char* s : {"weight", "bias", "running_mean", "running_var"}) out.push_back({p + "." + s, {c}});
  out.push_back({p + ".num_batches_tracked", {}});
}
bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
// torchvision's mobilenet_v2 (models/mobilenet.h); pytorchcv: its mobilenetv2_w1 under dfq's names
// (a factor-1 expansion conv in features.1, classifier.1 without bias).
void mobilenet_v2_tensors(NamedShapes& out, bool pytorchcv, int64_t nc) {
  auto unit = [&](const std::string& conv, const std::string& bnp, int64_t in, int64_t o, int64_t k, bool dw) {
    out.push_back({conv + ".weight", {o, dw ? 1 : in, k, k}});
    bn(out, bnp, o);
  };
  unit("features.0.0", "features.0.1", 3, 32, 3, false);
  const int settings[7][3] = {{1, 16, 1}, {6, 24, 2}, {6, 32, 3}, {6, 64, 4}, {6, 96, 3}, {6, 160, 3}, {6, 320, 1}};
  int64_t in = 32;
  int idx = 1;
  for (const auto& st : settings)
    for (int i = 0; i < st[2]; ++i, ++idx) {
      const std::string p = "features." + std::to_string(idx) + ".conv.";
      const int64_t hidden = in * st[0];
      int j = 0;
      if (st[0] != 1 || pytorchcv) {
        unit(p + "0.0", p + "0.1", in, hidden, 1, false);
        j = 1;
      }
      unit(p + std::to_string(j) + ".0", p + std::to_string(j) + ".1", hidden, hidden, 3, true);
      unit(p + std::to_string(j + 1), p + std::to_string(j + 2), hidden, st[1], 1, false);
      in = st[1];
    }
  unit("features.18.0", "features.18.1", in, 1280, 1, false);
  out.push_back({"classifier.1.weight", {nc, 1280}});
  if (!pytorchcv) out.push_back({"classifier.1.bias", {nc}});
}
std::string first_names(const NamedShapes& t) {
  std::string s;
  for (size_t k = 0; k < t.size() && k < 4; ++k) s += (k ? ", " : "") + t[k].first;
  return s + (t.size() > 4 ? ", ..." : "");
}
}  // namespace

const std::vector<std::string>& known_archs() {
  static const std::vector<std::string> v = {"resnet18", "resnet34", "resnet50", "pytorchcv_resnet50", "vgg11_bn", "vgg13_bn",
                                             "vgg16_bn", "vgg19_bn", "mobilenet_v2", "pytorchcv_mobilenetv2_w1"};
  return v;
}

std::string detect_arch(const NamedShapes& tensors) {
  std::map<std::string, Shape> by;
  for (const auto& [n, s] : tensors) by[n] = s;
  auto has = [&](const std::string& n) { return by.count(n) > 0; };
  std::string known;
  for (const auto& a : known_archs()) known += (known.empty() ? "" : ", ") + a;
  if (has("conv1.weight") && has("fc.weight") && has("layer1.0.conv1.weight")) {
    int blocks[4];
    std::string counts;
    for (int l = 0; l < 4; ++l) {
      blocks[l] = 0;
      while (has("layer" + std::to_string(l + 1) + "." + std::to_string(blocks[l]) + ".conv1.weight")) ++blocks[l];
      counts += (l ? "," : "") + std::to_string(blocks[l]);
    }
    bool bottleneck = has("layer1.0.conv3.weight");
    for (const ResNetSpec& r : kResNets)
      if (r.bottleneck == bottleneck && std::equal(blocks, blocks + 4, r.blocks)) return r.name;
    throw std::runtime_error("unknown architecture: a ResNet with " + std::string(bottleneck ? "bottleneck" : "basic") +
                             " blocks [" + counts + "] per stage is none of " + known);
  }
  if (has("features.0.0.weight") && has("features.18.0.weight") && has("classifier.1.weight"))
    return has("classifier.1.bias") ? "mobilenet_v2" : "pytorchcv_mobilenetv2_w1";
  if (has("features.0.weight") && has("classifier.6.weight")) {
    int convs = 0;
    bool batch_norm = false;
    for (const auto& [n, s] : tensors) {
      if (n.rfind("features.", 0) != 0) continue;
      if (ends_with(n, ".weight") && s.size() == 4) ++convs;
      if (ends_with(n, ".running_mean")) batch_norm = true;
    }
    for (const auto& [name, cfg] : kVggs) {
      int n = 0;
      for (int c : cfg) n += c != 0;
      if (n == convs && batch_norm) return name;
    }
    throw std::runtime_error("unknown architecture: a VGG with " + std::to_string(convs) + " convolutions" +
                             (batch_norm ? "" : " and no batch norm") + " is none of " + known);
  }
  throw std::runtime_error("unknown architecture: the tensor names (" + first_names(tensors) + ") fit none of " + known +
                           " (give --arch NAME if it is one of these)");
}

int detect_num_classes(const std::string& arch, const NamedShapes& tensors) {
  std::string head = arch.rfind("vgg", 0) == 0 ? "classifier.6.weight"
                     : arch.find("mobilenet") != std::string::npos ? "classifier.1.weight"
                                                                   : "fc.weight";
  for (const auto& [n, s] : tensors)
    if (n == head) {
      if (s.size() != 2 || s[0] <= 0 || s[0] > (1 << 30)) throw std::runtime_error(head + " has shape " + shape_str(s) + ", expected (classes, features)");
      return static_cast<int>(s[0]);
    }
  throw std::runtime_error("no " + head + " in the checkpoint: cannot tell the number of classes of " + arch);
}

NamedShapes expected_tensors(const std::string& arch, int nc) {
  NamedShapes out;
  for (const ResNetSpec& r : kResNets) {
    if (arch != r.name) continue;
    const int64_t exp = r.bottleneck ? 4 : 1;
    out.push_back({"conv1.weight", {64, 3, 7, 7}});
    bn(out, "bn1", 64);
    int64_t in = 64;
    for (int l = 0; l < 4; ++l) {
      int64_t planes = int64_t{64} << l;
      for (int b = 0; b < r.blocks[l]; ++b) {
        std::string p = "layer" + std::to_string(l + 1) + "." + std::to_string(b) + ".";
        int stride = (b == 0 && l > 0) ? 2 : 1;
        if (r.bottleneck) {
          out.push_back({p + "conv1.weight", {planes, in, 1, 1}});
          bn(out, p + "bn1", planes);
          out.push_back({p + "conv2.weight", {planes, planes, 3, 3}});
          bn(out, p + "bn2", planes);
          out.push_back({p + "conv3.weight", {planes * exp, planes, 1, 1}});
          bn(out, p + "bn3", planes * exp);
        } else {
          out.push_back({p + "conv1.weight", {planes, in, 3, 3}});
          bn(out, p + "bn1", planes);
          out.push_back({p + "conv2.weight", {planes, planes, 3, 3}});
          bn(out, p + "bn2", planes);
        }
        if (b == 0 && (stride != 1 || in != planes * exp)) {
          out.push_back({p + "downsample.0.weight", {planes * exp, in, 1, 1}});
          bn(out, p + "downsample.1", planes * exp);
        }
        in = planes * exp;
      }
    }
    out.push_back({"fc.weight", {nc, 512 * exp}});
    out.push_back({"fc.bias", {nc}});
    return out;
  }
  if (arch == "mobilenet_v2" || arch == "pytorchcv_mobilenetv2_w1") {
    mobilenet_v2_tensors(out, arch != "mobilenet_v2", nc);
    return out;
  }
  auto it = kVggs.find(arch);
  if (it == kVggs.end()) throw std::runtime_error("unknown architecture '" + arch + "'");
  int idx = 0;
  int64_t in = 3;
  for (int c : it->second) {
    if (c == 0) {
      idx += 1;
      continue;
    }
    out.push_back({"features." + std::to_string(idx) + ".weight", {c, in, 3, 3}});
    out.push_back({"features." + std::to_string(idx) + ".bias", {c}});
    bn(out, "features." + std::to_string(idx + 1), c);
    idx += 3;
    in = c;
  }
  out.push_back({"classifier.0.weight", {4096, 512 * 7 * 7}});
  out.push_back({"classifier.0.bias", {4096}});
  out.push_back({"classifier.3.weight", {4096, 4096}});
  out.push_back({"classifier.3.bias", {4096}});
  out.push_back({"classifier.6.weight", {nc, 4096}});
  out.push_back({"classifier.6.bias", {nc}});
  return out;
}

std::string diff_tensors(const NamedShapes& want, const NamedShapes& tensors, const std::string& owner) {
  std::map<std::string, Shape> have(tensors.begin(), tensors.end());
  std::set<std::string> wanted;
  std::vector<std::string> missing, unexpected, mismatched;
  for (const auto& [n, s] : want) {
    wanted.insert(n);
    auto it = have.find(n);
    if (it == have.end()) {
      if (!ends_with(n, "num_batches_tracked")) missing.push_back(n);
    } else if (it->second != s) {
      mismatched.push_back(n + " " + shape_str(it->second) + " (" + owner + " has " + shape_str(s) + ")");
    }
  }
  for (const auto& [n, s] : tensors)
    if (!wanted.count(n)) unexpected.push_back(n);
  std::string msg;
  auto list = [&](const char* what, const std::vector<std::string>& v) {
    if (v.empty()) return;
    msg += (msg.empty() ? "" : "; ") + std::to_string(v.size()) + " " + what + ":";
    for (size_t k = 0; k < v.size() && k < 12; ++k) msg += (k ? ", " : " ") + v[k];
    if (v.size() > 12) msg += ", ... (" + std::to_string(v.size() - 12) + " more)";
  };
  list("mis-shaped", mismatched);
  list("missing", missing);
  list("unexpected", unexpected);
  return msg;
}

std::string check_arch(const std::string& arch, int nc, const NamedShapes& tensors) {
  return diff_tensors(expected_tensors(arch, nc), tensors, arch);
}

}  // namespace dfq
