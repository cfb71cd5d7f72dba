// mixed_precision.cpp — see mixed_precision.h.
#include "quant/mixed_precision.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "quant/quantizer.h"

namespace dfq::quant {

namespace {

// The model's weight-carrying layers with their hook slots, in layer_wbits order.
struct HookSlot {
  const Tensor* weight;
  nn::TensorHook* hook;
};
std::vector<HookSlot> hook_slots(models::Model& m) {
  std::vector<HookSlot> s;
  for (auto& [n, c] : m.conv_layers()) s.push_back({&c->weight, &c->weight_hook});
  for (auto& [n, l] : m.linear_layers()) s.push_back({&l->weight, &l->weight_hook});
  return s;
}

// Installs fixed (pre-quantized) weights on some layers for its lifetime; the model must have no
// weight hooks of its own (a QuantizedModel alive on it would be silently replaced).
class WeightOverride {
 public:
  explicit WeightOverride(models::Model& m) : slots_(hook_slots(m)) {
    for (const HookSlot& s : slots_)
      if (*s.hook)
        throw std::logic_error("mixed precision: the model already has weight hooks (a QuantizedModel is alive on it)");
  }
  ~WeightOverride() { clear(); }
  WeightOverride(const WeightOverride&) = delete;
  WeightOverride& operator=(const WeightOverride&) = delete;
  size_t size() const { return slots_.size(); }
  // Layer i's weight at `bits` (>= 32: float, no hook) on the scheme's grid.
  void set(size_t i, int bits, WeightScheme scheme) {
    if (bits >= 32) {
      *slots_[i].hook = nullptr;
      return;
    }
    Tensor q = quantize_weight(*slots_[i].weight, bits, Ste::Identity, scheme).detach();
    *slots_[i].hook = [q](const Tensor&) { return q; };
  }
  void clear() {
    for (const HookSlot& s : slots_) *s.hook = nullptr;
  }

 private:
  std::vector<HookSlot> slots_;
};

std::vector<float> logits_of(models::Model& m, const Tensor& data) {
  NoGradGuard ng;
  return m.forward(data).to_vector();
}

}  // namespace

std::vector<MpLayer> mp_layers(const models::Model& m) {
  std::vector<MpLayer> out;
  for (const auto& [n, c] : m.conv_layers()) out.push_back({n, c->weight.numel()});
  for (const auto& [n, l] : m.linear_layers()) out.push_back({n, l->weight.numel()});
  return out;
}

double mean_kl(const std::vector<float>& p_logits, const std::vector<float>& q_logits, int64_t rows, int64_t classes) {
  if (rows < 1 || classes < 1 || p_logits.size() != size_t(rows * classes) || q_logits.size() != p_logits.size())
    throw std::invalid_argument("mean_kl: logits do not have " + std::to_string(rows) + " x " + std::to_string(classes) +
                                " values");
  auto log_softmax = [classes](const float* x, std::vector<double>& out) {
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t c = 0; c < classes; ++c) mx = std::max(mx, double(x[c]));
    double s = 0;
    for (int64_t c = 0; c < classes; ++c) s += std::exp(double(x[c]) - mx);
    const double lse = mx + std::log(s);
    for (int64_t c = 0; c < classes; ++c) out[size_t(c)] = double(x[c]) - lse;
  };
  std::vector<double> lp(static_cast<size_t>(classes)), lq(static_cast<size_t>(classes));
  double total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = p_logits.data() + r * classes;
    const float* q = q_logits.data() + r * classes;
    for (int64_t c = 0; c < classes; ++c)
      if (!std::isfinite(p[c]) || !std::isfinite(q[c])) return std::numeric_limits<double>::infinity();
    log_softmax(p, lp);
    log_softmax(q, lq);
    double kl = 0;
    for (size_t c = 0; c < lp.size(); ++c) kl += std::exp(lp[c]) * (lp[c] - lq[c]);
    total += std::max(kl, 0.0);  // >= 0 in exact arithmetic; rounding can leave -1e-17
  }
  return total / double(rows);
}

Sensitivity measure_sensitivity(models::Model& model, const Tensor& data, const std::vector<int>& bits,
                                const std::function<void(int64_t, int64_t)>& on_step, WeightScheme scheme) {
  if (bits.empty()) throw std::invalid_argument("measure_sensitivity: no candidate bit-widths");
  for (int b : bits) check_weight_bits(b, scheme, "mixed-precision candidate");
  WeightOverride ov(model);
  const std::vector<float> ref = logits_of(model, data);
  const int64_t rows = data.size(0), classes = int64_t(ref.size()) / rows;
  Sensitivity s;
  s.bits = bits;
  s.omega.assign(ov.size(), std::vector<double>(bits.size(), 0.0));
  const int64_t total = int64_t(ov.size() * bits.size());
  int64_t done = 0;
  for (size_t i = 0; i < ov.size(); ++i) {
    for (size_t j = 0; j < bits.size(); ++j) {
      ov.set(i, bits[j], scheme);
      s.omega[i][j] = bits[j] >= 32 ? 0.0 : mean_kl(ref, logits_of(model, data), rows, classes);
      if (on_step) on_step(++done, total);
    }
    ov.set(i, 32, scheme);
  }
  return s;
}

