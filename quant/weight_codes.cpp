// weight_codes.cpp — see weight_codes.h; dequantize_codes (qmodel.h) lives here too.
#include "quant/weight_codes.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "engine/kernels/quant_math.h"

namespace dfq::quant {

const char* const kCodesPrefix = "quant.codes.";
const char* const kWScalePrefix = "quant.wscale.";
const char* const kWZeroPrefix = "quant.wzero.";

namespace {
// The code range of a layer: asym [-2^(b-1), 2^(b-1) - 1], sym [-L, L], L = 2^(b-1) - 1.
std::pair<int32_t, int32_t> code_range(int bits, WeightScheme s) {
  const int32_t half = int32_t(1) << (bits - 1);
  return s == WeightScheme::Sym ? std::pair{-(half - 1), half - 1} : std::pair{-half, half - 1};
}
std::string shape_str(const Shape& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + ")";
}
}  // namespace

void check_codes(const WeightCodes& c, const std::string& what) {
  if (c.bits < 1 || c.bits > 24 || (c.scheme == WeightScheme::Sym && c.bits < 2))
    throw std::invalid_argument(what + ": " + std::to_string(c.bits) + "-bit " + weight_scheme_name(c.scheme) +
                                " codes are not supported");
  if (c.out_channels < 1 || c.per_channel < 1 || c.q.size() != size_t(c.out_channels * c.per_channel) ||
      c.scale.size() != size_t(c.out_channels) || c.zero.size() != size_t(c.out_channels))
    throw std::invalid_argument(what + ": " + std::to_string(c.q.size()) + " codes, " + std::to_string(c.scale.size()) +
                                " scales and " + std::to_string(c.zero.size()) + " zero points do not make " +
                                std::to_string(c.out_channels) + " channels of " + std::to_string(c.per_channel));
  const auto [qmin, qmax] = code_range(c.bits, c.scheme);
  for (size_t i = 0; i < c.q.size(); ++i)
    if (c.q[i] < qmin || c.q[i] > qmax)
      throw std::invalid_argument(what + ": code " + std::to_string(c.q[i]) + " at " + std::to_string(i) + " is outside [" +
                                  std::to_string(qmin) + ", " + std::to_string(qmax) + "]");
  for (int64_t k = 0; k < c.out_channels; ++k) {
    const float s = c.scale[size_t(k)], z = c.zero[size_t(k)];
    if (!std::isfinite(s) || !(s > 0))
      throw std::invalid_argument(what + ": channel " + std::to_string(k) + " has scale " + std::to_string(s));
    if (!std::isfinite(z) || (c.scheme == WeightScheme::Sym && z != 0.f))
      throw std::invalid_argument(what + ": channel " + std::to_string(k) + " has zero point " + std::to_string(z) +
                                  (c.scheme == WeightScheme::Sym ? " (symmetric codes have 0)" : ""));
  }
}

Tensor dequantize_codes(const WeightCodes& c, const Shape& shape) {
  check_codes(c, "dequantize_codes");
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  if (shape.empty() || shape[0] != c.out_channels || numel != c.out_channels * c.per_channel)
    throw std::invalid_argument("dequantize_codes: shape " + shape_str(shape) + " does not hold " +
                                std::to_string(c.out_channels) + " channels of " + std::to_string(c.per_channel));
  const auto [qmin, qmax] = code_range(c.bits, c.scheme);
  std::vector<float> w(c.q.size());
  for (int64_t k = 0; k < c.out_channels; ++k) {
    // The grid the forward quantized with, rebuilt from its scale and zero point (quant_math.h).
    const QuantParams p{c.scale[size_t(k)], c.zero[size_t(k)], float(qmin), float(qmax), c.scheme == WeightScheme::Sym};
    for (int64_t j = 0; j < c.per_channel; ++j) {
      const size_t i = size_t(k * c.per_channel + j);
      w[i] = dequant_code(p, float(c.q[i]));
    }
  }
  return Tensor::from_vector(w, shape);
}

int64_t packed_row_bytes(int bits, int64_t per_channel) { return bits <= 4 ? (per_channel + 1) / 2 : per_channel; }

std::vector<std::pair<std::string, Tensor>> pack_codes(const std::string& layer, const WeightCodes& c) {
  check_codes(c, "pack_codes " + layer);
  if (c.bits > kMaxPackedBits)
    throw std::invalid_argument("pack_codes " + layer + ": " + std::to_string(c.bits) + "-bit codes do not fit a byte");
  const int64_t K = c.out_channels, per = c.per_channel, row = packed_row_bytes(c.bits, per);
  const int32_t offset = int32_t(1) << (c.bits - 1);
  std::vector<uint8_t> u(size_t(K * row), 0);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t j = 0; j < per; ++j) {
      const uint8_t v = uint8_t(c.q[size_t(k * per + j)] + offset);
      if (c.bits > 4)
        u[size_t(k * row + j)] = v;
      else
        u[size_t(k * row + j / 2)] |= uint8_t(j % 2 ? v << 4 : v);
    }
  return {{kCodesPrefix + layer, Tensor::from_vector_u8(u, {K, row})},
          {kWScalePrefix + layer, Tensor::from_vector(c.scale, {K})},
          {kWZeroPrefix + layer, Tensor::from_vector(c.zero, {K})}};
}

