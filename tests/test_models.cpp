// test_models.cpp — models/ against torchvision and GDFQ's generator against PyTorch
// (../shared/golden): state_dict names / shapes / order, eval logits of resnet18 and vgg16_bn
// with the README's formula weights, the generator's train-mode output and every gradient,
// parameter counts of the other architectures (torchvision's totals), activation sites.
// Every TEST_CASE is named "models: ...".
#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "engine/io/npy.h"
#include "models/generator.h"
#include "models/registry.h"
#include "models/resnet.h"
#include "models/vgg.h"
#include "tests/check.h"
#include "tests/test_util.h"

using namespace dfq;
using dfq::test::check_close;

namespace {
const std::string kGolden = std::string(DFQ_GOLDEN_DIR) + "/";

// The golden README's formula: s in [-1, 1) for element k of entry t (double precision).
inline double formula_s(int64_t k, int64_t t) {
  uint64_t v = (static_cast<uint64_t>(k) * 2654435761ull + static_cast<uint64_t>(t) * 97531ull) & 0xFFFFFFFFull;
  return 2.0 * (static_cast<double>(v) / 4294967296.0) - 1.0;
}

// Fills every state_dict entry of m by the formula (as make_golden.py's formula_fill).
void formula_fill(models::Model& m) {
  std::set<std::string> bns;
  for (auto& [name, bn] : m.bn_layers()) bns.insert(name);
  std::map<std::string, int64_t> fan_in;  // module prefix -> fan_in of its weight
  auto sd = m.state_dict();
  for (int64_t t = 0; t < static_cast<int64_t>(sd.size()); ++t) {
    const std::string& name = sd[t].first;
    Tensor& ten = sd[t].second;
    const std::string prefix = name.substr(0, name.rfind('.')), leaf = name.substr(name.rfind('.') + 1);
    if (leaf == "num_batches_tracked") continue;
    REQUIRE(ten.dtype() == DType::F32);
    float* p = ten.data<float>();
    const int64_t n = ten.numel();
    double a = 1, b = 0;  // value = a * s + b
    if (bns.count(prefix)) {
      if (leaf == "weight" || leaf == "running_var") a = 0.25, b = 1;
      else a = 0.1;  // bias, running_mean
    } else if (leaf == "weight") {
      fan_in[prefix] = n / ten.size(0);
      a = std::sqrt(6.0 / static_cast<double>(fan_in[prefix]));
    } else {
      REQUIRE_MESSAGE(leaf == "bias", name);
      REQUIRE(fan_in.count(prefix));
      a = 1.0 / std::sqrt(static_cast<double>(fan_in[prefix]));
    }
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < n; ++k) {
      double s = formula_s(k, t);
      p[k] = static_cast<float>(b == 0 ? s * a : b + a * s);
    }
  }
}

Tensor formula_input(const Shape& shape, int64_t t = 9999) {
  Tensor x = Tensor::empty(shape);
  float* p = x.data<float>();
  for (int64_t k = 0; k < x.numel(); ++k) p[k] = static_cast<float>(2.0 * formula_s(k, t));
  return x;
}

// The model's state_dict names, order and shapes equal the golden order file's.
void check_state_dict_order(const models::Model& m, const std::string& file) {
  const auto want = test::read_state_dict_order(file);
  const auto sd = m.state_dict();
  REQUIRE_MESSAGE(sd.size() == want.size(), "model has " << sd.size() << " entries, golden lists " << want.size());
  for (size_t t = 0; t < sd.size(); ++t) {
    CHECK_MESSAGE(sd[t].first == want[t].first, "entry " << t << ": got " << sd[t].first << ", want " << want[t].first);
    CHECK_MESSAGE(sd[t].second.shape() == want[t].second, want[t].first << ": shape " << shape_str(sd[t].second.shape()));
  }
}

void check_imagenet_golden(const std::string& arch, int64_t num_params) {
  // Every entry is overwritten by the formula: skip torchvision's (second) init pass.
  auto m = models::create_model(arch, 1000, 0, /*torchvision_init=*/false);
  CHECK(m->num_parameters() == num_params);  // torchvision's total
  check_state_dict_order(*m, kGolden + "imagenet_" + arch + "/state_dict_order.txt");
  formula_fill(*m);
  m->eval();
  NoGradGuard ng;
  Tensor logits = m->forward(formula_input({2, 3, 224, 224}));
  Tensor want = load_npy(kGolden + "imagenet_" + arch + "/logits_eval2.npy");
  REQUIRE(logits.shape() == want.shape());
  check_close(arch + " eval logits", logits.to_vector(), want.to_vector(), 1e-4, 1e-4);
}
}  // namespace

