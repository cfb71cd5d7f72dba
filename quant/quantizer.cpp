// quantizer.cpp — see quantizer.h.
#include "quant/quantizer.h"

#include <stdexcept>

#include "engine/dispatch.h"

namespace dfq::quant {

Ste parse_ste(const std::string& s) {
  if (s == "identity") return Ste::Identity;
  if (s == "clip") return Ste::Clip;
  throw std::invalid_argument("unknown STE '" + s + "' (known: identity, clip)");
}
const char* ste_name(Ste s) { return s == Ste::Identity ? "identity" : "clip"; }
const char* observer_name(Observer o) { return o == Observer::MinMax ? "minmax" : "ema"; }
WeightScheme parse_weight_scheme(const std::string& s) {
  if (s == "asym") return WeightScheme::Asym;
  if (s == "sym") return WeightScheme::Sym;
  throw std::invalid_argument("unknown weight scheme '" + s + "' (known: asym, sym)");
}
const char* weight_scheme_name(WeightScheme s) { return s == WeightScheme::Asym ? "asym" : "sym"; }

void check_bits(int bits, const char* what) {
  if ((bits >= 1 && bits <= 24) || bits >= 32) return;
  throw std::invalid_argument(std::string(what) + ": " + std::to_string(bits) +
                              " bits is not supported (1..24 quantize, 32 keeps float)");
}

void check_weight_bits(int bits, WeightScheme scheme, const char* what) {
  check_bits(bits, what);
  if (scheme == WeightScheme::Sym && bits == 1)
    throw std::invalid_argument(std::string(what) + ": symmetric weights need at least 2 bits (at 1 bit the grid " +
                                "[-L, L], L = 2^(b-1) - 1 = 0, holds only 0)");
}

namespace {
void check_input(const Tensor& x, const char* op) {
  if (!x.defined() || x.dtype() != DType::F32)
    throw std::invalid_argument(std::string("dfq: ") + op + ": expected a float32 tensor");
  if (x.numel() == 0) throw std::invalid_argument(std::string("dfq: ") + op + ": empty tensor");
}
}  // namespace

Tensor minmax_rows(const Tensor& x_in, int64_t rows) {
  check_input(x_in, "minmax_rows");
  if (rows < 1 || x_in.numel() % rows != 0)
    throw std::invalid_argument("dfq: minmax_rows: " + std::to_string(rows) + " rows do not divide " + x_in.str());
  Tensor x = x_in.contiguous();
  Tensor r = Tensor::empty({2, rows}, DType::F32, x.device());
  float* lo = r.data<float>();
  DFQ_DISPATCH(x.device(), minmax_rows, rows, x.numel() / rows, x.data<float>(), lo, lo + rows);
  return r;
}

Tensor fake_quantize(const Tensor& x_in, int bits, const Tensor& range_in, Ste ste, WeightScheme scheme) {
  check_input(x_in, "fake_quantize");
  check_weight_bits(bits, scheme, "fake_quantize");
  if (bits >= 32) return x_in;
  if (range_in.dim() != 2 || range_in.size(0) != 2 || x_in.numel() % range_in.size(1) != 0)
    throw std::invalid_argument("dfq: fake_quantize: range " + range_in.str() + " does not fit " + x_in.str());
  if (range_in.device() != x_in.device())
    throw std::invalid_argument("dfq: fake_quantize: range and input on different devices");
  Tensor x = x_in.contiguous(), range = range_in.contiguous().detach();
  const int64_t rows = range.size(1), cols = x.numel() / rows;
  Tensor y = Tensor::empty(x.shape(), DType::F32, x.device());
  const float* lo = range.data<float>();
  const bool sym = scheme == WeightScheme::Sym;
  DFQ_DISPATCH(x.device(), fake_quant, x.numel(), cols, bits, sym, x.data<float>(), lo, lo + rows, y.data<float>());
  if (ste == Ste::Identity)
    return record(y, "fake_quantize", {x_in}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
  Tensor xs = x.detach();
  return record(y, "fake_quantize_clip", {x_in}, [xs, range, rows, cols, sym](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    Tensor gx = Tensor::empty(xs.shape(), DType::F32, xs.device());
    const float* lo = range.data<float>();
    DFQ_DISPATCH(xs.device(), fake_quant_backward_clip, xs.numel(), cols, sym, xs.data<float>(), lo, lo + rows,
                 g.data<float>(), gx.data<float>());
    return std::vector<Tensor>{gx};
  });
}

Tensor quantize_weight(const Tensor& w, int bits, Ste ste, WeightScheme scheme) {
  check_weight_bits(bits, scheme, "quantize_weight");
  if (bits >= 32) return w;
  return fake_quantize(w, bits, minmax_rows(w.detach(), w.size(0)), ste, scheme);
}

Tensor quantize_per_tensor(const Tensor& x, int bits, Ste ste) {
  check_bits(bits, "quantize_per_tensor");
  if (bits >= 32) return x;
  return fake_quantize(x, bits, minmax_rows(x.detach(), 1), ste);
}

ActQuantizer::ActQuantizer(int bits, Observer obs, Ste ste, Device dev, float beta)
    : bits_(bits), obs_(obs), ste_(ste), beta_(beta) {
  check_bits(bits, "activation quantizer");
  state = Tensor::from_vector({0.f, 0.f, 1.f}, {3}, dev);
}

Tensor ActQuantizer::forward(const Tensor& x) {
  if (observing_) {
    Tensor batch = minmax_rows(x.detach(), 1);  // {min, max}
    if (state.device() != x.device()) state = state.to(x.device()).detach();
    DFQ_DISPATCH(x.device(), range_update, obs_ == Observer::Ema, beta_, batch.data<float>(), state.data<float>());
    ++updates_;
  }
  if (bits_ >= 32) return x;
  return fake_quantize(x, bits_, state.narrow(0, 2).view({2, 1}), ste_);
}

std::pair<float, float> ActQuantizer::range() const {
  std::vector<float> v = state.to_vector();
  return {v[0], v[1]};
}

}  // namespace dfq::quant
