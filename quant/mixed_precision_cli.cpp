// mixed_precision_cli.cpp — see mixed_precision_cli.h.
#include "quant/mixed_precision_cli.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <set>

#include "engine/io/flags.h"
#include "engine/io/json_out.h"
#include "engine/io/plot.h"
#include "engine/io/progress.h"
#include "quant/quantizer.h"
#include "quant/zeroq.h"

namespace dfq::quant {

namespace {
constexpr double kUnset = std::numeric_limits<double>::quiet_NaN();

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}
}  // namespace

MpFlags::MpFlags(Flags& flags)
    : size_mb(flags.number("--mp_size", kUnset)),
      avg_bits(flags.number("--mp_avg_bits", kUnset)),
      bits_text(flags.str("--mp_bits", "2,4,8")),
      check_text(flags.str("--mp_check", "")) {}

void MpFlags::validate(const Flags& flags) {
  const bool have_size = !std::isnan(size_mb), have_avg = !std::isnan(avg_bits);
  if (have_size && have_avg) flags.fail("give either --mp_size or --mp_avg_bits, not both");
  if (have_size && !(size_mb > 0)) flags.fail("--mp_size must be > 0 (MB of weights)");
  try {
    for (double v : parse_number_list(bits_text, "--mp_bits")) {
      if (v != std::floor(v)) throw std::invalid_argument("--mp_bits: " + fmt("%g", v) + " is not a whole number of bits");
      if (v < 1 || v > 32) throw std::invalid_argument("--mp_bits: " + fmt("%g", v) + " bits is not supported (1..24, 32 = float)");
      quant::check_bits(int(v), "--mp_bits");
      bits.push_back(int(v));
    }
    std::sort(bits.begin(), bits.end());
    if (std::adjacent_find(bits.begin(), bits.end()) != bits.end()) throw std::invalid_argument("--mp_bits: a bit-width is listed twice");
    if (!check_text.empty()) check_avg_bits = parse_number_list(check_text, "--mp_check");
  } catch (const std::exception& ex) {
    flags.fail(ex.what());
  }
  auto in_range = [this](double b) { return b >= bits.front() && b <= bits.back(); };
  const std::string range = "[" + std::to_string(bits.front()) + ", " + std::to_string(bits.back()) + "]";
  if (have_avg && !in_range(avg_bits))
    flags.fail("--mp_avg_bits " + fmt("%g", avg_bits) + " is outside the candidates' range " + range + " (--mp_bits " + bits_text + ")");
  for (double b : check_avg_bits)
    if (!in_range(b)) flags.fail("--mp_check " + fmt("%g", b) + " is outside the candidates' range " + range);
  if (!check_avg_bits.empty() && !have_size && !have_avg) flags.fail("--mp_check needs --mp_size or --mp_avg_bits");
  if (!have_size) size_mb = 0;
  if (!have_avg) avg_bits = 0;
}

MpStep::MpStep(const MpFlags& flags, bool first_last_8) : flags_(flags), first_last_8_(first_last_8) {}

void MpStep::plan(const models::Model& model, const Flags& flags) {
  layers_ = mp_layers(model);
  if (layers_.empty()) flags.fail("mixed precision: " + model.arch + " has no conv or linear layers");
  total_params_ = 0;
  for (const MpLayer& l : layers_) total_params_ += l.params;
  // DFQ: --first_last_8 pins the first conv and the last linear to 8 bits (they are not searched).
  pinned_.clear();
  if (first_last_8_) {
    pinned_.push_back({0, 8});
    if (!model.linear_layers().empty()) pinned_.push_back({layers_.size() - 1, 8});
  }
  measured_bits_ = flags_.bits;
  if (first_last_8_ && !std::count(measured_bits_.begin(), measured_bits_.end(), 8)) {
    measured_bits_.push_back(8);
    std::sort(measured_bits_.begin(), measured_bits_.end());
  }
  int64_t min_bits = 0, max_bits = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    int lo = flags_.bits.front(), hi = flags_.bits.back();
    for (const auto& p : pinned_)
      if (p.first == i) lo = hi = p.second;
    min_bits += layers_[i].params * lo;
    max_bits += layers_[i].params * hi;
  }
  budget_bits_ = flags_.size_mb > 0 ? int64_t(std::floor(flags_.size_mb * kBitsPerMB))
                                    : int64_t(std::floor(flags_.avg_bits * double(total_params_)));
  auto describe = [this](int64_t b) {
    return fmt("%.4f MB", b / kBitsPerMB) + " (" + fmt("%.3f", double(b) / double(total_params_)) + " bits per weight)";
  };
  if (budget_bits_ < min_bits)
    flags.fail("mixed-precision budget " + describe(budget_bits_) + " is below the smallest configuration of " + model.arch +
               ", " + describe(min_bits) + (pinned_.empty() ? "" : " with the first / last layer at 8 bits"));
  for (double b : flags_.check_avg_bits)
    if (int64_t(std::floor(b * double(total_params_))) < min_bits)
      flags.fail("--mp_check " + fmt("%g", b) + " is below the smallest configuration, " + describe(min_bits));
  std::printf("mixed precision: %zu layers, %lld weights (%.4f MB at 32 bits); budget %s; candidates W%s%s\n", layers_.size(),
              (long long)total_params_, 32.0 * double(total_params_) / kBitsPerMB, describe(budget_bits_).c_str(),
              flags_.bits_text.c_str(), pinned_.empty() ? "" : ", first conv and last linear pinned to W8");
  if (budget_bits_ > max_bits)
    std::printf("mixed precision: the budget is above the largest configuration (%s): every layer at its widest\n",
                describe(max_bits).c_str());
}

