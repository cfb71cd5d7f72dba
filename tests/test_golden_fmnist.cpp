// test_golden_fmnist.cpp — the real Fashion-MNIST ResNet18 that PyTorch trained, against what
// PyTorch computes with it (../shared/golden/fmnist_resnet18): eval logits; train-mode logits,
// loss, input and parameter gradients, running statistics; the loss after one SGD step. The model
// goes the user's way: .pth -> flat weight file -> load_state_dict. Tolerances from the golden
// README: logits / losses 1e-4 + 1e-4|r|, gradients 1e-4 max|r| + 1e-3|r|.
// Every TEST_CASE is named "golden fmnist: ...".
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include <unistd.h>

#include "engine/io/npy.h"
#include "engine/io/pth.h"
#include "engine/io/weights.h"
#include "engine/nn/optim.h"
#include "models/registry.h"
#include "tests/check.h"
#include "tests/test_util.h"

using namespace dfq;
using dfq::test::check_close;

namespace {

const std::string kDir = std::string(DFQ_GOLDEN_DIR) + "/fmnist_resnet18/";

using dfq::test::load_fmnist_resnet18;

void check_grad(const std::string& label, const Tensor& got, const std::string& file) {
  test::check_grad_npy(label, got, kDir + file);
}

}  // namespace

TEST_CASE("golden fmnist: eval-mode logits of the converted model equal PyTorch's") {
  auto model = load_fmnist_resnet18();
  model->eval();
  NoGradGuard ng;
  Tensor x = load_npy(kDir + "input64.npy");
  Tensor logits = model->forward(x);
  check_close("logits_eval64", logits.to_vector(), load_npy(kDir + "logits_eval64.npy").to_vector(), 1e-4, 1e-4);
  Tensor labels = load_npy(kDir + "labels64_int64.npy");
  CHECK(topk_correct(logits, labels, 1) >= 55);  // the model is ~91 % accurate
}

TEST_CASE("golden fmnist: train-mode logits, loss, gradients, running stats and one SGD step") {
  auto model = load_fmnist_resnet18();
  model->train();
  const test::Train16 t = test::golden_train16(*model, kDir, kDir);
  const Tensor &x = t.x, &y = t.y;
  t.loss.backward();
  {
    // The input gradient crosses the stem's max-pool. Fashion-MNIST's black background and the
    // zero padding give exactly constant regions, so many pooling windows hold ties, broken by the
    // last bits of the conv output (PyTorch's oneDNN and our im2col+sgemm sum in another order):
    // such a gradient goes to another, equal-valued position of the window. Per-(image, channel)
    // sums are unaffected and get the golden tolerance. Element-wise, which ties flip depends on
    // the summation order (OpenBLAS's thread split: with single-threaded GEMMs, as with
    // OMP_NUM_THREADS=1, one input value lands 5.6 % of max|r| off, and 374 of 49152 beyond 1e-2
    // max|r|: a flipped tie moves one window's gradient, which the 7x7 stem spreads over up to 147
    // input values): every value within 1e-1 max|r| and at most 2 % of them beyond 1e-2 max|r|.
    Tensor ref = load_npy(kDir + "train16_grad_input.npy");
    check_close("grad input summed over H,W", sum(x.grad(), {2, 3}).to_vector(), sum(ref, {2, 3}).to_vector(), 1e-5, 1e-3);
    std::vector<float> r = ref.to_vector(), got = x.grad().to_vector();
    float maxr = 0;
    for (float v : r) maxr = std::max(maxr, std::fabs(v));
    check_close("grad input", got, r, 1e-1 * maxr, 1e-3);
    size_t off = 0;
    for (size_t i = 0; i < r.size(); ++i) off += std::fabs(got[i] - r[i]) > 1e-2 * maxr + 1e-3 * std::fabs(r[i]) ? 1 : 0;
    CHECK_MESSAGE(off <= r.size() / 50, off << " of " << r.size() << " input-gradient values beyond 1e-2 max|r|");
  }
  std::map<std::string, Tensor> params, buffers;
  for (auto& [n, t] : model->named_parameters()) params[n] = t;
  for (auto& [n, t] : model->named_buffers()) buffers[n] = t;
  for (const char* name : {"conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight",
                           "layer3.0.downsample.0.weight", "layer4.1.bn2.weight", "fc.weight", "fc.bias"}) {
    REQUIRE(params.count(name));
    check_grad(std::string("grad ") + name, params[name].grad(), std::string("train16_grad_") + name + ".npy");
  }
  for (const char* name : {"bn1.running_mean", "bn1.running_var", "layer4.1.bn2.running_var"}) {
    REQUIRE(buffers.count(name));
    check_close(std::string("after ") + name, buffers[name].to_vector(),
                load_npy(kDir + "train16_after_" + name + ".npy").to_vector(), 1e-5, 1e-4);
  }
  SgdOptions so;
  so.lr = 0.01f;
  so.momentum = 0.9f;
  so.nesterov = true;
  so.weight_decay = 1e-4f;
  SGD opt(model->parameters(), so);
  opt.step();
  NoGradGuard ng;
  Tensor loss2 = cross_entropy(model->forward(x.detach()), y);
  check_close("loss after one SGD step", loss2.to_vector(), load_npy(kDir + "train16_loss_after_sgd_step.npy").to_vector(),
              1e-4, 1e-4);
}