TEST_CASE("models: resnet18 ImageNet shape, formula weights, eval logits and state_dict order vs torchvision") {
  check_imagenet_golden("resnet18", 11689512);
}

TEST_CASE("models: vgg16_bn ImageNet shape, formula weights, eval logits and state_dict order vs torchvision") {
  check_imagenet_golden("vgg16_bn", 138365992);
}

TEST_CASE("models: mobilenet_v2 ImageNet shape, formula weights, eval logits and state_dict order vs torchvision") {
  check_imagenet_golden("mobilenet_v2", 3504872);
}

TEST_CASE("models: resnet50 ImageNet shape, formula weights, eval logits and state_dict order vs torchvision") {
  check_imagenet_golden("resnet50", 25557032);
}

TEST_CASE("models: resnet18 activation sites, BN / conv / linear handles, act_hook") {
  auto m = models::resnet18(10);  // with torchvision's init
  // kaiming_normal(fan_out, relu): std sqrt(2 / (64*7*7)) for conv1; BN 1 / 0.
  {
    std::vector<float> w = m->conv1->weight.to_vector();
    double ss = 0;
    for (float v : w) ss += double(v) * v;
    CHECK(std::sqrt(ss / w.size()) == doctest::Approx(std::sqrt(2.0 / (64 * 49))).epsilon(0.05));
    CHECK(m->bn1->weight.to_vector() == std::vector<float>(64, 1.f));
  }
  const auto& sites = m->act_sites();
  REQUIRE(sites.size() == 17);  // stem + 8 blocks x 2 ReLU calls
  CHECK(std::set<std::string>(sites.begin(), sites.end()).size() == sites.size());
  CHECK(sites[0] == "relu");
  CHECK(sites[1] == "layer1.0.relu:0");
  CHECK(sites[2] == "layer1.0.relu:1");
  CHECK(sites[16] == "layer4.1.relu:1");
  CHECK(m->act_site_index("layer2.1.relu:0") == 7);
  CHECK_THROWS_WITH_AS(m->act_site_index("layer1.0.relu"), doctest::Contains("layer1.0.relu:0"), std::invalid_argument);
  REQUIRE(m->bn_layers().size() == 20);
  CHECK(m->bn_layers()[0].first == "bn1");
  CHECK(m->bn_layers()[1].first == "layer1.0.bn1");
  CHECK(m->bn_layers()[12].first == "layer3.0.downsample.1");
  REQUIRE(m->conv_layers().size() == 20);
  CHECK(m->conv_layers()[7].first == "layer2.0.downsample.0");
  REQUIRE(m->linear_layers().size() == 1);
  CHECK(m->linear_layers()[0].first == "fc");
  // The handles are the registered modules: the state_dict tensor of that name is theirs.
  std::map<std::string, Tensor> sd;
  for (auto& [n, t] : m->state_dict()) sd[n] = t;
  CHECK(sd.at("layer3.0.downsample.1.running_var").same(m->bn_layers()[12].second->running_var));
  CHECK(sd.at("layer2.0.downsample.0.weight").same(m->conv_layers()[7].second->weight));

  // Every site is called once per forward, in order; the hook's output is what flows on.
  m->eval();
  NoGradGuard ng;
  Tensor x = formula_input({1, 3, 32, 32});
  Tensor plain = m->forward(x);
  std::vector<int> calls;
  m->act_hook = [&](int site, const Tensor& a) {
    calls.push_back(site);
    return a;
  };
  Tensor same = m->forward(x);
  REQUIRE(calls.size() == 17);
  for (int i = 0; i < 17; ++i) CHECK(calls[i] == i);
  check_close("identity act_hook", same.to_vector(), plain.to_vector(), 0, 0);
  m->act_hook = [](int site, const Tensor& a) { return site == 16 ? mul_scalar(a, 0.f) : a; };
  Tensor zero = m->forward(x);  // last ReLU zeroed: logits = fc bias
  check_close("zeroed last site", zero.to_vector(), m->fc->bias.to_vector(), 1e-6, 0);
}

