// test_repro.cpp — reproducibility a user can rely on (README "Reproducibility"): the same seed
// gives the same bytes at 1 and at 2 threads, for a short ZeroQ distillation + calibration, a few
// GDFQ iterations (generator and student steps, ranges observed), a few train_fp-style SGD
// steps and depthwise convs (MobileNetV2); and blas_description() says which BLAS kernels ran.
// Rules: each loop runs twice in-process, once per thread count (OpenBLAS's and OpenMP's, set
// together and restored), on shapes big enough that the threaded paths run (OpenMP loops above
// kParMin, convolution GEMMs cut into chunks and row blocks, GEMMs big enough for OpenBLAS to
// thread); every byte of the results (parameters, buffers, ranges, logits) is compared. With the
// engine of 0d84bca (splits that followed the thread count) all three loops failed here under
// OPENBLAS_CORETYPE=Haswell, the ZeroQ and GDFQ ones under SkylakeX and Cooperlake.
#include <doctest/doctest.h>
#include <omp.h>
#include <cblas.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/blas_info.h"
#include "engine/nn/optim.h"
#include "engine/ops.h"
#include "models/registry.h"
#include "quant/gdfq.h"
#include "quant/zeroq.h"

using namespace dfq;

namespace {

int blas_threads() {
#ifdef OPENBLAS_VERSION
  return openblas_get_num_threads();
#else
  return omp_get_max_threads();
#endif
}

// OpenBLAS's count and OpenMP's default at n for the scope, both put back after. (In OpenBLAS's
// OpenMP build openblas_set_num_threads also sets OpenMP's default; omp_set_num_threads alone does
// not change OpenBLAS's count. Setting both, in this order, pins both.)
class ThreadCount {
 public:
  explicit ThreadCount(int n) : omp_(omp_get_max_threads()), blas_(blas_threads()) { set(n, n); }
  ~ThreadCount() { set(blas_, omp_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  static void set(int blas, int omp) {
#ifdef OPENBLAS_VERSION
    openblas_set_num_threads(blas);
#else
    (void)blas;
#endif
    omp_set_num_threads(omp);
  }
  int omp_, blas_;
};

void append(std::vector<float>& out, const Tensor& t) {
  std::vector<float> v = t.to_vector();
  out.insert(out.end(), v.begin(), v.end());
}
void append_state(std::vector<float>& out, const nn::Module& m) {
  for (auto& [name, t] : m.state_dict())
    if (t.dtype() == DType::F32) append(out, t);
}

// run() at 1 and at 2 threads: the same bytes, or the first differing value is printed.
template <typename F>
void check_thread_invariant(const char* label, F run) {
  std::vector<float> one, two;
  {
    ThreadCount tc(1);
    REQUIRE(omp_get_max_threads() == 1);
    REQUIRE(blas_threads() == 1);
    one = run();
  }
  {
    ThreadCount tc(2);
    REQUIRE(omp_get_max_threads() == 2);
    REQUIRE(blas_threads() == 2);
    two = run();
  }
  const std::string what = label;
  CAPTURE(what);
  REQUIRE(one.size() == two.size());
  REQUIRE_FALSE(one.empty());
  size_t first = one.size(), diff = 0;
  for (size_t i = 0; i < one.size(); ++i)
    if (std::memcmp(&one[i], &two[i], sizeof(float)) != 0) {
      if (first == one.size()) first = i;
      ++diff;
    }
  if (diff) {
    MESSAGE(label << ": " << diff << " of " << one.size() << " values differ; first at " << first << ": "
                  << one[first] << " (1 thread) vs " << two[first] << " (2 threads)");
  }
  CHECK(diff == 0);
}

}  // namespace

TEST_CASE("repro: a short ZeroQ distillation + calibration is bit-identical at 1 and 2 threads") {
  check_thread_invariant("zeroq", [] {
    auto m = models::create_model("resnet18", 10, 7, true);
    m->eval();
    quant::ZeroQOptions o;
    o.batch_size = 8;
    o.iters = 6;
    o.img_size = 32;
    o.seed = 11;
    Tensor x = quant::distill(*m, o, Device::CPU);
    quant::QuantConfig c;
    c.wbits = c.abits = 3;
    quant::QuantizedModel q(m, c);
    quant::calibrate(q, x);
    std::vector<float> out;
    append(out, x);
    for (auto& a : q.acts()) append(out, a.state);
    NoGradGuard ng;
    append(out, q.forward(x));
    return out;
  });
}

TEST_CASE("repro: a few GDFQ iterations (G and Q steps, ranges observed) are bit-identical at 1 and 2 threads") {
  check_thread_invariant("gdfq", [] {
    quant::GdfqOptions o;
    o.n_epochs = 2;
    o.n_iter = 2;
    o.batch_size = 8;
    o.q_lr = 1e-2;
    o.warmup_epochs = 1;  // epoch 0: G steps, ranges observed; epoch 1: G and Q steps
    o.range_epochs = 2;
    o.milestones = {9};
    o.seed = 3;
    auto teacher = models::create_model("resnet18", 10, 2, true);
    auto student = models::create_model("resnet18", 10, 2, true);
    quant::QuantConfig c;
    c.wbits = c.abits = 3;
    quant::GdfqTrainer tr(teacher, student, c, o, Device::CPU, 32);
    std::vector<float> out;
    for (int e = 0; e < o.n_epochs; ++e) {
      quant::EpochStats s = tr.train_epoch();
      out.insert(out.end(), {float(s.g_loss), float(s.bns), float(s.q_loss)});
    }
    append_state(out, tr.qmodel().model());
    append_state(out, tr.generator());
    for (auto& a : tr.qmodel().acts()) append(out, a.state);
    NoGradGuard ng;
    Tensor img = tr.sample_grid_images(1, 5);
    append(out, img);
    append(out, tr.qmodel().forward(img));
    return out;
  });
}

TEST_CASE("repro: train_fp-style SGD steps of a ResNet-18 are bit-identical at 1 and 2 threads") {
  check_thread_invariant("train_fp", [] {
    auto m = models::create_model("resnet18", 10, 4, true);
    m->train();
    SgdOptions so;
    so.lr = 0.05f;
    so.momentum = 0.9f;
    so.nesterov = true;
    so.weight_decay = 5e-4f;
    SGD opt(m->parameters(), so);
    Generator g(9);
    std::vector<float> out;
    for (int step = 0; step < 3; ++step) {
      Tensor x = randn({16, 3, 32, 32}, g);
      Tensor y = randint({16}, 0, 10, g);
      Tensor loss = cross_entropy(m->forward(x), y);
      opt.zero_grad();
      loss.backward();
      opt.step();
      out.push_back(loss.item());
    }
    append_state(out, *m);  // parameters and BN running statistics
    m->eval();
    NoGradGuard ng;
    append(out, m->forward(randn({16, 3, 32, 32}, g)));
    return out;
  });
}

TEST_CASE("repro: depthwise convs (MobileNetV2's shapes) are bit-identical at 1 and 2 threads") {
  // forward and both gradients (the filter gradient sums over the batch: per-chunk partial sums,
  // added in a fixed order), through autograd, on shapes big enough for the parallel path
  check_thread_invariant("depthwise conv", [] {
    Generator g(5);
    std::vector<float> out;
    struct Dw { int C, H, stride; };
    for (const Dw& s : {Dw{96, 16, 2}, Dw{144, 8, 1}, Dw{192, 4, 1}, Dw{960, 2, 1}}) {
      Tensor x = randn({16, s.C, s.H, s.H}, g).set_requires_grad(true);
      Tensor w = randn({s.C, 1, 3, 3}, g, Device::CPU, 0.f, 0.3f).set_requires_grad(true);
      Tensor b = randn({s.C}, g).set_requires_grad(true);
      Conv2dOptions o;
      o.stride = {s.stride, s.stride};
      o.padding = {1, 1};
      o.groups = s.C;
      Tensor y = conv2d(x, w, b, o);
      y.backward(randn(y.shape(), g));
      for (const Tensor& t : {y, x.grad(), w.grad(), b.grad()}) append(out, t);
    }
    return out;
  });
}

TEST_CASE("repro: convs on maps above 8x8 (oneDNN's forward where built in) are bit-identical at 1 and 2 threads") {
  // ImageNet-size maps: the forward through oneDNN's kernels (engine/kernels/cpu/gemm_conv.cpp,
  // use_onednn_forward), the gradients through the engine's
  check_thread_invariant("large-map conv", [] {
    Generator g(6);
    std::vector<float> out;
    struct Cv { int C, H, K, R, stride; };
    for (const Cv& s : {Cv{16, 56, 32, 3, 1}, Cv{32, 28, 64, 3, 2}, Cv{64, 14, 64, 3, 1}}) {
      Tensor x = randn({4, s.C, s.H, s.H}, g).set_requires_grad(true);
      Tensor w = randn({s.K, s.C, s.R, s.R}, g, Device::CPU, 0.f, 0.1f).set_requires_grad(true);
      Tensor b = randn({s.K}, g).set_requires_grad(true);
      Conv2dOptions o;
      o.stride = {s.stride, s.stride};
      o.padding = {s.R / 2, s.R / 2};
      Tensor y = conv2d(x, w, b, o);
      y.backward(randn(y.shape(), g));
      for (const Tensor& t : {y, x.grad(), w.grad(), b.grad()}) append(out, t);
    }
    return out;
  });
}

TEST_CASE("repro: blas_description names the BLAS and its kernels") {
  const std::string d = blas_description();
  MESSAGE("BLAS: " << d);
#ifdef OPENBLAS_VERSION
  CHECK(d.rfind("OpenBLAS ", 0) == 0);
  CHECK_FALSE(blas_core().empty());
  CHECK(d.find(blas_core() + " kernels") != std::string::npos);
  {
    ThreadCount tc(1);
    CHECK(blas_description().find(", 1 thread)") != std::string::npos);
  }
  {
    ThreadCount tc(2);
    CHECK(blas_description().find(", 2 threads)") != std::string::npos);
    omp_set_num_threads(1);  // OpenBLAS still at 2: both counts are told
    CHECK(blas_description().find(", 2 threads, engine loops 1)") != std::string::npos);
  }
  // Who chose the kernels: the environment, or OpenBLAS for this CPU (DYNAMIC_ARCH builds).
  const char* forced = std::getenv("OPENBLAS_CORETYPE");
  if (forced && *forced)
    CHECK(d.find(std::string("OPENBLAS_CORETYPE=") + forced) != std::string::npos);
  else if (std::string(openblas_get_config()).find("DYNAMIC_ARCH") != std::string::npos)
    CHECK(d.find("for this CPU") != std::string::npos);
#else
  CHECK(blas_core().empty());
  CHECK(d.find("not OpenBLAS") != std::string::npos);
#endif
}
