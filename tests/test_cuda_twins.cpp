// test_cuda_twins.cpp — the CUDA twin table's rows for memory and random, elementwise, reductions,
// GEMM, conv, pooling and batch norm, one TEST_CASE per group, and the CUDA tests outside the table:
// every kernel of kernel_list.inc has a row, philox bit identity, the caching allocator, runtime
// basics, TF32. The harness (the runner, guards, BufSpec helpers, tolerance rules) is in
// tests/cuda_twins.h; the loss, optimizer and quant rows are in test_cuda_twins_loss_optim_quant.cpp.
// Everything here is in TEST_SUITE("cuda"), which tests/main.cpp excludes when there is no GPU.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/cuda_twins.h"

namespace dfq::twins {

void add_memory_rows() {
  const double e = 1e-6;  // copies and casts are exact; the tolerance is only a formality
  row("memory", "fill n=10007", {out_f("y", 10007)}, 0, 0, [](auto k, const Bufs& b) { k.fill(10007, 3.25f, b.f(0)); });
  row("memory", "fill n=0", {out_f("y", 0)}, 0, 0, [](auto k, const Bufs& b) { k.fill(0, 1.f, b.f(0)); });
  row("memory", "fill_i64 n=1003", {out_i64("y", 1003)}, 0, 0, [](auto k, const Bufs& b) { k.fill_i64(1003, -7, b.l(0)); });
  row("memory", "copy n=4099", {in_f("x", 4099), out_f("y", 4099)}, 0, 0, [](auto k, const Bufs& b) { k.copy(4099, b.f(0), b.f(1)); });
  // a transposed view (11,7,5)->(5,7,11), a broadcast (stride 0) view, and a 0-dim scalar
  StridedArgs tr{3, {5, 7, 11}, {1, 5, 35}};
  StridedArgs ex{4, {3, 4, 5, 6}, {0, 6, 0, 1}};
  StridedArgs sc{0, {}, {}};
  row("memory", "strided_copy transpose", {in_f("x", 385), out_f("y", 385)}, 0, 0, [tr](auto k, const Bufs& b) { k.strided_copy(tr, b.f(0), b.f(1)); });
  row("memory", "strided_copy expand", {in_f("x", 24), out_f("y", 360)}, 0, 0, [ex](auto k, const Bufs& b) { k.strided_copy(ex, b.f(0), b.f(1)); });
  row("memory", "strided_copy scalar", {in_f("x", 1), out_f("y", 1)}, 0, 0, [sc](auto k, const Bufs& b) { k.strided_copy(sc, b.f(0), b.f(1)); });
  row("memory", "strided_copy_i64 transpose", {in_i64("x", 385, -1000, 1000), out_i64("y", 385)}, 0, 0, [tr](auto k, const Bufs& b) { k.strided_copy_i64(tr, b.l(0), b.l(1)); });
  row("memory", "strided_copy_u8 expand", {in_u8("x", 24), out_u8("y", 360)}, 0, 0, [ex](auto k, const Bufs& b) { k.strided_copy_u8(ex, b.u8(0), b.u8(1)); });
  row("memory", "block_copy 5x7 into a 5x20 slab", {in_f("x", 65), io_f("y", 100)}, 0, 0, [](auto k, const Bufs& b) { k.block_copy(5, 7, b.f(0), 13, 3, b.f(1), 20, 11); });
  row("memory", "u8_to_f32 n=1001", {in_u8("x", 1001), out_f("y", 1001)}, e, e, [](auto k, const Bufs& b) { k.u8_to_f32(1001, b.u8(0), 1.f / 255.f, -0.5f, b.f(1)); });
  row("memory", "i64_to_f32 n=777", {in_i64("x", 777, -1000000, 1000000), out_f("y", 777)}, 0, 0, [](auto k, const Bufs& b) { k.i64_to_f32(777, b.l(0), b.f(1)); });
  row("memory", "philox_uniform n=10007", {out_f("y", 10007)}, 0, 0, [](auto k, const Bufs& b) { k.philox_uniform(10007, 42, 5, -2.f, 3.f, b.f(0)); });
  // normals: double libm may differ by an ulp between glibc and CUDA; the bit-identity test below
  // counts such elements. Here one float ulp is allowed.
  row("memory", "philox_normal n=10007", {out_f("y", 10007)}, 0, 2.5e-7, [](auto k, const Bufs& b) { k.philox_normal(10007, 7, 123, 0.5f, 2.f, b.f(0)); });
  row("memory", "philox_randint n=10007", {out_i64("y", 10007)}, 0, 0, [](auto k, const Bufs& b) { k.philox_randint(10007, 9, 1, -5, 1000, b.l(0)); });
}

void add_elementwise_rows() {
  const int64_t n = 5 * 7 * 11 * 13;
  for (int o = 0; o <= int(UnaryOp::Relu6); ++o) {
    const UnaryOp op = UnaryOp(o);
    const float alpha = op == UnaryOp::LeakyRelu ? 0.1f : 0.75f;
    BufSpec x = in_f("x", n, -2, 2);
    if (op == UnaryOp::Relu || op == UnaryOp::LeakyRelu || op == UnaryOp::Abs) x = in_away("x", n);
    if (op == UnaryOp::Sqrt || op == UnaryOp::Log) x = in_pos("x", n);
    if (op == UnaryOp::Relu6) x = in_f("x", n, -3, 9);  // both kinks inside
    row("elementwise", std::string("unary_forward ") + unary_name(op), {x, out_f("y", n)}, 1e-6, 1e-5,
        [=](auto k, const Bufs& b) { k.unary_forward(op, alpha, n, b.f(0), b.f(1)); });
    row("elementwise", std::string("unary_backward ") + unary_name(op), {x, in_f("gy", n), out_f("y", n), out_f("gx", n)}, 1e-6, 1e-5,
        [=](auto k, const Bufs& b) {
          k.unary_forward(op, alpha, n, b.f(0), b.f(2));
          k.unary_backward(op, alpha, n, b.f(0), b.f(2), b.f(1), b.f(3));
        });
  }
  row("elementwise", "unary_forward n=0", {in_f("x", 0), out_f("y", 0)}, 0, 0, [](auto k, const Bufs& b) { k.unary_forward(UnaryOp::Exp, 0.f, 0, b.f(0), b.f(1)); });
  struct Pat { const char* name; std::vector<int64_t> sa, sb; };
  const Pat pats[] = {{"same shape 5x7x11x13", {5, 7, 11, 13}, {5, 7, 11, 13}},
                      {"channel bias 5x7x11x13 + 1x7x1x1", {5, 7, 11, 13}, {1, 7, 1, 1}},
                      {"both broadcast 5x1x11x1 , 1x7x1x13", {5, 1, 11, 1}, {1, 7, 1, 13}},
                      {"scalar 1x1 , 3x37", {1, 1}, {3, 37}},
                      {"empty 0x5 , 1x5", {0, 5}, {1, 5}}};
  const BinaryOp ops[] = {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div};
  const char* opn[] = {"add", "sub", "mul", "div"};
  for (const Pat& p : pats)
    for (int o = 0; o < 4; ++o) {
      int64_t na, nb, no;
      BroadcastArgs a = bcast(p.sa, p.sb, &na, &nb, &no);
      const BinaryOp op = ops[o];
      row("elementwise", std::string("binary_forward ") + opn[o] + " " + p.name, {in_f("x", na), op == BinaryOp::Div ? in_pos("y", nb) : in_f("y", nb), out_f("out", no)},
          1e-6, 1e-5, [=](auto k, const Bufs& b) { k.binary_forward(op, a, b.f(0), b.f(1), b.f(2)); });
    }
  // a non-contiguous operand: x read transposed (6,5) from a (5,6) buffer
  BroadcastArgs t{2, {6, 5}, {1, 6}, {5, 1}};
  row("elementwise", "binary_forward mul transposed operand", {in_f("x", 30), in_f("y", 30), out_f("out", 30)}, 1e-6, 1e-5,
      [=](auto k, const Bufs& b) { k.binary_forward(BinaryOp::Mul, t, b.f(0), b.f(1), b.f(2)); });
  row("elementwise", "axpy n=5005", {in_f("x", n), io_f("y", n)}, 1e-6, 1e-5, [=](auto k, const Bufs& b) { k.axpy(n, -0.3f, b.f(0), b.f(1)); });
  row("elementwise", "add_bias_rows 37x19", {in_f("bias", 19), io_f("y", 37 * 19)}, 1e-6, 1e-5, [](auto k, const Bufs& b) { k.add_bias_rows(37, 19, b.f(0), b.f(1)); });
}

void add_reduce_rows() {
  struct R { std::vector<int64_t> shape; std::vector<int> mask; };
  const R rs[] = {{{5, 7, 11, 13}, {1, 0, 0, 0}}, {{5, 7, 11, 13}, {0, 1, 0, 0}}, {{5, 7, 11, 13}, {0, 0, 0, 1}},
                  {{5, 7, 11, 13}, {1, 0, 1, 0}}, {{5, 7, 11, 13}, {0, 1, 0, 1}}, {{5, 7, 11, 13}, {1, 1, 1, 1}},
                  {{5, 7, 11, 13}, {1, 0, 1, 1}}, {{5, 7, 11, 13}, {0, 0, 0, 0}}, {{64, 1000}, {1, 0}},
                  {{3, 100003}, {0, 1}}, {{1000, 1003}, {1, 1}}, {{6, 40000, 3}, {1, 1, 0}},
                  {{5, 1, 7}, {0, 1, 0}}, {{0, 5}, {1, 0}}, {{}, {}}};
  for (const R& r : rs) {
    int64_t ni, no;
    ReduceArgs a = red(r.shape, r.mask, &ni, &no);
    std::string name = "reduce_sum shape";
    for (size_t d = 0; d < r.shape.size(); ++d) name += (d ? "x" : " ") + std::to_string(r.shape[d]) + (r.mask[d] ? "*" : "");
    const double terms = no ? double(std::max<int64_t>(ni, 1)) / double(no) : 1;
    // both sides sum in double; only the summation order differs
    row("reduce", name, {in_f("x", ni), out_f("y", no)}, 1e-6 * std::sqrt(terms), 1e-5, [=](auto k, const Bufs& b) { k.reduce_sum(a, b.f(0), b.f(1)); });
  }
  // the last rows split each channel over several blocks (HW >= 128 and HW < 128 loops)
  const int cmv[][3] = {{5, 7, 143}, {1, 33, 1}, {64, 3, 1}, {2, 3, 3136}, {0, 4, 9}, {32, 5, 3136}, {512, 3, 49}};
  for (auto& s : cmv) {
    const int N = s[0], C = s[1], HW = s[2];
    row("reduce", "channel_mean_var N=" + std::to_string(N) + " C=" + std::to_string(C) + " HW=" + std::to_string(HW),
        {in_f("x", int64_t(N) * C * HW, -1, 3), out_f("mean", C), out_f("var", C)}, 1e-6, 1e-5,
        [=](auto k, const Bufs& b) { k.channel_mean_var(N, C, HW, b.f(0), b.f(1), b.f(2)); });
  }
  for (auto& s : cmv) {
    const int N = s[0], C = s[1], HW = s[2];
    row("reduce", "channel_affine N=" + std::to_string(N) + " C=" + std::to_string(C) + " HW=" + std::to_string(HW),
        {in_f("x", int64_t(N) * C * HW, -1, 3), in_f("scale", C), in_f("shift", C), out_f("y", int64_t(N) * C * HW)}, 0, 0,
        [=](auto k, const Bufs& b) { k.channel_affine(N, C, HW, b.f(0), b.f(1), b.f(2), b.f(3)); });
  }
}

void add_gemm_rows() {
  struct G { bool ta, tb; int M, N, K; float alpha, beta; int pad; };
  const G gs[] = {{false, false, 37, 29, 53, 0.7f, 0.f, 0}, {true, false, 37, 29, 53, 0.7f, 0.f, 0},
                  {false, true, 37, 29, 53, 0.7f, 0.f, 0},  {true, true, 37, 29, 53, 0.7f, 0.f, 0},
                  {false, true, 33, 21, 19, 1.f, 0.5f, 3},  {true, false, 33, 21, 19, -1.f, 1.f, 5},
                  {false, false, 256, 384, 512, 1.f, 0.f, 0}, {false, true, 1, 1000, 512, 1.f, 0.f, 0},
                  {false, false, 7, 9, 0, 1.f, 0.5f, 0},    {false, false, 7, 9, 5, 0.f, 0.f, 0},
                  {false, false, 0, 9, 5, 1.f, 0.f, 0}};
  for (const G& g : gs) {
    const int lda = (g.ta ? g.M : g.K) + g.pad, ldb = (g.tb ? g.K : g.N) + g.pad, ldc = g.N + g.pad;
    const int64_t na = int64_t(g.ta ? g.K : g.M) * lda, nb = int64_t(g.tb ? g.N : g.K) * ldb, nc = int64_t(g.M) * ldc;
    char name[160];
    std::snprintf(name, sizeof name, "gemm %c%c M=%d N=%d K=%d alpha=%g beta=%g pad=%d", g.ta ? 'T' : 'N', g.tb ? 'T' : 'N', g.M, g.N, g.K,
                  g.alpha, g.beta, g.pad);
    BufSpec c = g.beta == 0.f && g.pad == 0 ? out_f("C", nc) : io_f("C", nc);
    row("gemm", name, {in_f("A", na), in_f("B", nb), c}, 2e-6 * std::sqrt(double(std::max(g.K, 1))), 1e-4,
        [=](auto k, const Bufs& b) { k.gemm(g.ta, g.tb, g.M, g.N, g.K, g.alpha, b.f(0), lda, b.f(1), ldb, g.beta, b.f(2), ldc); });
  }
}

void add_conv_rows() {
  struct C { const char* what; Conv2dArgs a; };
  const C cs[] = {
      {"odd 5x7x11x13 3x3 p1", conv(5, 7, 11, 13, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
      {"1x1 batch 1", conv(1, 16, 14, 14, 24, 1, 1, 1, 1, 0, 0, 1, 1, 1)},
      {"ResNet 3x3 64->64 28x28", conv(2, 64, 28, 28, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
      {"groups 3 stride 2", conv(3, 12, 9, 10, 18, 3, 3, 2, 2, 1, 1, 1, 1, 3)},
      {"depthwise 8", conv(2, 8, 10, 10, 8, 3, 3, 1, 1, 1, 1, 1, 1, 8)},
      // MobileNetV2's depthwise convs at 32x32 inputs (CPU: depthwise_conv.cpp)
      {"depthwise 96 16x16 s2", conv(4, 96, 16, 16, 96, 3, 3, 2, 2, 1, 1, 1, 1, 96)},
      {"depthwise 144 8x8", conv(4, 144, 8, 8, 144, 3, 3, 1, 1, 1, 1, 1, 1, 144)},
      {"depthwise 960 2x2", conv(4, 960, 2, 2, 960, 3, 3, 1, 1, 1, 1, 1, 1, 960)},
      {"depthwise 20 5x5 s2 odd 13x11", conv(3, 20, 13, 11, 20, 5, 5, 2, 2, 2, 2, 1, 1, 20)},
      {"dilation 2", conv(2, 6, 13, 11, 5, 3, 3, 1, 1, 2, 2, 2, 2, 1)},
      {"stem 7x7 s2 p3", conv(1, 3, 33, 33, 16, 7, 7, 2, 2, 3, 3, 1, 1, 1)},
      {"asymmetric 3x5 s(2,1) p(0,2) d(1,2)", conv(2, 5, 12, 15, 7, 3, 5, 2, 1, 0, 2, 1, 2, 1)},
      {"1x1 stride 2 downsample", conv(2, 16, 15, 15, 32, 1, 1, 2, 2, 0, 0, 1, 1, 1)},
      {"batch 32 (split bias grad)", conv(32, 3, 24, 24, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
  };
  for (const C& c : cs) {
    const Conv2dArgs a = c.a;
    const int64_t nx = int64_t(a.N) * a.C * a.H * a.W, ny = int64_t(a.N) * a.K * a.P * a.Q;
    const int64_t nw = int64_t(a.K) * (a.C / a.groups) * a.R * a.S;
    const double t_fwd = double(a.C / a.groups) * a.R * a.S, t_bwd_data = double(a.K / a.groups) * a.R * a.S,
                 t_bwd_filter = double(a.N) * a.P * a.Q;
    const std::string w = c.what;
    // absolute part ~2e-5 * sqrt(terms): outputs grow like sqrt(terms) (inputs in [-1, 1])
    auto at = [](double terms) { return 2e-5 * std::sqrt(terms); };
    row("conv", "conv2d_forward " + w, {in_f("x", nx), in_f("w", nw), in_f("b", a.K), out_f("y", ny)}, at(t_fwd), 1e-4,
        [=](auto k, const Bufs& b) { k.conv2d_forward(a, b.f(0), b.f(1), b.f(2), b.f(3)); });
    row("conv", "conv2d_forward no bias " + w, {in_f("x", nx), in_f("w", nw), out_f("y", ny)}, at(t_fwd), 1e-4,
        [=](auto k, const Bufs& b) { k.conv2d_forward(a, b.f(0), b.f(1), nullptr, b.f(2)); });
    row("conv", "conv2d_backward_data " + w, {in_f("gy", ny), in_f("w", nw), out_f("gx", nx)}, at(t_bwd_data), 1e-4,
        [=](auto k, const Bufs& b) { k.conv2d_backward_data(a, b.f(0), b.f(1), b.f(2)); });
    row("conv", "conv2d_backward_filter " + w, {in_f("x", nx), in_f("gy", ny), out_f("gw", nw), out_f("gb", a.K)}, at(t_bwd_filter), 1e-4,
        [=](auto k, const Bufs& b) { k.conv2d_backward_filter(a, b.f(0), b.f(1), b.f(2), b.f(3)); });
    row("conv", "conv2d_backward_filter no gb " + w, {in_f("x", nx), in_f("gy", ny), out_f("gw", nw)}, at(t_bwd_filter), 1e-4,
        [=](auto k, const Bufs& b) { k.conv2d_backward_filter(a, b.f(0), b.f(1), b.f(2), nullptr); });
  }
  const Conv2dArgs e = conv(0, 4, 6, 6, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1);  // empty batch
  row("conv", "conv2d_forward empty batch", {in_f("x", 0), in_f("w", 180), in_f("b", 5), out_f("y", 0)}, 0, 0,
      [=](auto k, const Bufs& b) { k.conv2d_forward(e, b.f(0), b.f(1), b.f(2), b.f(3)); });
  row("conv", "conv2d_backward_filter empty batch", {in_f("x", 0), in_f("gy", 0), out_f("gw", 180), out_f("gb", 5)}, 0, 0,
      [=](auto k, const Bufs& b) { k.conv2d_backward_filter(e, b.f(0), b.f(1), b.f(2), b.f(3)); });
}

void add_pool_rows() {
  struct P { const char* what; Pool2dArgs a; };
  const P ps[] = {{"5x7x11x13 3x3 s2 p1", pool(5, 7, 11, 13, 3, 3, 2, 2, 1, 1)},
                  {"2x3x8x8 2x2 s2", pool(2, 3, 8, 8, 2, 2, 2, 2, 0, 0)},
                  {"1x5x7x9 3x2 s1 p(1,0)", pool(1, 5, 7, 9, 3, 2, 1, 1, 1, 0)},
                  {"2x4x9x9 3x3 s3 p1", pool(2, 4, 9, 9, 3, 3, 3, 3, 1, 1)},
                  {"empty batch", pool(0, 4, 9, 9, 3, 3, 2, 2, 1, 1)}};
  for (const P& p : ps) {
    const Pool2dArgs a = p.a;
    const int64_t nx = int64_t(a.N) * a.C * a.H * a.W, ny = int64_t(a.N) * a.C * a.P * a.Q;
    const std::string w = p.what;
    row("pool", "max_pool2d_forward " + w, {in_f("x", nx), out_f("y", ny), out_i32("idx", ny)}, 0, 0,
        [=](auto k, const Bufs& b) { k.max_pool2d_forward(a, b.f(0), b.f(1), b.i32(2)); });
    row("pool", "max_pool2d_backward " + w, {in_f("x", nx), in_f("gy", ny), out_f("y", ny), out_i32("idx", ny), out_f("gx", nx)}, 1e-6, 1e-5,
        [=](auto k, const Bufs& b) {
          k.max_pool2d_forward(a, b.f(0), b.f(2), b.i32(3));
          k.max_pool2d_backward(a, b.f(1), b.i32(3), b.f(4));
        });
    row("pool", "avg_pool2d_forward " + w, {in_f("x", nx), out_f("y", ny)}, 1e-6, 1e-5, [=](auto k, const Bufs& b) { k.avg_pool2d_forward(a, b.f(0), b.f(1)); });
    row("pool", "avg_pool2d_backward " + w, {in_f("gy", ny), out_f("gx", nx)}, 1e-6, 1e-5, [=](auto k, const Bufs& b) { k.avg_pool2d_backward(a, b.f(0), b.f(1)); });
  }
  const int ad[][5] = {{35, 11, 13, 1, 1}, {35, 11, 13, 3, 5}, {6, 7, 7, 7, 7}, {4, 5, 6, 7, 9}, {1, 14, 14, 7, 7}};
  for (auto& s : ad) {
    const int NC = s[0], H = s[1], W = s[2], P = s[3], Q = s[4];
    char name[96];
    std::snprintf(name, sizeof name, "NC=%d %dx%d -> %dx%d", NC, H, W, P, Q);
    row("pool", std::string("adaptive_avg_pool2d_forward ") + name, {in_f("x", int64_t(NC) * H * W), out_f("y", int64_t(NC) * P * Q)}, 1e-6, 1e-5,
        [=](auto k, const Bufs& b) { k.adaptive_avg_pool2d_forward(NC, H, W, P, Q, b.f(0), b.f(1)); });
    row("pool", std::string("adaptive_avg_pool2d_backward ") + name, {in_f("gy", int64_t(NC) * P * Q), out_f("gx", int64_t(NC) * H * W)}, 1e-6, 1e-5,
        [=](auto k, const Bufs& b) { k.adaptive_avg_pool2d_backward(NC, H, W, P, Q, b.f(0), b.f(1)); });
  }
  const int up[][3] = {{35, 11, 13}, {1, 1, 1}};
  for (auto& s : up) {
    const int NC = s[0], H = s[1], W = s[2];
    const int64_t n = int64_t(NC) * H * W;
    const std::string name = std::to_string(NC) + "x" + std::to_string(H) + "x" + std::to_string(W);
    row("pool", "upsample_nearest2x_forward " + name, {in_f("x", n), out_f("y", 4 * n)}, 0, 0, [=](auto k, const Bufs& b) { k.upsample_nearest2x_forward(NC, H, W, b.f(0), b.f(1)); });
    row("pool", "upsample_nearest2x_backward " + name, {in_f("gy", 4 * n), out_f("gx", n)}, 1e-6, 1e-5, [=](auto k, const Bufs& b) { k.upsample_nearest2x_backward(NC, H, W, b.f(0), b.f(1)); });
  }
}

void add_norm_rows() {
  const int shapes[][3] = {{5, 7, 143}, {8, 33, 1}, {1, 3, 1}, {2, 64, 784}, {0, 4, 9}, {32, 5, 3136}, {512, 3, 49}};
  for (auto& s : shapes) {
    const BatchNormArgs a{s[0], s[1], s[2], 1e-5f, 0.1f};
    const int C = a.C;
    const int64_t n = int64_t(a.N) * a.C * a.HW;
    const std::string w = "N=" + std::to_string(a.N) + " C=" + std::to_string(C) + " HW=" + std::to_string(a.HW);
    row("norm", "batch_norm_forward_train " + w,
        {in_f("x", n, -1, 3), in_f("gamma", C), in_f("beta", C), io_f("running_mean", C), io_f("running_var", C, 0.5, 2), out_f("y", n), out_f("save_mean", C), out_f("save_invstd", C)},
        1e-5, 1e-5, [=](auto k, const Bufs& b) { k.batch_norm_forward_train(a, b.f(0), b.f(1), b.f(2), b.f(3), b.f(4), b.f(5), b.f(6), b.f(7)); });
    row("norm", "batch_norm_forward_train affine=false no running " + w, {in_f("x", n, -1, 3), out_f("y", n), out_f("save_mean", C), out_f("save_invstd", C)}, 1e-5, 1e-5,
        [=](auto k, const Bufs& b) { k.batch_norm_forward_train(a, b.f(0), nullptr, nullptr, nullptr, nullptr, b.f(1), b.f(2), b.f(3)); });
    row("norm", "batch_norm_forward_eval " + w, {in_f("x", n), in_f("gamma", C), in_f("beta", C), in_f("rm", C), in_f("rv", C, 0.5, 2), out_f("y", n)}, 1e-5, 1e-5,
        [=](auto k, const Bufs& b) { k.batch_norm_forward_eval(a, b.f(0), b.f(1), b.f(2), b.f(3), b.f(4), b.f(5)); });
    // backward train: gx is a difference of sums (cancellation), so its absolute tolerance is 1e-5
    row("norm", "batch_norm_backward_train " + w,
        {in_f("x", n), in_f("gy", n), in_f("gamma", C), in_f("save_mean", C, -0.2, 0.2), in_f("save_invstd", C, 0.5, 2), out_f("gx", n), out_f("ggamma", C), out_f("gbeta", C)},
        1e-5, 1e-4, [=](auto k, const Bufs& b) { k.batch_norm_backward_train(a, b.f(0), b.f(1), b.f(2), b.f(3), b.f(4), b.f(5), b.f(6), b.f(7)); });
    row("norm", "batch_norm_backward_train gx only, no gamma " + w,
        {in_f("x", n), in_f("gy", n), in_f("save_mean", C, -0.2, 0.2), in_f("save_invstd", C, 0.5, 2), out_f("gx", n)},
        1e-5, 1e-4, [=](auto k, const Bufs& b) { k.batch_norm_backward_train(a, b.f(0), b.f(1), nullptr, b.f(2), b.f(3), b.f(4), nullptr, nullptr); });
    row("norm", "batch_norm_backward_eval " + w,
        {in_f("x", n), in_f("gy", n), in_f("gamma", C), in_f("rm", C), in_f("rv", C, 0.5, 2), out_f("gx", n), out_f("ggamma", C), out_f("gbeta", C)},
        1e-5, 1e-4, [=](auto k, const Bufs& b) { k.batch_norm_backward_eval(a, b.f(0), b.f(1), b.f(2), b.f(3), b.f(4), b.f(5), b.f(6), b.f(7)); });
  }
}

}  // namespace dfq::twins

using namespace dfq;
using namespace dfq::twins;

namespace {

template <typename T>
std::vector<T> to_host(const T* d, int64_t n) {
  std::vector<T> h(size_t(std::max<int64_t>(n, 1)));
  cuda::copy_d2h(h.data(), d, size_t(n) * sizeof(T));
  return h;
}

}  // namespace

TEST_SUITE("cuda") {
  TEST_CASE("cuda twins: memory and random") { run_group("memory"); }
  TEST_CASE("cuda twins: elementwise") { run_group("elementwise"); }
  TEST_CASE("cuda twins: reductions") { run_group("reduce"); }
  TEST_CASE("cuda twins: gemm") { run_group("gemm"); }
  TEST_CASE("cuda twins: conv") { run_group("conv"); }
  TEST_CASE("cuda twins: pooling and resampling") { run_group("pool"); }
  TEST_CASE("cuda twins: batch norm") { run_group("norm"); }

  TEST_CASE("cuda: every kernel of kernel_list.inc has a row in the twin table") {
    build_table();
    std::vector<std::string> missing;
#define DFQ_KERNEL(kname, params)                                                 \
  {                                                                               \
    bool found = false;                                                           \
    for (const Case& c : table()) found |= c.name.rfind(#kname " ", 0) == 0;      \
    if (!found) missing.push_back(#kname);                                        \
  }
#include "engine/kernels/kernel_list.inc"
#undef DFQ_KERNEL
    std::string m;
    for (auto& s : missing) m += s + " ";
    INFO("kernels without a row: " << m);
    CHECK(missing.empty());
  }

  TEST_CASE("cuda: philox draws are bit-identical to the CPU") {
    const int64_t n = 100003;
    const uint64_t seed = 0x1234567887654321ull, offset = 1000;
    std::vector<float> cu(n), cn(n);
    std::vector<int64_t> ci(n);
    float* du = static_cast<float*>(cuda::alloc(n * 4));
    int64_t* di = static_cast<int64_t*>(cuda::alloc(n * 8));
    cpu::philox_uniform(n, seed, offset, -1.f, 1.f, cu.data());
    cuda::philox_uniform(n, seed, offset, -1.f, 1.f, du);
    CHECK(std::memcmp(to_host(du, n).data(), cu.data(), n * 4) == 0);
    cpu::philox_randint(n, seed, offset, 0, 10, ci.data());
    cuda::philox_randint(n, seed, offset, 0, 10, di);
    CHECK(std::memcmp(to_host(di, n).data(), ci.data(), n * 8) == 0);
    // Normals go through double log / sin / cos, whose last bit may differ between glibc and CUDA's
    // libdevice (and the device may fuse mean + stddev * z); after rounding to float that changes
    // about one element in 2^28. Require bit identity except for at most a few 1-ulp elements.
    cpu::philox_normal(n, seed, offset, 0.f, 1.f, cn.data());
    cuda::philox_normal(n, seed, offset, 0.f, 1.f, du);
    std::vector<float> gn = to_host(du, n);
    int64_t diff = 0, far = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (std::memcmp(&gn[i], &cn[i], 4) == 0) continue;
      ++diff;
      if (std::fabs(gn[i] - cn[i]) > 2.5e-7 * std::fabs(cn[i])) ++far;
    }
    MESSAGE("philox_normal: " << diff << " of " << n << " elements differ in the last bit");
    CHECK(far == 0);
    CHECK(diff <= 2);
    cuda::release(du, n * 4);
    cuda::release(di, n * 8);
  }

  TEST_CASE("cuda: the caching allocator reuses blocks and bytes_in_use goes back down") {
    const size_t before = cuda::bytes_in_use();
    void* a = cuda::alloc(1000);
    CHECK(a != nullptr);
    CHECK(cuda::bytes_in_use() >= before + 1000);
    cuda::release(a, 1000);
    CHECK(cuda::bytes_in_use() == before);
    void* b = cuda::alloc(1000);
    CHECK(b == a);  // same size class: the cached block comes back
    void* c = cuda::alloc(3u << 20);
    CHECK(cuda::bytes_in_use() >= before + 1000 + (3u << 20));
    cuda::release(c, 3u << 20);
    void* d = cuda::alloc((3u << 20) - 100);  // rounds to the same class
    CHECK(d == c);
    cuda::release(d, (3u << 20) - 100);
    cuda::release(b, 1000);
    CHECK(cuda::bytes_in_use() == before);
    cuda::empty_cache();
    CHECK(cuda::bytes_in_use() == before);
    CHECK(cuda::alloc(0) == nullptr);
    cuda::release(nullptr, 0);
  }

  TEST_CASE("cuda: runtime basics") {
    CHECK(cuda::built());
    CHECK(cuda::available());
    CHECK(cuda::describe().find("sm_") != std::string::npos);
    CHECK_FALSE(cuda::tf32());  // off by default
    // bad conv arguments throw on the host, before anything is launched
    Conv2dArgs bad = conv(1, 6, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1, 4);  // 6 % 4 != 0
    CHECK_THROWS_AS(cuda::conv2d_forward(bad, nullptr, nullptr, nullptr, nullptr), std::invalid_argument);
    // copies round-trip
    std::vector<float> h = {1.f, -2.f, 3.5f}, back(3);
    float* d = static_cast<float*>(cuda::alloc(12));
    float* e = static_cast<float*>(cuda::alloc(12));
    cuda::copy_h2d(d, h.data(), 12);
    cuda::copy_d2d(e, d, 12);
    cuda::copy_d2h(back.data(), e, 12);
    CHECK(back == h);
    cuda::release(d, 12);
    cuda::release(e, 12);
  }

  TEST_CASE("cuda: conv and gemm with TF32 on stay close (and the switch goes back off)") {
    const Conv2dArgs a = conv(2, 32, 14, 14, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1);
    const int64_t nx = int64_t(a.N) * a.C * a.H * a.W, nw = int64_t(a.K) * a.C * 9, ny = int64_t(a.N) * a.K * a.P * a.Q;
    std::mt19937 gen(5);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    std::vector<float> x(nx), w(nw), y(ny);
    for (auto& v : x) v = u(gen);
    for (auto& v : w) v = u(gen);
    cpu::conv2d_forward(a, x.data(), w.data(), nullptr, y.data());
    float* dx = static_cast<float*>(cuda::alloc(nx * 4));
    float* dw = static_cast<float*>(cuda::alloc(nw * 4));
    float* dy = static_cast<float*>(cuda::alloc(ny * 4));
    cuda::copy_h2d(dx, x.data(), nx * 4);
    cuda::copy_h2d(dw, w.data(), nw * 4);
    cuda::set_tf32(true);
    CHECK(cuda::tf32());
    cuda::conv2d_forward(a, dx, dw, nullptr, dy);
    // TF32 keeps 10 mantissa bits: ~5e-4 relative per product, sum of 288 terms of size ~0.3
    dfq::test::check_close("conv tf32", to_host(dy, ny), y, 2e-2, 1e-2);
    cuda::set_tf32(false);
    cuda::conv2d_forward(a, dx, dw, nullptr, dy);
    dfq::test::check_close("conv tf32 off again", to_host(dy, ny), y, 2e-5 * std::sqrt(288.0), 1e-4);
    cuda::release(dx, nx * 4);
    cuda::release(dw, nw * 4);
    cuda::release(dy, ny * 4);
  }
}
