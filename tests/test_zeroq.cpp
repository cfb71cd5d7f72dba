// test_zeroq.cpp — ZeroQ's distillation loss (against the golden fixture and an independent
// double-precision recomputation), the distillation loop, and train/zeroq_main's command line.
// TEST_CASEs that read the real Fashion-MNIST model have "fmnist" in their names.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/io/npy.h"
#include "models/registry.h"
#include "quant/zeroq.h"
#include "tests/check.h"
#include "tests/test_util.h"

using namespace dfq;
using dfq::test::TempDir;

namespace {
const std::string kLosses = std::string(DFQ_GOLDEN_DIR) + "/losses/";

// The ZeroQ loss recomputed on the host in double from the BN inputs (captured by input_hook):
// per image / channel mean and sqrt(unbiased var + 1e-6) against the running statistics.
// Layers with 1x1 inputs: statistics over the images (BatchStats) or the mean term only (MeanOnly),
// the deviations zeroq.h describes.
double reference_loss(models::Model& m, const Tensor& x, quant::OneByOne mode = quant::OneByOne::BatchStats) {
  std::vector<Tensor> ins;
  for (auto& [name, bn] : m.bn_layers()) bn->input_hook = [&ins](const Tensor& t) { ins.push_back(t.detach()); };
  {
    NoGradGuard ng;
    m.forward(x);
  }
  for (auto& [name, bn] : m.bn_layers()) bn->input_hook = nullptr;
  auto term = [](const std::vector<float>& v, int64_t N, int64_t C, int64_t HW, const std::vector<double>& mu,
                 const std::vector<double>& sd, bool with_std) {
    double lm = 0, ls = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) {
        const float* p = v.data() + (n * C + c) * HW;
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < HW; ++i) s += p[i];
        const double mean = s / HW;
        for (int64_t i = 0; i < HW; ++i) s2 += (p[i] - mean) * (p[i] - mean);
        lm += (mean - mu[c]) * (mean - mu[c]);
        if (with_std) {
          const double st = std::sqrt(s2 / (HW - 1) + 1e-6);
          ls += (st - sd[c]) * (st - sd[c]);
        }
      }
    return (lm + ls) / N;
  };
  double total = 0;
  const auto& bns = m.bn_layers();
  REQUIRE(ins.size() == bns.size());
  for (size_t l = 0; l < bns.size(); ++l) {
    const Tensor& a = ins[l];
    std::vector<float> rm = bns[l].second->running_mean.to_vector(), rv = bns[l].second->running_var.to_vector();
    std::vector<double> mu(rm.begin(), rm.end()), sd(rv.size());
    for (size_t c = 0; c < rv.size(); ++c) sd[c] = std::sqrt(double(rv[c]) + 1e-6);
    const int64_t HW = a.size(2) * a.size(3);
    if (HW == 1 && mode == quant::OneByOne::BatchStats) {
      // (N,C,1,1) read as one "image" of C channels with N positions: channel-major copy.
      const int64_t N = a.size(0), C = a.size(1);
      std::vector<float> v = a.to_vector(), t(v.size());
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) t[size_t(c * N + n)] = v[size_t(n * C + c)];
      total += term(t, 1, C, N, mu, sd, true);
    } else {
      total += term(a.to_vector(), a.size(0), a.size(1), HW, mu, sd, HW > 1);
    }
  }
  total += term(x.to_vector(), x.size(0), 3, x.size(2) * x.size(3), {0, 0, 0}, {1, 1, 1}, true);
  return total;
}
}  // namespace

TEST_CASE("zeroq fmnist: the loss is NaN like the official code (golden), finite and right with our 1x1 rules") {
  auto m = dfq::test::load_fmnist_resnet18();
  m->eval();
  Tensor x = load_npy(kLosses + "gdfq_bns_input8.npy");
  // PyTorch's value is NaN: layer4's BN inputs are 1x1 on 32x32 images, unbiased var over one value.
  REQUIRE(std::isnan(load_npy(kLosses + "zeroq_loss.npy").to_vector()[0]));
  {
    Tensor xi = x.clone().detach();
    xi.set_requires_grad(true);
    Tensor l = quant::zeroq_loss(*m, xi, quant::OneByOne::Nan);
    CHECK(std::isnan(l.item()));
    l.backward();
    // The gradient is NaN wherever PyTorch's is (everywhere: every pixel feeds layer4).
    std::vector<float> g = xi.grad().to_vector(), r = load_npy(kLosses + "zeroq_grad_input.npy").to_vector();
    REQUIRE(g.size() == r.size());
    size_t agree = 0;
    for (size_t i = 0; i < g.size(); ++i) agree += std::isnan(g[i]) == std::isnan(r[i]);
    CHECK(agree == g.size());
  }
  for (quant::OneByOne mode : {quant::OneByOne::BatchStats, quant::OneByOne::MeanOnly}) {
    Tensor xi = x.clone().detach();
    xi.set_requires_grad(true);
    Tensor l = quant::zeroq_loss(*m, xi, mode);
    const double want = reference_loss(*m, x, mode);
    CHECK(std::isfinite(l.item()));
    CHECK(l.item() == doctest::Approx(want).epsilon(1e-4));
    l.backward();
    for (float v : xi.grad().to_vector()) REQUIRE(std::isfinite(v));
  }
}

