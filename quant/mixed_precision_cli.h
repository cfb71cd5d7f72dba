// mixed_precision_cli.h — the mixed-precision step of a method main (zeroq_main): its flags, checked
// before any work, and the run on the distilled batch: sensitivity (progress bar with ETA), the
// frontier, the chosen bits (printed as a table), the independence check at a few budgets, and
// the outputs under --out (mp_frontier.csv, mp_frontier.png, mp_sensitivity.csv, mp_check.csv),
// written at the end so that a failed run leaves none of them.
//   --mp_size MB | --mp_avg_bits B   the weight-size budget (one of them; MB = 2^20 bytes)
//   --mp_bits 2,4,8                  the candidate weight bit-widths
//   --mp_check B1,B2,...             budgets (average bits) to check the independence assumption at
// Activations are at the run's -qa bits in every quantized model this step builds (calibrated on
// the distilled batch); the sensitivities are measured with activations float (mixed_precision.h).
#pragma once
#include <string>
#include <vector>

#include "engine/io/flags.h"
#include "quant/method_cli.h"
#include "quant/mixed_precision.h"

namespace dfq::quant {

struct MpFlags {
  explicit MpFlags(Flags& flags);  // declares the flags (before Flags::done())
  // After Flags::done(): parses the lists and checks what can be checked without the model (both
  // budgets, a budget outside the candidates' range, a malformed list); fails through Flags::fail.
  void validate(const Flags& flags);
  bool on() const { return size_mb > 0 || avg_bits > 0; }

  double size_mb = 0, avg_bits = 0;
  std::string bits_text, check_text;
  std::vector<int> bits;            // ascending, distinct
  std::vector<double> check_avg_bits;  // --mp_check: average bits per weight
};

class MpStep {
 public:
  // first_last_8 pins the first conv and the last linear to 8 bits (not searched).
  MpStep(const MpFlags& flags, bool first_last_8);
  // With the float model loaded, before the distillation: the layers and the budget in bits; a
  // budget (or a check budget) below the smallest configuration fails through flags.fail (exit 2).
  void plan(const models::Model& model, const Flags& flags);
  // Sensitivity, frontier, the chosen point (printed), and the check points (each quantized at A
  // cfg.abits, calibrated on `distilled`, evaluated on the run's data when it has some). Returns
  // the chosen per-layer bits (QuantConfig::layer_wbits).
  std::vector<int> run(MethodRun& run, const std::shared_ptr<models::Model>& model, const Tensor& distilled,
                       const QuantConfig& cfg, const std::string& title);
  // The CSVs and the PNG into dir ("" writes nothing and says so).
  void write_outputs(const std::string& dir) const;
  int64_t budget_bits() const { return budget_bits_; }
  const MpPoint& chosen() const { return *chosen_; }
  double chosen_avg_bits() const { return chosen_->avg_bits(total_params_); }

 private:
  struct Check {
    double budget_avg_bits = 0;
    MpPoint point;
    double joint_kl = 0, top1 = -1;  // top1 < 0: not evaluated (no data)
  };
  const MpFlags& flags_;
  bool first_last_8_;
  std::vector<MpLayer> layers_;
  std::vector<std::pair<size_t, int>> pinned_;
  std::vector<int> measured_bits_;
  int64_t total_params_ = 0, budget_bits_ = 0;
  Sensitivity sens_;
  MpFrontier frontier_;
  const MpPoint* chosen_ = nullptr;
  std::vector<Check> checks_;
  std::string title_;
};

}  // namespace dfq::quant
