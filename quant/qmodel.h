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
//  - a layer's weight grid can be FIXED (fix_weight_range: per-channel {min, max} given once, used
//    by every forward instead of the weight's own min/max): SQuant (quant/squant.h) computes its
//    codes on the grid of the original weight and stores the dequantized values as the latent
//    weight, which this grid maps back to themselves;
//  - ActPlacement::LayerInputs puts the activation quantizers on the INPUT of every conv / linear
//    instead (SQuant's quant_input, quant_modules.py L351): the first layer's input stays float and
//    the last layer's is at 8 bits (SQuant set_first_last_layer, quant_model.py L56-64).
//  - weight_scheme Sym puts every weight on the symmetric grid instead (zero point 0, [-L, L],
//    quantizer.h; not in the official code); activations stay asymmetric per tensor.
//  - a layer can be PINNED to integer codes (pin_codes; a packed file's layers): its latent weight is
//    then their dequantized values and the forward uses it as it is, without re-quantizing.
// The wrapper installs the hooks on construction and removes them on destruction; the model stays
// the caller's (shared), in eval mode. save()/load_quantized() keep weights, ranges and bits in one
// flat weight file that train/evaluate loads (fixed weight grids, the placement, the scheme and
// packed integer codes as optional tensors: files without them load as before;
// docs/weights_format.md).
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/io/flags.h"
#include "models/model.h"
#include "quant/quantizer.h"

namespace dfq::quant {

// Where the activation quantizers sit: after every ReLU call site (ZeroQ / GDFQ), or on every conv /
// linear input (SQuant).
enum class ActPlacement { ReluSites, LayerInputs };

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
  ActPlacement act_placement = ActPlacement::ReluSites;
  WeightScheme weight_scheme = WeightScheme::Asym;  // Asym: official; Sym needs every weight layer at >= 2 bits
  std::string str() const;  // "W4A4 (asym weights, bias float, first/last W4, BN unfolded, minmax, STE identity)"
};

// Parses "W/A" ("4/8") into cfg.wbits / cfg.abits; throws naming the flag on anything else.
void parse_bits(const std::string& s, QuantConfig& cfg);

// The bit flags every method main shares: --bits W/A, then -qw / -qa override when non-zero,
// -qb (32 = float biases), --first_last_8, --weight_round, --weight_scheme. The constructor declares
// them (before Flags::done()); config() parses them (after it) and ends the program through
// Flags::fail on a bad value (1-bit symmetric weights included).
struct BitFlags {
  BitFlags(Flags& flags, const std::string& default_bits, const std::string& default_round = "nearest");
  QuantConfig config(const Flags& flags) const;
  std::string bits;
  long long qw = 0, qa = 0, qb = 32;
  bool first_last_8 = false;
  // --weight_round nearest|squant: how the method rounds the weights onto their per-channel grid
  // (nearest: the official min/max fake-quantizer at every forward; squant: SQuant's flips, once, on
  // a fixed grid, quant/squant.h). default_round is the method's default.
  std::string weight_round;
  std::string weight_scheme;  // --weight_scheme asym|sym (default asym, the official)
};

// Folds every BN into the conv before it (paired in forward order; VGG without BN: nothing):
// w' = w * g / sqrt(rv + eps); the BN becomes a pure shift (gamma 1, mean 0, var such that
// sqrt(var + eps) == 1, beta' = beta + (b - rm) * g / sqrt(rv + eps)); conv biases move into beta'.
void fold_batch_norms(models::Model& m);

// The integer codes a weight layer's forward uses (bits < 32): out_channels rows of per_channel codes.
struct WeightCodes {
  WeightScheme scheme;
  int bits;
  int64_t out_channels, per_channel;
  std::vector<int32_t> q;    // asym: quant_math's q in [-2^(b-1), 2^(b-1)-1]; sym: [-L, L]
  std::vector<float> scale;  // per channel. asym: quant_math's scale (levels per unit; w = (q + zero) / scale); sym: step (w = q * step)
  std::vector<float> zero;   // per channel. asym: quant_math's zero; sym: 0
};
// CPU tensor, bit for bit the forward's fake-quantized weight (same float ops as quant_math.h).
// Throws on codes outside their range, a non-finite or non-positive scale, a sym zero that is not 0,
// or a shape that does not hold out_channels x per_channel elements.
Tensor dequantize_codes(const WeightCodes& c, const Shape& shape);

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
  // Activation quantizers: one per ReLU call site (ReluSites), or one per weight layer, in
  // weight_layers() order (LayerInputs; the first at 32 bits = float).
  std::vector<ActQuantizer>& acts() { return acts_; }
  // When set, called with each activation quantizer's index and input before it quantizes (SQuant's
  // range rule sets the range from the first input it sees).
  std::function<void(size_t act, const Tensor& x)> act_observer;

  // Every quantized weight: the convs in forward order, then the linears.
  struct WeightLayer {
    std::string name;
    Tensor weight;  // the layer's latent weight (shares its storage)
    int bits;
  };
  std::vector<WeightLayer> weight_layers() const;
  // Fixes layer i's grid to range (2, K) = per-output-channel {min, max} on the weight's device; an
  // undefined tensor returns it to min/max at every forward.
  // A pinned layer refuses it (its codes are final).
  void fix_weight_range(size_t layer, const Tensor& range);
  const Tensor& weight_range(size_t layer) const { return (*wranges_)[layer]; }
  // weight_layers() order; the codes of the weight as the forward quantizes it (its fixed grid if
  // set, else its min/max; a pinned layer's own codes). Throws for a layer at 32 bits, and for a
  // pinned layer whose latent weight no longer holds its codes' values.
  WeightCodes weight_codes(size_t layer) const;
  // Pins layer i to codes (its bits and the config's scheme; the weight's shape): the latent weight
  // becomes dequantize_codes(codes), which every forward uses as it is (no gradient reaches it:
  // a pinned layer is not trainable); fix_weight_range and SQuant refuse the layer, and
  // weight_codes() / save() check that the weight still holds these values.
  void pin_codes(size_t layer, const WeightCodes& codes);
  bool pinned(size_t layer) const { return bool((*pinned_)[layer]); }
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
  // Weights (after folding, if any), activation ranges and the config, atomically. packed: every
  // quantized layer's weight as its integer codes, scales and zero points instead of float32
  // (docs/weights_format.md); a model with pinned layers can only be saved packed.
  void save(const std::string& path, bool packed = false) const;

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
  std::shared_ptr<std::vector<Tensor>> wranges_ = std::make_shared<std::vector<Tensor>>();  // per weight layer
  std::shared_ptr<std::vector<char>> pinned_ = std::make_shared<std::vector<char>>();       // per weight layer
  std::vector<WeightCodes> pinned_codes_;  // per weight layer (empty q unless pinned)
  // Weight layer `index`'s bits: layer_wbits[index] when set, else first_last_bits / wbits.
  int layer_bits(size_t index, bool first_or_last) const;
};

// True when the flat weight file was written by QuantizedModel::save.
bool is_quantized_file(const std::string& path);
// True when it holds integer weight codes (QuantizedModel::save(path, true)).
bool is_packed_file(const std::string& path);
// Rebuilds the quantized model of a file QuantizedModel::save wrote (architecture checked against
// arch when not empty), on dev, ranges frozen.
std::unique_ptr<QuantizedModel> load_quantized(const std::string& path, const std::string& arch, Device dev);

}  // namespace dfq::quant
