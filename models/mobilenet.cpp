// mobilenet.cpp — MobileNetV2 (mobilenet.h). Registration follows torchvision's __init__ order
// (features.0 .. features.18 with conv before BN in each, then classifier), so state_dict() lists
// entries exactly as PyTorch does.
#include "models/mobilenet.h"

#include <stdexcept>

namespace dfq::models {

MobileNetV2::MobileNetV2(const std::string& arch_name, bool pytorchcv, int classes, uint64_t seed, bool torchvision_init)
    : Model(arch_name, classes), dropout_gen(seed ^ 0x9e3779b97f4a7c15ull) {
  if (classes < 1) throw std::invalid_argument("dfq: " + arch_name + ": num_classes must be positive");
  Generator gen(seed);
  // Conv (no bias) + BN under parent as children conv_name / bn_name; a ReLU6 site when act_name is set.
  auto unit = [&](Container& parent, const std::string& prefix, const std::string& conv_name, const std::string& bn_name,
                  const std::string& act_name, int in, int out, int k, int stride, int groups) {
    Conv2dOptions o;
    o.stride = {stride, stride};
    o.padding = {(k - 1) / 2, (k - 1) / 2};
    o.groups = groups;
    ConvUnit u;
    u.conv = std::make_shared<nn::Conv2d>(in, out, k, o, false, gen);
    if (torchvision_init) kaiming_normal_fan_out(*u.conv, gen);
    u.bn = std::make_shared<nn::BatchNorm>(out);
    // torchvision's Conv2dNormActivation is a Sequential (0 conv, 1 BN, 2 ReLU6); the projection's
    // conv and BN are direct children of the block's "conv" Sequential.
    if (!act_name.empty()) {
      auto seq = std::make_shared<Container>();
      parent.register_module(prefix, seq);
      seq->register_module(conv_name, u.conv);
      seq->register_module(bn_name, u.bn);
    } else {
      parent.register_module(conv_name, u.conv);
      parent.register_module(bn_name, u.bn);
    }
    return u;
  };
  auto features = std::make_shared<Container>();
  register_module("features", features);
  // Full names of a unit whose Sequential is `seq_path` (e.g. "features.2.conv.0").
  auto tracked = [&](ConvUnit u, const std::string& conv_full, const std::string& bn_full, const std::string& site_full) {
    track(conv_full, u.conv.get());
    track(bn_full, u.bn.get());
    if (!site_full.empty()) u.site = add_act_site(site_full);
    return u;
  };

  stem = tracked(unit(*features, "0", "0", "1", "relu6", 3, 32, 3, 2, 1), "features.0.0", "features.0.1", "features.0.2");
  const int settings[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                              {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  int in = 32, index = 1;
  for (const auto& st : settings) {
    const int t = st[0], out = st[1], n = st[2], s = st[3];
    for (int i = 0; i < n; ++i, ++index) {
      const int stride = i == 0 ? s : 1;
      const int hidden = in * t;
      const std::string bp = "features." + std::to_string(index) + ".conv.";
      auto blk = std::make_shared<Container>();
      features->register_module(std::to_string(index), blk);
      auto conv = std::make_shared<Container>();
      blk->register_module("conv", conv);
      Block b;
      b.residual = stride == 1 && in == out;
      const bool expand = t != 1 || pytorchcv;  // pytorchcv keeps a factor-1 expansion conv
      int j = 0;
      if (expand) {
        b.units.push_back(tracked(unit(*conv, "0", "0", "1", "relu6", in, hidden, 1, 1, 1), bp + "0.0", bp + "0.1", bp + "0.2"));
        ++j;
      }
      const std::string d = std::to_string(j);
      b.units.push_back(tracked(unit(*conv, d, "0", "1", "relu6", hidden, hidden, 3, stride, hidden), bp + d + ".0",
                                bp + d + ".1", bp + d + ".2"));
      const std::string pc = std::to_string(j + 1), pb = std::to_string(j + 2);
      b.units.push_back(tracked(unit(*conv, "", pc, pb, "", hidden, out, 1, 1, 1), bp + pc, bp + pb, ""));
      blocks.push_back(std::move(b));
      in = out;
    }
  }
  head = tracked(unit(*features, "18", "0", "1", "relu6", in, 1280, 1, 1, 1), "features.18.0", "features.18.1", "features.18.2");
  auto classifier = std::make_shared<Container>();
  register_module("classifier", classifier);
  fc = std::make_shared<nn::Linear>(1280, classes, !pytorchcv, gen);
  if (torchvision_init) normal_init(*fc, 0.01f, gen);
  classifier->register_module("1", fc);
  track("classifier.1", fc.get());
  if (pytorchcv) dropout_p = 0.f;
}

std::string MobileNetV2::float_activations_note() const {
  int adds = 0;
  for (const Block& b : blocks) adds += b.residual ? 1 : 0;
  return std::to_string(blocks.size()) + " linear-bottleneck outputs (no ReLU6 after the projection) and " +
         std::to_string(adds) + " residual adds, as the official code (QuantAct only after ReLU / ReLU6)";
}

Tensor MobileNetV2::unit_forward(const ConvUnit& u, const Tensor& x) {
  Tensor h = u.bn->forward(u.conv->forward(x));
  return u.site >= 0 ? act(u.site, relu6(h)) : h;
}

Tensor MobileNetV2::forward(const Tensor& x) {
  if (x.dim() != 4 || x.size(1) != 3) throw std::invalid_argument("dfq: " + arch + ": expected input (N,3,H,W), got " + x.str());
  Tensor h = unit_forward(stem, x);
  for (const Block& b : blocks) {
    Tensor y = h;
    for (const ConvUnit& u : b.units) y = unit_forward(u, y);
    h = b.residual ? add(h, y) : y;
  }
  h = unit_forward(head, h);
  h = adaptive_avg_pool2d(h, 1, 1).flatten(1);
  if (is_training()) h = dropout(h, dropout_p, dropout_gen);
  return fc->forward(h);
}

std::shared_ptr<MobileNetV2> mobilenet_v2(int n, uint64_t seed, bool ti) {
  return std::make_shared<MobileNetV2>("mobilenet_v2", false, n, seed, ti);
}
std::shared_ptr<MobileNetV2> pytorchcv_mobilenetv2_w1(int n, uint64_t seed, bool ti) {
  return std::make_shared<MobileNetV2>("pytorchcv_mobilenetv2_w1", true, n, seed, ti);
}

}  // namespace dfq::models
