// test_cpu_kernels.cpp — tests of the CPU reference kernels (dfq::cpu) other than convolution
// (test_cpu_conv.cpp): reductions, batch norm, softmax and losses, Philox draws, optimizers against
// double-precision loops, pooling / up-sampling / embedding on small hand-checked cases,
// elementwise and memory kernels. Every TEST_CASE is named "cpu kernel: ...".
#include <cmath>
#include <omp.h>

#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "engine/kernels/kernels.h"
#include "engine/kernels/philox.h"
#include "tests/check.h"
#include "tests/kernel_vectors.h"
#include "tests/ref_kernels.h"

using dfq::test::check_close;
using dfq::test::check_guarded;
using dfq::test::guarded;
using dfq::test::rand_vec;
namespace cpu = dfq::cpu;

TEST_CASE("cpu kernel: reduce_sum over dim masks") {
  auto loop_ref = [](const dfq::ReduceArgs& a, const std::vector<float>& x) {
    int64_t os[6], total = 1, on = 1;
    for (int d = 0; d < a.ndim; ++d) {
      os[d] = a.reduce[d] ? 1 : a.shape[d];
      total *= a.shape[d];
      on *= os[d];
    }
    std::vector<double> acc(on, 0.0);
    for (int64_t i = 0; i < total; ++i) {
      int64_t rem = i, o = 0, mul = 1;
      for (int d = a.ndim - 1; d >= 0; --d) {
        int64_t id = rem % a.shape[d];
        rem /= a.shape[d];
        o += (a.reduce[d] ? 0 : id) * mul;
        mul *= os[d];
      }
      acc[o] += x[i];
    }
    return std::vector<float>(acc.begin(), acc.end());
  };
  struct Shape { int ndim; int64_t s[6]; };
  const Shape shapes[] = {{4, {3, 4, 5, 6}}, {4, {2, 1, 7, 1}}, {2, {300, 500}}, {4, {16, 32, 12, 12}}, {1, {1000}}};
  for (const auto& sh : shapes) {
    int64_t total = 1;
    for (int d = 0; d < sh.ndim; ++d) total *= sh.s[d];
    auto x = rand_vec(total, 20);
    for (int mask = 0; mask < (1 << sh.ndim); ++mask) {
      dfq::ReduceArgs a{};
      a.ndim = sh.ndim;
      for (int d = 0; d < sh.ndim; ++d) {
        a.shape[d] = sh.s[d];
        a.reduce[d] = (mask >> d) & 1;
      }
      auto want = loop_ref(a, x);
      auto got = guarded(want.size()), again = guarded(want.size());
      cpu::reduce_sum(a, x.data(), got.data());
      cpu::reduce_sum(a, x.data(), again.data());
      std::string label = "reduce_sum ndim " + std::to_string(sh.ndim) + " mask " + std::to_string(mask);
      check_guarded(label, got, want, 1e-6, 1e-6);
      CHECK(std::memcmp(got.data(), again.data(), want.size() * sizeof(float)) == 0);
    }
  }
  // empty reduced dim: sum over nothing = 0
  dfq::ReduceArgs a{};
  a.ndim = 2;
  a.shape[0] = 0;
  a.shape[1] = 3;
  a.reduce[0] = 1;
  std::vector<float> y(3, 5.f);
  cpu::reduce_sum(a, nullptr, y.data());
  check_close("reduce_sum empty", y, {0, 0, 0}, 0, 0);
}

TEST_CASE("cpu kernel: channel_mean_var") {
  const int N = 5, C = 3, HW = 37;
  auto x = rand_vec(size_t(N) * C * HW, 30, -2.f, 3.f);
  std::vector<float> mean(C), var(C), rm(C), rv(C);
  for (int c = 0; c < C; ++c) {
    double s = 0, q = 0;
    for (int n = 0; n < N; ++n)
      for (int i = 0; i < HW; ++i) s += x[(n * C + c) * HW + i];
    double mu = s / (N * HW);
    for (int n = 0; n < N; ++n)
      for (int i = 0; i < HW; ++i) q += std::pow(x[(n * C + c) * HW + i] - mu, 2);
    rm[c] = float(mu);
    rv[c] = float(q / (N * HW));
  }
  cpu::channel_mean_var(N, C, HW, x.data(), mean.data(), var.data());
  check_close("channel mean", mean, rm, 1e-6, 1e-6);
  check_close("channel var", var, rv, 1e-6, 1e-6);
}

