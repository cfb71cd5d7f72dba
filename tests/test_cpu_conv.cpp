// test_cpu_conv.cpp — the CPU convolution kernels against the naive loops of ref_kernels.h in
// both algorithms (im2col and shifted GEMMs) and the depthwise kernel, the fused up-sampling conv,
// the algorithm choice, and GEMM in all transpose combinations. Every TEST_CASE is named "cpu kernel: ...".
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/kernels/cpu/onednn.h"
#include "engine/kernels/cpu/shifted_conv.h"
#include "engine/kernels/kernels.h"
#include "tests/check.h"
#include "tests/kernel_vectors.h"
#include "tests/ref_kernels.h"

using dfq::test::check_close;
using dfq::test::check_guarded;
using dfq::test::guarded;
using dfq::test::head;
using dfq::test::rand_vec;
namespace cpu = dfq::cpu;

namespace {

struct ConvCase {
  const char* name;
  int N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw, g;
};

// ref: the reference filter gradient (wn values) followed by the bias gradient
void check_filter_and_bias(const std::string& tag, const std::vector<float>& gw, const std::vector<float>& gb,
                           const std::vector<float>& ref, size_t wn, double atol, double rtol) {
  check_guarded(tag + "backward filter", gw, std::vector<float>(ref.begin(), ref.begin() + wn), atol, rtol);
  check_guarded(tag + "backward bias", gb, std::vector<float>(ref.begin() + wn, ref.end()), atol, rtol);
}

void run_conv_case(const ConvCase& cc) {
  dfq::Conv2dArgs a{cc.N, cc.C, cc.H, cc.W, cc.K, cc.R, cc.S, cc.sh, cc.sw, cc.ph, cc.pw, cc.dh, cc.dw, cc.g, 0, 0};
  dfq::conv2d_out_size(a);
  const size_t xn = size_t(a.N) * a.C * a.H * a.W, yn = size_t(a.N) * a.K * a.P * a.Q;
  const size_t wn = size_t(a.K) * (a.C / a.groups) * a.R * a.S;
  auto x = rand_vec(xn, 1), w = rand_vec(wn, 2), b = rand_vec(a.K, 3), gy = rand_vec(yn, 4);
  std::string tag = std::string(cc.name) + " ";
  // sums of up to a few thousand float products (backward filter: N*P*Q terms) vs a double loop
  const double atol = 2e-5, rtol = 1e-5;

  auto y = guarded(yn);
  cpu::conv2d_forward(a, x.data(), w.data(), b.data(), y.data());
  check_guarded(tag + "forward", y, dfq::test::ref::conv2d_forward(a, x.data(), w.data(), b.data()), atol, rtol);
  cpu::conv2d_forward(a, x.data(), w.data(), nullptr, y.data());
  check_guarded(tag + "forward no bias", y, dfq::test::ref::conv2d_forward(a, x.data(), w.data(), nullptr), atol, rtol);

  auto gx = guarded(xn);
  cpu::conv2d_backward_data(a, gy.data(), w.data(), gx.data());
  check_guarded(tag + "backward data", gx, dfq::test::ref::conv2d_backward_data(a, gy.data(), w.data()), atol, rtol);

  auto gw = guarded(wn), gb = guarded(a.K);
  cpu::conv2d_backward_filter(a, x.data(), gy.data(), gw.data(), gb.data());
  check_filter_and_bias(tag, gw, gb, dfq::test::ref::conv2d_backward_filter(a, x.data(), gy.data()), wn, atol, rtol);
}


}  // namespace

