// onednn.h — the engine's door to oneDNN (Debian's libdnnl-dev), the one translation unit that owns
// it (onednn.cpp, as conv.cu owns cuDNN): nothing else includes a dnnl header, so the 2.x / 3.x API
// differences (Debian 12 has 2.6; 3.x moved output scales to per-argument scales and applies the
// bias after them) stay in one file. Every tensor here is NHWC (channels last), as oneDNN's int8
// kernels want it.
//
// Conv: one convolution with its epilogue fused (oneDNN post-ops), in one of two kinds:
//  - Int8: src u8 codes with a zero point (a padded element is worth 0, as the float conv's zero
//    padding), weights s8, s32 sums (exact), then acc_real[o] = out_scale[o] * sum (src - zero) * w;
//  - F32: src and weights float (out_scale is folded into the weights once), acc_real = the conv.
// Then, per output element (the Epilogue):
//   y = acc_real[o] + bias[o] (+ residual, a tensor of the output's shape: f32, or u8 codes r worth
//       (r - res_zero) / res_scale)
//   y = act(y)  (none, relu, or clip to [lo, hi]: ReLU6)
//   quantize: dst u8 = clamp(round_half_even(q_scale * y + q_zero), 0, q_max); else dst f32 = y.
// dfq's activation grid is x = (c - zero) / scale (quant_math.h: c = q + 2^(A-1)); so a quantizer
// after the act is q_scale = its scale, q_zero = its zero point, q_max = 2^A - 1. The float ops
// follow oneDNN's order (scale, then adds, then act), not the fake-quant model's (conv, BN, act,
// quantize): a value within a rounding of a code boundary can take the neighbouring code.
// The weights are reordered once, into the kernel's layout, on first use per batch size; a
// primitive per batch size is kept. Threads: oneDNN runs on the engine's OpenMP pool.
// Built without oneDNN (no libdnnl-dev when CMake ran), available() is false and every
// constructor throws std::runtime_error saying so.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace dfq::onednn {

bool available();
std::string version();  // "oneDNN 2.6.3" or "not built with oneDNN"
// What every integer-inference entry point says when dfq was built without oneDNN (names the package).
const char* missing_message();

struct ConvShape {
  int64_t c = 0, h = 0, w = 0;  // input channels and size
  int64_t o = 0, kh = 1, kw = 1;
  int stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1, groups = 1;
  int64_t out_h() const { return (h + 2 * pad_h - dil_h * (kh - 1) - 1) / stride_h + 1; }
  int64_t out_w() const { return (w + 2 * pad_w - dil_w * (kw - 1) - 1) / stride_w + 1; }
};

struct Epilogue {
  std::vector<float> bias;  // o values, or empty (0)
  enum class Residual { None, F32, U8 } residual = Residual::None;
  float res_scale = 1, res_zero = 0;  // U8 residual: r is worth (r - res_zero) / res_scale
  enum class Act { None, Relu, Clip } act = Act::None;
  float act_lo = 0, act_hi = 0;  // Clip
  bool quantize = false;         // dst u8 (else f32)
  float q_scale = 1, q_zero = 0, q_max = 255;
  // The weight zero-point term (int8_inference.h), for a conv whose output channel o has its own
  // window sum W[n, p, o] (depthwise): acc_real[o] += out_scale[o] * window_k[o] * W. Every
  // window_k must be non-zero (it is computed as out_scale * k * (acc / k + W)). Empty: none.
  std::vector<float> window_k;
};

class Conv {
 public:
  enum class Kind { Int8, F32 };
  // Int8: weights_s8 (O, C / groups, KH, KW), src_zero the codes' zero point. F32: weights_f32, same
  // order. out_scale: o values. Throws std::invalid_argument on an ill-formed shape or epilogue,
  // std::runtime_error when oneDNN has no kernel for it (or is not built in).
  Conv(Kind kind, const ConvShape& shape, const std::vector<int8_t>& weights_s8, const std::vector<float>& weights_f32,
       const std::vector<float>& out_scale, int32_t src_zero, const Epilogue& ep);
  ~Conv();
  Conv(const Conv&) = delete;
  Conv& operator=(const Conv&) = delete;
  // src: n * h * w * c (u8 for Int8, float for F32); residual: the output's shape in the epilogue's
  // type, or null when it has none; dst: n * out_h * out_w * o (u8 when quantizing, else float);
  // window: the output's shape in float when the epilogue has window_k, else null.
  void run(int64_t n, const void* src, const void* residual, void* dst, const float* window = nullptr);
  const ConvShape& shape() const { return shape_; }
  Kind kind() const { return kind_; }
  const Epilogue& epilogue() const { return ep_; }
  std::string impl() const;  // oneDNN's implementation name ("brgconv:avx512_core_vnni")

 private:
  struct Impl;
  Kind kind_;
  ConvShape shape_;
  Epilogue ep_;
  std::unique_ptr<Impl> impl_;
};

// The int8 convolution alone: dst f32 = out_scale[o] * sum (src - src_zero) * w (exact s32 sum, one
// float multiply), no epilogue. (A Conv of kind Int8 with an empty Epilogue.)
class Int8Conv {
 public:
  Int8Conv(const ConvShape& shape, const std::vector<int8_t>& weights, const std::vector<float>& out_scale,
           int32_t src_zero);
  void run(int64_t n, const uint8_t* src, float* dst) { conv_.run(n, src, nullptr, dst); }
  const ConvShape& shape() const { return conv_.shape(); }
  std::string impl() const { return conv_.impl(); }

 private:
  Conv conv_;
};

// A float convolution forward in the engine's own layout (NCHW input and output, OIHW weights,
// bias or null), through oneDNN's blocked-layout kernels: the input and the weights are reordered
// into the kernel's layout at every call (the weights may have changed: training), the output back.
// A primitive (and its reorder buffers) is kept per shape. The engine's convolution calls it where
// it is measured faster (engine/kernels/cpu/gemm_conv.cpp, use_onednn_forward); its result is the
// same convolution up to float summation order. Throws std::runtime_error when built without oneDNN.
struct F32ConvShape {
  int64_t n, c, h, w, o, kh, kw;
  int stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  auto key() const { return std::make_tuple(n, c, h, w, o, kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w); }
};
void f32_conv_forward_nchw(const F32ConvShape& s, const float* x, const float* w, const float* b, float* y);

// Max pooling, NHWC, u8 or f32 (exact on codes: the grid is monotone); padded elements are ignored.
class MaxPool {
 public:
  MaxPool(bool u8, int64_t c, int64_t h, int64_t w, int kernel, int stride, int pad);
  ~MaxPool();
  MaxPool(const MaxPool&) = delete;
  MaxPool& operator=(const MaxPool&) = delete;
  int64_t out_h() const { return (h_ + 2 * pad_ - kernel_) / stride_ + 1; }
  int64_t out_w() const { return (w_ + 2 * pad_ - kernel_) / stride_ + 1; }
  void run(int64_t n, const void* src, void* dst);

 private:
  struct Impl;
  bool u8_;
  int64_t c_, h_, w_;
  int kernel_, stride_, pad_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dfq::onednn