TEST_CASE("cpu kernel: channel_affine") {
  const int N = 3, C = 4, HW = 37;  // HW not a multiple of the vector width
  auto x = rand_vec(size_t(N) * C * HW, 31, -2.f, 3.f), scale = rand_vec(C, 32), shift = rand_vec(C, 33);
  std::vector<float> want(x.size());
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int i = 0; i < HW; ++i) {
        const size_t j = (size_t(n) * C + c) * HW + i;
        want[j] = x[j] * scale[c] + shift[c];
      }
  auto y = guarded(x.size());
  cpu::channel_affine(N, C, HW, x.data(), scale.data(), shift.data(), y.data());
  check_guarded("channel_affine", y, want, 0, 0);  // the same two float ops: exact
}

TEST_CASE("cpu kernel: batch norm train / eval forward and backward") {
  const int N = 4, C = 3, HW = 10;
  const int64_t M = int64_t(N) * HW, n = M * C;
  dfq::BatchNormArgs a{N, C, HW, 1e-5f, 0.1f};
  auto x = rand_vec(n, 40, -1.f, 2.f), gy = rand_vec(n, 41);
  std::vector<float> gamma = {0.5f, 1.5f, -1.f}, beta = {0.1f, -0.2f, 0.3f};
  std::vector<float> rmean = {0.2f, -0.1f, 0.f}, rvar = {1.f, 2.f, 0.5f};
  const auto rmean0 = rmean, rvar0 = rvar;
  std::vector<float> y(n), smean(C), sinv(C);
  cpu::batch_norm_forward_train(a, x.data(), gamma.data(), beta.data(), rmean.data(), rvar.data(), y.data(),
                                smean.data(), sinv.data());
  std::vector<float> yr(n), wm(C), wi(C), wrm(C), wrv(C), gxr(n), ggr(C), gbr(C);
  for (int c = 0; c < C; ++c) {
    double s = 0, q = 0, sg = 0, sgx = 0;
    auto at = [&](int i, int k) { return (int64_t(i) * C + c) * HW + k; };
    for (int i = 0; i < N; ++i)
      for (int k = 0; k < HW; ++k) s += x[at(i, k)];
    double mu = s / M;
    for (int i = 0; i < N; ++i)
      for (int k = 0; k < HW; ++k) q += std::pow(x[at(i, k)] - mu, 2);
    double var = q / M, inv = 1 / std::sqrt(var + 1e-5);
    for (int i = 0; i < N; ++i)
      for (int k = 0; k < HW; ++k) {
        double xh = (x[at(i, k)] - mu) * inv;
        yr[at(i, k)] = float(xh * gamma[c] + beta[c]);
        sg += gy[at(i, k)];
        sgx += gy[at(i, k)] * xh;
      }
    for (int i = 0; i < N; ++i)
      for (int k = 0; k < HW; ++k) {
        double xh = (x[at(i, k)] - mu) * inv;
        gxr[at(i, k)] = float(gamma[c] * inv / M * (M * gy[at(i, k)] - sg - xh * sgx));
      }
    wm[c] = float(mu);
    wi[c] = float(inv);
    wrm[c] = float(0.9 * rmean0[c] + 0.1 * mu);
    wrv[c] = float(0.9 * rvar0[c] + 0.1 * var * M / (M - 1));  // unbiased
    ggr[c] = float(sgx);
    gbr[c] = float(sg);
  }
  check_close("bn train y", y, yr, 1e-5, 1e-5);
  check_close("bn save_mean", smean, wm, 1e-6, 1e-6);
  check_close("bn save_invstd", sinv, wi, 1e-6, 1e-6);
  check_close("bn running_mean", rmean, wrm, 1e-6, 1e-6);
  check_close("bn running_var", rvar, wrv, 1e-6, 1e-6);

  std::vector<float> gx(n), gg(C), gb(C);
  cpu::batch_norm_backward_train(a, x.data(), gy.data(), gamma.data(), smean.data(), sinv.data(), gx.data(), gg.data(),
                                 gb.data());
  check_close("bn backward train gx", gx, gxr, 1e-5, 1e-5);
  check_close("bn backward train ggamma", gg, ggr, 1e-5, 1e-5);
  check_close("bn backward train gbeta", gb, gbr, 1e-5, 1e-5);

  // affine=false and no running stats: y = xhat
  std::vector<float> y2(n);
  cpu::batch_norm_forward_train(a, x.data(), nullptr, nullptr, nullptr, nullptr, y2.data(), smean.data(), sinv.data());
  for (int64_t i = 0; i < n; ++i) {
    int c = int((i / HW) % C);
    CHECK(y2[i] == doctest::Approx((yr[i] - beta[c]) / gamma[c]).epsilon(1e-5));
  }

  // eval: y = (x - rm) / sqrt(rv + eps) * gamma + beta; gx = gy * gamma / sqrt(rv + eps)
  std::vector<float> ye(n), ye_ref(n), gxe(n), gxe_ref(n), gge(C), gbe(C), gge_ref(C, 0), gbe_ref(C, 0);
  cpu::batch_norm_forward_eval(a, x.data(), gamma.data(), beta.data(), rmean0.data(), rvar0.data(), ye.data());
  cpu::batch_norm_backward_eval(a, x.data(), gy.data(), gamma.data(), rmean0.data(), rvar0.data(), gxe.data(),
                                gge.data(), gbe.data());
  std::vector<double> gacc(C, 0), bacc(C, 0);
  for (int64_t i = 0; i < n; ++i) {
    int c = int((i / HW) % C);
    double inv = 1 / std::sqrt(double(rvar0[c]) + 1e-5), xh = (x[i] - rmean0[c]) * inv;
    ye_ref[i] = float(xh * gamma[c] + beta[c]);
    gxe_ref[i] = float(gy[i] * gamma[c] * inv);
    gacc[c] += gy[i] * xh;
    bacc[c] += gy[i];
  }
  for (int c = 0; c < C; ++c) gge_ref[c] = float(gacc[c]), gbe_ref[c] = float(bacc[c]);
  check_close("bn eval y", ye, ye_ref, 1e-5, 1e-5);
  check_close("bn eval gx", gxe, gxe_ref, 1e-6, 1e-5);
  check_close("bn eval ggamma", gge, gge_ref, 1e-5, 1e-5);
  check_close("bn eval gbeta", gbe, gbe_ref, 1e-5, 1e-5);

  // empty batch: nothing read, running stats untouched
  dfq::BatchNormArgs e{0, C, HW, 1e-5f, 0.1f};
  auto rm2 = rmean0, rv2 = rvar0;
  cpu::batch_norm_forward_train(e, nullptr, gamma.data(), beta.data(), rm2.data(), rv2.data(), nullptr, smean.data(),
                                sinv.data());
  check_close("bn empty running_mean", rm2, rmean0, 0, 0);
  check_close("bn empty running_var", rv2, rvar0, 0, 0);
}

