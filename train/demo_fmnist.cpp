// demo_fmnist.cpp — the engine's first demo: a small CNN (two conv-BN-ReLU-maxpool stages and a
// linear classifier) trained with SGD + Nesterov momentum on the real Fashion-MNIST training set,
// then its top-1 on the 10,000 test images. Runs on the CPU or, with --device cuda, on the GPU.
// The quantization demo (ZeroQ / GDFQ) replaces this as README's main command later.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>

#include "engine/io/flags.h"
#include "engine/io/idx.h"
#include "engine/io/progress.h"
#include "engine/nn/module.h"
#include "engine/nn/optim.h"

using namespace dfq;

namespace {

const char* kUsage =
    "usage: demo_fmnist [--epochs N] [--batch_size N] [--lr X] [--seed N] [--device cpu|cuda] [--data DIR]\n"
    "Trains a small CNN on Fashion-MNIST with the dfq engine and prints its test top-1.\n"
    "  --epochs N       training epochs (default 1)\n"
    "  --batch_size N   mini-batch size (default 64)\n"
    "  --lr X           SGD learning rate, momentum 0.9 Nesterov, decay 5e-4 (default 0.05)\n"
    "  --seed N         initialisation and shuffling seed (default 0)\n"
    "  --device D       cpu (default) or cuda\n"
    "  --data DIR       folder of the IDX .gz files (default /usr/share/datasets/fashion-mnist)\n";

struct SmallCnn : nn::Module {
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::BatchNorm> bn1, bn2;
  std::shared_ptr<nn::Linear> fc;
  explicit SmallCnn(Generator& g) {
    Conv2dOptions pad1;
    pad1.padding = {1, 1};
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(1, 16, 3, pad1, false, g));
    bn1 = register_module("bn1", std::make_shared<nn::BatchNorm>(16));
    conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(16, 32, 3, pad1, false, g));
    bn2 = register_module("bn2", std::make_shared<nn::BatchNorm>(32));
    fc = register_module("fc", std::make_shared<nn::Linear>(32 * 7 * 7, 10, true, g));
  }
  Tensor forward(const Tensor& x) {
    Tensor h = max_pool2d(relu(bn1->forward(conv1->forward(x))), 2, 2);
    h = max_pool2d(relu(bn2->forward(conv2->forward(h))), 2, 2);
    return fc->forward(h.flatten(1));
  }
};

// Images (N,28,28) u8 -> (B,1,28,28) float, (x/255 - 0.2860) / 0.3530, for the rows in idx.
Tensor make_batch(const Tensor& images, const std::vector<int64_t>& rows, Device dev) {
  const uint8_t* src = images.data<uint8_t>();
  std::vector<float> v(rows.size() * 784);
  for (size_t i = 0; i < rows.size(); ++i)
    for (int k = 0; k < 784; ++k) v[i * 784 + k] = (src[rows[i] * 784 + k] / 255.f - 0.2860f) / 0.3530f;
  return Tensor::from_vector(v, {static_cast<int64_t>(rows.size()), 1, 28, 28}, dev);
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags(argc, argv, kUsage);
  int epochs = static_cast<int>(flags.integer("--epochs", 1));
  int batch = static_cast<int>(flags.integer("--batch_size", 64));
  float lr = static_cast<float>(flags.number("--lr", 0.05));
  uint64_t seed = static_cast<uint64_t>(flags.integer64("--seed", 0));
  std::string device = flags.str("--device", "cpu");
  std::string dir = flags.str("--data", fashion_mnist_dir());
  flags.done();
  if (epochs < 1 || batch < 2) flags.fail("--epochs must be >= 1 and --batch_size >= 2");
  if (device != "cpu" && device != "cuda") flags.fail("--device must be cpu or cuda, got '" + device + "'");
  Device dev = device == "cuda" ? Device::CUDA : Device::CPU;
  try {
    if (dev == Device::CUDA && !cuda::available())
      throw std::runtime_error("--device cuda asked for, but no usable GPU: " + cuda::describe());
    Tensor train_x = load_idx_images(dir + "/train-images-idx3-ubyte.gz");
    Tensor train_y = load_idx_labels(dir + "/train-labels-idx1-ubyte.gz");
    Tensor test_x = load_idx_images(dir + "/t10k-images-idx3-ubyte.gz");
    Tensor test_y = load_idx_labels(dir + "/t10k-labels-idx1-ubyte.gz");
    std::printf("Fashion-MNIST: %lld training and %lld test images from %s\n", (long long)train_x.size(0),
                (long long)test_x.size(0), dir.c_str());
    Generator gen(seed);
    SmallCnn model(gen);
    model.to(dev);
    std::printf("model: small CNN, %lld parameters, device %s\n", (long long)model.num_parameters(), device_name(dev));
    SgdOptions so;
    so.lr = lr;
    so.momentum = 0.9f;
    so.nesterov = true;
    so.weight_decay = 5e-4f;
    SGD opt(model.parameters(), so);
    int64_t n = train_x.size(0), steps = n / batch;
    const int64_t* labels = train_y.data<int64_t>();
    for (int e = 0; e < epochs; ++e) {
      model.train();
      Tensor perm = randint({n}, 0, 1 << 30, gen);  // random keys -> a permutation by sorting
      std::vector<int64_t> keys = perm.to_vector_i64(), order(n);
      for (int64_t i = 0; i < n; ++i) order[i] = i;
      std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return keys[a] != keys[b] ? keys[a] < keys[b] : a < b; });
      Progress bar("epoch " + std::to_string(e + 1) + "/" + std::to_string(epochs), steps);
      double loss_sum = 0;
      for (int64_t s = 0; s < steps; ++s) {
        std::vector<int64_t> rows(order.begin() + s * batch, order.begin() + (s + 1) * batch), lab(batch);
        for (int i = 0; i < batch; ++i) lab[i] = labels[rows[i]];
        Tensor x = make_batch(train_x, rows, dev);
        Tensor y = Tensor::from_vector_i64(lab, {batch}, dev);
        opt.set_lr(lr * 0.5f * (1.f + std::cos(3.14159265f * (e * steps + s) / float(epochs * steps))));  // cosine
        Tensor loss = cross_entropy(model.forward(x), y);
        opt.zero_grad();
        loss.backward();
        opt.step();
        loss_sum += loss.item();
        char st[64];
        std::snprintf(st, sizeof st, "loss %.4f", loss_sum / (s + 1));
        bar.update(s + 1, st);
      }
      bar.finish();
    }
    model.eval();
    NoGradGuard ng;
    int64_t correct = 0, tn = test_x.size(0);
    Progress bar("test", (tn + 499) / 500);
    for (int64_t s = 0; s < tn; s += 500) {
      int64_t b = std::min<int64_t>(500, tn - s);
      std::vector<int64_t> rows(b);
      for (int64_t i = 0; i < b; ++i) rows[i] = s + i;
      Tensor logits = model.forward(make_batch(test_x, rows, dev));
      correct += topk_correct(logits, test_y.narrow(s, b), 1);
      bar.update(s / 500 + 1);
    }
    bar.finish();
    std::printf("test top-1: %.2f %% (%lld / %lld), training %d epoch(s)\n", 100.0 * correct / tn, (long long)correct,
                (long long)tn, epochs);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "demo_fmnist: %s\n", ex.what());
    return 1;
  }
  return 0;
}