TEST_CASE("cpu kernel: conv2d matches the naive direct convolution") {
  const ConvCase cases[] = {
      // name                   N  C  H   W   K  R  S sh sw ph pw dh dw g
      {"3x3 pad1",              2, 3, 7,  9,  4, 3, 3, 1, 1, 1, 1, 1, 1, 1},
      {"groups2 stride2",       3, 4, 11, 10, 6, 3, 3, 2, 2, 1, 1, 1, 1, 2},
      {"depthwise",             2, 6, 8,  7,  6, 3, 3, 1, 1, 1, 1, 1, 1, 6},
      {"depthwise x2 stride2",  2, 3, 9,  8,  6, 3, 3, 2, 2, 1, 1, 1, 1, 3},
      {"dilation2 pad2",        2, 4, 9,  9,  5, 3, 3, 1, 1, 2, 2, 2, 2, 1},
      {"dil/stride/groups mix", 2, 4, 13, 12, 4, 3, 2, 2, 1, 1, 3, 2, 1, 2},
      {"1x1 small plane",       3, 8, 5,  5,  7, 1, 1, 1, 1, 0, 0, 1, 1, 1},
      {"1x1 direct two chunks", 2, 4, 33, 35, 3, 1, 1, 1, 1, 0, 0, 1, 1, 1},
      {"1x1 stride2",           2, 5, 9,  9,  4, 1, 1, 2, 2, 0, 0, 1, 1, 1},
      {"2x5 odd stride3",       2, 3, 10, 13, 5, 2, 5, 1, 3, 0, 2, 1, 1, 1},
      {"7x7 stem",              2, 3, 17, 15, 4, 7, 7, 2, 2, 3, 3, 1, 1, 1},
      {"chunks 3+2",            5, 2, 20, 20, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1},
      {"pad larger than image", 1, 2, 2,  3,  2, 3, 3, 1, 1, 2, 2, 1, 1, 1},
      {"larger (OpenMP paths)", 4, 16, 16, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1},
      {"few outputs 16->3",     2, 16, 9,  8,  3, 3, 3, 1, 1, 1, 1, 1, 1, 1},
      {"few outputs 5x3 pad0",  2, 12, 9,  8,  2, 5, 3, 1, 1, 0, 2, 1, 1, 1},
  };
  for (auto algo : {cpu::ConvAlgo::Im2col, cpu::ConvAlgo::Shifted, cpu::ConvAlgo::Auto}) {
    CAPTURE(static_cast<int>(algo));
    cpu::set_conv_algo(algo);
    for (const auto& c : cases) run_conv_case(c);
  }
  cpu::set_conv_algo(cpu::ConvAlgo::Auto);
}

