// qmodel.h — a fake-quantized model wrapping any registry model, as the official ZeroQ / GDFQ
// quantize_model() does (../shared/docs/dfq_algorithms.md §1.2-1.3), on torchvision's layout:
//  - every Conv2d and Linear weight at W bits, per output channel, the range recomputed from the
//    latent float weight at every forward (first conv and last linear included, as the official
//    code; first_last_bits = 8 keeps them at 8 bits instead);
//  - an activation quantizer at A bits after every ReLU CALL SITE (models::Model::act_sites()),
//    each with its own range (torchvision calls one ReLU module several times per block; one
//    shared range is what makes 4-bit torchvision models collapse in re-implementations);
//  - biases in float unless bias_bits < 32 (per-tensor min/max; the official code has none);
//  - BN kept in float and in eval mode (its running statistics fixed); optionally folded into the
//    convolutions first (fold_bn, not in the official code).
// The wrapper installs the hooks on construction and removes them on destruction; the model stays
// the caller's (shared), in eval mode. save()/load_quantized() keep weights, ranges and bits in one
// flat weight file that train/evaluate loads.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/io/flags.h"
#include "models/model.h"
#include "quant/quantizer.h"

namespace dfq::quant {

struct QuantConfig {
  int wbits = 8, abits = 8;
  int bias_bits = 32;        // 32: float biases (official)
  int first_last_bits = 0;   // 0: first conv / last linear at wbits (official); else these bits
  bool fold_bn = false;
  Observer observer = Observer::MinMax;
  Ste ste = Ste::Identity;
  float ema_beta = 0.9f;
  // Mixed precision (quant/mixed_precision.h): one weight bit-width per quantized layer, the convs
  // in Model::conv_layers() order, then the linears in linear_layers() order. Empty: every layer at
  // wbits (first_last_bits applying). When set it decides every layer's weight bits (wbits and
  // first_last_bits are then not used for weights); its size must match the model's layers.
  std::vector<int> layer_wbits;
  std::string str() const;  // "W4A4 (bias float, first/last W4, BN unfolded, minmax, STE identity)"
};

// Parses "W/A" ("4/8") into cfg.wbits / cfg.abits; throws naming the flag on anything else.
void parse_bits(const std::string& s, QuantConfig& cfg);

// The bit flags zeroq_main and gdfq_main share: --bits W/A, then -qw / -qa override when non-zero,
// -qb (32 = float biases), --first_last_8. The constructor declares them (before Flags::done());
// config() parses them (after it) and ends the program through Flags::fail on a bad value.
struct BitFlags {
  BitFlags(Flags& flags, const std::string& default_bits);
  QuantConfig config(const Flags& flags) const;
  std::string bits;
  long long qw = 0, qa = 0, qb = 32;
  bool first_last_8 = false;
};

// Folds every BN into the conv before it (paired in forward order; VGG without BN: nothing):
// w' = w * g / sqrt(rv + eps); the BN becomes a pure shift (gamma 1, mean 0, var such that
// sqrt(var + eps) == 1, beta' = beta + (b - rm) * g / sqrt(rv + eps)); conv biases move into beta'.
void fold_batch_norms(models::Model& m);

class QuantizedModel {
 public:
  QuantizedModel(std::shared_ptr<models::Model> model, const QuantConfig& cfg, bool weights_already_folded = false);
  ~QuantizedModel();
  QuantizedModel(const QuantizedModel&) = delete;
  QuantizedModel& operator=(const QuantizedModel&) = delete;

  Tensor forward(const Tensor& x) { return model_->forward(x); }
  models::Model& model() { return *model_; }
  const std::shared_ptr<models::Model>& model_ptr() const { return model_; }
  const QuantConfig& config() const { return cfg_; }
  std::vector<ActQuantizer>& acts() { return acts_; }
  // What the wrapper quantized: the counts of weight-quantized convs and linears and of activation
  // sites, and every Conv2d / Linear module of the model that is not among them (stays float; a
  // model that does not track a layer shows here instead of being silently skipped).
  struct Coverage {
    int convs = 0, linears = 0, sites = 0, convs_total = 0, linears_total = 0;
    std::vector<std::string> float_layers;  // module names
  };
  Coverage coverage() const;
  // Two lines for the programs' output: what is quantized at which bits, and what stays float.
  std::string coverage_report() const;
  void freeze();    // every activation range fixed
  void unfreeze();  // every activation range observing

  // While the returned object lives, forwards without gradient (NoGradGuard) fake-quantize each
  // weight once and reuse it: for evaluation, where the weights cannot change between batches
  // (the caller's promise; nothing is cached while grad mode is on). Same results, one
  // quantization of the model per evaluation instead of one per batch.
  class CachedWeights {
   public:
    explicit CachedWeights(QuantizedModel& q);
    ~CachedWeights();
    CachedWeights(const CachedWeights&) = delete;
    CachedWeights& operator=(const CachedWeights&) = delete;

   private:
    QuantizedModel& q_;
  };
  CachedWeights cache_weights() { return CachedWeights(*this); }
  // Weights (after folding, if any), activation ranges and the config, atomically.
  void save(const std::string& path) const;

 private:
  std::shared_ptr<models::Model> model_;
  QuantConfig cfg_;
  std::vector<ActQuantizer> acts_;
  // quantized weight per latent weight's storage, filled while a CachedWeights lives
  struct WeightCache {
    bool on = false;
    std::map<const void*, Tensor> q;
  };
  std::shared_ptr<WeightCache> wcache_ = std::make_shared<WeightCache>();
};

// True when the flat weight file was written by QuantizedModel::save.
bool is_quantized_file(const std::string& path);
// Rebuilds the quantized model of a file QuantizedModel::save wrote (architecture checked against
// arch when not empty), on dev, ranges frozen.
std::unique_ptr<QuantizedModel> load_quantized(const std::string& path, const std::string& arch, Device dev);

}  // namespace dfq::quant
