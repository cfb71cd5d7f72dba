// resnet.cpp — torchvision ResNet (resnet.h). Registration follows torchvision's __init__ order
// (conv1, bn1, layer1..4, fc; per block conv1, bn1, conv2, bn2, [conv3, bn3], downsample), so
// state_dict() lists entries exactly as PyTorch does. Init as torchvision: convs kaiming_normal
// (fan_out, relu), BN 1/0, fc PyTorch's default Linear init (zero_init_residual = False); with
// torchvision_init false the convs keep the engine's default init (one random pass, not two).
#include "models/resnet.h"

#include <stdexcept>

namespace dfq::models {

namespace {
Conv2dOptions conv_opts(int stride, int pad) {
  Conv2dOptions o;
  o.stride = {stride, stride};
  o.padding = {pad, pad};
  return o;
}
}  // namespace

ResNet::ResNet(const std::string& arch_name, bool bottleneck, const std::vector<int>& layers, int classes, uint64_t seed,
               bool torchvision_init, bool stride_on_1x1)
    : Model(arch_name, classes) {
  if (layers.size() != 4) throw std::invalid_argument("dfq: ResNet needs 4 stage depths");
  if (classes < 1) throw std::invalid_argument("dfq: " + arch_name + ": num_classes must be positive");
  Generator gen(seed);
  const int expansion = bottleneck ? 4 : 1;
  // A conv (no bias, torchvision init) / BN registered under parent and tracked by full name.
  auto conv = [&](Container& parent, const std::string& prefix, const std::string& name, int in, int out, int k, int stride,
                  int pad) {
    auto c = parent.register_module(name, std::make_shared<nn::Conv2d>(in, out, k, conv_opts(stride, pad), false, gen));
    if (torchvision_init) kaiming_normal_fan_out(*c, gen);
    track(prefix + name, c.get());
    return c;
  };
  auto bn = [&](Container& parent, const std::string& prefix, const std::string& name, int ch) {
    auto b = parent.register_module(name, std::make_shared<nn::BatchNorm>(ch));
    track(prefix + name, b.get());
    return b;
  };

  conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(3, 64, 7, conv_opts(2, 3), false, gen));
  if (torchvision_init) kaiming_normal_fan_out(*conv1, gen);
  track("conv1", conv1.get());
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm>(64));
  track("bn1", bn1.get());
  stem_site_ = add_act_site("relu");

  int inplanes = 64;
  const int planes_of[4] = {64, 128, 256, 512};
  for (int L = 0; L < 4; ++L) {
    auto layer = std::make_shared<Container>();
    register_module("layer" + std::to_string(L + 1), layer);
    const int planes = planes_of[L];
    for (int B = 0; B < layers[L]; ++B) {
      const int stride = (B == 0 && L > 0) ? 2 : 1;
      const std::string prefix = "layer" + std::to_string(L + 1) + "." + std::to_string(B) + ".";
      auto blk = std::make_shared<Container>();  // names the children; the handles go in a ResBlock
      layer->register_module(std::to_string(B), blk);
      auto rb = std::make_shared<ResBlock>();
      if (!bottleneck) {
        rb->conv1 = conv(*blk, prefix, "conv1", inplanes, planes, 3, stride, 1);
        rb->bn1 = bn(*blk, prefix, "bn1", planes);
        rb->conv2 = conv(*blk, prefix, "conv2", planes, planes, 3, 1, 1);
        rb->bn2 = bn(*blk, prefix, "bn2", planes);
      } else {  // torchvision v1.5: width = planes (groups 1, base_width 64), stride on the 3x3
        const int s1 = stride_on_1x1 ? stride : 1, s3 = stride_on_1x1 ? 1 : stride;  // pytorchcv_resnet50: on the 1x1
        rb->conv1 = conv(*blk, prefix, "conv1", inplanes, planes, 1, s1, 0);
        rb->bn1 = bn(*blk, prefix, "bn1", planes);
        rb->conv2 = conv(*blk, prefix, "conv2", planes, planes, 3, s3, 1);
        rb->bn2 = bn(*blk, prefix, "bn2", planes);
        rb->conv3 = conv(*blk, prefix, "conv3", planes, planes * expansion, 1, 1, 0);
        rb->bn3 = bn(*blk, prefix, "bn3", planes * expansion);
      }
      if (stride != 1 || inplanes != planes * expansion) {
        auto ds = std::make_shared<Container>();
        blk->register_module("downsample", ds);
        rb->ds_conv = conv(*ds, prefix + "downsample.", "0", inplanes, planes * expansion, 1, stride, 0);
        rb->ds_bn = bn(*ds, prefix + "downsample.", "1", planes * expansion);
      }
      const int relu_calls = bottleneck ? 3 : 2;
      for (int i = 0; i < relu_calls; ++i) rb->sites.push_back(add_act_site(prefix + "relu:" + std::to_string(i)));
      blocks.push_back(rb);
      inplanes = planes * expansion;
    }
  }
  fc = std::make_shared<nn::Linear>(512 * expansion, classes, true, gen);  // PyTorch's default init
  register_module("fc", fc);
  track("fc", fc.get());
}

Tensor ResNet::block_forward(ResBlock& b, const Tensor& x) {
  Tensor out = act(b.sites[0], relu(b.bn1->forward(b.conv1->forward(x))));
  out = b.bn2->forward(b.conv2->forward(out));
  if (b.conv3) {
    out = act(b.sites[1], relu(out));
    out = b.bn3->forward(b.conv3->forward(out));
  }
  Tensor identity = b.ds_conv ? b.ds_bn->forward(b.ds_conv->forward(x)) : x;
  return act(b.sites.back(), relu(add(out, identity)));
}

Tensor ResNet::forward(const Tensor& x) {
  if (x.dim() != 4 || x.size(1) != 3) throw std::invalid_argument("dfq: " + arch + ": expected input (N,3,H,W), got " + x.str());
  Tensor h = act(stem_site_, relu(bn1->forward(conv1->forward(x))));
  h = max_pool2d(h, 3, 2, 1);
  for (auto& b : blocks) h = block_forward(*b, h);
  h = adaptive_avg_pool2d(h, 1, 1).flatten(1);
  return fc->forward(h);
}

std::shared_ptr<ResNet> resnet18(int n, uint64_t seed, bool ti) {
  return std::make_shared<ResNet>("resnet18", false, std::vector<int>{2, 2, 2, 2}, n, seed, ti);
}
std::shared_ptr<ResNet> resnet34(int n, uint64_t seed, bool ti) {
  return std::make_shared<ResNet>("resnet34", false, std::vector<int>{3, 4, 6, 3}, n, seed, ti);
}
std::shared_ptr<ResNet> resnet50(int n, uint64_t seed, bool ti) {
  return std::make_shared<ResNet>("resnet50", true, std::vector<int>{3, 4, 6, 3}, n, seed, ti);
}
std::shared_ptr<ResNet> pytorchcv_resnet50(int n, uint64_t seed, bool ti) {
  return std::make_shared<ResNet>("pytorchcv_resnet50", true, std::vector<int>{3, 4, 6, 3}, n, seed, ti, true);
}
std::shared_ptr<ResNet> resnet101(int n, uint64_t seed, bool ti) {
  return std::make_shared<ResNet>("resnet101", true, std::vector<int>{3, 4, 23, 3}, n, seed, ti);
}
std::shared_ptr<ResNet> resnet152(int n, uint64_t seed, bool ti) {
  return std::make_shared<ResNet>("resnet152", true, std::vector<int>{3, 8, 36, 3}, n, seed, ti);
}

}  // namespace dfq::models
