// onednn.h — the engine's door to oneDNN (Debian's libdnnl-dev), the one translation unit that owns
// it (onednn.cpp, as conv.cu owns cuDNN): nothing else includes a dnnl header, so the 2.x / 3.x API
// differences (Debian 12 has 2.6; 3.x moved output scales to per-argument scales) stay in one file.
//
// Int8Conv: an integer convolution on the CPU, oneDNN's u8 x s8 -> s32 kernels (brgconv with AVX-512
// VNNI where the CPU has it):
//   dst[n, oh, ow, o] = out_scale[o] * sum over (c, kh, kw) of (src[n, ih, iw, c] - src_zero) * w[o, c, kh, kw]
// src u8 NHWC, the image padded with src_zero (a padded element is worth 0, as the float conv's zero
// padding); w s8 (O, C / groups, KH, KW); dst f32 NHWC. The s32 sum is exact; dst is one float
// multiply of it (out_scale 1 gives the integer sum itself while it is below 2^24). The weights are
// reordered once, into the kernel's layout, on construction; a primitive per batch size is kept.
// Threads: oneDNN runs on the same OpenMP pool as the engine and OpenBLAS.
// Built without oneDNN (no libdnnl-dev when CMake ran), available() is false and the constructor
// throws std::runtime_error saying so.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dfq::onednn {

bool available();
std::string version();  // "oneDNN 2.6.3" or "not built with oneDNN"

struct ConvShape {
  int64_t c = 0, h = 0, w = 0;  // input channels and size
  int64_t o = 0, kh = 1, kw = 1;
  int stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1, groups = 1;
  int64_t out_h() const { return (h + 2 * pad_h - dil_h * (kh - 1) - 1) / stride_h + 1; }
  int64_t out_w() const { return (w + 2 * pad_w - dil_w * (kw - 1) - 1) / stride_w + 1; }
};

class Int8Conv {
 public:
  // weights: o * (c / groups) * kh * kw s8 values in (O, C / groups, KH, KW) order; out_scale: o
  // values. Throws std::invalid_argument on an ill-formed shape, std::runtime_error when oneDNN
  // cannot make the primitive (or is not built in).
  Int8Conv(const ConvShape& shape, const std::vector<int8_t>& weights, const std::vector<float>& out_scale,
           int32_t src_zero);
  ~Int8Conv();
  Int8Conv(const Int8Conv&) = delete;
  Int8Conv& operator=(const Int8Conv&) = delete;
  // src: n * h * w * c bytes (NHWC); dst: n * out_h * out_w * o floats (NHWC).
  void run(int64_t n, const uint8_t* src, float* dst);
  const ConvShape& shape() const { return shape_; }
  std::string impl() const;  // oneDNN's implementation name of the last primitive made ("brgconv:avx512_core_vnni")

 private:
  struct Impl;
  ConvShape shape_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dfq::onednn