double joint_sensitivity(models::Model& model, const Tensor& data, const std::vector<int>& layer_bits, WeightScheme scheme) {
  WeightOverride ov(model);
  if (layer_bits.size() != ov.size())
    throw std::invalid_argument("joint_sensitivity: " + std::to_string(layer_bits.size()) + " bit-widths for " +
                                std::to_string(ov.size()) + " layers");
  const std::vector<float> ref = logits_of(model, data);
  for (size_t i = 0; i < ov.size(); ++i) ov.set(i, layer_bits[i], scheme);
  const std::vector<float> q = logits_of(model, data);
  return mean_kl(ref, q, data.size(0), int64_t(ref.size()) / data.size(0));
}

MpProblem make_problem(const std::vector<MpLayer>& layers, const Sensitivity& s, const std::vector<int>& allowed,
                       const std::vector<std::pair<size_t, int>>& pinned) {
  if (s.omega.size() != layers.size())
    throw std::invalid_argument("make_problem: sensitivities for " + std::to_string(s.omega.size()) + " layers, " +
                                std::to_string(layers.size()) + " layers");
  auto column = [&s](int b) {
    auto it = std::find(s.bits.begin(), s.bits.end(), b);
    if (it == s.bits.end()) throw std::invalid_argument("make_problem: " + std::to_string(b) + " bits were not measured");
    return size_t(it - s.bits.begin());
  };
  MpProblem p;
  for (size_t i = 0; i < layers.size(); ++i) {
    std::vector<int> b = allowed;
    for (const auto& pin : pinned)
      if (pin.first == i) b = {pin.second};
    std::vector<double> om;
    for (int v : b) om.push_back(s.omega[i][column(v)]);
    p.params.push_back(layers[i].params);
    p.bits.push_back(b);
    p.omega.push_back(om);
  }
  return p;
}

const MpPoint& MpFrontier::best_within(int64_t budget_bits) const {
  const MpPoint* best = nullptr;
  for (const MpPoint& pt : points)  // ascending size, descending sensitivity: the last that fits
    if (pt.size_bits <= budget_bits) best = &pt;
  if (!best) {
    char b[200];
    std::snprintf(b, sizeof b, "a budget of %.4f MB (%.3f bits per weight) is below the smallest configuration, %.4f MB (%.3f)",
                  budget_bits / kBitsPerMB, double(budget_bits) / double(total_params), min_size_bits / kBitsPerMB,
                  double(min_size_bits) / double(total_params));
    throw std::invalid_argument(b);
  }
  return *best;
}