TEST_CASE("cpu kernel: fused nearest-2x up-sampling + 3x3 conv equals the two kernels") {
  struct Case { int N, C, H, W, K; };
  for (const Case& c : {Case{2, 3, 4, 5, 4}, Case{3, 40, 3, 3, 33}, Case{1, 2, 1, 1, 3}, Case{2, 16, 8, 8, 8}}) {
    CAPTURE(c.C);
    CAPTURE(c.H);
    const cpu::Up2ConvArgs u{c.N, c.C, c.H, c.W, c.K};
    dfq::Conv2dArgs a{c.N, c.C, 2 * c.H, 2 * c.W, c.K, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    dfq::conv2d_out_size(a);
    const size_t xn = size_t(c.N) * c.C * c.H * c.W, yn = size_t(c.N) * c.K * 4 * c.H * c.W, wn = size_t(c.K) * c.C * 9;
    auto x = rand_vec(xn, 11), w = rand_vec(wn, 12), b = rand_vec(c.K, 13), gy = rand_vec(yn, 14);
    std::vector<float> xu(4 * xn);
    cpu::upsample_nearest2x_forward(c.N * c.C, c.H, c.W, x.data(), xu.data());
    const double atol = 2e-5, rtol = 1e-5;

    auto y = guarded(yn);
    cpu::conv2d_up2_forward(u, x.data(), w.data(), b.data(), y.data());
    check_guarded("up2 forward", y, dfq::test::ref::conv2d_forward(a, xu.data(), w.data(), b.data()), atol, rtol);

    auto gx = guarded(xn);
    cpu::conv2d_up2_backward(u, x.data(), gy.data(), w.data(), gx.data(), nullptr, nullptr);
    auto gxu = dfq::test::ref::conv2d_backward_data(a, gy.data(), w.data());
    std::vector<float> gx_ref(xn);
    cpu::upsample_nearest2x_backward(c.N * c.C, c.H, c.W, gxu.data(), gx_ref.data());
    check_guarded("up2 backward data", gx, gx_ref, atol, rtol);

    auto gw = guarded(wn), gb = guarded(c.K);
    cpu::conv2d_up2_backward(u, x.data(), gy.data(), w.data(), nullptr, gw.data(), gb.data());
    const auto gw_ref = dfq::test::ref::conv2d_backward_filter(a, xu.data(), gy.data());
    check_filter_and_bias("up2 ", gw, gb, gw_ref, wn, atol, rtol);
    // all three at once (gy's channel-major copy shared), with the forward's copy of x: the same
    std::vector<float> xt(xn), y2(yn);
    cpu::conv2d_up2_forward(u, x.data(), w.data(), b.data(), y2.data(), xt.data());
    auto gx2 = guarded(xn), gw2 = guarded(wn), gb2 = guarded(c.K);
    cpu::conv2d_up2_backward(u, std::vector<float>(xn, 1e30f).data(), gy.data(), w.data(), gx2.data(), gw2.data(), gb2.data(),
                             xt.data());  // x itself must not be read when its copy is given
    check_guarded("up2 backward data (both)", gx2, gx_ref, atol, rtol);
    check_filter_and_bias("up2 (both) ", gw2, gb2, gw_ref, wn, atol, rtol);
  }
  CHECK_THROWS_AS(cpu::conv2d_up2_forward({1, 0, 2, 2, 1}, nullptr, nullptr, nullptr, nullptr), std::invalid_argument);
}

TEST_CASE("cpu kernel: conv2d picks shifted GEMMs for ResNet's small maps, im2col elsewhere") {
  auto algo = [](int C, int H, int K, int R, int stride, int pad) {
    dfq::Conv2dArgs a{8, C, H, H, K, R, R, stride, stride, pad, pad, 1, 1, 1, 0, 0};
    dfq::conv2d_out_size(a);
    return cpu::conv_algo_for(a);
  };
  CHECK(algo(512, 1, 512, 3, 1, 1) == cpu::ConvAlgo::Shifted);   // layer4 at 32x32 inputs
  CHECK(algo(256, 2, 512, 3, 2, 1) == cpu::ConvAlgo::Shifted);   // layer4.0.conv1
  CHECK(algo(64, 8, 128, 1, 2, 0) == cpu::ConvAlgo::Im2col);      // layer2.0.downsample
  CHECK(algo(3, 32, 64, 7, 2, 3) == cpu::ConvAlgo::Im2col);      // the stem: 3 input channels
  // a large map: oneDNN's kernels for the forward when dfq has them
  CHECK(algo(64, 56, 64, 3, 1, 1) == (dfq::onednn::available() ? cpu::ConvAlgo::OneDnn : cpu::ConvAlgo::Im2col));
  CHECK(algo(64, 8, 64, 3, 1, 1) != cpu::ConvAlgo::OneDnn);      // 8x8 and below (resnet18's layer1 at 32 px): the engine's
  CHECK(algo(64, 14, 64, 3, 1, 1) == (dfq::onednn::available() ? cpu::ConvAlgo::OneDnn : cpu::ConvAlgo::Shifted));
  CHECK(algo(64, 32, 3, 3, 1, 1) == cpu::ConvAlgo::Direct);      // GDFQ's generator's 64 -> 3 conv: the direct kernel
  CHECK(algo(3, 224, 64, 7, 2, 3) == cpu::ConvAlgo::Im2col);     // a 3-channel stem, even at 224 px
  CHECK(algo(64, 56, 256, 1, 1, 0) == cpu::ConvAlgo::Im2col);    // a 1x1 conv: one GEMM already
  CHECK_THROWS_AS(cpu::set_conv_algo(cpu::ConvAlgo::OneDnn), std::invalid_argument);
}

TEST_CASE("cpu kernel: conv2d on maps above 8x8 (oneDNN's forward where built in) matches the naive convolution") {
  // under Auto the forward of these runs oneDNN's kernels (NCHW reordered both ways, bias its own);
  // under Im2col the engine's; the backward passes are the engine's under both
  const ConvCase cases[] = {
      // name                     N  C   H   W   K  R  S sh sw ph pw dh dw g
      {"3x3 9x9",                 2, 8,  9,  9,  12, 3, 3, 1, 1, 1, 1, 1, 1, 1},
      {"3x3 17x17",               2, 8,  17, 17, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1},
      {"3x3 s2 odd 23x19",        3, 16, 23, 19, 9,  3, 3, 2, 2, 1, 1, 1, 1, 1},
      {"1x3 24x24",               1, 32, 24, 24, 20, 1, 3, 1, 1, 0, 1, 1, 1, 1},
      {"5x5 dilation 2, 20x20",   2, 9,  20, 20, 10, 5, 5, 1, 1, 4, 4, 2, 2, 1},
      {"7x7 s2 p3 32x32",         2, 8,  32, 32, 16, 7, 7, 2, 2, 3, 3, 1, 1, 1},
  };
  for (auto algo : {cpu::ConvAlgo::Auto, cpu::ConvAlgo::Im2col}) {
    cpu::set_conv_algo(algo);
    for (const auto& c : cases) {
      dfq::Conv2dArgs a{c.N, c.C, c.H, c.W, c.K, c.R, c.S, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw, c.g, 0, 0};
      dfq::conv2d_out_size(a);
      CHECK(cpu::conv_algo_for(a) == (algo == cpu::ConvAlgo::Auto && dfq::onednn::available() ? cpu::ConvAlgo::OneDnn
                                                                                              : cpu::ConvAlgo::Im2col));
      run_conv_case(c);
    }
  }
  cpu::set_conv_algo(cpu::ConvAlgo::Auto);
}

TEST_CASE("cpu kernel: conv2d's shifted GEMMs on ResNet-sized channels") {
  const ConvCase cases[] = {
      // name                   N  C   H  W  K   R  S sh sw ph pw dh dw g
      {"1x1 map 3x3",           5, 64, 1, 1, 48, 3, 3, 1, 1, 1, 1, 1, 1, 1},
      {"2x2 map 3x3",           3, 40, 2, 2, 36, 3, 3, 1, 1, 1, 1, 1, 1, 1},
      {"4x4 -> 2x2 stride2",    3, 40, 4, 4, 33, 3, 3, 2, 2, 1, 1, 1, 1, 1},
      {"downsample 1x1 s2",     4, 48, 4, 4, 40, 1, 1, 2, 2, 0, 0, 1, 1, 1},
      {"4x4 groups2",           2, 64, 4, 4, 32, 3, 3, 1, 1, 1, 1, 1, 1, 2},
  };
  for (auto algo : {cpu::ConvAlgo::Im2col, cpu::ConvAlgo::Auto}) {
    cpu::set_conv_algo(algo);
    for (const auto& c : cases) run_conv_case(c);
  }
  cpu::set_conv_algo(cpu::ConvAlgo::Auto);
}

TEST_CASE("cpu kernel: depthwise conv2d (groups == C == K) matches the naive convolution") {
  // under Auto these run depthwise_conv.cpp (checked below), under Im2col the per-group GEMMs
  const ConvCase cases[] = {
      // name                        N  C   H   W  K   R  S sh sw ph pw dh dw g
      {"dw 3x3 s1 p1",               2, 5,  8,  8, 5,  3, 3, 1, 1, 1, 1, 1, 1, 5},
      {"dw 3x3 s2 p1 even",          3, 4,  8,  8, 4,  3, 3, 2, 2, 1, 1, 1, 1, 4},
      {"dw 3x3 s2 p1 odd",           2, 3,  9,  7, 3,  3, 3, 2, 2, 1, 1, 1, 1, 3},
      {"dw 3x3 s2 p1 odd/even",      2, 3,  7, 10, 3,  3, 3, 2, 2, 1, 1, 1, 1, 3},
      {"dw 3x3 1x1 map",             5, 6,  1,  1, 6,  3, 3, 1, 1, 1, 1, 1, 1, 6},
      {"dw 3x3 s2 2x2 -> 1x1",       4, 6,  2,  2, 6,  3, 3, 2, 2, 1, 1, 1, 1, 6},
      {"dw 3x3 2x2 map",             3, 7,  2,  2, 7,  3, 3, 1, 1, 1, 1, 1, 1, 7},
      {"dw batch 1",                 1, 4, 11,  9, 4,  3, 3, 1, 1, 1, 1, 1, 1, 4},
      {"dw batch 1 s2",              1, 4, 11,  9, 4,  3, 3, 2, 2, 1, 1, 1, 1, 4},
      {"dw 5x5 p2",                  2, 3, 10,  9, 3,  5, 5, 1, 1, 2, 2, 1, 1, 3},
      {"dw 5x5 s2 p2",               2, 3, 11, 10, 3,  5, 5, 2, 2, 2, 2, 1, 1, 3},
      {"dw non-square 3x5 p(1,2)",   2, 4,  6, 13, 4,  3, 5, 1, 1, 1, 2, 1, 1, 4},
      {"dw 3x3 pad 0",               2, 4,  7,  9, 4,  3, 3, 1, 1, 0, 0, 1, 1, 4},
      {"dw 3x3 s2 pad 0",            2, 4,  9,  8, 4,  3, 3, 2, 2, 0, 0, 1, 1, 4},
      {"dw 3x3 pad 2",               2, 4,  5,  6, 4,  3, 3, 1, 1, 2, 2, 1, 1, 4},
      {"dw 3x3 pad 3 (> kernel)",    2, 2,  3,  4, 2,  3, 3, 1, 1, 3, 3, 1, 1, 2},
      {"dw 1x1 pad 2 s2",            2, 3,  5,  4, 3,  1, 1, 2, 2, 2, 2, 1, 1, 3},
      {"dw 2x4 s(1,3) p(0,1)",       2, 3,  9, 14, 3,  2, 4, 1, 3, 0, 1, 1, 1, 3},
      {"dw 4x4 s(3,2) p(2,1)",       2, 3, 10, 11, 3,  4, 4, 3, 2, 2, 1, 1, 1, 3},
      {"dw 7x7 (passes of 9 taps)",  2, 3, 12, 11, 3,  7, 7, 1, 1, 3, 3, 1, 1, 3},
      {"dw chunks 8 x4 + 5",        37, 8,  7,  9, 8,  3, 3, 1, 1, 1, 1, 1, 1, 8},
      {"dw chunks 101+101+99 2x2",  301, 8,  2,  2, 8,  3, 3, 1, 1, 1, 1, 1, 1, 8},
      {"dw full blocks 5x5 map",     3, 16, 5,  5, 16, 3, 3, 1, 1, 1, 1, 1, 1, 16},
      {"dw full blocks 6x2 map s2",  3, 16, 6,  2, 16, 3, 3, 2, 2, 1, 1, 1, 1, 16},
      {"dw full blocks 1x1 map",     4, 24, 1,  1, 24, 3, 3, 1, 1, 1, 1, 1, 1, 24},
      {"dw 12 channels (8 + 4)",     2, 12, 6,  7, 12, 3, 3, 1, 1, 1, 1, 1, 1, 12},
      {"dw single channel",          3, 1,  6,  6, 1,  3, 3, 1, 1, 1, 1, 1, 1, 1},
      {"dw MobileNetV2 16x16 s2",    4, 96, 16, 16, 96, 3, 3, 2, 2, 1, 1, 1, 1, 96},
      {"dw MobileNetV2 8x8 s1",      4, 144, 8,  8, 144, 3, 3, 1, 1, 1, 1, 1, 1, 144},
      {"dw MobileNetV2 2x2 s1",      3, 384, 2,  2, 384, 3, 3, 1, 1, 1, 1, 1, 1, 384},
  };
  for (auto algo : {cpu::ConvAlgo::Im2col, cpu::ConvAlgo::Auto}) {
    CAPTURE(static_cast<int>(algo));
    cpu::set_conv_algo(algo);
    for (const auto& c : cases) {
      dfq::Conv2dArgs a{c.N, c.C, c.H, c.W, c.K, c.R, c.S, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw, c.g, 0, 0};
      dfq::conv2d_out_size(a);
      CHECK(cpu::conv_algo_for(a) == (algo == cpu::ConvAlgo::Auto ? cpu::ConvAlgo::Depthwise : cpu::ConvAlgo::Im2col));
      run_conv_case(c);
    }
  }
  cpu::set_conv_algo(cpu::ConvAlgo::Auto);
  // dilation and channel multipliers stay on the GEMM paths
  dfq::Conv2dArgs dil{2, 4, 9, 9, 4, 3, 3, 1, 1, 2, 2, 2, 2, 4, 0, 0};
  dfq::Conv2dArgs mult{2, 4, 9, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1, 4, 0, 0};
  dfq::conv2d_out_size(dil);
  dfq::conv2d_out_size(mult);
  CHECK(cpu::conv_algo_for(dil) == cpu::ConvAlgo::Im2col);
  CHECK(cpu::conv_algo_for(mult) == cpu::ConvAlgo::Im2col);
  CHECK_THROWS_AS(cpu::set_conv_algo(cpu::ConvAlgo::Depthwise), std::invalid_argument);
}

// The depthwise kernel against the im2col path (itself checked against the naive loops above) on
// inputs that are not random: exact small integers, so both sum exactly and agree bit for bit, and
// a non-finite input, which reaches only its own image's outputs and gradients.
TEST_CASE("cpu kernel: depthwise conv2d is exact on integers and keeps images apart") {
  dfq::Conv2dArgs a{7, 3, 4, 5, 3, 3, 3, 2, 1, 1, 1, 1, 1, 3, 0, 0};
  dfq::conv2d_out_size(a);
  const size_t xn = size_t(a.N) * a.C * a.H * a.W, yn = size_t(a.N) * a.K * a.P * a.Q, wn = size_t(a.K) * a.R * a.S;
  std::vector<float> x(xn), w(wn), gy(yn);
  for (size_t i = 0; i < xn; ++i) x[i] = float(int(i * 7 % 11) - 5);
  for (size_t i = 0; i < wn; ++i) w[i] = float(int(i * 5 % 7) - 3);
  for (size_t i = 0; i < yn; ++i) gy[i] = float(int(i * 3 % 5) - 2);
  auto run = [&](cpu::ConvAlgo algo, std::vector<float>& y, std::vector<float>& gx, std::vector<float>& gw) {
    cpu::set_conv_algo(algo);
    y = guarded(yn), gx = guarded(xn), gw = guarded(wn);
    cpu::conv2d_forward(a, x.data(), w.data(), nullptr, y.data());
    cpu::conv2d_backward_data(a, gy.data(), w.data(), gx.data());
    cpu::conv2d_backward_filter(a, x.data(), gy.data(), gw.data(), nullptr);
    cpu::set_conv_algo(cpu::ConvAlgo::Auto);
  };
  std::vector<float> y, gx, gw, y_ref, gx_ref, gw_ref;
  run(cpu::ConvAlgo::Auto, y, gx, gw);
  run(cpu::ConvAlgo::Im2col, y_ref, gx_ref, gw_ref);
  check_guarded("dw exact forward", y, head(y_ref, yn), 0, 0);
  check_guarded("dw exact backward data", gx, head(gx_ref, xn), 0, 0);
  check_guarded("dw exact backward filter", gw, head(gw_ref, wn), 0, 0);
  // an infinite pixel in image 2 (of the single chunk of 7): other images' outputs stay as they were
  const size_t img = size_t(a.C) * a.H * a.W, y_img = size_t(a.K) * a.P * a.Q;
  x[2 * img + 1 * a.H * a.W + 6] = INFINITY;
  gy[2 * y_img + 1 * a.P * a.Q + 3] = INFINITY;  // and in its gradient: other images' gx stay finite
  run(cpu::ConvAlgo::Auto, y, gx, gw);
  for (size_t i = 0; i < yn; ++i)
    if (i / y_img != 2) REQUIRE(y[i] == y_ref[i]);
  for (size_t i = 0; i < xn; ++i)
    if (i / img != 2) REQUIRE(gx[i] == gx_ref[i]);
  CHECK_FALSE(std::isfinite(y[2 * y_img + a.P * a.Q + 1]));  // inf times a tap, or times its zero tap: NaN
}

// The depthwise kernels at every vector width this machine runs (4 floats, SSE; 8, AVX2; 16,
// AVX-512F): the same bytes, pass by pass (every channel is summed in the same order).
TEST_CASE("cpu kernel: depthwise conv2d gives the same bytes at every vector width") {
  const int widest = cpu::detail::depthwise_conv_lanes(0);
  MESSAGE("depthwise conv: widest vectors here " << widest << " floats");
  const ConvCase cases[] = {
      {"dw 3x3 s1 16x16", 3, 40, 16, 16, 40, 3, 3, 1, 1, 1, 1, 1, 1, 40},
      {"dw 3x3 s2 odd", 2, 20, 9, 11, 20, 3, 3, 2, 2, 1, 1, 1, 1, 20},
      {"dw 3x3 s2 32x32", 2, 48, 32, 32, 48, 3, 3, 2, 2, 1, 1, 1, 1, 48},
      {"dw 3x3 2x2 maps", 70, 32, 2, 2, 32, 3, 3, 1, 1, 1, 1, 1, 1, 32},
      {"dw 3x3 1x1 maps", 5, 36, 1, 1, 36, 3, 3, 1, 1, 1, 1, 1, 1, 36},
      {"dw 5x3 p(2,0) 13 channels", 2, 13, 7, 6, 13, 5, 3, 1, 1, 2, 0, 1, 1, 13},
      {"dw 7x7 s(1,2)", 2, 9, 12, 12, 9, 7, 7, 1, 2, 3, 3, 1, 1, 9},
  };
  for (const ConvCase& cc : cases) {
    dfq::Conv2dArgs a{cc.N, cc.C, cc.H, cc.W, cc.K, cc.R, cc.S, cc.sh, cc.sw, cc.ph, cc.pw, cc.dh, cc.dw, cc.g, 0, 0};
    dfq::conv2d_out_size(a);
    const size_t xn = size_t(a.N) * a.C * a.H * a.W, yn = size_t(a.N) * a.K * a.P * a.Q, wn = size_t(a.K) * a.R * a.S;
    const auto x = rand_vec(xn, 21), w = rand_vec(wn, 22), gy = rand_vec(yn, 23);
    std::vector<float> ref;
    for (int lanes = 4; lanes <= widest; lanes *= 2) {
      cpu::detail::depthwise_conv_lanes(lanes);
      std::vector<float> y(yn), gx(xn), gw(wn), gb(size_t(a.K)), out;
      cpu::conv2d_forward(a, x.data(), w.data(), nullptr, y.data());
      cpu::conv2d_backward_data(a, gy.data(), w.data(), gx.data());
      cpu::conv2d_backward_filter(a, x.data(), gy.data(), gw.data(), gb.data());
      for (const auto* v : {&y, &gx, &gw, &gb}) out.insert(out.end(), v->begin(), v->end());
      if (lanes == 4) {
        ref = out;
        continue;
      }
      CAPTURE(std::string(cc.name));
      CAPTURE(lanes);
      CHECK(std::memcmp(out.data(), ref.data(), out.size() * sizeof(float)) == 0);
    }
  }
  cpu::detail::depthwise_conv_lanes(0);
  CHECK_THROWS_AS(cpu::detail::depthwise_conv_lanes(32), std::invalid_argument);
}

TEST_CASE("cpu kernel: conv2d with an empty batch") {
  dfq::Conv2dArgs a{0, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 0};
  dfq::conv2d_out_size(a);
  std::vector<float> w = rand_vec(4 * 3 * 9, 1), gw(4 * 3 * 9, 9.f), gb(4, 9.f);
  cpu::conv2d_forward(a, nullptr, w.data(), nullptr, nullptr);
  cpu::conv2d_backward_data(a, nullptr, w.data(), nullptr);
  cpu::conv2d_backward_filter(a, nullptr, nullptr, gw.data(), gb.data());
  for (float v : gw) CHECK(v == 0.f);  // gw (=) is a sum over nothing
  for (float v : gb) CHECK(v == 0.f);
  // bad arguments throw before anything is read, as on CUDA
  dfq::Conv2dArgs bad{1, 6, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1, 4, 0, 0};  // 6 % 4 != 0
  dfq::conv2d_out_size(bad);
  CHECK_THROWS_AS(cpu::conv2d_forward(bad, nullptr, nullptr, nullptr, nullptr), std::invalid_argument);
  CHECK_THROWS_AS(cpu::conv2d_backward_data(bad, nullptr, nullptr, nullptr), std::invalid_argument);
  CHECK_THROWS_AS(cpu::conv2d_backward_filter(bad, nullptr, nullptr, nullptr, nullptr), std::invalid_argument);
  dfq::Conv2dArgs stale{1, 4, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 5, 8};  // P not from conv2d_out_size
  CHECK_THROWS_AS(cpu::conv2d_forward(stale, nullptr, nullptr, nullptr, nullptr), std::invalid_argument);
}

TEST_CASE("cpu kernel: gemm in all four transpose combinations") {
  const int M = 13, N = 17, K = 11;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      // padded leading dimensions to exercise lda/ldb/ldc
      int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
      auto A = rand_vec(size_t(ta ? K : M) * lda, 10), B = rand_vec(size_t(tb ? N : K) * ldb, 11);
      auto C = rand_vec(size_t(M) * ldc, 12), Cr = C;
      cpu::gemm(ta, tb, M, N, K, 0.7f, A.data(), lda, B.data(), ldb, 0.3f, C.data(), ldc);
      dfq::test::ref::gemm(ta, tb, M, N, K, 0.7f, A.data(), lda, B.data(), ldb, 0.3f, Cr.data(), ldc);
      check_close("gemm ta=" + std::to_string(ta) + " tb=" + std::to_string(tb), C, Cr, 1e-5, 1e-5);
    }
  // K == 0: C = beta * C; beta == 0 overwrites (even NaN)
  std::vector<float> C = {1.f, NAN, 3.f, 4.f};
  cpu::gemm(false, false, 2, 2, 0, 1.f, nullptr, 1, nullptr, 2, 0.5f, C.data(), 2);
  CHECK(C[0] == 0.5f);
  CHECK(C[3] == 2.f);
  cpu::gemm(false, false, 2, 2, 0, 1.f, nullptr, 1, nullptr, 2, 0.f, C.data(), 2);
  for (float v : C) CHECK(v == 0.f);
  std::vector<float> y = {1, 2, 3, 4, 5, 6}, bias = {10, 20, 30};
  cpu::add_bias_rows(2, 3, bias.data(), y.data());
  check_close("add_bias_rows", y, {11, 22, 33, 14, 25, 36}, 0, 0);
}