TEST_CASE("models: parameter counts of torchvision's architectures (1000 classes), a small forward, dropout") {
  // resnet18 and vgg16_bn are counted by the golden cases above.
  const std::vector<std::pair<std::string, int64_t>> want = {
      {"resnet34", 21797672}, {"resnet50", 25557032}, {"vgg11_bn", 132868840}, {"vgg13_bn", 133053736}, {"vgg19_bn", 143678248}};
  NoGradGuard ng;
  for (const auto& entry : want) {
    const std::string& arch = entry.first;  // no structured binding: CAPTURE's lambda can't name one in clang 14
    const int64_t count = entry.second;
    CAPTURE(arch);
    auto m = models::create_model(arch, 1000, 0, /*torchvision_init=*/false);  // freed at the end of each iteration
    CHECK(m->arch == arch);
    CHECK(m->num_classes == 1000);
    CHECK(m->num_parameters() == count);
    m->eval();
    Tensor x = formula_input({2, 3, 32, 32});
    Tensor y = m->forward(x);
    CHECK(y.shape() == Shape{2, 1000});
    bool finite = true;
    for (float v : y.to_vector()) finite = finite && std::isfinite(v);
    CHECK(finite);
    if (arch == "vgg11_bn") {
      CHECK(m->act_sites().front() == "features.2");
      CHECK(m->act_sites().back() == "classifier.4");
      CHECK(m->act_sites().size() == 8 + 2);
      CHECK(m->bn_layers().back().first == "features.26");
      // Dropout: identity in eval (two calls agree bit for bit); in train mode two calls draw
      // different masks (BN also switches to batch statistics, so eval != train regardless).
      check_close("vgg eval deterministic", m->forward(x).to_vector(), y.to_vector(), 0, 0);
      m->train();
      CHECK(m->forward(x).to_vector() != m->forward(x).to_vector());
    }
  }
  // resnet50: the Bottleneck's sites and the v1.5 stride on the 3x3 conv.
  auto r50 = models::resnet50(10, 0, false);
  CHECK(r50->act_sites().size() == 1 + 16 * 3);
  CHECK(r50->act_sites()[3] == "layer1.0.relu:2");
  CHECK(r50->bn_layers().size() == 53);
  int checked = 0;
  for (auto& [name, conv] : r50->conv_layers()) {
    if (name == "layer2.0.conv1") {
      CHECK(conv->opts.stride[0] == 1);
      ++checked;
    }
    if (name == "layer2.0.conv2") {
      CHECK(conv->opts.stride[0] == 2);
      ++checked;
    }
    if (name == "layer2.0.downsample.0") {
      CHECK(conv->opts.stride[0] == 2);
      ++checked;
    }
  }
  CHECK(checked == 3);
}

TEST_CASE("models: registry by torchvision name") {
  auto names = models::model_names();
  CHECK(names.size() == 16);
  CHECK_THROWS_WITH_AS(models::create_model("resnet19", 10), doctest::Contains("resnet18, resnet34"), std::invalid_argument);
  auto m = models::create_model("resnet18", 7, 0, false);
  CHECK(m->arch == "resnet18");
  CHECK(m->num_classes == 7);
  CHECK(m->linear_layers()[0].second->weight.shape() == Shape{7, 512});
}

