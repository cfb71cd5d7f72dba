// generator.h — GDFQ's class-conditional generator (the official ImageNet version, dfq_algorithms.md
// §3.3; img_size 32 is the golden's small version of the same net):
//   fc: Linear(latent -> 128*s*s), s = img_size/4 -> reshape (N,128,s,s) -> cbn0(128, eps 1e-5)
//   -> nearest up x2 -> conv1 3x3 128->128 -> cbn1(128, eps 0.8) -> LeakyReLU 0.2 -> up x2
//   -> conv2 3x3 128->64 -> cbn2(64, eps 0.8) -> LeakyReLU 0.2 -> conv3 3x3 64->channels -> tanh
//   -> out_bn BatchNorm2d(channels, affine=False, eps 1e-5).
// CBN (cbnK): BatchNorm without affine (child "bn") then gamma[y] * x + beta[y] with gamma / beta
// two Embedding(num_classes, C) tables ("cbnK.gamma.weight" init 1, "cbnK.beta.weight" init 0).
// No label embedding on z (that is the official CIFAR variant, §3.4, not built here).
// Names and state_dict order as the golden's PyTorch module (fc, cbn0.bn.*, cbn0.gamma, cbn0.beta,
// conv1, cbn1, conv2, cbn2, conv3, out_bn). GDFQ keeps the generator in train mode (batch stats).
#pragma once
#include <memory>

#include "engine/nn/module.h"

namespace dfq::models {

// nn.Embedding: a (rows, dim) table "weight"; forward(idx int64 any shape) -> idx.shape + (dim).
class Embedding : public nn::Module {
 public:
  Embedding(int rows, int dim, float init_value);
  Tensor forward(const Tensor& idx) const { return embedding(idx, weight); }
  Tensor weight;
};

// Categorical conditional BatchNorm.
class CondBatchNorm : public nn::Module {
 public:
  CondBatchNorm(int channels, float eps, int num_classes);
  // x (N,C,H,W), labels (N) int64; slope != 1 applies leaky_relu(., slope) in the same kernel
  Tensor forward(const Tensor& x, const Tensor& labels, float slope = 1.f);
  std::shared_ptr<nn::BatchNorm> bn;
  std::shared_ptr<Embedding> gamma, beta;
};

class GdfqGenerator : public nn::Module {
 public:
  // img_size divisible by 4 (32: the golden's version; 224: ImageNet, a 40M-parameter fc).
  GdfqGenerator(int num_classes, int latent_dim = 100, int img_size = 224, int channels = 3, uint64_t seed = 0);
  // z (N,latent) float, labels (N) int64 in [0, num_classes) -> images (N,channels,img,img)
  Tensor forward(const Tensor& z, const Tensor& labels);

  int num_classes, latent_dim, img_size, channels;
  std::shared_ptr<nn::Linear> fc;
  std::shared_ptr<CondBatchNorm> cbn0, cbn1, cbn2;
  std::shared_ptr<nn::Conv2d> conv1, conv2, conv3;
  std::shared_ptr<nn::BatchNorm> out_bn;
};

}  // namespace dfq::models
