// registry.cpp — the table of known architectures (registry.h).
#include "models/registry.h"

#include <functional>
#include <stdexcept>
#include <utility>

#include "models/mobilenet.h"
#include "models/resnet.h"
#include "models/vgg.h"

namespace dfq::models {

namespace {
using Factory = std::function<std::shared_ptr<Model>(int, uint64_t, bool)>;
const std::vector<std::pair<std::string, Factory>>& table() {
  static const std::vector<std::pair<std::string, Factory>> t = {
      {"resnet18", [](int n, uint64_t s, bool ti) { return resnet18(n, s, ti); }},
      {"resnet34", [](int n, uint64_t s, bool ti) { return resnet34(n, s, ti); }},
      {"resnet50", [](int n, uint64_t s, bool ti) { return resnet50(n, s, ti); }},
      {"pytorchcv_resnet50", [](int n, uint64_t s, bool ti) { return pytorchcv_resnet50(n, s, ti); }},
      {"resnet101", [](int n, uint64_t s, bool ti) { return resnet101(n, s, ti); }},
      {"resnet152", [](int n, uint64_t s, bool ti) { return resnet152(n, s, ti); }},
      {"vgg11", [](int n, uint64_t s, bool ti) { return vgg11(n, s, ti); }},
      {"vgg13", [](int n, uint64_t s, bool ti) { return vgg13(n, s, ti); }},
      {"vgg16", [](int n, uint64_t s, bool ti) { return vgg16(n, s, ti); }},
      {"vgg19", [](int n, uint64_t s, bool ti) { return vgg19(n, s, ti); }},
      {"vgg11_bn", [](int n, uint64_t s, bool ti) { return vgg11_bn(n, s, ti); }},
      {"vgg13_bn", [](int n, uint64_t s, bool ti) { return vgg13_bn(n, s, ti); }},
      {"vgg16_bn", [](int n, uint64_t s, bool ti) { return vgg16_bn(n, s, ti); }},
      {"vgg19_bn", [](int n, uint64_t s, bool ti) { return vgg19_bn(n, s, ti); }},
      {"mobilenet_v2", [](int n, uint64_t s, bool ti) { return mobilenet_v2(n, s, ti); }},
      {"pytorchcv_mobilenetv2_w1", [](int n, uint64_t s, bool ti) { return pytorchcv_mobilenetv2_w1(n, s, ti); }},
  };
  return t;
}
}  // namespace

std::shared_ptr<Model> create_model(const std::string& arch, int num_classes, uint64_t seed, bool torchvision_init) {
  for (const auto& [name, make] : table())
    if (name == arch) return make(num_classes, seed, torchvision_init);
  std::string known;
  for (const std::string& n : model_names()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("dfq: unknown model '" + arch + "'; known models: " + known);
}

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const auto& entry : table()) names.push_back(entry.first);
  return names;
}

}  // namespace dfq::models
