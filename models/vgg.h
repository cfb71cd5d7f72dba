// vgg.h — torchvision's VGG (vgg11/13/16/19, with or without BatchNorm), torchvision's names and
// state_dict order: features.N (per conv layer: Conv3x3 pad 1 [, BN], ReLU; 'M' = MaxPool 2/2,
// each module taking one index), avgpool adaptive 7x7, flatten, classifier.0 Linear(512*7*7, 4096),
// ReLU, Dropout, classifier.3 Linear(4096, 4096), ReLU, Dropout, classifier.6 Linear(4096, classes).
// Activation sites: the ReLU modules' names ("features.2", ..., "classifier.1", "classifier.4");
// the site comes before the dropout (the quantizer wraps the ReLU).
// Dropout (p = 0.5): identity in eval mode; in train mode it is applied (inverted dropout, kept
// values scaled by 2) with a mask drawn from dropout_gen — PyTorch's semantics, not its stream.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/model.h"

namespace dfq::models {

class VGG : public Model {
 public:
  // cfg: output channels per conv, -1 for 'M'.
  // torchvision_init false: the engine's default layer init only (see ResNet).
  VGG(const std::string& arch, const std::vector<int>& cfg, bool batch_norm, int num_classes, uint64_t seed = 0,
      bool torchvision_init = true);
  Tensor forward(const Tensor& x) override;

  struct Layer {  // one conv [+ BN] + ReLU, or a max-pool (conv null)
    std::shared_ptr<nn::Conv2d> conv;
    std::shared_ptr<nn::BatchNorm> bn;
    int site = -1;
  };
  std::vector<Layer> layers;
  std::shared_ptr<nn::Linear> fc0, fc3, fc6;  // classifier.0 / .3 / .6
  float dropout_p = 0.5f;
  Generator dropout_gen;

 private:
  Tensor dropout(const Tensor& x);
  int site_fc1_ = -1, site_fc4_ = -1;
};

std::shared_ptr<VGG> vgg11(int num_classes = 1000, uint64_t seed = 0, bool torchvision_init = true);
std::shared_ptr<VGG> vgg13(int num_classes = 1000, uint64_t seed = 0, bool torchvision_init = true);
std::shared_ptr<VGG> vgg16(int num_classes = 1000, uint64_t seed = 0, bool torchvision_init = true);
std::shared_ptr<VGG> vgg19(int num_classes = 1000, uint64_t seed = 0, bool torchvision_init = true);
std::shared_ptr<VGG> vgg11_bn(int num_classes = 1000, uint64_t seed = 0, bool torchvision_init = true);
std::shared_ptr<VGG> vgg13_bn(int num_classes = 1000, uint64_t seed = 0, bool torchvision_init = true);
std::shared_ptr<VGG> vgg16_bn(int num_classes = 1000, uint64_t seed = 0, bool torchvision_init = true);
std::shared_ptr<VGG> vgg19_bn(int num_classes = 1000, uint64_t seed = 0, bool torchvision_init = true);

}  // namespace dfq::models
