// weight_codes.h — integer weight codes in a packed quantized-model file (docs/weights_format.md,
// "Packed weights"): per quantized layer of at most 8 bits, instead of its float32 `<layer>.weight`,
//   quant.codes.<layer>   U8 (out_channels, row_bytes): u = q + 2^(b-1) in both schemes (asym:
//                         0..2^b-1; sym: 1..2^b-1, 0 never occurs); 5..8 bits one code per byte
//                         (row_bytes = per_channel), 1..4 bits two per byte, low nibble first
//                         (row_bytes = ceil(per_channel / 2)); every row starts on a byte, and an odd
//                         row's last high nibble is 0;
//   quant.wscale.<layer>  F32 (out_channels): WeightCodes::scale;
//   quant.wzero.<layer>   F32 (out_channels): WeightCodes::zero (0 for sym).
// Rules: unpacking checks every shape, dtype, code, padding nibble, scale and zero point and names
// the tensor and the problem; pack(unpack(x)) == x byte for byte.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "engine/io/weights.h"
#include "quant/qmodel.h"

namespace dfq::quant {

constexpr int kMaxPackedBits = 8;  // layers above stay float32 in a packed file
extern const char* const kCodesPrefix;   // "quant.codes."
extern const char* const kWScalePrefix;  // "quant.wscale."
extern const char* const kWZeroPrefix;   // "quant.wzero."

// Bytes per output channel of `bits`-bit codes for per_channel weights.
int64_t packed_row_bytes(int bits, int64_t per_channel);
// The three tensors of one layer (names as above), CPU.
std::vector<std::pair<std::string, Tensor>> pack_codes(const std::string& layer, const WeightCodes& c);
// Reads them back for a layer of `shape` at `bits`; throws std::runtime_error naming f's path, the
// tensor and what is wrong (absent, dtype, shape, a code out of range, a non-zero padding nibble,
// a bad scale or zero point).
WeightCodes unpack_codes(const WeightFile& f, const std::string& layer, const Shape& shape, int bits, WeightScheme scheme);
// What a model file spends on its conv / linear weights (train/evaluate --verbose, tools/pack_weights):
// m is the file's architecture (its layer names).
struct WeightStorage {
  uint64_t file_bytes = 0;    // the whole file
  int64_t weights = 0;        // conv / linear weight elements
  uint64_t weight_bytes = 0;  // the tensor bytes that hold them: float32, or codes + scales + zero points
  uint64_t float32_bytes() const { return uint64_t(weights) * 4; }
  double bytes_per_weight() const { return weights ? double(weight_bytes) / double(weights) : 0.0; }
  // "file 6.12 MB; conv / linear weights: 11,166,912 (44.67 MB as float32) held in 5.63 MB = 0.504 bytes per weight"
  std::string str() const;
};
WeightStorage weight_storage(const WeightFile& f, const models::Model& m);

// Throws std::invalid_argument unless c is self-consistent (sizes, codes in range, scales finite
// and > 0, zeros finite, 0 for sym); `what` starts the message.
void check_codes(const WeightCodes& c, const std::string& what);

}  // namespace dfq::quant