TEST_CASE("models: GDFQ generator (32x32, 10 classes) train-mode output and gradients vs PyTorch") {
  const std::string dir = kGolden + "generator/";
  models::GdfqGenerator g(10, 100, 32, 3);
  // Names, shapes and order of the parameters as the golden's PyTorch module.
  const std::vector<std::string> want_names = {
      "fc.weight", "fc.bias", "cbn0.gamma.weight", "cbn0.beta.weight", "conv1.weight", "conv1.bias", "cbn1.gamma.weight",
      "cbn1.beta.weight", "conv2.weight", "conv2.bias", "cbn2.gamma.weight", "cbn2.beta.weight", "conv3.weight", "conv3.bias"};
  auto params = g.named_parameters();
  REQUIRE(params.size() == want_names.size());
  for (size_t i = 0; i < params.size(); ++i) {
    CHECK(params[i].first == want_names[i]);
    Tensor p = load_npy(dir + "param_" + params[i].first + ".npy");
    REQUIRE_MESSAGE(p.shape() == params[i].second.shape(), params[i].first);
    params[i].second.copy_(p);
  }
  CHECK(g.state_dict()[2].first == "cbn0.bn.running_mean");
  CHECK(g.state_dict().back().first == "out_bn.num_batches_tracked");

  g.train();
  Tensor z = load_npy(dir + "z.npy").set_requires_grad(true);
  Tensor y = load_npy(dir + "labels_int64.npy");
  Tensor img = g.forward(z, y);
  Tensor want = load_npy(dir + "img_train.npy");
  REQUIRE(img.shape() == want.shape());
  check_close("generator img_train", img.to_vector(), want.to_vector(), 1e-4, 1e-4);

  Tensor loss = mean(mul(img, load_npy(dir + "R.npy")));
  loss.backward();
  // The golden sits on a LeakyReLU kink: one pre-activation after cbn2 (item 5, channel 11, pixel
  // 351) is ~1e-8 from 0, so its derivative (1 or 0.2) flips with the last bit of the forward,
  // i.e. with the reduction order (OpenBLAS's thread count: it matches PyTorch to 1e-9 with 2
  // threads, not with 1 or 8). That one flip moves every gradient upstream of cbn2's LeakyReLU by
  // up to 1.5 % of max|r| (measured; pinning the element to 0 restores 1e-9 agreement). Those
  // gradients get atol 2e-2 max|r| (a wrong backward is off by O(max|r|)); conv3's, downstream of
  // the kink, keep the README's tolerance. The fixture should be regenerated with every LeakyReLU
  // input at |x| > 1e-4.
  auto check_grad = [&](const std::string& name, const Tensor& got) {
    REQUIRE_MESSAGE(got.defined(), "no gradient for " << name);
    std::vector<float> r = load_npy(dir + "grad_" + name + ".npy").to_vector();
    double max_r = 0;
    for (float v : r) max_r = std::max(max_r, std::fabs(static_cast<double>(v)));
    const bool past_kink = name.rfind("conv3.", 0) != 0;
    check_close("grad " + name, got.to_vector(), r, (past_kink ? 2e-2 : 1e-4) * max_r, 1e-3);
  };
  for (auto& [name, p] : params) {
    if (name == "conv1.bias" || name == "conv2.bias") {
      // These biases feed a train-mode BN, which removes any per-channel constant: the true
      // gradient is 0 and both sides hold round-off (PyTorch ~1e-9, relative to max|r| ~ 1e-9 the
      // README's tolerance is meaningless). Checked against 0 at an absolute 1e-7 instead (the
      // weight gradients are ~1e-3 .. 1e-2).
      std::vector<float> zeros(p.numel(), 0.f);
      check_close("grad " + name + " (0)", p.grad().to_vector(), zeros, 1e-7, 0);
      check_close("golden grad " + name + " (0)", load_npy(dir + "grad_" + name + ".npy").to_vector(), zeros, 1e-7, 0);
      continue;
    }
    check_grad(name, p.grad());
  }
  check_grad("z", z.grad());
}