WeightCodes unpack_codes(const WeightFile& f, const std::string& layer, const Shape& shape, int bits, WeightScheme scheme) {
  const int64_t K = shape.at(0);
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  const int64_t per = numel / K, row = packed_row_bytes(bits, per);
  auto entry = [&](const std::string& name, DType dt, const Shape& want, const std::string& what) {
    const WeightFile::Entry* e = f.find(name);
    if (!e) throw std::runtime_error(f.path() + ": " + name + " is missing (a packed file holds it for every quantized layer)");
    if (e->dtype != dt || e->shape != want)
      throw std::runtime_error(f.path() + ": " + name + " is " + dtype_name(e->dtype) + " " + shape_str(e->shape) +
                               "; " + layer + " (" + shape_str(shape) + " at " + std::to_string(bits) + " bits) needs " +
                               dtype_name(dt) + " " + shape_str(want) + " " + what);
    return f.get(name);
  };
  const Tensor u = entry(kCodesPrefix + layer, DType::U8, {K, row},
                         bits <= 4 ? "(two codes per byte, each row padded to a byte)" : "(one code per byte)");
  const Tensor s = entry(kWScalePrefix + layer, DType::F32, {K}, "(one scale per output channel)");
  const Tensor z = entry(kWZeroPrefix + layer, DType::F32, {K}, "(one zero point per output channel)");
  WeightCodes c{scheme, bits, K, per, std::vector<int32_t>(size_t(numel)), s.to_vector(), z.to_vector()};
  const uint8_t* b = u.data<uint8_t>();
  const int32_t offset = int32_t(1) << (bits - 1);
  const auto [qmin, qmax] = code_range(bits, scheme);
  for (int64_t k = 0; k < K; ++k) {
    for (int64_t j = 0; j < per; ++j) {
      const uint8_t byte = b[k * row + (bits > 4 ? j : j / 2)];
      const int32_t v = bits > 4 ? byte : (j % 2 ? byte >> 4 : byte & 15);
      const int32_t q = v - offset;
      if (q < qmin || q > qmax)
        throw std::runtime_error(f.path() + ": " + kCodesPrefix + layer + " holds " + std::to_string(v) + " at channel " +
                                 std::to_string(k) + ", element " + std::to_string(j) + ": not a " + std::to_string(bits) +
                                 "-bit " + weight_scheme_name(scheme) + " code (stored q + " + std::to_string(offset) +
                                 " in [" + std::to_string(qmin + offset) + ", " + std::to_string(qmax + offset) + "])");
      c.q[size_t(k * per + j)] = q;
    }
    if (bits <= 4 && per % 2 && (b[k * row + row - 1] >> 4) != 0)
      throw std::runtime_error(f.path() + ": " + kCodesPrefix + layer + " channel " + std::to_string(k) +
                               ": the padding nibble after the last code is not 0");
  }
  try {
    check_codes(c, f.path() + ": " + layer);
  } catch (const std::invalid_argument& ex) {
    throw std::runtime_error(ex.what());
  }
  return c;
}

WeightStorage weight_storage(const WeightFile& f, const models::Model& m) {
  WeightStorage w;
  w.file_bytes = std::filesystem::file_size(f.path());
  auto add = [&](const std::string& layer, const Tensor& weight) {
    w.weights += weight.numel();
    if (const WeightFile::Entry* e = f.find(layer + ".weight")) {
      w.weight_bytes += e->nbytes;
      return;
    }
    for (const char* prefix : {kCodesPrefix, kWScalePrefix, kWZeroPrefix})
      if (const WeightFile::Entry* e = f.find(prefix + layer)) w.weight_bytes += e->nbytes;
  };
  for (const auto& [n, c] : m.conv_layers()) add(n, c->weight);
  for (const auto& [n, l] : m.linear_layers()) add(n, l->weight);
  return w;
}

std::string WeightStorage::str() const {
  auto mb = [](double b) {
    char t[32];
    std::snprintf(t, sizeof t, "%.2f MB", b / 1e6);
    return std::string(t);
  };
  char b[256];
  std::snprintf(b, sizeof b, "file %s (%llu bytes); conv / linear weights: %lld (%s as float32) held in %s = %.3f bytes per weight",
                mb(double(file_bytes)).c_str(), (unsigned long long)file_bytes, (long long)weights,
                mb(double(float32_bytes())).c_str(), mb(double(weight_bytes)).c_str(), bytes_per_weight());
  return b;
}

}  // namespace dfq::quant
