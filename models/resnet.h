// resnet.h — torchvision's ResNet (v1.5: in a Bottleneck the stride sits on the 3x3 conv), with
// torchvision's parameter names and state_dict order:
//   conv1 (7x7/2, pad 3, no bias), bn1, relu, maxpool (3/2, pad 1), layer1..layer4 (blocks "0",
//   "1", ...: conv1, bn1, conv2, bn2[, conv3, bn3], downsample.0 (1x1 conv, stride), downsample.1
//   (BN)), adaptive avgpool 1x1, flatten, fc.
// stride_on_1x1 (pytorchcv's resnet50, conv1_stride=True; arch "pytorchcv_resnet50"): a downsampling
// Bottleneck strides in its first 1x1 conv instead of the 3x3 (ResNet v1); same tensors.
// Activation sites: "relu" (stem), then per block "layerL.B.relu:i" for each ReLU call in forward
// order (BasicBlock 2, Bottleneck 3; the last one is the ReLU after the residual add).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/model.h"

namespace dfq::models {

// One BasicBlock or Bottleneck (conv3/bn3 null for a BasicBlock; ds_* null without downsample).
struct ResBlock {
  std::shared_ptr<nn::Conv2d> conv1, conv2, conv3, ds_conv;
  std::shared_ptr<nn::BatchNorm> bn1, bn2, bn3, ds_bn;
  std::vector<int> sites;  // one per ReLU call, in forward order
};

class ResNet : public Model {
 public:
  // bottleneck false: BasicBlock (expansion 1), true: Bottleneck (expansion 4).
  // torchvision_init false keeps the engine's default init (PyTorch's default layer init) and skips
  // the second random pass: for models whose weights are loaded next. stride_on_1x1: see above.
  ResNet(const std::string& arch, bool bottleneck, const std::vector<int>& layers, int num_classes, uint64_t seed = 0,
         bool torchvision_init = true, bool stride_on_1x1 = false);
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<nn::Conv2d> conv1;
  std::shared_ptr<nn::BatchNorm> bn1;
  std::vector<std::shared_ptr<ResBlock>> blocks;  // layer1.0, layer1.1, ..., layer4.N
  std::shared_ptr<nn::Linear> fc;

 private:
  Tensor block_forward(ResBlock& b, const Tensor& x);
  int stem_site_ = -1;
};

std::shared_ptr<ResNet> resnet18(int num_classes = 1000, uint64_t seed = 0, bool torchvision_init = true);
std::shared_ptr<ResNet> resnet34(int num_classes = 1000, uint64_t seed = 0, bool torchvision_init = true);
std::shared_ptr<ResNet> resnet50(int num_classes = 1000, uint64_t seed = 0, bool torchvision_init = true);
std::shared_ptr<ResNet> pytorchcv_resnet50(int num_classes = 1000, uint64_t seed = 0, bool torchvision_init = true);
std::shared_ptr<ResNet> resnet101(int num_classes = 1000, uint64_t seed = 0, bool torchvision_init = true);
std::shared_ptr<ResNet> resnet152(int num_classes = 1000, uint64_t seed = 0, bool torchvision_init = true);

}  // namespace dfq::models
