// test_cuda_twins_loss_optim_quant.cpp — the CUDA twin table's rows for softmax / losses /
// embedding, the optimizers and the fake-quantizer, one TEST_CASE per group. The harness (the
// runner, guards, BufSpec helpers, tolerance rules) is in tests/cuda_twins.h; build_table() there
// adds these rows along with the rest, so the kernel coverage check in test_cuda_twins.cpp sees them.
// Everything here is in TEST_SUITE("cuda"), which tests/main.cpp excludes when there is no GPU.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "tests/cuda_twins.h"

namespace dfq::twins {

void add_loss_rows() {
  const int64_t sm[][2] = {{37, 10}, {5, 1000}, {3, 1}, {2, 4097}, {0, 10}};
  for (auto& s : sm) {
    const int64_t R = s[0], C = s[1];
    for (bool log : {false, true}) {
      const std::string w = std::string(log ? " log=1 " : " log=0 ") + std::to_string(R) + "x" + std::to_string(C);
      row("loss", "softmax_forward" + w, {in_f("x", R * C, -4, 4), out_f("y", R * C)}, 1e-6, 1e-5, [=](auto k, const Bufs& b) { k.softmax_forward(R, C, log, b.f(0), b.f(1)); });
      row("loss", "softmax_backward" + w, {in_f("x", R * C, -4, 4), in_f("gy", R * C), out_f("y", R * C), out_f("gx", R * C)}, 1e-6, 1e-5,
          [=](auto k, const Bufs& b) {
            k.softmax_forward(R, C, log, b.f(0), b.f(2));
            k.softmax_backward(R, C, log, b.f(2), b.f(1), b.f(3));
          });
    }
  }
  for (int64_t R : {int64_t(37), int64_t(1), int64_t(0)}) {
    const int64_t C = 10;
    const std::string w = " rows=" + std::to_string(R);
    row("loss", "nll_forward" + w, {in_f("logp", R * C, -5, 0), in_i64("labels", R, 0, C), out_f("loss", 1)}, 1e-6, 1e-5,
        [=](auto k, const Bufs& b) { k.nll_forward(R, C, b.f(0), b.l(1), b.f(2)); });
    if (R > 0)
      row("loss", "nll_backward" + w, {in_i64("labels", R, 0, C), in_f("gloss", 1, 0.5, 2), out_f("glogp", R * C)}, 1e-6, 1e-5,
          [=](auto k, const Bufs& b) { k.nll_backward(R, C, b.l(0), b.f(1), b.f(2)); });
  }
  const int64_t n = 1001;
  row("loss", "kl_div_forward n=1001", {in_f("input", n, -4, 0), in_probs0("target", n), out_f("y", n)}, 1e-6, 1e-5,
      [=](auto k, const Bufs& b) { k.kl_div_forward(n, b.f(0), b.f(1), b.f(2)); });
  row("loss", "kl_div_backward n=1001", {in_f("input", n, -4, 0), in_probs0("target", n), in_f("gy", n), out_f("ginput", n), out_f("gtarget", n)}, 1e-6, 1e-5,
      [=](auto k, const Bufs& b) { k.kl_div_backward(n, b.f(0), b.f(1), b.f(2), b.f(3), b.f(4)); });
  row("loss", "kl_div_backward ginput only", {in_f("input", n, -4, 0), in_probs0("target", n), in_f("gy", n), out_f("ginput", n)}, 1e-6, 1e-5,
      [=](auto k, const Bufs& b) { k.kl_div_backward(n, b.f(0), b.f(1), b.f(2), b.f(3), nullptr); });
  row("loss", "embedding_forward 64 of 50x17", {in_i64("idx", 64, 0, 50), in_f("table", 50 * 17), out_f("y", 64 * 17)}, 0, 0,
      [](auto k, const Bufs& b) { k.embedding_forward(64, 17, b.l(0), b.f(1), b.f(2)); });
  // repeated indices add up in another order on the GPU (atomics)
  row("loss", "embedding_backward 64 into 50x17", {in_i64("idx", 64, 0, 50), in_f("gy", 64 * 17), io_f("gtable", 50 * 17)}, 1e-6, 1e-5,
      [](auto k, const Bufs& b) { k.embedding_backward(64, 17, b.l(0), b.f(1), b.f(2)); });
  row("loss", "embedding_backward empty", {in_i64("idx", 0, 0, 1), in_f("gy", 0), io_f("gtable", 5)}, 0, 0,
      [](auto k, const Bufs& b) { k.embedding_backward(0, 1, b.l(0), b.f(1), b.f(2)); });
}

void add_optim_rows() {
  const int64_t n = 5005;
  struct S { const char* what; SgdArgs a; };
  const S ss[] = {{"plain", {0.1f, 0.f, 0.f, false, false}},
                  {"wd", {0.05f, 0.f, 1e-2f, false, false}},
                  {"momentum first step", {0.1f, 0.9f, 1e-4f, false, true}},
                  {"momentum", {0.1f, 0.9f, 1e-4f, false, false}},
                  {"nesterov", {0.1f, 0.9f, 0.f, true, false}}};
  for (const S& s : ss) {
    const SgdArgs a = s.a;
    row("optim", std::string("sgd_update ") + s.what, {io_f("p", n), in_f("g", n), io_f("buf", n)}, 1e-6, 1e-5,
        [=](auto k, const Bufs& b) { k.sgd_update(a, n, b.f(0), b.f(1), a.momentum != 0.f ? b.f(2) : nullptr); });
  }
  struct A { const char* what; AdamArgs a; };
  const A as[] = {{"step 1", {1e-3f, 0.9f, 0.999f, 1e-8f, 0.f, 1}}, {"step 10 wd", {1e-2f, 0.8f, 0.99f, 1e-8f, 1e-2f, 10}}};
  for (const A& s : as) {
    const AdamArgs a = s.a;
    row("optim", std::string("adam_update ") + s.what, {io_f("p", n), in_f("g", n), io_f("m", n, -0.1, 0.1), io_f("v", n, 0, 0.01)}, 1e-6, 1e-5,
        [=](auto k, const Bufs& b) { k.adam_update(a, n, b.f(0), b.f(1), b.f(2), b.f(3)); });
  }
  row("optim", "sgd_update n=0", {io_f("p", 0), in_f("g", 0)}, 0, 0, [](auto k, const Bufs& b) { k.sgd_update(SgdArgs{0.1f, 0.f, 0.f, false, false}, 0, b.f(0), b.f(1), nullptr); });
}

// The fake-quantizer shares its arithmetic with the CPU (quant_math.h, no fused multiply-add) and
// min / max are exact in any order: every row is exact (atol = rtol = 0: equal values; no output
// is a NaN or a -0, so that is bit identity). x spans [-1.5, 1.5], wider than the ranges
// lo in [-1, -0.1], hi in [0.1, 1], so both clamps and the clip mask are exercised.
void add_quant_rows() {
  // rows=1 x 300000 and 7 x 5000 split each row over several blocks; 16 x 72 does not
  const int64_t mm[][2] = {{1, 300000}, {16, 72}, {7, 5000}, {5, 1}, {0, 3}};
  for (auto& s : mm) {
    const int64_t R = s[0], C = s[1];
    row("quant", "minmax_rows " + std::to_string(R) + "x" + std::to_string(C), {in_f("x", R * C), out_f("lo", R), out_f("hi", R)}, 0, 0,
        [=](auto k, const Bufs& b) { k.minmax_rows(R, C, b.f(0), b.f(1), b.f(2)); });
  }
  const int64_t fq[][2] = {{16, 72}, {1, 100003}};  // per-row (rows, cols), per-tensor (one range)
  for (auto& s : fq) {
    const int64_t R = s[0], C = s[1], n = R * C;
    const std::string w = std::to_string(R) + "x" + std::to_string(C);
    for (bool sym : {false, true}) {  // the official asymmetric grid; symmetric weights (zero point 0)
      const std::string ws = sym ? " sym" : "";
      for (int bits : {2, 4, 8})
        row("quant", "fake_quant bits=" + std::to_string(bits) + ws + " " + w, {in_f("x", n, -1.5, 1.5), in_f("lo", R, -1, -0.1), in_f("hi", R, 0.1, 1), out_f("y", n)}, 0, 0,
            [=](auto k, const Bufs& b) { k.fake_quant(n, C, bits, sym, b.f(0), b.f(1), b.f(2), b.f(3)); });
      row("quant", "fake_quant_backward_clip" + ws + " " + w,
          {in_f("x", n, -1.5, 1.5), in_f("lo", R, -1, -0.1), in_f("hi", R, 0.1, 1), in_f("gy", n), out_f("gx", n)}, 0, 0,
          [=](auto k, const Bufs& b) { k.fake_quant_backward_clip(n, C, sym, b.f(0), b.f(1), b.f(2), b.f(3), b.f(4)); });
    }
  }
  row("quant", "fake_quant n=0", {in_f("x", 0), in_f("lo", 1), in_f("hi", 1), out_f("y", 0)}, 0, 0,
      [](auto k, const Bufs& b) { k.fake_quant(0, 1, 8, false, b.f(0), b.f(1), b.f(2), b.f(3)); });
  row("quant", "fake_quant sym n=0", {in_f("x", 0), in_f("lo", 1), in_f("hi", 1), out_f("y", 0)}, 0, 0,
      [](auto k, const Bufs& b) { k.fake_quant(0, 1, 8, true, b.f(0), b.f(1), b.f(2), b.f(3)); });
  // state = {lo, hi, beta_t} (InOut), batch = {min, max}
  row("quant", "range_update ema=0", {io_f("state", 3, -0.5, 0.5), in_f("batch", 2)}, 0, 0,
      [](auto k, const Bufs& b) { k.range_update(false, 0.9f, b.f(1), b.f(0)); });
  // beta_t drawn in [0.05, 1): inside (0, 1] (so lo, hi start in that range too, which is fine here)
  row("quant", "range_update ema=1 beta_t in (0,1)", {io_f("state", 3, 0.05, 1), in_f("batch", 2)}, 0, 0,
      [](auto k, const Bufs& b) { k.range_update(true, 0.9f, b.f(1), b.f(0)); });
  // GDFQ's start: beta_t = 1 (set by the fill kernel, itself exact), then three steps
  row("quant", "range_update ema=1 from beta_t=1, 3 steps", {io_f("state", 3, -0.5, 0.5), in_f("batch", 6)}, 0, 0,
      [](auto k, const Bufs& b) {
        k.fill(1, 1.f, b.f(0) + 2);
        for (int t = 0; t < 3; ++t) k.range_update(true, 0.99f, b.f(1) + 2 * t, b.f(0));
      });
  row("quant", "range_update ema=0 3 steps", {io_f("state", 3, -0.5, 0.5), in_f("batch", 6)}, 0, 0,
      [](auto k, const Bufs& b) {
        for (int t = 0; t < 3; ++t) k.range_update(false, 0.99f, b.f(1) + 2 * t, b.f(0));
      });
}

}  // namespace dfq::twins

using dfq::twins::run_group;

TEST_SUITE("cuda") {
  TEST_CASE("cuda twins: softmax, losses, embedding") { run_group("loss"); }
  TEST_CASE("cuda twins: optimizers") { run_group("optim"); }
  TEST_CASE("cuda twins: quant") { run_group("quant"); }
}