TEST_CASE("cpu kernel: softmax, log_softmax and their backward") {
  const int64_t rows = 7, cols = 13;
  auto x = rand_vec(rows * cols, 50, -5.f, 5.f), gy = rand_vec(rows * cols, 51);
  x[3] = 80.f;  // large logit: needs the max shift
  std::vector<float> p(rows * cols), lp(rows * cols), explp(rows * cols);
  cpu::softmax_forward(rows, cols, false, x.data(), p.data());
  cpu::softmax_forward(rows, cols, true, x.data(), lp.data());
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t j = 0; j < cols; ++j) s += p[r * cols + j];
    CHECK(s == doctest::Approx(1.0).epsilon(1e-6));
  }
  for (size_t i = 0; i < lp.size(); ++i) explp[i] = std::exp(lp[i]);
  check_close("exp(log_softmax) = softmax", explp, p, 1e-7, 1e-5);
  std::vector<float> gx(rows * cols), gxl(rows * cols), ref(rows * cols), refl(rows * cols);
  cpu::softmax_backward(rows, cols, false, p.data(), gy.data(), gx.data());
  cpu::softmax_backward(rows, cols, true, lp.data(), gy.data(), gxl.data());
  for (int64_t r = 0; r < rows; ++r) {
    double dot = 0, sg = 0;
    for (int64_t j = 0; j < cols; ++j) dot += double(gy[r * cols + j]) * p[r * cols + j], sg += gy[r * cols + j];
    for (int64_t j = 0; j < cols; ++j) {
      ref[r * cols + j] = float(p[r * cols + j] * (gy[r * cols + j] - dot));
      refl[r * cols + j] = float(gy[r * cols + j] - p[r * cols + j] * sg);
    }
  }
  check_close("softmax backward", gx, ref, 1e-6, 1e-5);
  check_close("log_softmax backward", gxl, refl, 1e-6, 1e-5);
}