std::vector<int> MpStep::run(MethodRun& run, const std::shared_ptr<models::Model>& model, const Tensor& distilled,
                             const QuantConfig& cfg, const std::string& title) {
  title_ = title;
  {
    Progress bar("sensitivity", int64_t(layers_.size() * measured_bits_.size()));
    sens_ = measure_sensitivity(*model, distilled, measured_bits_, [&bar](int64_t done, int64_t) { bar.update(done); },
                                cfg.weight_scheme);
    bar.finish();
  }
  frontier_ = solve_frontier(make_problem(layers_, sens_, flags_.bits, pinned_));
  chosen_ = &frontier_.best_within(budget_bits_);
  // The table: every layer's sensitivities and the chosen bits.
  std::printf("%-4s %-34s %10s", "#", "layer", "weights");
  for (int b : measured_bits_) std::printf("  %11s", ("KL@W" + std::to_string(b)).c_str());
  std::printf("  chosen\n");
  for (size_t i = 0; i < layers_.size(); ++i) {
    std::printf("%-4zu %-34s %10lld", i, layers_[i].name.c_str(), (long long)layers_[i].params);
    for (double v : sens_.omega[i]) std::printf("  %11.4e", v);
    std::printf("  W%d\n", chosen_->layer_bits[i]);
  }
  std::printf("frontier: %zu points from %.4f to %.4f MB (%s size grid, unit %lld bits)\n", frontier_.points.size(),
              frontier_.min_size_bits / kBitsPerMB, frontier_.max_size_bits / kBitsPerMB,
              frontier_.exact ? "exact" : "coarsened", (long long)frontier_.unit_bits);
  std::printf("chosen: %.4f MB, %.3f bits per weight (budget %.4f MB, %.3f), predicted sensitivity (sum of KL) %.4e\n",
              chosen_->size_bits / kBitsPerMB, chosen_->avg_bits(total_params_), budget_bits_ / kBitsPerMB,
              double(budget_bits_) / double(total_params_), chosen_->sensitivity);
  std::fflush(stdout);  // before the evaluations' progress bars on stderr
  // The independence check: predicted (sum of the layers' KL) against the measured joint KL, and the
  // top-1 of each point's model (A at cfg.abits, calibrated on the distilled batch).
  checks_.clear();
  for (double b : flags_.check_avg_bits) {
    Check c;
    c.budget_avg_bits = b;
    c.point = frontier_.best_within(int64_t(std::floor(b * double(total_params_))));
    c.joint_kl = joint_sensitivity(*model, distilled, c.point.layer_bits, cfg.weight_scheme);
    if (run.data()) {
      QuantConfig qc = cfg;
      qc.layer_wbits = c.point.layer_bits;
      QuantizedModel q(model, qc);
      calibrate(q, distilled);
      c.top1 = run.evaluate_quantized(q, "check " + fmt("%.2f", b) + " bits").top1();
    }
    checks_.push_back(c);
  }
  if (!checks_.empty()) {
    std::printf("independence check (KL on the distilled batch, activations float; top-1 at A%d):\n", cfg.abits);
    std::printf("  %8s %10s %9s %14s %14s %9s %8s\n", "budget", "size MB", "avg bits", "predicted KL", "measured KL",
                "ratio", "top-1");
    for (const Check& c : checks_) {
      std::printf("  %8.3f %10.4f %9.3f %14.4e %14.4e %9.3f %8s\n", c.budget_avg_bits, c.point.size_bits / kBitsPerMB,
                  c.point.avg_bits(total_params_), c.point.sensitivity, c.joint_kl,
                  c.point.sensitivity > 0 ? c.joint_kl / c.point.sensitivity : 0.0,
                  c.top1 < 0 ? "-" : fmt("%.2f", c.top1).c_str());
    }
    std::fflush(stdout);
  }
  std::string lb;
  for (int v : chosen_->layer_bits) lb += (lb.empty() ? "" : ",") + std::to_string(v);
  run.json()
      .num("mp_budget_mb", budget_bits_ / kBitsPerMB)
      .num("mp_size_mb", chosen_->size_bits / kBitsPerMB)
      .num("mp_avg_bits", chosen_->avg_bits(total_params_))
      .num("mp_predicted_kl", chosen_->sensitivity)
      .num("mp_frontier_points", double(frontier_.points.size()))
      .str("mp_candidates", flags_.bits_text)
      .str("mp_layer_bits", lb);
  return chosen_->layer_bits;
}