TEST_CASE("zeroq: the loss on a model without 1x1 maps matches a double recomputation") {
  auto m = models::create_model("resnet18", 10, 4, true);
  Generator g(12);
  for (auto& [name, bn] : m->bn_layers()) {
    bn->running_mean.copy_(randn(bn->running_mean.shape(), g, Device::CPU, 0.f, 0.3f));
    bn->running_var.copy_(rand(bn->running_var.shape(), g, Device::CPU, 0.5f, 2.f));
  }
  m->eval();
  Tensor x = randn({2, 3, 64, 64}, g, Device::CPU, 0.f, 0.5f);  // layer4 sees 2x2
  x.set_requires_grad(true);
  Tensor l = quant::zeroq_loss(*m, x);
  CHECK(l.item() == doctest::Approx(reference_loss(*m, x.detach())).epsilon(1e-4));
}

namespace {
// conv-BN-ReLU-conv(stride 2)-BN: small enough for a float32 loss of order 1, where central
// differences are trustworthy.
struct TinyNet : models::Model {
  std::shared_ptr<nn::Conv2d> c1, c2;
  std::shared_ptr<nn::BatchNorm> b1, b2;
  explicit TinyNet(Generator& g) : models::Model("tiny", 4) {
    c1 = register_module("c1", std::make_shared<nn::Conv2d>(3, 4, 3, Conv2dOptions{{1, 1}, {1, 1}}, false, g));
    b1 = register_module("b1", std::make_shared<nn::BatchNorm>(4));
    c2 = register_module("c2", std::make_shared<nn::Conv2d>(4, 4, 3, Conv2dOptions{{2, 2}, {1, 1}}, false, g));
    b2 = register_module("b2", std::make_shared<nn::BatchNorm>(4));
    track("b1", b1.get());
    track("b2", b2.get());
    b1->running_mean.copy_(Tensor::from_vector({0.1f, -0.2f, 0.05f, 0.f}, {4}));
    b2->running_var.copy_(Tensor::from_vector({0.5f, 1.5f, 0.8f, 1.2f}, {4}));
  }
  Tensor forward(const Tensor& x) override { return b2->forward(c2->forward(relu(b1->forward(c1->forward(x))))); }
};
}  // namespace

TEST_CASE("zeroq: the loss gradient equals central differences (small net, random direction)") {
  Generator g(21);
  TinyNet m(g);
  m.eval();
  Tensor x = randn({2, 3, 8, 8}, g, Device::CPU, 0.f, 0.7f);
  x.set_requires_grad(true);
  Tensor l = quant::zeroq_loss(m, x);
  CHECK(l.item() == doctest::Approx(reference_loss(m, x.detach())).epsilon(1e-5));
  l.backward();
  std::vector<float> gx = x.grad().to_vector(), xv = x.detach().to_vector();
  std::vector<float> dv = randn(x.shape(), g).to_vector();
  double gd = 0;
  for (size_t i = 0; i < gx.size(); ++i) gd += double(gx[i]) * dv[i];
  auto at = [&](float eps) {
    std::vector<float> v = xv;
    for (size_t i = 0; i < v.size(); ++i) v[i] += eps * dv[i];
    return reference_loss(m, Tensor::from_vector(v, x.shape()));
  };
  // float32 forward: the differences wander by ~2 % between steps 1e-2 and 1e-3; 3 % relative.
  CHECK(gd == doctest::Approx((at(3e-3f) - at(-3e-3f)) / 6e-3).epsilon(0.03).scale(0));
}

TEST_CASE("zeroq: distillation lowers the loss, is deterministic per seed and leaves the teacher as it was") {
  auto m = models::create_model("resnet18", 10, 4, true);
  m->eval();
  quant::ZeroQOptions o;
  o.batch_size = 4;
  o.iters = 12;
  o.img_size = 32;
  o.seed = 3;
  std::vector<float> losses;
  Tensor a = quant::distill(*m, o, Device::CPU, [&](int it, float loss, float lr) {
    CHECK(it == int(losses.size()) + 1);
    CHECK(lr == doctest::Approx(0.5));
    losses.push_back(loss);
  });
  REQUIRE(losses.size() == 12);
  CHECK(losses.back() < losses.front());
  CHECK(a.shape() == Shape{4, 3, 32, 32});
  CHECK_FALSE(a.requires_grad());
  Tensor b = quant::distill(*m, o, Device::CPU);
  CHECK(a.to_vector() == b.to_vector());
  o.seed = 4;
  CHECK(quant::distill(*m, o, Device::CPU).to_vector() != a.to_vector());
  for (auto& p : m->parameters()) CHECK(p.requires_grad());
  for (auto& [name, bn] : m->bn_layers()) CHECK_FALSE(bn->input_hook);
  // The official initialisation: (randint(0, 255) - 127.5) / 5418.75, so |x| <= 0.0236 at iteration 0.
  o.iters = 0;
  for (float v : quant::distill(*m, o, Device::CPU).to_vector()) REQUIRE(std::fabs(v) <= 127.5f / 5418.75f);
}