TEST_CASE("cpu kernel: nll and kl_div") {
  const int64_t rows = 3, cols = 4;
  std::vector<float> logp = {-1, -2, -3, -4, -0.5f, -1.5f, -2.5f, -3.5f, -0.1f, -0.2f, -0.3f, -0.4f};
  std::vector<int64_t> labels = {2, 0, 3};
  float loss = 0;
  cpu::nll_forward(rows, cols, logp.data(), labels.data(), &loss);
  CHECK(loss == doctest::Approx((3 + 0.5 + 0.4) / 3.0).epsilon(1e-6));
  float gl = 2.f;
  std::vector<float> g(rows * cols, 9.f);
  cpu::nll_backward(rows, cols, labels.data(), &gl, g.data());
  const float v = -2.f / 3.f;
  check_close("nll backward", g, {0, 0, v, 0, v, 0, 0, 0, 0, 0, 0, v}, 1e-7, 1e-6);
  cpu::nll_forward(0, cols, nullptr, nullptr, &loss);
  CHECK(std::isnan(loss));  // mean over zero rows, as PyTorch

  std::vector<float> in = {-1.f, -0.5f, 0.3f, -2.f}, t = {0.2f, 0.f, 0.5f, 0.3f}, gy = {1.f, 2.f, -1.f, 0.5f};
  std::vector<float> y(4), gi(4), gt(4), yr(4), gir(4), gtr(4);
  cpu::kl_div_forward(4, in.data(), t.data(), y.data());
  cpu::kl_div_backward(4, in.data(), t.data(), gy.data(), gi.data(), gt.data());
  for (int i = 0; i < 4; ++i) {
    yr[i] = t[i] == 0 ? 0.f : float(t[i] * (std::log(double(t[i])) - in[i]));
    gir[i] = -t[i] * gy[i];
    gtr[i] = t[i] == 0 ? 0.f : float((std::log(double(t[i])) + 1 - in[i]) * gy[i]);
  }
  check_close("kl_div forward", y, yr, 1e-7, 1e-6);
  check_close("kl_div ginput", gi, gir, 0, 0);
  check_close("kl_div gtarget", gt, gtr, 1e-7, 1e-6);
  cpu::kl_div_backward(4, in.data(), t.data(), gy.data(), nullptr, gt.data());  // either output may be null
}

TEST_CASE("cpu kernel: philox draws") {
  const int64_t n = 100000;
  std::vector<float> a(n), b(n), c(n);
  cpu::philox_normal(n, 42, 0, 0.f, 1.f, a.data());
  cpu::philox_normal(n, 42, 0, 0.f, 1.f, b.data());
  cpu::philox_normal(n, 43, 0, 0.f, 1.f, c.data());
  CHECK(std::memcmp(a.data(), b.data(), n * sizeof(float)) == 0);
  int same = 0;
  for (int64_t i = 0; i < n; ++i) same += a[i] == c[i];
  CHECK(same < 10);
  double s = 0, q = 0;
  for (float v : a) s += v, q += double(v) * v;
  double mean = s / n, sd = std::sqrt(q / n - mean * mean);
  CHECK(std::fabs(mean) < 0.02);
  CHECK(std::fabs(sd - 1.0) < 0.02);
  CHECK(a[5] == dfq::philox::normal_at(42, 0, 5, 0.f, 1.f));
  // offset k skips the first 4k elements
  std::vector<float> off(8);
  cpu::philox_normal(8, 42, 3, 0.f, 1.f, off.data());
  for (int i = 0; i < 8; ++i) CHECK(off[i] == a[12 + i]);
  cpu::philox_normal(4, 42, 0, 2.f, 3.f, b.data());
  for (int i = 0; i < 4; ++i) CHECK(b[i] == doctest::Approx(2.f + 3.f * a[i]).epsilon(1e-6));

  std::vector<float> u(n), u2(n);
  cpu::philox_uniform(n, 7, 0, -2.f, 3.f, u.data());
  cpu::philox_uniform(n, 7, 0, -2.f, 3.f, u2.data());
  CHECK(std::memcmp(u.data(), u2.data(), n * sizeof(float)) == 0);
  double us = 0;
  bool in_range = true;
  for (float v : u) in_range &= v >= -2.f && v < 3.f, us += v;
  CHECK(in_range);
  CHECK(std::fabs(us / n - 0.5) < 0.03);

  std::vector<int64_t> ri(n), ri2(n);
  cpu::philox_randint(n, 9, 0, -3, 7, ri.data());
  cpu::philox_randint(n, 9, 0, -3, 7, ri2.data());
  CHECK(ri == ri2);
  std::vector<int> hist(10, 0);
  bool ok = true;
  for (int64_t v : ri) {
    ok &= v >= -3 && v < 7;
    if (v >= -3 && v < 7) hist[v + 3]++;
  }
  CHECK(ok);
  for (int h : hist) CHECK(h > n / 10 - 1000);
  cpu::philox_normal(0, 1, 0, 0.f, 1.f, nullptr);  // n == 0 does nothing
}

