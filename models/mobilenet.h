// mobilenet.h — torchvision's MobileNetV2 (width 1.0) and pytorchcv's mobilenetv2_w1, torchvision's
// names and state_dict order:
//   features.0: Conv3x3(3 -> 32, stride 2) + BN + ReLU6 (Conv2dNormActivation: .0 conv, .1 BN, .2 ReLU6)
//   features.1..17: inverted residual blocks (t, c, n, s) = (1,16,1,1) (6,24,2,2) (6,32,3,2)
//     (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1); block "conv": [expand 1x1 + BN + ReLU6 (conv.0)
//     when t != 1], depthwise 3x3 (stride s on a stage's first block) + BN + ReLU6, project 1x1 conv,
//     BN (linear bottleneck: no activation); residual add when stride 1 and in == out channels.
//   features.18: Conv1x1(320 -> 1280) + BN + ReLU6
//   adaptive average pool to 1x1, flatten, classifier.0 Dropout(0.2), classifier.1 Linear(1280, classes).
// Activation sites: every ReLU6 module, by its name ("features.0.2", "features.1.conv.0.2",
// "features.2.conv.0.2", "features.2.conv.1.2", ..., "features.18.2"): 52 convs, 1 linear,
// 35 sites. The quantizer wraps each ReLU6 (official ZeroQ / GDFQ: QuantAct after ReLU and ReLU6);
// the projection outputs and the residual adds stay float, as in the official code.
// Dropout: identity in eval mode; in train mode inverted dropout from dropout_gen (as VGG).
//
// The pytorchcv variant (arch "pytorchcv_mobilenetv2_w1", pytorchcv's mobilenetv2_w1 under
// torchvision-style names): its first block keeps the 1x1 expansion conv at factor 1 (32 -> 32), so
// features.1 has the expanded layout (conv.0 expand, conv.1 depthwise, conv.2 project, conv.3 BN)
// like every other block; its classifier is a 1x1 conv without bias after the pool, held here as
// classifier.1, a Linear without bias (the same map on a 1x1 feature map), and it has no dropout.
// pytorchcv's final 7x7 average pool equals the global one at 224 px.
// Init as torchvision: convs kaiming_normal (fan_out), BN 1/0, Linear normal(0, 0.01) and bias 0.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/model.h"

namespace dfq::models {

class MobileNetV2 : public Model {
 public:
  // pytorchcv: the pytorchcv variant above. torchvision_init false: the engine's default layer init only.
  MobileNetV2(const std::string& arch, bool pytorchcv, int num_classes, uint64_t seed = 0, bool torchvision_init = true);
  Tensor forward(const Tensor& x) override;
  std::string float_activations_note() const override;

  struct ConvUnit {  // conv + BN [+ ReLU6 at site]
    std::shared_ptr<nn::Conv2d> conv;
    std::shared_ptr<nn::BatchNorm> bn;
    int site = -1;  // -1: no activation (the projection)
  };
  struct Block {
    std::vector<ConvUnit> units;  // [expand,] depthwise, project
    bool residual = false;
  };
  ConvUnit stem, head;  // features.0, features.18
  std::vector<Block> blocks;
  std::shared_ptr<nn::Linear> fc;  // classifier.1
  float dropout_p = 0.2f;
  Generator dropout_gen;

 private:
  Tensor unit_forward(const ConvUnit& u, const Tensor& x);
};

std::shared_ptr<MobileNetV2> mobilenet_v2(int num_classes = 1000, uint64_t seed = 0, bool torchvision_init = true);
std::shared_ptr<MobileNetV2> pytorchcv_mobilenetv2_w1(int num_classes = 1000, uint64_t seed = 0,
                                                       bool torchvision_init = true);

}  // namespace dfq::models