TEST_CASE("models: fused cond_batch_norm equals gamma * batch_norm(x) + beta then leaky_relu (values, running stats, gradients)") {
  // The generator's CBN + LeakyReLU runs as one CPU kernel; here it is checked against the four ops
  // it replaces (which the golden generator test above and the CUDA build still use), in train and
  // eval mode, with and without the activation, at a size where the per-plane sums use the lanes.
  Generator rng(21);
  const int64_t N = 5, C = 3, H = 6, W = 7;
  Tensor x0 = randn({N, C, H, W}, rng, Device::CPU, 0.4f, 1.3f), g0 = randn({N, C}, rng), b0 = randn({N, C}, rng);
  Tensor R = randn({N, C, H, W}, rng);
  for (bool training : {true, false}) {
    for (float slope : {1.f, 0.2f}) {
      CAPTURE(training);
      CAPTURE(slope);
      Tensor rm_a = Tensor::from_vector({0.1f, -0.2f, 0.3f}, {C}), rv_a = Tensor::from_vector({0.9f, 1.2f, 0.7f}, {C});
      Tensor rm_b = rm_a.clone().detach(), rv_b = rv_a.clone().detach();
      Tensor xa = x0.clone().detach().set_requires_grad(true), ga = g0.clone().detach().set_requires_grad(true),
             ba = b0.clone().detach().set_requires_grad(true);
      Tensor xb = x0.clone().detach().set_requires_grad(true), gb = g0.clone().detach().set_requires_grad(true),
             bb = b0.clone().detach().set_requires_grad(true);
      Tensor fused = cond_batch_norm(xa, ga, ba, rm_a, rv_a, training, 0.1f, 0.8f, slope);
      Tensor comp = add(mul(gb.reshape({N, C, 1, 1}), batch_norm(xb, Tensor(), Tensor(), rm_b, rv_b, training, 0.1f, 0.8f)),
                        bb.reshape({N, C, 1, 1}));
      if (slope != 1.f) comp = leaky_relu(comp, slope);
      check_close("cond_batch_norm output", fused.to_vector(), comp.to_vector(), 1e-5, 1e-5);
      check_close("running_mean", rm_a.to_vector(), rm_b.to_vector(), 1e-6, 1e-6);
      check_close("running_var", rv_a.to_vector(), rv_b.to_vector(), 1e-6, 1e-6);
      sum(mul(fused, R)).backward();
      sum(mul(comp, R)).backward();
      check_close("grad x", xa.grad().to_vector(), xb.grad().to_vector(), 1e-5, 1e-4);
      check_close("grad gamma", ga.grad().to_vector(), gb.grad().to_vector(), 1e-5, 1e-4);
      check_close("grad beta", ba.grad().to_vector(), bb.grad().to_vector(), 1e-5, 1e-4);
    }
  }
  // Affine BN layers refuse (their own gamma / beta would be dropped); bad gamma shapes are named.
  nn::BatchNorm affine(3);
  CHECK_THROWS_AS(affine.forward_conditional(x0, g0, b0), std::logic_error);
  CHECK_THROWS_AS(cond_batch_norm(x0, g0.reshape({C, N}), b0, Tensor(), Tensor(), true, 0.1f, 1e-5f), std::invalid_argument);
  CHECK_THROWS_AS(cond_batch_norm(x0, g0, b0, Tensor(), Tensor(), false, 0.1f, 1e-5f), std::invalid_argument);
}

TEST_CASE("models: GDFQ generator at another size (init size img/4), output standardised per channel") {
  // The ImageNet version is the same class at img_size 224 (fc 100 -> 128*56*56, 40M weights);
  // 64 runs the same code at a fraction of the cost.
  models::GdfqGenerator g(1000, 100, 64, 3, 5);
  CHECK(g.fc->weight.shape() == Shape{128 * 16 * 16, 100});
  CHECK(g.cbn0->gamma->weight.shape() == Shape{1000, 128});
  CHECK_THROWS_AS(models::GdfqGenerator(10, 100, 30, 3), std::invalid_argument);
  // fc's 128 (img/4)^2 outputs must fit an int (4096^2 * 128 = 2^31 once overflowed: UBSan)
  CHECK_THROWS_AS(models::GdfqGenerator(10, 100, 4 * 4096, 3), std::invalid_argument);
  CHECK_THROWS_AS(models::GdfqGenerator(10, 100, 2147483644, 3), std::invalid_argument);  // s^2 passes int too
  Generator rng(11);
  Tensor z = randn({4, 100}, rng);
  Tensor y = randint({4}, 0, 1000, rng);
  NoGradGuard ng;
  Tensor img = g.forward(z, y);
  REQUIRE(img.shape() == Shape{4, 3, 64, 64});
  // The last BN (affine=False, train mode) leaves each channel with mean 0, biased var 1 (- eps).
  std::vector<float> m = mean(img, {0, 2, 3}).to_vector(), v = var(img, {0, 2, 3}, false).to_vector();
  for (int c = 0; c < 3; ++c) {
    CHECK(std::fabs(m[c]) < 1e-5);
    CHECK(v[c] == doctest::Approx(1.0).epsilon(1e-3));
  }
  CHECK_THROWS_AS(g.forward(z, Tensor::zeros({3}, DType::I64)), std::invalid_argument);
}