TEST_CASE("cpu kernel: sgd and adam against double loops") {
  const int64_t n = 37;
  auto p0 = rand_vec(n, 60), g1 = rand_vec(n, 61), g2 = rand_vec(n, 62), g3 = rand_vec(n, 63);
  const std::vector<float>* grads[3] = {&g1, &g2, &g3};
  for (int nesterov = 0; nesterov < 2; ++nesterov) {
    std::vector<float> p = p0, buf(n, 123.f);
    std::vector<double> pd(p0.begin(), p0.end()), bd(n, 0);
    const double lr = 0.1f, mom = 0.9f, wd = 1e-2f;  // float-rounded, as the kernel receives them
    for (int t = 0; t < 3; ++t) {
      dfq::SgdArgs a{float(lr), float(mom), float(wd), nesterov != 0, t == 0};
      cpu::sgd_update(a, n, p.data(), grads[t]->data(), buf.data());
      for (int64_t i = 0; i < n; ++i) {
        double g = (*grads[t])[i] + wd * pd[i];
        bd[i] = t == 0 ? g : mom * bd[i] + g;
        pd[i] -= lr * (nesterov ? g + mom * bd[i] : bd[i]);
      }
    }
    check_close(nesterov ? "sgd nesterov" : "sgd momentum", p, std::vector<float>(pd.begin(), pd.end()), 1e-6, 1e-5);
  }
  {  // plain SGD: no momentum buffer at all
    std::vector<float> p = p0;
    dfq::SgdArgs a{0.5f, 0.f, 0.f, false, true};
    cpu::sgd_update(a, n, p.data(), g1.data(), nullptr);
    std::vector<float> r(n);
    for (int64_t i = 0; i < n; ++i) r[i] = p0[i] - 0.5f * g1[i];
    check_close("sgd plain", p, r, 1e-7, 1e-6);
  }
  std::vector<float> p = p0, m(n, 0.f), v(n, 0.f);
  std::vector<double> pd(p0.begin(), p0.end()), md(n, 0), vd(n, 0);
  // AdamArgs carries doubles, as PyTorch's hyper-parameters; the reference uses the same values
  const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 1e-3;
  for (int t = 1; t <= 3; ++t) {
    dfq::AdamArgs a{lr, b1, b2, eps, wd, t};
    cpu::adam_update(a, n, p.data(), grads[t - 1]->data(), m.data(), v.data());
    for (int64_t i = 0; i < n; ++i) {
      double g = (*grads[t - 1])[i] + wd * pd[i];
      md[i] = b1 * md[i] + (1 - b1) * g;
      vd[i] = b2 * vd[i] + (1 - b2) * g * g;
      pd[i] -= lr / (1 - std::pow(b1, t)) * md[i] / (std::sqrt(vd[i]) / std::sqrt(1 - std::pow(b2, t)) + eps);
    }
  }
  check_close("adam p", p, std::vector<float>(pd.begin(), pd.end()), 1e-6, 1e-5);
  check_close("adam m", m, std::vector<float>(md.begin(), md.end()), 1e-7, 1e-5);
  check_close("adam v", v, std::vector<float>(vd.begin(), vd.end()), 1e-9, 1e-5);
}

TEST_CASE("cpu kernel: max and avg pooling by hand") {
  // one 4x4 plane, values 0..15 with a negative corner
  std::vector<float> x(16);
  for (int i = 0; i < 16; ++i) x[i] = float(i);
  x[0] = -100.f;
  dfq::Pool2dArgs a{1, 1, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0};
  dfq::pool2d_out_size(a);
  REQUIRE(a.P == 2);
  REQUIRE(a.Q == 2);
  std::vector<float> y(4);
  std::vector<int32_t> idx(4);
  cpu::max_pool2d_forward(a, x.data(), y.data(), idx.data());
  check_close("max_pool y", y, {5, 7, 13, 15}, 0, 0);
  CHECK(idx == std::vector<int32_t>{5, 7, 13, 15});
  // all-negative window touching the padding: padding (as -inf) never wins
  std::vector<float> xn(16, -3.f);
  cpu::max_pool2d_forward(a, xn.data(), y.data(), idx.data());
  check_close("max_pool negative y", y, {-3, -3, -3, -3}, 0, 0);
  CHECK(idx == std::vector<int32_t>{0, 1, 4, 5});
  // backward with overlapping windows: gradient of a shared max adds up
  dfq::Pool2dArgs b{1, 1, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0};
  dfq::pool2d_out_size(b);
  std::vector<float> xb = {1, 2, 1, 2, 9, 2, 1, 2, 1}, yb(4), gx(9, 5.f);
  std::vector<int32_t> ib(4);
  cpu::max_pool2d_forward(b, xb.data(), yb.data(), ib.data());
  CHECK(ib == std::vector<int32_t>{4, 4, 4, 4});
  std::vector<float> gy = {1, 2, 3, 4};
  cpu::max_pool2d_backward(b, gy.data(), ib.data(), gx.data());
  check_close("max_pool backward", gx, {0, 0, 0, 0, 10, 0, 0, 0, 0}, 0, 0);

  // avg pooling 3x3 stride 2 pad 1 on the 0..15 plane (x[0] = 0): divisor 9 always
  for (int i = 0; i < 16; ++i) x[i] = float(i);
  cpu::avg_pool2d_forward(a, x.data(), y.data());
  check_close("avg_pool y", y, {(0 + 1 + 4 + 5) / 9.f, (1 + 2 + 3 + 5 + 6 + 7) / 9.f, (4 + 5 + 8 + 9 + 12 + 13) / 9.f,
                                (5 + 6 + 7 + 9 + 10 + 11 + 13 + 14 + 15) / 9.f}, 1e-6, 1e-6);
  std::vector<float> g4 = {9, 18, 27, 36}, gxa(16, 5.f);
  cpu::avg_pool2d_backward(a, g4.data(), gxa.data());
  check_close("avg_pool backward", gxa, {1, 3, 2, 2, 4, 10, 6, 6, 3, 7, 4, 4, 3, 7, 4, 4}, 1e-6, 1e-6);
  // empty batch
  dfq::Pool2dArgs e{0, 3, 4, 4, 2, 2, 2, 2, 0, 0, 0, 0};
  dfq::pool2d_out_size(e);
  cpu::max_pool2d_forward(e, nullptr, nullptr, nullptr);
  cpu::avg_pool2d_backward(e, nullptr, nullptr);
}

