// test_golden_kd.cpp — GDFQ's student loss against PyTorch (../shared/golden/losses/kd_*):
// loss = cross_entropy(s, y) + T^2 * kl_div(log_softmax(s / T), softmax(t / T), "mean"), T = 20;
// the loss value and d loss / d s, at the golden README's float32 tolerances.
// Every TEST_CASE is named "golden kd: ...".
#include <algorithm>
#include <cmath>
#include <string>

#include "engine/io/npy.h"
#include "engine/ops.h"
#include "quant/gdfq.h"
#include "tests/check.h"

using namespace dfq;
using dfq::test::check_close;

namespace {
const std::string kLosses = std::string(DFQ_GOLDEN_DIR) + "/losses/";
}  // namespace

TEST_CASE("golden kd: GDFQ student loss (CE + T^2 * KL mean, T = 20) and its gradient") {
  Tensor s = load_npy(kLosses + "kd_student_logits.npy");
  Tensor t = load_npy(kLosses + "kd_teacher_logits.npy");
  Tensor y = load_npy(kLosses + "kd_labels_int64.npy");
  Tensor want_loss = load_npy(kLosses + "kd_loss.npy");
  Tensor want_grad = load_npy(kLosses + "kd_grad_student.npy");
  REQUIRE(s.shape() == Shape{8, 10});
  REQUIRE(t.shape() == s.shape());
  REQUIRE(y.dtype() == DType::I64);
  REQUIRE(want_grad.shape() == s.shape());

  s.set_requires_grad(true);
  Tensor loss = quant::gdfq_student_loss(s, t, y, 20.f);  // quant/gdfq.h, what gdfq_main trains with
  REQUIRE(loss.numel() == 1);
  std::vector<float> got_loss{loss.item()};
  check_close("kd loss", got_loss, want_loss.to_vector(), 1e-4, 1e-4);

  loss.backward();
  REQUIRE(s.grad().defined());
  std::vector<float> g = s.grad().to_vector(), r = want_grad.to_vector();
  double max_r = 0;
  for (float v : r) max_r = std::max(max_r, static_cast<double>(std::fabs(v)));
  check_close("kd d loss / d student logits", g, r, 1e-4 * max_r, 1e-3);
  CHECK_FALSE(t.requires_grad());
}
