// image_tensor.cpp — the parts of image.h that make or read engine Tensors: image_grid and
// EvalTransform::operator() (kept apart so the fuzz target can build the decoders and the eval
// transform without the engine core).
#include "engine/io/image.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace dfq {

ImageU8 image_grid(const Tensor& x_in, int64_t cols, int scale) {
  if (x_in.dim() != 4 || (x_in.size(1) != 1 && x_in.size(1) != 3) || x_in.dtype() != DType::F32)
    throw std::invalid_argument("dfq: image_grid needs a float (N,1|3,H,W) tensor, got " + x_in.str());
  if (cols < 1 || scale < 1) throw std::invalid_argument("dfq: image_grid needs cols >= 1 and scale >= 1");
  const int64_t n = x_in.size(0), c = x_in.size(1), h = x_in.size(2), w = x_in.size(3);
  const std::vector<float> v = x_in.contiguous().to_vector();
  const int64_t gap = 2, rows = (n + cols - 1) / cols;
  ImageU8 img;
  img.h = gap + rows * (h * scale + gap);
  img.w = gap + cols * (w * scale + gap);
  img.data.assign(static_cast<std::size_t>(img.h * img.w * 3), 128);
  for (int64_t i = 0; i < n; ++i) {
    const float* p = v.data() + i * c * h * w;
    float mn = p[0], mx = p[0];
    for (int64_t k = 1; k < c * h * w; ++k) mn = std::min(mn, p[k]), mx = std::max(mx, p[k]);
    const float sc = mx > mn ? 255.f / (mx - mn) : 0.f;
    const int64_t oy = gap + (i / cols) * (h * scale + gap), ox = gap + (i % cols) * (w * scale + gap);
    for (int64_t y = 0; y < h * scale; ++y)
      for (int64_t xx = 0; xx < w * scale; ++xx)
        for (int64_t ch = 0; ch < 3; ++ch) {
          const float val = p[(c == 1 ? 0 : ch) * h * w + (y / scale) * w + xx / scale];
          img.px(oy + y, ox + xx)[ch] = static_cast<uint8_t>(std::lround((val - mn) * sc));
        }
  }
  return img;
}

Tensor EvalTransform::operator()(const ImageU8& img) const {
  Tensor t = Tensor::empty(out_shape());
  apply(img, t.data<float>());
  return t;
}

}  // namespace dfq