TEST_CASE("cpu kernel: adaptive avg pool and nearest up-sampling by hand") {
  // H=W=5 -> P=Q=3: windows [0,2) [1,4) [3,5)
  std::vector<float> x(25);
  for (int i = 0; i < 25; ++i) x[i] = float(i);
  std::vector<float> y(9);
  cpu::adaptive_avg_pool2d_forward(1, 5, 5, 3, 3, x.data(), y.data());
  auto win = [&](int h0, int h1, int w0, int w1) {
    double s = 0;
    for (int h = h0; h < h1; ++h)
      for (int w = w0; w < w1; ++w) s += x[h * 5 + w];
    return float(s / ((h1 - h0) * (w1 - w0)));
  };
  const int st[3] = {0, 1, 3}, en[3] = {2, 4, 5};
  std::vector<float> want(9);
  for (int p = 0; p < 3; ++p)
    for (int q = 0; q < 3; ++q) want[p * 3 + q] = win(st[p], en[p], st[q], en[q]);
  check_close("adaptive pool 5->3", y, want, 1e-6, 1e-6);
  // global pooling (P=Q=1) over 2 planes, then its backward
  std::vector<float> x2 = {1, 2, 3, 4, 10, 20, 30, 40}, y2(2), gx2(8, 9.f), gy2 = {4.f, 8.f};
  cpu::adaptive_avg_pool2d_forward(2, 2, 2, 1, 1, x2.data(), y2.data());
  check_close("adaptive pool global", y2, {2.5f, 25.f}, 0, 0);
  cpu::adaptive_avg_pool2d_backward(2, 2, 2, 1, 1, gy2.data(), gx2.data());
  check_close("adaptive pool global backward", gx2, {1, 1, 1, 1, 2, 2, 2, 2}, 0, 0);
  // overlapping windows (3 -> 2: [0,2) and [1,3)) in 1-D along W: middle column gets both
  std::vector<float> gy3 = {2.f, 4.f}, gx3(3, 9.f);
  cpu::adaptive_avg_pool2d_backward(1, 1, 3, 1, 2, gy3.data(), gx3.data());
  check_close("adaptive pool overlapping backward", gx3, {1, 3, 2}, 0, 0);

  std::vector<float> u = {1, 2, 3, 4, 5, 6}, uy(24), ug(6, 9.f);  // (NC=1, H=2, W=3)
  cpu::upsample_nearest2x_forward(1, 2, 3, u.data(), uy.data());
  check_close("upsample forward", uy, {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 4, 4, 5, 5, 6, 6}, 0, 0);
  std::vector<float> ugy(24);
  for (int i = 0; i < 24; ++i) ugy[i] = float(i);
  cpu::upsample_nearest2x_backward(1, 2, 3, ugy.data(), ug.data());
  check_close("upsample backward", ug, {0 + 1 + 6 + 7, 2 + 3 + 8 + 9, 4 + 5 + 10 + 11, 12 + 13 + 18 + 19,
                                        14 + 15 + 20 + 21, 16 + 17 + 22 + 23}, 0, 0);
}

TEST_CASE("cpu kernel: embedding with repeated indices") {
  const int64_t rows = 4, dim = 3;
  std::vector<float> table = {0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32};
  std::vector<int64_t> idx = {2, 0, 2, 3, 2};
  std::vector<float> y(idx.size() * dim);
  cpu::embedding_forward(int64_t(idx.size()), dim, idx.data(), table.data(), y.data());
  check_close("embedding forward", y, {20, 21, 22, 0, 1, 2, 20, 21, 22, 30, 31, 32, 20, 21, 22}, 0, 0);
  std::vector<float> gy(idx.size() * dim);
  for (size_t i = 0; i < gy.size(); ++i) gy[i] = float(i);
  std::vector<float> gt(rows * dim, 1.f);  // += accumulates on top of existing values
  cpu::embedding_backward(int64_t(idx.size()), dim, idx.data(), gy.data(), gt.data());
  check_close("embedding backward", gt, {1 + 3, 1 + 4, 1 + 5, 1, 1, 1, 1 + 0 + 6 + 12, 1 + 1 + 7 + 13, 1 + 2 + 8 + 14,
                                         1 + 9, 1 + 10, 1 + 11}, 0, 0);
}

