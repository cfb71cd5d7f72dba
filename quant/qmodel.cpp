// qmodel.cpp — see qmodel.h.
#include "quant/qmodel.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>
#include <stdexcept>

#include "engine/io/weights.h"
#include "engine/kernels/quant_math.h"
#include "models/registry.h"
#include "quant/weight_codes.h"

namespace dfq::quant {

namespace {
const char* kConfigName = "quant.config";
const char* kRangesName = "quant.act_ranges";
// Optional tensors: per-layer weight bits (mixed precision), the bits of each layer-input activation
// quantizer (present = ActPlacement::LayerInputs, SQuant), a layer's fixed weight grid (SQuant
// rounding), the symmetric weight scheme ({1}; absent = asym) and integer weight codes (a packed
// file, weight_codes.h). A file that has any of them says version 2, so that a dfq from before them
// refuses it instead of reading it as a uniform, ReLU-site, min/max-grid, asymmetric float model;
// version-1 files load as before.
const char* kLayerBitsName = "quant.layer_wbits";
const char* kInputBitsName = "quant.input_act_bits";
const char* kSchemeName = "quant.weight_scheme";
const std::string kWeightRangePrefix = "quant.weight_range.";
constexpr int64_t kFormatVersion = 1, kFormatVersionExtended = 2;

int parse_int_bits(const std::string& s, const std::string& what) {
  size_t pos = 0;
  int v = 0;
  try {
    v = std::stoi(s, &pos);
  } catch (const std::exception&) {
    pos = std::string::npos;
  }
  if (s.empty() || pos != s.size()) throw std::invalid_argument("--bits: '" + what + "' is not W/A (e.g. 4/8)");
  return v;
}
}  // namespace

std::string QuantConfig::str() const {
  auto b = [](int v) { return v >= 32 ? std::string("float") : std::to_string(v) + " bit"; };
  char buf[384];
  if (!layer_wbits.empty()) {
    std::map<int, int> n;  // bits -> layers
    for (int v : layer_wbits) ++n[v];
    std::string w, counts;
    for (const auto& [bits, count] : n) {
      w += (w.empty() ? "" : ",") + std::to_string(bits);
      counts += (counts.empty() ? "" : ", ") + std::to_string(count) + " at W" + std::to_string(bits);
    }
    std::snprintf(buf, sizeof buf,
                  "W{%s}A%d (mixed weight bits per layer: %s; %s weights, bias %s, BN %s, %s ranges, STE %s%s)",
                  w.c_str(), abits, counts.c_str(), weight_scheme_name(weight_scheme), b(bias_bits).c_str(),
                  fold_bn ? "folded" : "unfolded", observer_name(observer), ste_name(ste),
                  act_placement == ActPlacement::LayerInputs ? ", activations at conv / linear inputs" : "");
    return buf;
  }
  std::snprintf(buf, sizeof buf, "W%dA%d (%s weights, bias %s, first/last layer W%d, BN %s, %s ranges, STE %s%s)", wbits,
                abits, weight_scheme_name(weight_scheme), b(bias_bits).c_str(), first_last_bits ? first_last_bits : wbits,
                fold_bn ? "folded" : "unfolded", observer_name(observer), ste_name(ste),
                act_placement == ActPlacement::LayerInputs ? ", activations at conv / linear inputs" : "");
  return buf;
}

void parse_bits(const std::string& s, QuantConfig& cfg) {
  size_t slash = s.find('/');
  if (slash == std::string::npos) throw std::invalid_argument("--bits: '" + s + "' is not W/A (e.g. 4/8)");
  cfg.wbits = parse_int_bits(s.substr(0, slash), s);
  cfg.abits = parse_int_bits(s.substr(slash + 1), s);
  check_bits(cfg.wbits, "--bits (weights)");
  check_bits(cfg.abits, "--bits (activations)");
}

BitFlags::BitFlags(Flags& flags, const std::string& default_bits, const std::string& default_round)
    : bits(flags.str("--bits", default_bits)),
      qw(flags.integer("-qw", 0)),
      qa(flags.integer("-qa", 0)),
      qb(flags.integer("-qb", 32)),
      first_last_8(flags.boolean("--first_last_8")),
      weight_round(flags.choice("--weight_round", default_round, {"nearest", "squant"})),
      weight_scheme(flags.choice("--weight_scheme", "asym", {"asym", "sym"})) {}

QuantConfig BitFlags::config(const Flags& flags) const {
  QuantConfig cfg;
  try {
    parse_bits(bits, cfg);
    if (qw) cfg.wbits = int(qw);
    if (qa) cfg.abits = int(qa);
    cfg.bias_bits = int(qb);
    cfg.weight_scheme = parse_weight_scheme(weight_scheme);
    check_weight_bits(cfg.wbits, cfg.weight_scheme, "--bits / -qw with --weight_scheme");
    check_bits(cfg.abits, "-qa");
    check_bits(cfg.bias_bits, "-qb");
  } catch (const std::exception& ex) {
    flags.fail(ex.what());
  }
  cfg.first_last_bits = first_last_8 ? 8 : 0;
  return cfg;
}

void fold_batch_norms(models::Model& m) {
  const auto& convs = m.conv_layers();
  const auto& bns = m.bn_layers();
  if (bns.empty()) return;
  if (convs.size() != bns.size())
    throw std::runtime_error("fold_bn: " + m.arch + " has " + std::to_string(convs.size()) + " convolutions and " +
                             std::to_string(bns.size()) + " BN layers; cannot pair them");
  NoGradGuard ng;
  for (size_t i = 0; i < bns.size(); ++i) {
    nn::Conv2d& conv = *convs[i].second;
    nn::BatchNorm& bn = *bns[i].second;
    const int64_t K = conv.weight.size(0);
    if (bn.running_mean.numel() != K)
      throw std::runtime_error("fold_bn: " + bns[i].first + " does not follow " + convs[i].first);
    std::vector<float> w = conv.weight.to_vector(), rm = bn.running_mean.to_vector(), rv = bn.running_var.to_vector();
    std::vector<float> g = bn.weight.defined() ? bn.weight.to_vector() : std::vector<float>(K, 1.f);
    std::vector<float> beta = bn.bias.defined() ? bn.bias.to_vector() : std::vector<float>(K, 0.f);
    std::vector<float> cb = conv.bias.defined() ? conv.bias.to_vector() : std::vector<float>(K, 0.f);
    const int64_t per = conv.weight.numel() / K;
    // A variance v with sqrtf(v + eps) == 1 exactly, so the remaining BN is a pure shift.
    float one_var = 1.f - bn.eps;
    while (std::sqrt(one_var + bn.eps) != 1.f) one_var = std::nextafter(one_var, one_var + bn.eps > 1.f ? 0.f : 2.f);
    for (int64_t k = 0; k < K; ++k) {
      const double scale = double(g[k]) / std::sqrt(double(rv[k]) + double(bn.eps));
      for (int64_t j = 0; j < per; ++j) w[k * per + j] = static_cast<float>(w[k * per + j] * scale);
      beta[k] = static_cast<float>(beta[k] + (double(cb[k]) - rm[k]) * scale);
      g[k] = 1.f;
      rm[k] = 0.f;
      rv[k] = one_var;
      cb[k] = 0.f;
    }
    const Device d = conv.weight.device();
    conv.weight.copy_(Tensor::from_vector(w, conv.weight.shape(), d));
    if (conv.bias.defined()) conv.bias.copy_(Tensor::from_vector(cb, conv.bias.shape(), d));
    if (!bn.weight.defined() || !bn.bias.defined())
      throw std::runtime_error("fold_bn: " + bns[i].first + " has no affine parameters to hold the folded shift");
    bn.weight.copy_(Tensor::from_vector(g, bn.weight.shape(), d));
    bn.bias.copy_(Tensor::from_vector(beta, bn.bias.shape(), d));
    bn.running_mean.copy_(Tensor::from_vector(rm, bn.running_mean.shape(), d));
    bn.running_var.copy_(Tensor::from_vector(rv, bn.running_var.shape(), d));
  }
}

QuantizedModel::QuantizedModel(std::shared_ptr<models::Model> model, const QuantConfig& cfg, bool weights_already_folded)
    : model_(std::move(model)), cfg_(cfg) {
  check_weight_bits(cfg.wbits, cfg.weight_scheme, "weight bits");
  check_bits(cfg.abits, "activation bits");
  check_bits(cfg.bias_bits, "bias bits");
  if (cfg.first_last_bits) check_weight_bits(cfg.first_last_bits, cfg.weight_scheme, "first/last layer bits");
  for (int v : cfg.layer_wbits) check_weight_bits(v, cfg.weight_scheme, "per-layer weight bits");
  const size_t layers = model_->conv_layers().size() + model_->linear_layers().size();
  if (!cfg.layer_wbits.empty() && cfg.layer_wbits.size() != layers)
    throw std::invalid_argument("per-layer weight bits: " + std::to_string(cfg.layer_wbits.size()) + " given, " +
                                model_->arch + " has " + std::to_string(layers) + " convs and linears");
  if (cfg.fold_bn && !weights_already_folded) fold_batch_norms(*model_);
  model_->eval();
  const Device dev = model_->parameters().empty() ? Device::CPU : model_->parameters()[0].device();
  // Weight (and, with bias_bits < 32, bias) fake-quantizers on every conv and linear; the first conv
  // and the last linear at first_last_bits when set; layer_wbits, when set, gives each its own.
  // Layer i's grid is (*wranges_)[i] when fixed, else
  // the weight's own min/max at every forward.
  const auto& convs = model_->conv_layers();
  const auto& lins = model_->linear_layers();
  const size_t n_layers = convs.size() + lins.size();
  wranges_->assign(n_layers, Tensor());
  pinned_->assign(n_layers, 0);
  pinned_codes_.assign(n_layers, WeightCodes{});
  auto install = [&](auto* layer, size_t index, bool first_or_last) {
    const int bits = layer_bits(index, first_or_last);
    const int bb = cfg.bias_bits;
    const Ste ste = cfg.ste;
    const WeightScheme ws = cfg.weight_scheme;
    layer->weight_hook = [bits, ste, ws, index, wc = wcache_, wr = wranges_, pin = pinned_](const Tensor& w) {
      // A pinned layer's weight holds its codes' values already: used as it is, never trained.
      if ((*pin)[index]) return w.detach();
      auto quantize = [&] {
        const Tensor& r = (*wr)[index];
        return r.defined() && bits < 32 ? fake_quantize(w, bits, r, ste, ws) : quantize_weight(w, bits, ste, ws);
      };
      if (!wc->on || grad_enabled()) return quantize();
      auto it = wc->q.find(w.data<float>());
      if (it == wc->q.end()) it = wc->q.emplace(w.data<float>(), quantize()).first;
      return it->second;
    };
    if (bb < 32) layer->bias_hook = [bb, ste](const Tensor& b) { return quantize_per_tensor(b, bb, ste); };
  };
  for (size_t i = 0; i < convs.size(); ++i) install(convs[i].second, i, i == 0);
  for (size_t i = 0; i < lins.size(); ++i) install(lins[i].second, convs.size() + i, i + 1 == lins.size());
  auto quantize_act = [this](size_t a, const Tensor& x) {
    if (act_observer) act_observer(a, x);
    return acts_[a].forward(x);
  };
  if (cfg.act_placement == ActPlacement::ReluSites) {
    acts_.reserve(model_->act_sites().size());
    for (size_t i = 0; i < model_->act_sites().size(); ++i)
      acts_.emplace_back(cfg.abits, cfg.observer, cfg.ste, dev, cfg.ema_beta);
    model_->act_hook = [quantize_act](int site, const Tensor& x) { return quantize_act(static_cast<size_t>(site), x); };
  } else {
    // SQuant (quant_model.py set_first_last_layer L63-64): the first layer's input is not quantized,
    // the last layer's is at 8 bits (float too when every activation is: A32).
    acts_.reserve(n_layers);
    for (size_t i = 0; i < n_layers; ++i)
      acts_.emplace_back(i == 0 || cfg.abits >= 32 ? 32 : i + 1 == n_layers ? 8 : cfg.abits, cfg.observer, cfg.ste, dev,
                         cfg.ema_beta);
    auto hook_input = [&](auto* layer, size_t index) {
      layer->input_hook = [quantize_act, index](const Tensor& x) { return quantize_act(index, x); };
    };
    for (size_t i = 0; i < convs.size(); ++i) hook_input(convs[i].second, i);
    for (size_t i = 0; i < lins.size(); ++i) hook_input(lins[i].second, convs.size() + i);
  }
}

int QuantizedModel::layer_bits(size_t index, bool first_or_last) const {
  if (!cfg_.layer_wbits.empty()) return cfg_.layer_wbits[index];
  return (first_or_last && cfg_.first_last_bits) ? cfg_.first_last_bits : cfg_.wbits;
}

std::vector<QuantizedModel::WeightLayer> QuantizedModel::weight_layers() const {
  std::vector<WeightLayer> out;
  const auto& convs = model_->conv_layers();
  const auto& lins = model_->linear_layers();
  for (size_t i = 0; i < convs.size(); ++i) out.push_back({convs[i].first, convs[i].second->weight, layer_bits(i, i == 0)});
  for (size_t i = 0; i < lins.size(); ++i)
    out.push_back({lins[i].first, lins[i].second->weight, layer_bits(convs.size() + i, i + 1 == lins.size())});
  return out;
}

void QuantizedModel::fix_weight_range(size_t layer, const Tensor& range) {
  if (layer >= wranges_->size()) throw std::out_of_range("fix_weight_range: no weight layer " + std::to_string(layer));
  if (pinned(layer))
    throw std::logic_error("fix_weight_range: " + weight_layers()[layer].name +
                           " is pinned to integer codes (a packed file's layer); its grid cannot change");
  if (range.defined()) {
    const Tensor w = weight_layers()[layer].weight;
    if (range.dtype() != DType::F32 || range.shape() != Shape{2, w.size(0)} || range.device() != w.device())
      throw std::invalid_argument("fix_weight_range: range " + range.str() + " does not fit weight " + w.str());
  }
  (*wranges_)[layer] = range.defined() ? range.contiguous().detach() : Tensor();
}

WeightCodes QuantizedModel::weight_codes(size_t layer) const {
  if (layer >= wranges_->size()) throw std::out_of_range("weight_codes: no weight layer " + std::to_string(layer));
  const WeightLayer L = weight_layers()[layer];
  if (L.bits >= 32) throw std::invalid_argument("weight_codes: " + L.name + " is not quantized (32 bits: float)");
  const Tensor w = L.weight.detach().to(Device::CPU).contiguous();
  if (pinned(layer)) {  // its own codes, once the weight is checked to still hold them
    const WeightCodes& c = pinned_codes_[layer];
    const std::vector<float> want = dequantize_codes(c, w.shape()).to_vector(), got = w.to_vector();
    if (std::memcmp(want.data(), got.data(), got.size() * sizeof(float)) != 0)
      throw std::logic_error("weight_codes: " + L.name + "'s weight was changed after it was pinned to integer codes");
    return c;
  }
  const int64_t K = w.size(0), per = w.numel() / K;
  const Tensor& fixed = (*wranges_)[layer];
  const std::vector<float> r = fixed.defined() ? fixed.to_vector() : minmax_rows(w, K).to_vector();
  const std::vector<float> v = w.to_vector();
  const bool sym = cfg_.weight_scheme == WeightScheme::Sym;
  WeightCodes c{cfg_.weight_scheme, L.bits, K, per, std::vector<int32_t>(v.size()), std::vector<float>(size_t(K)),
                std::vector<float>(size_t(K))};
  for (int64_t k = 0; k < K; ++k) {
    const QuantParams p = grid_params(L.bits, sym, r[size_t(k)], r[size_t(K + k)]);  // as the fake_quant kernel
    c.scale[size_t(k)] = p.scale;
    c.zero[size_t(k)] = p.zero;
    for (int64_t j = 0; j < per; ++j) c.q[size_t(k * per + j)] = int32_t(quant_code(p, v[size_t(k * per + j)]));
  }
  return c;
}

void QuantizedModel::pin_codes(size_t layer, const WeightCodes& codes) {
  if (layer >= wranges_->size()) throw std::out_of_range("pin_codes: no weight layer " + std::to_string(layer));
  const WeightLayer L = weight_layers()[layer];
  if (codes.bits != L.bits || codes.scheme != cfg_.weight_scheme)
    throw std::invalid_argument("pin_codes: " + L.name + " is at " + std::to_string(L.bits) + " bits " +
                                weight_scheme_name(cfg_.weight_scheme) + ", the codes are " + std::to_string(codes.bits) +
                                "-bit " + weight_scheme_name(codes.scheme));
  const Tensor w = dequantize_codes(codes, L.weight.shape());  // checks the codes and the shape
  {
    NoGradGuard ng;
    Tensor lw = L.weight;
    lw.copy_(w);
  }
  (*wranges_)[layer] = Tensor();
  (*pinned_)[layer] = 1;
  pinned_codes_[layer] = codes;
}

QuantizedModel::~QuantizedModel() {
  for (auto& [name, c] : model_->conv_layers()) c->weight_hook = c->bias_hook = c->input_hook = nullptr;
  for (auto& [name, l] : model_->linear_layers()) l->weight_hook = l->bias_hook = l->input_hook = nullptr;
  model_->act_hook = nullptr;
}

QuantizedModel::CachedWeights::CachedWeights(QuantizedModel& q) : q_(q) {
  q_.wcache_->q.clear();
  q_.wcache_->on = true;
}

QuantizedModel::CachedWeights::~CachedWeights() {
  q_.wcache_->on = false;
  q_.wcache_->q.clear();
}

QuantizedModel::Coverage QuantizedModel::coverage() const {
  Coverage c;
  c.convs = static_cast<int>(model_->conv_layers().size());
  c.linears = static_cast<int>(model_->linear_layers().size());
  c.sites = static_cast<int>(acts_.size());
  if (cfg_.act_placement == ActPlacement::LayerInputs)  // the float first-layer input is not a site
    c.sites = static_cast<int>(std::count_if(acts_.begin(), acts_.end(), [](const ActQuantizer& a) { return a.bits() < 32; }));
  std::set<const nn::Module*> tracked;
  for (const auto& [n, l] : model_->conv_layers()) tracked.insert(l);
  for (const auto& [n, l] : model_->linear_layers()) tracked.insert(l);
  for (const auto& [name, m] : model_->named_modules()) {
    const bool conv = dynamic_cast<const nn::Conv2d*>(m) != nullptr, lin = dynamic_cast<const nn::Linear*>(m) != nullptr;
    c.convs_total += conv ? 1 : 0;
    c.linears_total += lin ? 1 : 0;
    if ((conv || lin) && !tracked.count(m)) c.float_layers.push_back(name);
  }
  return c;
}

std::string QuantizedModel::coverage_report() const {
  const Coverage c = coverage();
  std::string bits = "W" + std::to_string(cfg_.wbits);
  if (cfg_.first_last_bits) bits += " (first conv / last linear W" + std::to_string(cfg_.first_last_bits) + ")";
  if (!cfg_.layer_wbits.empty()) {  // mixed precision: the layers per bit-width and the mean bits per weight
    std::map<int, int> per;
    double wsum = 0, n = 0;
    for (const WeightLayer& l : weight_layers()) {
      ++per[l.bits];
      wsum += double(l.weight.numel()) * l.bits;
      n += double(l.weight.numel());
    }
    bits = "mixed W bits (";
    for (const auto& [b, count] : per) bits += std::to_string(count) + " at W" + std::to_string(b) + ", ";
    char avg[64];
    std::snprintf(avg, sizeof avg, "%.3f bits per weight)", n > 0 ? wsum / n : 0.0);
    bits += avg;
  }
  std::string fixed;
  int n_fixed = 0, n_pinned = 0;
  for (const Tensor& r : *wranges_) n_fixed += r.defined() ? 1 : 0;
  for (char p : *pinned_) n_pinned += p ? 1 : 0;
  if (n_fixed) fixed = " (" + std::to_string(n_fixed) + " on fixed grids)";
  if (n_pinned) fixed += " (" + std::to_string(n_pinned) + " from integer codes)";
  fixed = std::string(cfg_.weight_scheme == WeightScheme::Sym ? ", symmetric" : ", asymmetric") + fixed;
  const bool inputs = cfg_.act_placement == ActPlacement::LayerInputs;
  std::string s = "quantized: " + std::to_string(c.convs) + " of " + std::to_string(c.convs_total) + " convs and " +
                  std::to_string(c.linears) + " of " + std::to_string(c.linears_total) + " linears at " + bits +
                  " per channel" + fixed + ", ";
  if (!inputs)
    s += std::to_string(c.sites) + " activation sites at A" + std::to_string(cfg_.abits) + " (after every ReLU call)\n";
  else
    s += std::to_string(c.sites) + " conv / linear inputs (the last layer's at A" + std::to_string(acts_.back().bits()) +
         ", the others at A" + std::to_string(cfg_.abits) + ")\n";
  s += "float: the input image" + std::string(inputs ? " (the first layer's input)" : "") + ", BN" +
       std::string(cfg_.fold_bn ? " shifts (folded)" : " (eval mode)") + (cfg_.bias_bits < 32 ? "" : ", biases");
  if (!inputs) {
    s += ", the pooled classifier input";
    const std::string note = model_->float_activations_note();
    if (!note.empty()) s += ", " + note;
  } else {
    s += ", residual adds and identity paths (only what enters a conv / linear is quantized)";
  }
  if (!c.float_layers.empty()) {
    s += "; NOT QUANTIZED (untracked by the model): ";
    for (size_t i = 0; i < c.float_layers.size(); ++i) s += (i ? ", " : "") + c.float_layers[i];
  }
  return s;
}

void QuantizedModel::freeze() {
  for (auto& a : acts_) a.freeze();
}
void QuantizedModel::unfreeze() {
  for (auto& a : acts_) a.unfreeze();
}

void QuantizedModel::save(const std::string& path, bool packed) const {
  const std::vector<WeightLayer> layers = weight_layers();
  // Which layers go as integer codes: packed, every quantized layer of at most 8 bits (all or none).
  std::vector<char> as_codes(layers.size(), 0);
  bool any_codes = false;
  for (size_t i = 0; i < layers.size(); ++i) {
    as_codes[i] = packed && layers[i].bits <= kMaxPackedBits ? 1 : 0;
    any_codes = any_codes || as_codes[i];
    if (pinned(i) && !as_codes[i])
      throw std::invalid_argument("save " + path + ": " + layers[i].name +
                                  " holds integer codes (loaded from a packed file): save the model packed");
  }
  std::set<std::string> coded_weights;
  for (size_t i = 0; i < layers.size(); ++i)
    if (as_codes[i]) coded_weights.insert(layers[i].name + ".weight");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (auto& [name, t] : model_->state_dict())
    if (!coded_weights.count(name)) tensors.push_back({name, t});
  std::vector<int64_t> conf = {kFormatVersion, cfg_.wbits, cfg_.abits, cfg_.bias_bits, cfg_.first_last_bits,
                               cfg_.fold_bn ? 1 : 0, cfg_.observer == Observer::Ema ? 1 : 0,
                               cfg_.ste == Ste::Clip ? 1 : 0};
  bool fixed_grid = false;
  for (size_t i = 0; i < layers.size(); ++i) fixed_grid = fixed_grid || ((*wranges_)[i].defined() && !as_codes[i]);
  const bool sym = cfg_.weight_scheme == WeightScheme::Sym;
  if (!cfg_.layer_wbits.empty() || cfg_.act_placement == ActPlacement::LayerInputs || fixed_grid || sym || any_codes)
    conf[0] = kFormatVersionExtended;
  if (!cfg_.layer_wbits.empty()) {
    std::vector<int64_t> lb(cfg_.layer_wbits.begin(), cfg_.layer_wbits.end());
    tensors.push_back({kLayerBitsName, Tensor::from_vector_i64(lb, {int64_t(lb.size())})});
  }
  if (sym) tensors.push_back({kSchemeName, Tensor::from_vector_i64({1}, {1})});
  tensors.push_back({kConfigName, Tensor::from_vector_i64(conf, {int64_t(conf.size())})});
  std::vector<float> ranges;
  for (const auto& a : acts_) {
    std::vector<float> s = a.state.to_vector();
    ranges.insert(ranges.end(), s.begin(), s.end());
  }
  tensors.push_back({kRangesName, Tensor::from_vector(ranges, {int64_t(acts_.size()), 3})});
  if (cfg_.act_placement == ActPlacement::LayerInputs) {
    std::vector<int64_t> ab;
    for (const auto& a : acts_) ab.push_back(a.bits());
    tensors.push_back({kInputBitsName, Tensor::from_vector_i64(ab, {int64_t(ab.size())})});
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    if (as_codes[i]) {  // the codes carry the grid: no weight range beside them
      for (auto& e : pack_codes(layers[i].name, weight_codes(i))) tensors.push_back(std::move(e));
    } else if ((*wranges_)[i].defined()) {
      tensors.push_back({kWeightRangePrefix + layers[i].name, (*wranges_)[i].to(Device::CPU)});
    }
  }
  write_weight_file(path, model_->arch, model_->num_classes, tensors);
}

bool is_quantized_file(const std::string& path) {
  return WeightFile::open(path).find(kConfigName) != nullptr;
}

bool is_packed_file(const std::string& path) {
  const WeightFile f = WeightFile::open(path);
  if (!f.find(kConfigName)) return false;
  const size_t n = std::strlen(kCodesPrefix);
  for (const WeightFile::Entry& e : f.entries())
    if (e.name.compare(0, n, kCodesPrefix) == 0) return true;
  return false;
}

std::unique_ptr<QuantizedModel> load_quantized(const std::string& path, const std::string& arch, Device dev) {
  WeightFile f = WeightFile::open(path);
  if (!arch.empty() && f.arch() != arch)
    throw std::runtime_error(path + " holds a " + f.arch() + ", not a " + arch);
  const WeightFile::Entry* ce = f.find(kConfigName);
  const WeightFile::Entry* re = f.find(kRangesName);
  if (!ce || !re || ce->dtype != DType::I64 || ce->shape != Shape{8})
    throw std::runtime_error(path + ": not a quantized model written by dfq (no valid " + std::string(kConfigName) + ")");
  std::vector<int64_t> c = f.get(kConfigName).to_vector_i64();
  const WeightFile::Entry* le = f.find(kLayerBitsName);
  if (c[0] != kFormatVersion && c[0] != kFormatVersionExtended)
    throw std::runtime_error(path + ": quantized-model version " + std::to_string(c[0]) + " is not supported");
  QuantConfig cfg;
  cfg.wbits = int(c[1]);
  cfg.abits = int(c[2]);
  cfg.bias_bits = int(c[3]);
  cfg.first_last_bits = int(c[4]);
  cfg.fold_bn = c[5] != 0;
  cfg.observer = c[6] ? Observer::Ema : Observer::MinMax;
  cfg.ste = c[7] ? Ste::Clip : Ste::Identity;
  auto model = models::create_model(f.arch(), f.num_classes(), 0, /*torchvision_init=*/false);
  const WeightFile::Entry* ib = f.find(kInputBitsName);
  const WeightFile::Entry* se = f.find(kSchemeName);
  bool any_range = false;
  std::set<std::string> layer_names, coded;  // coded: the layers stored as integer codes
  for (const auto& [name, l] : model->conv_layers()) layer_names.insert(name);
  for (const auto& [name, l] : model->linear_layers()) layer_names.insert(name);
  for (const std::string& name : layer_names) {
    any_range = any_range || f.find(kWeightRangePrefix + name);
    if (f.find(kCodesPrefix + name)) coded.insert(name);
  }
  // Every code, scale and zero-point tensor must belong to a coded layer of this architecture.
  for (const WeightFile::Entry& e : f.entries())
    for (const char* prefix : {kCodesPrefix, kWScalePrefix, kWZeroPrefix}) {
      const size_t n = std::strlen(prefix);
      if (e.name.compare(0, n, prefix) == 0 && !coded.count(e.name.substr(n)))
        throw std::runtime_error(path + ": " + e.name + " belongs to no " + (layer_names.count(e.name.substr(n)) ?
                                 "packed layer (" + std::string(kCodesPrefix) + e.name.substr(n) + " is missing)" :
                                 "conv / linear of " + f.arch()));
    }
  const bool any_codes = !coded.empty();
  if (c[0] == kFormatVersion && (le || ib || any_range || se || any_codes))
    throw std::runtime_error(path + ": quantized-model version 1 with " +
                             (le ? kLayerBitsName : ib ? kInputBitsName : se ? kSchemeName :
                              any_range ? kWeightRangePrefix + "*" : std::string(kCodesPrefix) + "*"));
  if (c[0] == kFormatVersionExtended && !le && !ib && !any_range && !se && !any_codes)
    throw std::runtime_error(path + ": quantized-model version 2 without " + kLayerBitsName + ", " + kInputBitsName +
                             ", " + kSchemeName + ", a " + kWeightRangePrefix + "* or a " + kCodesPrefix + "* tensor");
  if (se) {
    if (se->dtype != DType::I64 || se->shape != Shape{1} || f.get(kSchemeName).to_vector_i64()[0] != 1)
      throw std::runtime_error(path + ": " + kSchemeName + " must be int64 {1} (symmetric weights; absent = asymmetric)");
    cfg.weight_scheme = WeightScheme::Sym;
  }
  if (le) {
    const int64_t layers = int64_t(model->conv_layers().size() + model->linear_layers().size());
    if (le->dtype != DType::I64 || le->shape != Shape{layers})
      throw std::runtime_error(path + ": " + kLayerBitsName + " does not fit " + f.arch() + "'s " + std::to_string(layers) +
                               " convs and linears");
    for (int64_t v : f.get(kLayerBitsName).to_vector_i64()) {
      if (v < 1 || v > 64) throw std::runtime_error(path + ": " + kLayerBitsName + " holds " + std::to_string(v) + " bits");
      cfg.layer_wbits.push_back(int(v));
    }
  }
  std::string missing;
  for (const std::string& name : coded)
    if (f.find(name + ".weight"))
      throw std::runtime_error(path + ": holds both " + name + ".weight and " + kCodesPrefix + name + " (one or the other)");
  for (const auto& [name, t] : model->state_dict()) {
    const bool is_coded_weight = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0 &&
                                 coded.count(name.substr(0, name.size() - 7));
    if (!f.find(name) && !is_coded_weight && name.find("num_batches_tracked") == std::string::npos) missing += " " + name;
  }
  if (!missing.empty()) throw std::runtime_error(path + ": missing tensors:" + missing);
  load_state_dict(*model, f, /*strict=*/false);
  model->to(dev);
  if (ib) cfg.act_placement = ActPlacement::LayerInputs;
  std::unique_ptr<QuantizedModel> q;
  try {
    q = std::make_unique<QuantizedModel>(model, cfg, /*weights_already_folded=*/true);
  } catch (const std::invalid_argument& ex) {
    throw std::runtime_error(path + ": " + ex.what());
  }
  if (ib) {
    std::vector<int64_t> want;
    for (const auto& a : q->acts()) want.push_back(a.bits());
    if (ib->dtype != DType::I64 || ib->shape != Shape{int64_t(want.size())} || f.get(kInputBitsName).to_vector_i64() != want)
      throw std::runtime_error(path + ": " + kInputBitsName + " does not fit " + f.arch() + "'s " +
                               std::to_string(want.size()) + " conv / linear inputs");
  }
  const std::vector<QuantizedModel::WeightLayer> layers = q->weight_layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string name = kWeightRangePrefix + layers[i].name;
    const WeightFile::Entry* we = f.find(name);
    const bool codes = coded.count(layers[i].name) != 0;
    if (any_codes && codes != (layers[i].bits <= kMaxPackedBits))
      throw std::runtime_error(path + ": " + layers[i].name + " is at " + std::to_string(layers[i].bits) + " bits and " +
                               (codes ? "holds integer codes (only layers of at most 8 bits are packed)"
                                      : "has no " + std::string(kCodesPrefix) + layers[i].name +
                                            " (a packed file packs every layer of at most 8 bits)"));
    if (codes) {
      if (we) throw std::runtime_error(path + ": holds both " + name + " and " + kCodesPrefix + layers[i].name);
      q->pin_codes(i, unpack_codes(f, layers[i].name, layers[i].weight.shape(), layers[i].bits, cfg.weight_scheme));
      continue;
    }
    if (!we) continue;
    if (we->dtype != DType::F32 || we->shape != Shape{2, layers[i].weight.size(0)})
      throw std::runtime_error(path + ": " + name + " does not fit the layer's " + std::to_string(layers[i].weight.size(0)) +
                               " output channels");
    q->fix_weight_range(i, f.get(name).to(dev).detach());
  }
  const int64_t sites = int64_t(q->acts().size());
  if (re->dtype != DType::F32 || re->shape != Shape{sites, 3})
    throw std::runtime_error(path + ": " + kRangesName + " does not fit " + f.arch() + "'s " + std::to_string(sites) +
                             " activation sites");
  Tensor r = f.get(kRangesName);
  for (int64_t i = 0; i < sites; ++i) q->acts()[size_t(i)].state = r.select(i).clone().to(dev).detach();
  q->freeze();
  return q;
}

}  // namespace dfq::quant
