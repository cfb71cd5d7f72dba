// diverged.h — a training loop whose loss is no longer a finite number stops there: a NaN or an
// infinity is never stepped on, saved or scored. Every loop (train_fp, ZeroQ's distillation,
// GDFQ's generator and student steps) checks its loss before the optimizer step with
// require_finite_loss, which names the phase, epoch and iteration in the message.
#pragma once
#include <cmath>
#include <stdexcept>
#include <string>

namespace dfq {

struct Diverged : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// where: e.g. "GDFQ generator step, epoch 3 of 20, iteration 12 of 50".
inline void require_finite_loss(double loss, const std::string& where) {
  if (std::isfinite(loss)) return;
  const char* v = std::isnan(loss) ? "NaN" : loss > 0 ? "+inf" : "-inf";
  throw Diverged("training diverged: the loss is " + std::string(v) + " at " + where +
                 "; stopped before the step (lower the learning rate, or check the weights)");
}

}  // namespace dfq