TEST_CASE("cpu kernel: unary, binary broadcast and memory kernels") {
  using dfq::UnaryOp;
  std::vector<float> x = {-2.f, -0.5f, 0.f, 0.25f, 1.5f}, pos = {0.5f, 1.f, 2.f, 4.f, 9.f}, gy = {1, 2, 3, 4, 5};
  std::vector<float> y(5), gx(5);
  auto run = [&](UnaryOp op, float alpha, const std::vector<float>& in) {
    cpu::unary_forward(op, alpha, 5, in.data(), y.data());
    cpu::unary_backward(op, alpha, 5, in.data(), y.data(), gy.data(), gx.data());
  };
  run(UnaryOp::Relu, 0, x);
  check_close("relu", y, {0, 0, 0, 0.25f, 1.5f}, 0, 0);
  check_close("relu'", gx, {0, 0, 0, 4, 5}, 0, 0);
  run(UnaryOp::LeakyRelu, 0.1f, x);
  check_close("leaky", y, {-0.2f, -0.05f, 0, 0.25f, 1.5f}, 1e-7, 1e-6);
  check_close("leaky'", gx, {0.1f, 0.2f, 0.3f, 4, 5}, 1e-7, 1e-6);
  const std::vector<float> x6 = {-1.f, 0.f, 3.f, 6.f, 7.5f};
  run(UnaryOp::Relu6, 0, x6);
  check_close("relu6", y, {0, 0, 3, 6, 6}, 0, 0);
  check_close("relu6'", gx, {0, 0, 3, 0, 0}, 0, 0);  // PyTorch: no gradient at either kink
  run(UnaryOp::Abs, 0, x);
  check_close("abs'", gx, {-1, -2, 0, 4, 5}, 0, 0);
  run(UnaryOp::Square, 0, x);
  check_close("square'", gx, {-4, -2, 0, 2, 15}, 1e-6, 1e-6);
  run(UnaryOp::MulScalar, 3.f, x);
  check_close("mul'", gx, {3, 6, 9, 12, 15}, 0, 0);
  run(UnaryOp::Sqrt, 0, pos);
  check_close("sqrt'", gx, {1 * 0.5f / std::sqrt(0.5f), 1, 3 * 0.5f / std::sqrt(2.f), 1, 5 / 6.f}, 1e-6, 1e-6);
  run(UnaryOp::Log, 0, pos);
  check_close("log'", gx, {2, 2, 1.5f, 1, 5 / 9.f}, 1e-6, 1e-6);
  run(UnaryOp::Sigmoid, 0, x);
  for (int i = 0; i < 5; ++i) {
    double s = 1 / (1 + std::exp(-double(x[i])));
    CHECK(y[i] == doctest::Approx(s).epsilon(1e-6));
    CHECK(gx[i] == doctest::Approx(gy[i] * s * (1 - s)).epsilon(1e-5));
  }
  run(UnaryOp::Tanh, 0, x);
  for (int i = 0; i < 5; ++i) CHECK(gx[i] == doctest::Approx(gy[i] / std::pow(std::cosh(double(x[i])), 2)).epsilon(1e-5));
  std::vector<float> xa = x;  // in place (x aliases y)
  cpu::unary_forward(UnaryOp::AddScalar, 1.f, 5, xa.data(), xa.data());
  check_close("add scalar in place", xa, {-1, 0.5f, 1, 1.25f, 2.5f}, 0, 0);

  // (2,3,4) - (3,1): b broadcast over dim 0 and the last dim
  dfq::BroadcastArgs ba{3, {2, 3, 4}, {12, 4, 1}, {0, 1, 0}};
  auto a = rand_vec(24, 70), b = rand_vec(3, 71);
  std::vector<float> out(24), want(24);
  for (int binop = 0; binop < 4; ++binop) {
    cpu::binary_forward(dfq::BinaryOp(binop), ba, a.data(), b.data(), out.data());
    for (int i = 0; i < 24; ++i) {
      float u = a[i], v = b[(i / 4) % 3];
      want[i] = binop == 0 ? u + v : binop == 1 ? u - v : binop == 2 ? u * v : u / v;
    }
    check_close("binary broadcast op " + std::to_string(binop), out, want, 0, 0);
  }
  dfq::BroadcastArgs dense{2, {3, 8}, {8, 1}, {8, 1}};
  auto c = rand_vec(24, 72);
  cpu::binary_forward(dfq::BinaryOp::Mul, dense, a.data(), c.data(), out.data());
  for (int i = 0; i < 24; ++i) want[i] = a[i] * c[i];
  check_close("binary dense", out, want, 0, 0);

  // strided copy: transpose of a (3,4) matrix, and expand of a (3) vector to (2,3)
  std::vector<float> m(12), t(12);
  for (int i = 0; i < 12; ++i) m[i] = float(i);
  cpu::strided_copy(dfq::StridedArgs{2, {4, 3}, {1, 4}}, m.data(), t.data());
  check_close("transpose", t, {0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}, 0, 0);
  std::vector<int64_t> vi = {7, 8, 9}, ei(6);
  cpu::strided_copy_i64(dfq::StridedArgs{2, {2, 3}, {0, 1}}, vi.data(), ei.data());
  CHECK(ei == std::vector<int64_t>{7, 8, 9, 7, 8, 9});
  std::vector<uint8_t> u8 = {0, 128, 255}, u8t(3);
  cpu::strided_copy_u8(dfq::StridedArgs{1, {3}, {-1}}, u8.data() + 2, u8t.data());
  CHECK(u8t == std::vector<uint8_t>{255, 128, 0});
  std::vector<float> f(3);
  cpu::u8_to_f32(3, u8.data(), 1 / 255.f, -0.5f, f.data());
  check_close("u8_to_f32", f, {-0.5f, 128 / 255.f - 0.5f, 0.5f}, 1e-7, 1e-6);
  cpu::i64_to_f32(3, vi.data(), f.data());
  check_close("i64_to_f32", f, {7, 8, 9}, 0, 0);

  // block copy: write column block [1,3) of a (2,4) matrix from a (2,2) source
  std::vector<float> dst(8, 0.f), src = {1, 2, 3, 4};
  cpu::block_copy(2, 2, src.data(), 2, 0, dst.data(), 4, 1);
  check_close("block_copy", dst, {0, 1, 2, 0, 0, 3, 4, 0}, 0, 0);
  cpu::fill(3, 2.5f, f.data());
  check_close("fill", f, {2.5f, 2.5f, 2.5f}, 0, 0);
  cpu::fill_i64(3, -4, ei.data());
  CHECK(ei[2] == -4);
  std::vector<float> ax = {1, 2, 3}, ay = {1, 1, 1};
  cpu::axpy(3, 2.f, ax.data(), ay.data());
  check_close("axpy", ay, {3, 5, 7}, 0, 0);
  cpu::copy(3, ax.data(), ay.data());
  check_close("copy", ay, ax, 0, 0);
}