void MpStep::write_outputs(const std::string& dir) const {
  if (dir.empty()) {
    std::printf("no --out: the frontier (CSV, PNG) and the sensitivity table are not written\n");
    return;
  }
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  const fs::path d(dir);
  std::string check_csv = "budget_avg_bits,size_mb,avg_bits,predicted_kl,measured_kl,top1\n";
  for (const Check& c : checks_)
    check_csv += fmt("%.6g", c.budget_avg_bits) + "," + fmt("%.6f", c.point.size_bits / kBitsPerMB) + "," +
                 fmt("%.6f", c.point.avg_bits(total_params_)) + "," + fmt("%.9g", c.point.sensitivity) + "," +
                 fmt("%.9g", c.joint_kl) + "," + (c.top1 < 0 ? std::string("") : fmt("%.2f", c.top1)) + "\n";
  // The figure: the frontier, the uniform configurations, the chosen point, the checked points
  // (predicted and measured).
  PlotSpec plot;
  plot.title = title_;
  plot.xlabel = "weight size (MB)";
  plot.ylabel = "sensitivity: sum of KL (log)";
  plot.log_y = true;
  PlotSeries front;
  front.rgb = {31, 90, 200};
  front.label = "Pareto frontier";
  for (size_t i = 0; i < frontier_.points.size(); ++i) {
    const MpPoint& p = frontier_.points[i];
    // a step plot: the least sensitivity within a size holds until the next point
    if (i) {
      front.x.push_back(p.size_bits / kBitsPerMB);
      front.y.push_back(frontier_.points[i - 1].sensitivity);
    }
    front.x.push_back(p.size_bits / kBitsPerMB);
    front.y.push_back(p.sensitivity);
  }
  plot.series.push_back(front);
  PlotSeries uni;
  uni.style = PlotSeries::Style::Cross;
  uni.size = 6;
  uni.rgb = {110, 110, 110};
  uni.label = "uniform W";
  for (size_t j = 0; j < sens_.bits.size(); ++j) {
    if (std::find(flags_.bits.begin(), flags_.bits.end(), sens_.bits[j]) == flags_.bits.end()) continue;
    double s = 0;
    int64_t size = 0;
    for (size_t i = 0; i < layers_.size(); ++i) {
      int b = sens_.bits[j];
      size_t col = j;
      for (const auto& p : pinned_)
        if (p.first == i) b = p.second, col = size_t(std::find(sens_.bits.begin(), sens_.bits.end(), b) - sens_.bits.begin());
      s += sens_.omega[i][col];
      size += layers_[i].params * b;
    }
    uni.x.push_back(size / kBitsPerMB);
    uni.y.push_back(s);
    uni.label += (j ? "/" : "") + std::to_string(sens_.bits[j]);
  }
  plot.series.push_back(uni);
  if (!checks_.empty()) {
    PlotSeries pred, meas;
    pred.style = PlotSeries::Style::Dots;
    pred.size = 5;
    pred.rgb = {20, 150, 60};
    pred.label = "checked: predicted";
    meas.style = PlotSeries::Style::Cross;
    meas.size = 6;
    meas.rgb = {230, 130, 0};
    meas.label = "checked: measured joint KL";
    for (const Check& c : checks_) {
      pred.x.push_back(c.point.size_bits / kBitsPerMB);
      pred.y.push_back(c.point.sensitivity);
      meas.x.push_back(c.point.size_bits / kBitsPerMB);
      meas.y.push_back(c.joint_kl);
    }
    plot.series.push_back(pred);
    plot.series.push_back(meas);
  }
  PlotSeries ch;
  ch.style = PlotSeries::Style::Ring;
  ch.size = 9;
  ch.rgb = {220, 20, 20};
  ch.label = "chosen: " + fmt("%.2f", chosen_->avg_bits(total_params_)) + " bits, " + fmt("%.3f", chosen_->size_bits / kBitsPerMB) + " MB";
  ch.x = {chosen_->size_bits / kBitsPerMB};
  ch.y = {chosen_->sensitivity};
  plot.series.push_back(ch);
  write_file_atomic((d / "mp_frontier.csv").string(), frontier_csv(frontier_, layers_));
  write_file_atomic((d / "mp_sensitivity.csv").string(), sensitivity_csv(sens_, layers_));
  if (!checks_.empty()) write_file_atomic((d / "mp_check.csv").string(), check_csv);
  save_png((d / "mp_frontier.png").string(), render_plot(plot));
  std::printf("mixed precision: %s (mp_frontier.csv, mp_frontier.png, mp_sensitivity.csv%s)\n", dir.c_str(),
              checks_.empty() ? "" : ", mp_check.csv");
}

}  // namespace dfq::quant
