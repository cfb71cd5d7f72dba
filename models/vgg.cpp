// vgg.cpp — torchvision VGG (vgg.h). Registration order = torchvision's (features in index order,
// then classifier), so state_dict() matches PyTorch's. Init as torchvision: convs kaiming_normal
// (fan_out, relu) with bias 0, BN 1/0, Linear normal(0, 0.01) with bias 0.
#include "models/vgg.h"

#include <stdexcept>

namespace dfq::models {

namespace {
const std::vector<int> kCfgA = {64, -1, 128, -1, 256, 256, -1, 512, 512, -1, 512, 512, -1};
const std::vector<int> kCfgB = {64, 64, -1, 128, 128, -1, 256, 256, -1, 512, 512, -1, 512, 512, -1};
const std::vector<int> kCfgD = {64, 64, -1, 128, 128, -1, 256, 256, 256, -1, 512, 512, 512, -1, 512, 512, 512, -1};
const std::vector<int> kCfgE = {64,  64,  -1,  128, 128, -1,  256, 256, 256, 256, -1,
                                512, 512, 512, 512, -1,  512, 512, 512, 512, -1};
}  // namespace

VGG::VGG(const std::string& arch_name, const std::vector<int>& cfg, bool batch_norm, int classes, uint64_t seed, bool torchvision_init)
    : Model(arch_name, classes), dropout_gen(seed ^ 0x9e3779b97f4a7c15ull) {
  if (classes < 1) throw std::invalid_argument("dfq: " + arch_name + ": num_classes must be positive");
  Generator gen(seed);
  auto features = register_module("features", std::make_shared<Container>());
  int index = 0, in = 3;
  for (int v : cfg) {
    Layer l;
    if (v < 0) {  // MaxPool2d(2, 2): no parameters, one index
      ++index;
      layers.push_back(l);
      continue;
    }
    Conv2dOptions o;
    o.padding = {1, 1};
    std::string name = std::to_string(index++);
    l.conv = features->register_module(name, std::make_shared<nn::Conv2d>(in, v, 3, o, true, gen));
    if (torchvision_init) kaiming_normal_fan_out(*l.conv, gen);
    track("features." + name, l.conv.get());
    if (batch_norm) {
      name = std::to_string(index++);
      l.bn = features->register_module(name, std::make_shared<nn::BatchNorm>(v));
      track("features." + name, l.bn.get());
    }
    l.site = add_act_site("features." + std::to_string(index++));  // the ReLU
    layers.push_back(l);
    in = v;
  }
  auto classifier = register_module("classifier", std::make_shared<Container>());
  auto make_fc = [&](const std::string& name, int fin, int fout) {
    auto fc = classifier->register_module(name, std::make_shared<nn::Linear>(fin, fout, true, gen));
    if (torchvision_init) normal_init(*fc, 0.01f, gen);
    track("classifier." + name, fc.get());
    return fc;
  };
  fc0 = make_fc("0", in * 7 * 7, 4096);
  site_fc1_ = add_act_site("classifier.1");
  fc3 = make_fc("3", 4096, 4096);
  site_fc4_ = add_act_site("classifier.4");
  fc6 = make_fc("6", 4096, classes);
}

Tensor VGG::dropout(const Tensor& x) { return is_training() ? models::dropout(x, dropout_p, dropout_gen) : x; }

Tensor VGG::forward(const Tensor& x) {
  if (x.dim() != 4 || x.size(1) != 3) throw std::invalid_argument("dfq: " + arch + ": expected input (N,3,H,W), got " + x.str());
  Tensor h = x;
  for (Layer& l : layers) {
    if (!l.conv) {
      h = max_pool2d(h, 2, 2);
      continue;
    }
    h = l.conv->forward(h);
    if (l.bn) h = l.bn->forward(h);
    h = act(l.site, relu(h));
  }
  h = adaptive_avg_pool2d(h, 7, 7).flatten(1);
  h = dropout(act(site_fc1_, relu(fc0->forward(h))));
  h = dropout(act(site_fc4_, relu(fc3->forward(h))));
  return fc6->forward(h);
}

std::shared_ptr<VGG> vgg11(int n, uint64_t seed, bool ti) {
  return std::make_shared<VGG>("vgg11", kCfgA, false, n, seed, ti);
}
std::shared_ptr<VGG> vgg13(int n, uint64_t seed, bool ti) {
  return std::make_shared<VGG>("vgg13", kCfgB, false, n, seed, ti);
}
std::shared_ptr<VGG> vgg16(int n, uint64_t seed, bool ti) {
  return std::make_shared<VGG>("vgg16", kCfgD, false, n, seed, ti);
}
std::shared_ptr<VGG> vgg19(int n, uint64_t seed, bool ti) {
  return std::make_shared<VGG>("vgg19", kCfgE, false, n, seed, ti);
}
std::shared_ptr<VGG> vgg11_bn(int n, uint64_t seed, bool ti) {
  return std::make_shared<VGG>("vgg11_bn", kCfgA, true, n, seed, ti);
}
std::shared_ptr<VGG> vgg13_bn(int n, uint64_t seed, bool ti) {
  return std::make_shared<VGG>("vgg13_bn", kCfgB, true, n, seed, ti);
}
std::shared_ptr<VGG> vgg16_bn(int n, uint64_t seed, bool ti) {
  return std::make_shared<VGG>("vgg16_bn", kCfgD, true, n, seed, ti);
}
std::shared_ptr<VGG> vgg19_bn(int n, uint64_t seed, bool ti) {
  return std::make_shared<VGG>("vgg19_bn", kCfgE, true, n, seed, ti);
}

}  // namespace dfq::models
