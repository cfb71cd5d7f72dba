// mixed_precision.h — ZeroQ's mixed-precision weight bits (../shared/docs/dfq_algorithms.md §2.6,
// ../shared/docs/beyond_gdfq.md §3): the sensitivity of every layer at every candidate bit-width on
// the distilled batch, and the bit assignment of least total sensitivity under a size budget, by
// dynamic programming over size (the Pareto frontier). The official code for it was never released
// (amirgholami/ZeroQ#3, #12); what follows is the paper's definition, and where dfq had to choose,
// the choice is dfq's own (marked DFQ below):
//  - the layers: every conv and linear QuantizedModel quantizes, in conv_layers() then
//    linear_layers() order (QuantConfig::layer_wbits' order), depthwise convs and the classifier
//    included (the jshuhnow/ZeroQ fork: every QuantWeight, the same set);
//  - sensitivity Omega_i(k) = (1/N) sum_j KL(softmax(M(x_j)) || softmax(M_i,k(x_j))) with only layer
//    i's weight quantized to k bits (per output channel, as QuantizedModel does) and everything else
//    float, activations included (DFQ: the paper's "only that layer quantized"; the fork measures
//    with every other layer at W8 and activations at A8, and symmetrises the KL — dfq does neither);
//  - size = sum over the layers of (weight elements x bits) (DFQ: biases and BN stay float and are not
//    counted; the fork counts the same); MB = 2^20 bytes, as the fork's bit_to_mb;
//  - the DP runs on an exact integer size grid: the unit is the gcd of every layer's
//    (elements x candidate bits), so every size is represented exactly and the frontier is the exact
//    optimum for every budget (DFQ: the fork bins sizes into 200 bins of the float model's size, with
//    beam pruning and joint re-scoring; dfq solves the additive problem exactly). Only when
//    layers x grid points would exceed max_cells is the grid coarsened, each layer's size rounded UP
//    to the coarser unit, so a chosen point never exceeds its budget (it may then miss the optimum by
//    less than layers x unit bits of size; MpFrontier::exact says which).
// Rules: the model given to the measuring functions must be float with no weight hooks installed (no
// QuantizedModel alive on it); they install temporary hooks and remove them before returning, also
// on an exception. Forwards run without gradient, each quantized weight computed once.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/model.h"
#include "quant/quantizer.h"

namespace dfq::quant {

constexpr double kBitsPerMB = 8.0 * 1024 * 1024;

// The quantized layers of a model as mixed precision sees them (QuantConfig::layer_wbits' order).
struct MpLayer {
  std::string name;
  int64_t params = 0;  // weight elements
};
std::vector<MpLayer> mp_layers(const models::Model& m);

// Mean over the rows of KL(softmax(p) || softmax(q)) of two (rows, classes) logit matrices, in double.
// A row with a non-finite logit makes it +inf.
double mean_kl(const std::vector<float>& p_logits, const std::vector<float>& q_logits, int64_t rows, int64_t classes);

// omega[i][j] = Omega_i(bits[j]) on `data` (N,3,H,W), the weights on the scheme's grid. on_step(done,
// total) after each forward.
struct Sensitivity {
  std::vector<int> bits;                    // the candidates, as given
  std::vector<std::vector<double>> omega;   // [layer][candidate]
};
Sensitivity measure_sensitivity(models::Model& model, const Tensor& data, const std::vector<int>& bits,
                                const std::function<void(int64_t, int64_t)>& on_step = nullptr,
                                WeightScheme scheme = WeightScheme::Asym);

// The measured counterpart of a frontier point's predicted sum of Omega: the KL on `data` with every
// layer's weight at its layer_bits at once (32 and above: float), activations float.
double joint_sensitivity(models::Model& model, const Tensor& data, const std::vector<int>& layer_bits,
                         WeightScheme scheme = WeightScheme::Asym);

// The choice the DP solves: per layer its weight elements, the bit-widths it may take, and the
// sensitivity of each (a layer pinned to one width, e.g. --first_last_8, has one candidate).
struct MpProblem {
  std::vector<int64_t> params;
  std::vector<std::vector<int>> bits;
  std::vector<std::vector<double>> omega;
};
// The problem for `layers` with every layer choosing among `allowed`, except those in pinned (layer
// index -> bits), which take only that width. Every width used must be among s.bits (measured);
// throws std::invalid_argument otherwise.
MpProblem make_problem(const std::vector<MpLayer>& layers, const Sensitivity& s, const std::vector<int>& allowed,
                       const std::vector<std::pair<size_t, int>>& pinned = {});

struct MpPoint {
  int64_t size_bits = 0;     // sum of params x bits (exact, never the grid's rounding)
  double sensitivity = 0;    // sum of the chosen Omega (the additive prediction)
  std::vector<int> layer_bits;
  double avg_bits(int64_t total_params) const { return double(size_bits) / double(total_params); }
};

struct MpFrontier {
  std::vector<MpPoint> points;  // ascending size, strictly descending sensitivity
  int64_t unit_bits = 1;        // the size grid's unit
  bool exact = true;            // false: the grid was coarsened (sizes rounded up, see above)
  int64_t min_size_bits = 0, max_size_bits = 0, total_params = 0;
  // The point of least sensitivity whose size is <= budget_bits; throws std::invalid_argument when
  // the budget is below the smallest configuration.
  const MpPoint& best_within(int64_t budget_bits) const;
};
// Throws std::invalid_argument on an ill-formed problem (no layers, a layer without candidates,
// sizes that disagree, a NaN sensitivity, a non-positive element count).
MpFrontier solve_frontier(const MpProblem& p, int64_t max_cells = int64_t(1) << 26);

// CSV texts: the frontier (size_mb, avg_bits, sensitivity, then each layer's bits, one column per layer,
// named by the layers) and the sensitivity table (layer, params, one column per candidate).
std::string frontier_csv(const MpFrontier& f, const std::vector<MpLayer>& layers);
std::string sensitivity_csv(const Sensitivity& s, const std::vector<MpLayer>& layers);

}  // namespace dfq::quant
