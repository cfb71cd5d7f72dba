// pytorchcv_names.cpp — see pytorchcv_names.h. The layouts follow pytorchcv 0.0.73/0.0.74
// (pytorchcv/models/resnet.py, mobilenetv2.py, common/conv.py): a conv block "X" is X.conv (no
// bias) + X.bn (BatchNorm2d, eps 1e-5) [+ activation]; a stage's first unit strides (except
// stage1's); a unit gets identity_conv (ResNet) when its channels or stride change.
#include "engine/io/pytorchcv_names.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>

namespace dfq {

namespace {
const char* kBnLeaves[] = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"};

struct Builder {
  std::vector<PytorchcvEntry> out;
  void add(const std::string& n, const Shape& s, const std::string& dn, const Shape& ds) { out.push_back({n, s, dn, ds}); }
  // pytorchcv's conv block: P.conv.weight + P.bn.* -> dfq conv D.weight + BN B.*
  void conv_bn(const std::string& p, const Shape& w, const std::string& d, const std::string& b) {
    add(p + ".conv.weight", w, d + ".weight", w);
    bn(p + ".bn", w[0], b);
  }
  void bn(const std::string& p, int64_t c, const std::string& b) {
    for (const char* leaf : kBnLeaves) {
      Shape s = std::string(leaf) == "num_batches_tracked" ? Shape{} : Shape{c};
      add(p + "." + leaf, s, b + "." + leaf, s);
    }
  }
};

struct ResNetModel { const char* model; const char* arch; int units[4]; bool bottleneck; };
// resnet50 / resnet50b differ only where the stride sits (conv1_stride), not in their tensors.
constexpr ResNetModel kResNets[] = {{"resnet18", "resnet18", {2, 2, 2, 2}, false},
                                    {"resnet34", "resnet34", {3, 4, 6, 3}, false},
                                    {"resnet50", "pytorchcv_resnet50", {3, 4, 6, 3}, true},
                                    {"resnet50b", "resnet50", {3, 4, 6, 3}, true}};
// MobileNetV2 (get_mobilenetv2): output channels per unit, by stage, at width 1.
const std::vector<std::vector<int>> kMobileNetV2Stages = {
    {16}, {24, 24}, {32, 32, 32}, {64, 64, 64, 64, 96, 96, 96}, {160, 160, 160, 320}};

void resnet(Builder& b, const ResNetModel& r, int nc) {
  b.conv_bn("features.init_block.conv", {64, 3, 7, 7}, "conv1", "bn1");
  int64_t in = 64;
  for (int s = 0; s < 4; ++s) {
    const int64_t out = (int64_t{64} << s) * (r.bottleneck ? 4 : 1);
    for (int u = 0; u < r.units[s]; ++u) {
      const std::string p = "features.stage" + std::to_string(s + 1) + ".unit" + std::to_string(u + 1) + ".";
      const std::string d = "layer" + std::to_string(s + 1) + "." + std::to_string(u) + ".";
      if (r.bottleneck) {
        const int64_t mid = out / 4;
        b.conv_bn(p + "body.conv1", {mid, in, 1, 1}, d + "conv1", d + "bn1");
        b.conv_bn(p + "body.conv2", {mid, mid, 3, 3}, d + "conv2", d + "bn2");
        b.conv_bn(p + "body.conv3", {out, mid, 1, 1}, d + "conv3", d + "bn3");
      } else {
        b.conv_bn(p + "body.conv1", {out, in, 3, 3}, d + "conv1", d + "bn1");
        b.conv_bn(p + "body.conv2", {out, out, 3, 3}, d + "conv2", d + "bn2");
      }
      const bool stride = u == 0 && s > 0;
      if (in != out || stride) b.conv_bn(p + "identity_conv", {out, in, 1, 1}, d + "downsample.0", d + "downsample.1");
      in = out;
    }
  }
  b.add("output.weight", {nc, in}, "fc.weight", {nc, in});
  b.add("output.bias", {nc}, "fc.bias", {nc});
}

// mobilenetv2_w1: every unit, the first too (factor 1, 32 -> 32), has its 1x1 expansion conv. dfq
// names: features.0 stem, features.1..17 the units in torchvision's expanded InvertedResidual layout
// (conv.0 / conv.1 ConvBNReLU6, conv.2 project, conv.3 BN), features.18 the final 1x1,
// classifier.1 the bias-free classifier.
void mobilenetv2_w1(Builder& b, int64_t nc) {
  b.conv_bn("features.init_block", {32, 3, 3, 3}, "features.0.0", "features.0.1");
  int64_t in = 32;
  int idx = 1;
  for (size_t s = 0; s < kMobileNetV2Stages.size(); ++s)
    for (size_t u = 0; u < kMobileNetV2Stages[s].size(); ++u, ++idx) {
      const int64_t out = kMobileNetV2Stages[s][u];
      const bool first = s == 0 && u == 0;
      const int64_t mid = first ? in : in * 6;
      const std::string p = "features.stage" + std::to_string(s + 1) + ".unit" + std::to_string(u + 1) + ".";
      const std::string d = "features." + std::to_string(idx) + ".conv.";
      b.conv_bn(p + "conv1", {mid, in, 1, 1}, d + "0.0", d + "0.1");
      b.conv_bn(p + "conv2", {mid, 1, 3, 3}, d + "1.0", d + "1.1");
      b.conv_bn(p + "conv3", {out, mid, 1, 1}, d + "2", d + "3");
      in = out;
    }
  b.conv_bn("features.final_block", {1280, in, 1, 1}, "features.18.0", "features.18.1");
  b.add("output.weight", {nc, 1280, 1, 1}, "classifier.1.weight", {nc, 1280});
}

bool has_prefix(const std::set<std::string>& names, const std::string& p) {
  auto it = names.lower_bound(p);
  return it != names.end() && it->compare(0, p.size(), p) == 0;
}
std::string counts_str(const std::vector<int>& v) {
  std::string s;
  for (size_t k = 0; k < v.size(); ++k) s += (k ? "," : "") + std::to_string(v[k]);
  return s;
}
// Units per stage: stage1.., unit1.. while any name starts with their prefix.
std::vector<int> unit_counts(const std::set<std::string>& names) {
  std::vector<int> c;
  for (int s = 1; has_prefix(names, "features.stage" + std::to_string(s) + "."); ++s) {
    int u = 0;
    while (has_prefix(names, "features.stage" + std::to_string(s) + ".unit" + std::to_string(u + 1) + ".")) ++u;
    c.push_back(u);
  }
  return c;
}
// "stage3 has 5 units" for the first stage where got differs from want.
std::string first_difference(const std::vector<int>& got, const std::vector<int>& want) {
  if (got.size() != want.size())
    return std::to_string(got.size()) + " stage" + (got.size() == 1 ? "" : "s") + ", not " + std::to_string(want.size());
  for (size_t s = 0; s < got.size(); ++s)
    if (got[s] != want[s])
      return "stage" + std::to_string(s + 1) + " has " + std::to_string(got[s]) + " unit" + (got[s] == 1 ? "" : "s");
  return "";
}

// The pytorchcv model a dfq arch asks for, or "" when none.
std::string model_for_arch(const std::string& arch) {
  for (const std::string& m : pytorchcv_models())
    if (pytorchcv_dfq_arch(m) == arch) return m;
  return "";
}
}  // namespace

bool is_pytorchcv(const NamedShapes& tensors) {
  for (const auto& [n, s] : tensors)
    if (n.rfind("features.init_block.", 0) == 0) return true;
  return false;
}

const std::vector<std::string>& pytorchcv_models() {
  static const std::vector<std::string> v = {"resnet18", "resnet34", "resnet50", "resnet50b", "mobilenetv2_w1"};
  return v;
}

std::string pytorchcv_dfq_arch(const std::string& model) {
  for (const ResNetModel& r : kResNets)
    if (model == r.model) return r.arch;
  if (model == "mobilenetv2_w1") return "pytorchcv_mobilenetv2_w1";
  throw std::runtime_error("unknown pytorchcv model '" + model + "'");
}

std::vector<PytorchcvEntry> pytorchcv_state_dict(const std::string& model, int num_classes) {
  Builder b;
  for (const ResNetModel& r : kResNets)
    if (model == r.model) resnet(b, r, num_classes);
  if (model == "mobilenetv2_w1") mobilenetv2_w1(b, num_classes);
  if (b.out.empty()) throw std::runtime_error("unknown pytorchcv model '" + model + "'");
  return b.out;
}

PytorchcvMapping map_pytorchcv(const NamedShapes& tensors, const std::string& arch, const std::string& file) {
  std::set<std::string> names;
  std::map<std::string, Shape> shape_of;
  for (const auto& [n, s] : tensors) names.insert(n), shape_of[n] = s;
  if (!is_pytorchcv(tensors)) throw std::runtime_error("not a pytorchcv checkpoint (no features.init_block.*)");
  const std::vector<int> units = unit_counts(names);
  PytorchcvMapping m;
  std::vector<std::string> fits;  // pytorchcv models with this layout; the first is the default
  if (names.count("features.init_block.conv.conv.weight")) {  // ResNet: ResInitBlock's 7x7 conv block
    const bool bottleneck = names.count("features.stage1.unit1.body.conv3.conv.weight") > 0;
    const ResNetModel* best = nullptr;
    std::string known;
    for (const ResNetModel& r : kResNets) {
      if (r.bottleneck != bottleneck) continue;
      if (std::equal(units.begin(), units.end(), r.units, r.units + 4)) fits.push_back(r.model);
      if (!best) best = &r;
      known += (known.empty() ? "" : "/") + std::string(r.model);
    }
    if (fits.empty()) {  // name the first stage that differs from the nearest model (fewest differing stages)
      auto misfit = [&](const ResNetModel& r) {
        int d = units.size() == 4 ? 0 : 4;
        for (size_t s = 0; s < units.size() && s < 4; ++s) d += units[s] != r.units[s];
        return d;
      };
      for (const ResNetModel& r : kResNets)
        if (r.bottleneck == bottleneck && misfit(r) < misfit(*best)) best = &r;
      throw std::runtime_error("pytorchcv ResNet checkpoint with " + std::string(bottleneck ? "bottleneck" : "basic") +
                               " units [" + counts_str(units) + "] per stage, but " +
                               first_difference(units, std::vector<int>(best->units, best->units + 4)) + ": not " + known);
    }
  } else if (names.count("features.init_block.conv.weight")) {  // MobileNetV2: a plain conv block
    std::vector<int> want;
    for (const auto& st : kMobileNetV2Stages) want.push_back(static_cast<int>(st.size()));
    if (units != want)
      throw std::runtime_error("pytorchcv MobileNetV2 checkpoint with units [" + counts_str(units) + "] per stage, but " +
                               first_difference(units, want) + ": not mobilenetv2_w1 (" + counts_str(want) + ")");
    const Shape& stem = shape_of["features.init_block.conv.weight"];
    if (stem.size() == 4 && stem[0] != 32)
      throw std::runtime_error("pytorchcv MobileNetV2 checkpoint whose init block has " + std::to_string(stem[0]) +
                               " channels: a width other than 1 (mobilenetv2_w3d4 / wd2 / wd4?); only mobilenetv2_w1 "
                               "(32) maps onto a dfq network");
    if (!names.count("features.stage1.unit1.conv1.conv.weight"))
      throw std::runtime_error("pytorchcv MobileNetV2 checkpoint without an expansion conv in stage1.unit1 (mobilenetv2b_w1?): "
                               "no dfq network takes it (torchvision's mobilenet_v2 has that layout but a classifier "
                               "bias; pytorchcv_mobilenetv2_w1 has the expansion conv)");
    fits.push_back("mobilenetv2_w1");
  } else {
    throw std::runtime_error("pytorchcv checkpoint, but its init block (features.init_block.*) is neither ResNet's "
                             "(init_block.conv.conv.weight) nor MobileNetV2's (init_block.conv.weight)");
  }

  // Pick among the models with these tensors: --arch, else the file name, else the first.
  m.model = fits[0];
  if (!arch.empty()) {
    std::string want = model_for_arch(arch);
    if (std::find(fits.begin(), fits.end(), want) == fits.end()) {
      std::string archs;
      for (const std::string& f : fits) archs += (archs.empty() ? "" : " or ") + pytorchcv_dfq_arch(f);
      throw std::runtime_error("--arch " + arch + " does not fit this pytorchcv " + fits[0] + " checkpoint (dfq arch: " +
                               archs + ")");
    }
    m.model = want;
  } else if (fits.size() > 1) {
    std::string stem = std::filesystem::path(file).filename().string();
    stem = stem.substr(0, stem.find_first_of("-."));  // pytorchcv's "<model>-<error>-<sha1>.pth"
    if (std::find(fits.begin(), fits.end(), stem) != fits.end()) {
      m.model = stem;
      m.notes.push_back("pytorchcv " + stem + " (from the file name); its tensors are also those of pytorchcv's " +
                        (stem == fits[0] ? fits[1] : fits[0]));
    } else {
      m.notes.push_back("pytorchcv resnet50 and resnet50b have the same tensors; taken as resnet50 (stride on the "
                        "first 1x1 conv of a bottleneck, pytorchcv's default): give --arch resnet50 for resnet50b "
                        "(stride on the 3x3, as torchvision)");
    }
  }
  m.arch = pytorchcv_dfq_arch(m.model);

  auto out = shape_of.find("output.weight");
  if (out == shape_of.end())
    throw std::runtime_error("pytorchcv " + m.model + " checkpoint without output.weight: cannot tell the number of classes");
  const Shape& head = out->second;
  if (head.size() < 2 || head[0] <= 0 || head[0] > (1 << 30))
    throw std::runtime_error("pytorchcv " + m.model + " checkpoint: output.weight has shape " + shape_str(head) +
                             ", expected (classes, features" + (head.size() == 4 ? ", 1, 1)" : ")"));
  m.num_classes = static_cast<int>(head[0]);

  std::vector<PytorchcvEntry> want = pytorchcv_state_dict(m.model, m.num_classes);
  NamedShapes want_shapes;
  std::map<std::string, const PytorchcvEntry*> by_name;
  for (const PytorchcvEntry& e : want) want_shapes.push_back({e.name, e.shape}), by_name[e.name] = &e;
  std::string diff = diff_tensors(want_shapes, tensors, "pytorchcv " + m.model);
  if (!diff.empty()) throw std::runtime_error("does not match pytorchcv " + m.model + ": " + diff);
  for (const auto& [n, s] : tensors) m.tensors.push_back(*by_name.at(n));
  return m;
}

}  // namespace dfq