TEST_CASE("cpu kernel: results do not depend on the OpenMP thread count") {
  const int N = 8, C = 16, HW = 24 * 24;
  const int64_t n = int64_t(N) * C * HW;
  auto x = rand_vec(n, 80), gy = rand_vec(n, 81);
  auto run_all = [&]() {
    std::vector<float> out;
    auto add = [&](const std::vector<float>& v) { out.insert(out.end(), v.begin(), v.end()); };
    dfq::ReduceArgs r{};
    r.ndim = 3;
    r.shape[0] = N, r.shape[1] = C, r.shape[2] = HW;
    for (int mask : {1, 2, 5, 7}) {
      for (int d = 0; d < 3; ++d) r.reduce[d] = (mask >> d) & 1;
      int64_t on = 1;
      for (int d = 0; d < 3; ++d) on *= r.reduce[d] ? 1 : r.shape[d];
      std::vector<float> y(on);
      cpu::reduce_sum(r, x.data(), y.data());
      add(y);
    }
    dfq::BatchNormArgs a{N, C, HW, 1e-5f, 0.1f};
    std::vector<float> y(n), gx(n), m(C), inv(C), rm(C, 0.f), rv(C, 1.f), gg(C), gb(C);
    cpu::batch_norm_forward_train(a, x.data(), nullptr, nullptr, rm.data(), rv.data(), y.data(), m.data(), inv.data());
    cpu::batch_norm_backward_train(a, x.data(), gy.data(), nullptr, m.data(), inv.data(), gx.data(), gg.data(), gb.data());
    add(y), add(gx), add(m), add(inv), add(rm), add(rv), add(gg), add(gb);
    std::vector<float> sm(n);
    cpu::softmax_forward(N * C, HW, true, x.data(), sm.data());
    add(sm);
    std::vector<int64_t> idx(N * C);
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = int64_t(i % 5);
    std::vector<float> table(5 * HW, 0.f);
    cpu::embedding_backward(N * C, HW, idx.data(), gy.data(), table.data());
    add(table);
    return out;
  };
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  auto one = run_all();
  omp_set_num_threads(std::max(threads, 2));
  auto many = run_all();
  omp_set_num_threads(threads);
  REQUIRE(one.size() == many.size());
  CHECK(std::memcmp(one.data(), many.data(), one.size() * sizeof(float)) == 0);
}
