// test_optim.cpp — SGD and Adam against PyTorch 1.13's update formulas (torch.optim.SGD /
// torch.optim.Adam, single-tensor path) worked out here in double precision, a few steps with fixed
// gradients set by set_grad; MultiStepLR and ReduceLROnPlateau lr sequences worked out by hand.
// Every TEST_CASE is named "optim: ...".
#include <cmath>
#include <string>
#include <vector>

#include "engine/nn/optim.h"
#include "tests/check.h"

using namespace dfq;
using dfq::test::check_close;

namespace {
// The engine updates in float32 (as PyTorch's float32 parameters do) and the references below
// run in double: a few steps of O(1) values differ by a few float ulps, hence rtol 1e-5 / atol 1e-6.
constexpr double kAtol = 1e-6, kRtol = 1e-5;

std::vector<float> to_f(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }
std::vector<double> to_d(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

// Fixed gradients for step k (k = 0, 1, ...), one zero element included.
std::vector<float> grad_at(int k, size_t n) {
  std::vector<float> g(n);
  for (size_t i = 0; i < n; ++i) g[i] = (i == 2) ? 0.f : 0.3f * std::sin(1.7f * static_cast<float>(i) + 0.9f * k) + 0.05f * k;
  return g;
}

// torch.optim.SGD, 1.13 (_single_tensor_sgd), dampening 0:
//   d = g + wd * p; buf = d (first step) or momentum * buf + d;
//   d = d + momentum * buf (nesterov) or buf; p -= lr * d
struct RefSgd {
  double lr, momentum, wd;
  bool nesterov;
  std::vector<double> buf;
  void step(std::vector<double>& p, const std::vector<float>& g) {
    bool first = buf.empty();
    if (first && momentum != 0) buf.assign(p.size(), 0.0);
    for (size_t i = 0; i < p.size(); ++i) {
      double d = g[i] + wd * p[i];
      if (momentum != 0) {
        buf[i] = first ? d : momentum * buf[i] + d;
        d = nesterov ? d + momentum * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
  }
};

// torch.optim.Adam, 1.13 (_single_tensor_adam), amsgrad off:
//   g += wd * p; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
struct RefAdam {
  double lr, b1, b2, eps, wd;
  std::vector<double> m, v;
  int t = 0;
  void step(std::vector<double>& p, const std::vector<float>& g_in) {
    if (m.empty()) m.assign(p.size(), 0.0), v.assign(p.size(), 0.0);
    ++t;
    double bc1 = 1 - std::pow(b1, t), bc2 = 1 - std::pow(b2, t);
    for (size_t i = 0; i < p.size(); ++i) {
      double g = g_in[i] + wd * p[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      p[i] -= lr / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + eps);
    }
  }
};

const std::vector<float> kP0 = {0.5f, -1.2f, 0.8f, 2.0f, -0.3f, 0.0f};
}  // namespace

TEST_CASE("optim: SGD plain, momentum, momentum + nesterov + weight decay") {
  struct Case { const char* name; SgdOptions o; };
  SgdOptions plain{0.1f, 0.f, 0.f, false}, mom{0.05f, 0.9f, 0.f, false}, nest{0.01f, 0.9f, 1e-2f, true},
      wd_only{0.1f, 0.f, 0.05f, false};
  for (const Case& c : {Case{"plain", plain}, Case{"momentum", mom}, Case{"nesterov + weight decay", nest},
                        Case{"weight decay, no momentum", wd_only}}) {
    CAPTURE(std::string(c.name));
    Tensor p = Tensor::from_vector(kP0, {2, 3});
    Tensor frozen = Tensor::from_vector({1.f, 2.f}, {2});  // never gets a gradient: skipped
    SGD opt({p, frozen}, c.o);
    RefSgd ref{c.o.lr, c.o.momentum, c.o.weight_decay, c.o.nesterov, {}};
    std::vector<double> rp = to_d(kP0);
    for (int k = 0; k < 4; ++k) {
      std::vector<float> g = grad_at(k, 6);
      p.set_grad(Tensor::from_vector(g, {2, 3}));
      opt.step();
      ref.step(rp, g);
      check_close(std::string("sgd ") + c.name + " step " + std::to_string(k + 1), p.to_vector(), to_f(rp), kAtol, kRtol);
    }
    CHECK(opt.step_count() == 4);
    CHECK(frozen.to_vector() == std::vector<float>{1.f, 2.f});
    if (c.o.momentum != 0) {
      REQUIRE(opt.state().size() == 2);
      check_close(std::string("sgd ") + c.name + " momentum buffer", opt.state()[0].to_vector(), to_f(ref.buf), kAtol, kRtol);
    }
  }
}

TEST_CASE("optim: SGD with a changing learning rate and zero_grad") {
  Tensor p = Tensor::from_vector(kP0, {6});
  SGD opt({p}, SgdOptions{0.1f, 0.9f, 0.f, false});
  RefSgd ref{0.1, 0.9, 0.0, false, {}};
  std::vector<double> rp = to_d(kP0);
  for (int k = 0; k < 3; ++k) {
    std::vector<float> g = grad_at(k, 6);
    p.set_grad(Tensor::from_vector(g, {6}));
    opt.step();
    ref.step(rp, g);
    opt.set_lr(opt.lr() * 0.5f);
    ref.lr *= 0.5;
  }
  check_close("sgd lr halved each step", p.to_vector(), to_f(rp), kAtol, kRtol);
  opt.zero_grad();
  CHECK_FALSE(p.grad().defined());
  std::vector<float> before = p.to_vector();
  opt.step();  // no gradient: nothing moves
  CHECK(p.to_vector() == before);
}

TEST_CASE("optim: SGD nesterov without momentum is rejected") {
  Tensor p = Tensor::from_vector(kP0, {6});
  CHECK_THROWS(SGD({p}, SgdOptions{0.1f, 0.f, 0.f, true}));
}

TEST_CASE("optim: Adam with and without weight decay") {
  for (double wd : {0.0, 0.1}) {
    CAPTURE(wd);
    AdamOptions o{0.01, 0.9, 0.999, 1e-8, wd};
    Tensor p = Tensor::from_vector(kP0, {3, 2});
    Tensor late = Tensor::from_vector({0.25f, -0.75f}, {2});  // gets its first gradient at step 2
    Adam opt({p, late}, o);
    RefAdam rp_ref{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, {}, {}, 0};
    RefAdam rl_ref = rp_ref;
    std::vector<double> rp = to_d(kP0), rl = {0.25, -0.75};
    for (int k = 0; k < 5; ++k) {
      std::vector<float> g = grad_at(k, 6);
      p.set_grad(Tensor::from_vector(g, {3, 2}));
      rp_ref.step(rp, g);
      if (k >= 1) {  // PyTorch keeps a step count per parameter: late's bias correction starts at t = 1
        std::vector<float> gl = {0.4f - 0.1f * k, 0.2f};
        late.set_grad(Tensor::from_vector(gl, {2}));
        rl_ref.step(rl, gl);
      }
      opt.step();
      std::string tag = "adam wd " + std::to_string(wd) + " step " + std::to_string(k + 1);
      check_close(tag + " p", p.to_vector(), to_f(rp), kAtol, kRtol);
      check_close(tag + " late", late.to_vector(), to_f(rl), kAtol, kRtol);
    }
    CHECK(opt.step_count() == 5);
    std::vector<Tensor> st = opt.state();  // m of each parameter, then v of each
    REQUIRE(st.size() == 4);
    check_close("adam m", st[0].to_vector(), to_f(rp_ref.m), kAtol, kRtol);
    check_close("adam v", st[2].to_vector(), to_f(rp_ref.v), kAtol, kRtol);
    check_close("adam late m", st[1].to_vector(), to_f(rl_ref.m), kAtol, kRtol);
  }
}

TEST_CASE("optim: MultiStepLR lr sequence") {
  Tensor p = Tensor::from_vector({1.f}, {1});
  SGD opt({p}, SgdOptions{0.1f});
  MultiStepLR sched(opt, {4, 2}, 0.1f);  // unsorted on purpose
  // epoch:            0    1    2     3     4      5      6
  std::vector<double> want = {0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.001};
  CHECK(opt.lr() == doctest::Approx(want[0]).epsilon(1e-6));
  for (int e = 1; e < 7; ++e) {
    sched.step();
    CHECK(sched.epoch() == e);
    CHECK(opt.lr() == doctest::Approx(want[e]).epsilon(1e-6));
  }
  sched.set_epoch(3);  // resuming from a checkpoint
  CHECK(opt.lr() == doctest::Approx(0.01).epsilon(1e-6));
  sched.set_epoch(0);
  CHECK(opt.lr() == doctest::Approx(0.1).epsilon(1e-6));

  // A repeated milestone applies gamma twice (PyTorch keeps a Counter of milestones).
  SGD opt2({p}, SgdOptions{1.f});
  MultiStepLR twice(opt2, {1, 1, 3}, 0.5f);
  std::vector<double> want2 = {1.0, 0.25, 0.25, 0.125, 0.125};
  for (int e = 1; e < 5; ++e) {
    twice.step();
    CHECK(opt2.lr() == doctest::Approx(want2[e]).epsilon(1e-6));
  }
}

TEST_CASE("optim: ReduceLROnPlateau patience, factor, min_lr, threshold") {
  Tensor p = Tensor::from_vector({1.f}, {1});
  SGD opt({p}, SgdOptions{0.1f});
  ReduceLROnPlateau sched(opt, /*factor*/ 0.5f, /*patience*/ 2, /*min_lr*/ 0.02f);  // threshold 1e-4 (rel)
  struct Step { float metric; double lr; int bad; };
  const std::vector<Step> steps = {
      {1.0f, 0.1, 0},      // first value: best = 1.0
      {0.99995f, 0.1, 1},  // better by less than the relative threshold 1e-4: counts as bad
      {0.9f, 0.1, 0},      // real improvement: best = 0.9
      {0.95f, 0.1, 1},
      {0.95f, 0.1, 2},
      {0.95f, 0.05, 0},    // 3 bad epochs > patience 2: lr * 0.5, counter reset
      {0.95f, 0.05, 1},
      {0.95f, 0.05, 2},
      {0.95f, 0.025, 0},
      {0.95f, 0.025, 1},
      {0.95f, 0.025, 2},
      {0.95f, 0.02, 0},    // 0.0125 clamped to min_lr 0.02
      {0.95f, 0.02, 1},
      {0.95f, 0.02, 2},
      {0.95f, 0.02, 0},    // already at min_lr: unchanged, counter still reset
      {0.5f, 0.02, 0},     // improvement
  };
  for (size_t i = 0; i < steps.size(); ++i) {
    CAPTURE(i);
    sched.step(steps[i].metric);
    CHECK(opt.lr() == doctest::Approx(steps[i].lr).epsilon(1e-6));
    CHECK(sched.num_bad_epochs() == steps[i].bad);
  }

  // patience 0 and a large threshold: every epoch not better than best * 0.9 cuts the lr.
  SGD opt2({p}, SgdOptions{1.f});
  ReduceLROnPlateau s2(opt2, 0.1f, 0, 0.f, 0.1f);
  const std::vector<Step> steps2 = {{1.0f, 1.0, 0}, {0.95f, 0.1, 0}, {0.85f, 0.1, 0}, {0.8f, 0.01, 0}, {0.5f, 0.01, 0}};
  for (size_t i = 0; i < steps2.size(); ++i) {
    CAPTURE(i);
    s2.step(steps2[i].metric);
    CHECK(opt2.lr() == doctest::Approx(steps2[i].lr).epsilon(1e-6));
    CHECK(s2.num_bad_epochs() == steps2[i].bad);
  }
  CHECK_THROWS(ReduceLROnPlateau(opt2, 1.5f));
}
