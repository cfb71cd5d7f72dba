// generator.cpp — GDFQ's conditional generator (generator.h). Default PyTorch init for fc and the
// convs (the engine's default_init), embeddings 1 / 0, BN buffers 0 / 1.
#include "models/generator.h"

#include <limits>
#include <stdexcept>
#include <string>

namespace dfq::models {

Embedding::Embedding(int rows, int dim, float init_value) {
  weight = register_parameter("weight", Tensor::full({rows, dim}, init_value));
}

CondBatchNorm::CondBatchNorm(int C, float eps, int num_classes) {
  bn = register_module("bn", std::make_shared<nn::BatchNorm>(C, eps, 0.1f, /*affine=*/false));
  gamma = register_module("gamma", std::make_shared<Embedding>(num_classes, C, 1.f));
  beta = register_module("beta", std::make_shared<Embedding>(num_classes, C, 0.f));
}

Tensor CondBatchNorm::forward(const Tensor& x, const Tensor& labels, float slope) {
  return bn->forward_conditional(x, gamma->forward(labels), beta->forward(labels), slope);
}

GdfqGenerator::GdfqGenerator(int classes, int latent, int img, int ch, uint64_t seed)
    : num_classes(classes), latent_dim(latent), img_size(img), channels(ch) {
  if (classes < 1 || latent < 1 || ch < 1 || img < 4 || img % 4 != 0)
    throw std::invalid_argument("dfq: GdfqGenerator: need classes, latent, channels >= 1 and img_size a positive multiple of 4, got classes " +
                                std::to_string(classes) + ", latent " + std::to_string(latent) + ", img_size " + std::to_string(img));
  const int s = img / 4;
  if (int64_t{s} * s > std::numeric_limits<int>::max() / 128)  // fc's width 128 s^2 is an int (s^2 fits int64)
    throw std::invalid_argument("dfq: GdfqGenerator: img_size " + std::to_string(img) + " is too large (fc's 128 (img_size/4)^2 outputs pass int)");
  Generator gen(seed);
  Conv2dOptions o;
  o.padding = {1, 1};
  fc = register_module("fc", std::make_shared<nn::Linear>(latent, 128 * s * s, true, gen));
  cbn0 = register_module("cbn0", std::make_shared<CondBatchNorm>(128, 1e-5f, classes));
  conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(128, 128, 3, o, true, gen));
  cbn1 = register_module("cbn1", std::make_shared<CondBatchNorm>(128, 0.8f, classes));
  conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(128, 64, 3, o, true, gen));
  cbn2 = register_module("cbn2", std::make_shared<CondBatchNorm>(64, 0.8f, classes));
  conv3 = register_module("conv3", std::make_shared<nn::Conv2d>(64, ch, 3, o, true, gen));
  out_bn = register_module("out_bn", std::make_shared<nn::BatchNorm>(ch, 1e-5f, 0.1f, /*affine=*/false));
}

Tensor GdfqGenerator::forward(const Tensor& z, const Tensor& labels) {
  if (z.dim() != 2 || z.size(1) != latent_dim)
    throw std::invalid_argument("dfq: GdfqGenerator: z must be (N," + std::to_string(latent_dim) + "), got " + z.str());
  if (labels.dtype() != DType::I64 || labels.dim() != 1 || labels.size(0) != z.size(0))
    throw std::invalid_argument("dfq: GdfqGenerator: labels must be int64 (N) matching z, got " + labels.str());
  const int64_t N = z.size(0), s = img_size / 4;
  Tensor x = fc->forward(z).reshape({N, 128, s, s});
  // each nearest up-sampling is fused into the conv that follows it (4/9 of the work on the CPU)
  x = cbn0->forward(x, labels);
  x = cbn1->forward(conv1->forward_upsampled2x(x), labels, 0.2f);  // leaky_relu(cbn1(.), 0.2) in one kernel
  x = cbn2->forward(conv2->forward_upsampled2x(x), labels, 0.2f);
  return out_bn->forward(tanh(conv3->forward(x)));
}

}  // namespace dfq::models