TEST_CASE("zeroq_main: bad input gets one message, a non-zero exit and no output") {
  TempDir dir("zeroq_cli");
  const std::string zq = DFQ_ZEROQ_MAIN;
  // A tiny valid float model to point the other mistakes at.
  auto m = models::create_model("resnet18", 10, 1, false);
  write_weight_file(dir / "r18.bin", "resnet18", 10, m->state_dict());
  const std::string outs = " --save " + (dir / "q.bin") + " --json " + (dir / "r.json") + " --out " + (dir / "o");
  std::vector<dfq::test::RefusalCase> cases = {
      {"--weights " + (dir / "missing.bin") + " --iters 1", "missing.bin", 2},
      {"-a vgg16_bn --weights " + (dir / "r18.bin") + " --iters 1", "not a vgg16_bn", 1},
      {"--weights " + (dir / "r18.bin") + " --bits 4", "W/A", 2},
      {"--weights " + (dir / "r18.bin") + " --bits 4/27", "27 bits", 2},
      {"--weights " + (dir / "r18.bin") + " --iters -3", "--iters", 2},
      {"--weights " + (dir / "r18.bin") + " --batch_size x", "--batch_size", 2},
      {"--weights " + (dir / "r18.bin") + " --bogus 1", "--bogus", 2},
      // past int (the mains' counts): once wrapped silently (-qw 4294967300 was 4 bits; --img_size
      // 99999999999 overflowed a shape); past long long: once LLONG_MAX
      {"--weights " + (dir / "r18.bin") + " --iters 1 --img_size 99999999999", "out of range", 2},
      {"--weights " + (dir / "r18.bin") + " --iters 1 -qw 4294967300", "out of range", 2},
      {"--weights " + (dir / "r18.bin") + " --iters 1 --seed 99999999999999999999", "out of range", 2},
      {"--weights " + (dir / "r18.bin") + " --iters 1 --dataset imagenet", "imagenet", 2},
      {"--weights " + (dir / "r18.bin") + " --iters 1 --data " + (dir / "nodir"), "nodir", 2},
  };
  // Without a GPU, --device cuda is refused (never a silent CPU run).
  if (!cuda::available()) cases.push_back({"--weights " + (dir / "r18.bin") + " --iters 1 --device cuda", "cuda", 1});
  dfq::test::check_refusals(zq, cases, outs, dir / "log.txt", {dir / "q.bin", dir / "r.json"});
  // --help works and exits 0.
  CHECK(dfq::test::run_program(zq, "--help", dir / "log.txt") == 0);
  CHECK(dfq::test::read_text(dir / "log.txt").find("ZeroQ") != std::string::npos);
}

TEST_CASE("zeroq_main: a short data-free run saves a model that evaluate loads") {
  TempDir dir("zeroq_run");
  auto m = models::create_model("resnet18", 10, 1, true);
  write_weight_file(dir / "r18.bin", "resnet18", 10, m->state_dict());
  const std::string args = "--weights " + (dir / "r18.bin") + " --bits 4/4 --iters 2 --batch_size 2 --img_size 32 --save " +
                           (dir / "q.bin") + " --out " + (dir / "o") + " --json " + (dir / "r.json");
  REQUIRE(dfq::test::run_program(DFQ_ZEROQ_MAIN, args, dir / "log.txt") == 0);
  std::string log = dfq::test::read_text(dir / "log.txt");
  CHECK(log.find("nothing was evaluated") != std::string::npos);
  CHECK(std::filesystem::exists(dir / "o/distilled.npy"));
  CHECK(std::filesystem::exists(dir / "o/distilled.png"));
  CHECK(load_npy(dir / "o/distilled.npy").shape() == Shape{2, 3, 32, 32});
  std::string js = dfq::test::read_text(dir / "r.json");
  CHECK(js.find("\"bits\": \"4/4\"") != std::string::npos);
  CHECK(js.find("fp_top1") == std::string::npos);  // nothing evaluated, nothing claimed
  auto q = quant::load_quantized(dir / "q.bin", "resnet18", Device::CPU);
  CHECK(q->config().wbits == 4);
  for (auto& a : q->acts()) CHECK(a.range().second > 0.f);
}