MpFrontier solve_frontier(const MpProblem& p, int64_t max_cells) {
  const size_t L = p.params.size();
  if (L == 0) throw std::invalid_argument("solve_frontier: no layers");
  if (p.bits.size() != L || p.omega.size() != L) throw std::invalid_argument("solve_frontier: per-layer lists disagree in length");
  MpFrontier f;
  // Raw sizes in bits, their gcd, the largest total.
  std::vector<std::vector<int64_t>> raw(L);
  int64_t g = 0, total_max = 0, total_min = 0;
  for (size_t i = 0; i < L; ++i) {
    if (p.params[i] < 1) throw std::invalid_argument("solve_frontier: layer " + std::to_string(i) + " has no weights");
    if (p.bits[i].empty() || p.bits[i].size() != p.omega[i].size() || p.bits[i].size() > 254)
      throw std::invalid_argument("solve_frontier: layer " + std::to_string(i) + " has no (or mismatched) candidates");
    int64_t mx = 0, mn = std::numeric_limits<int64_t>::max();
    for (size_t j = 0; j < p.bits[i].size(); ++j) {
      if (p.bits[i][j] < 1) throw std::invalid_argument("solve_frontier: a bit-width below 1");
      if (std::isnan(p.omega[i][j]))
        throw std::invalid_argument("solve_frontier: layer " + std::to_string(i) + " at " + std::to_string(p.bits[i][j]) +
                                    " bits has a NaN sensitivity");
      const int64_t r = p.params[i] * p.bits[i][j];
      raw[i].push_back(r);
      g = std::gcd(g, r);
      mx = std::max(mx, r);
      mn = std::min(mn, r);
    }
    total_max += mx;
    total_min += mn;
    f.total_params += p.params[i];
  }
  f.min_size_bits = total_min;
  f.max_size_bits = total_max;
  // The grid: exact (gcd unit) unless layers x points exceeds max_cells; then a coarser unit with
  // every size rounded up.
  int64_t unit = g;
  const int64_t max_points = std::max<int64_t>(2, max_cells / int64_t(L));
  if (total_max / g + 1 > max_points) {
    unit = (total_max + max_points - 2) / (max_points - 1);
    f.exact = false;
  }
  f.unit_bits = unit;
  std::vector<std::vector<int64_t>> cost(L);
  int64_t S = 0;
  for (size_t i = 0; i < L; ++i) {
    int64_t mx = 0;
    for (int64_t r : raw[i]) {
      cost[i].push_back((r + unit - 1) / unit);
      mx = std::max(mx, cost[i].back());
    }
    S += mx;
  }
  // dp[s]: least sum of Omega over layers 0..i with grid size exactly s; choice[i][s]: the candidate
  // of layer i on that path (kNone: s unreachable). Ties keep the first found (candidate order).
  constexpr uint8_t kNone = 255;
  const size_t W = size_t(S) + 1;
  std::vector<uint8_t> choice(L * W, kNone);
  std::vector<double> dp(W, 0.0), next(W, 0.0);
  std::vector<char> reach(W, 0), next_reach(W, 0);
  reach[0] = 1;
  int64_t hi = 0;  // the largest reachable s so far
  for (size_t i = 0; i < L; ++i) {
    std::fill(next_reach.begin(), next_reach.end(), 0);
    int64_t new_hi = 0;
    uint8_t* ch = choice.data() + i * W;
    for (int64_t s = 0; s <= hi; ++s) {
      if (!reach[size_t(s)]) continue;
      for (size_t j = 0; j < cost[i].size(); ++j) {
        const size_t t = size_t(s + cost[i][j]);
        const double v = dp[size_t(s)] + p.omega[i][j];
        if (!next_reach[t] || v < next[t]) {
          next[t] = v;
          next_reach[t] = 1;
          ch[t] = uint8_t(j);
          new_hi = std::max<int64_t>(new_hi, int64_t(t));
        }
      }
    }
    dp.swap(next);
    reach.swap(next_reach);
    hi = new_hi;
  }
  // The frontier on the grid: sizes where the least sensitivity drops below every smaller size's.
  double best = std::numeric_limits<double>::infinity();
  bool any = false;
  for (int64_t s = 0; s <= hi; ++s) {
    if (!reach[size_t(s)] || (any && !(dp[size_t(s)] < best))) continue;
    any = true;
    best = dp[size_t(s)];
    MpPoint pt;
    pt.sensitivity = dp[size_t(s)];
    pt.layer_bits.assign(L, 0);
    int64_t t = s;
    for (size_t i = L; i-- > 0;) {
      const uint8_t j = choice[i * W + size_t(t)];
      pt.layer_bits[i] = p.bits[i][j];
      pt.size_bits += raw[i][j];
      t -= cost[i][j];
    }
    f.points.push_back(pt);
  }
  if (!f.exact) {  // true sizes may reorder points that the rounded grid kept apart: keep the true Pareto set
    std::stable_sort(f.points.begin(), f.points.end(),
                     [](const MpPoint& a, const MpPoint& b) { return a.size_bits < b.size_bits; });
    std::vector<MpPoint> kept;
    for (MpPoint& pt : f.points)
      if (kept.empty() || pt.sensitivity < kept.back().sensitivity) kept.push_back(std::move(pt));
    f.points = std::move(kept);
  }
  return f;
}

std::string frontier_csv(const MpFrontier& f, const std::vector<MpLayer>& layers) {
  std::string s = "size_mb,avg_bits,sensitivity";
  for (const MpLayer& l : layers) s += "," + l.name;
  s += "\n";
  char b[128];
  for (const MpPoint& pt : f.points) {
    std::snprintf(b, sizeof b, "%.6f,%.6f,%.9g", pt.size_bits / kBitsPerMB, pt.avg_bits(f.total_params), pt.sensitivity);
    s += b;
    for (int v : pt.layer_bits) s += "," + std::to_string(v);
    s += "\n";
  }
  return s;
}

std::string sensitivity_csv(const Sensitivity& sens, const std::vector<MpLayer>& layers) {
  std::string s = "layer,params";
  for (int b : sens.bits) s += ",w" + std::to_string(b);
  s += "\n";
  char b[64];
  for (size_t i = 0; i < layers.size() && i < sens.omega.size(); ++i) {
    s += layers[i].name + "," + std::to_string(layers[i].params);
    for (double v : sens.omega[i]) {
      std::snprintf(b, sizeof b, ",%.9g", v);
      s += b;
    }
    s += "\n";
  }
  return s;
}

}  // namespace dfq::quant
