// image.cpp — stb_image decoding and the PIL / torchvision eval transform (see image.h).
// stb's implementation comes from Debian's libstb (linked by CMake); where that library is absent
// CMake defines DFQ_STB_BUILTIN and this file compiles the implementation itself. image_grid and
// EvalTransform::operator() (the parts that make or read Tensors) are in image_tensor.cpp.
// The resize follows Pillow's src/libImaging/Resample.c (precompute_coeffs, normalize_coeffs_8bpc,
// ImagingResampleHorizontal_8bpc / Vertical_8bpc, ImagingResampleInner) step for step.
#include "engine/io/image.h"
#include "engine/io/json_out.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>

#ifdef DFQ_STB_BUILTIN
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#endif
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

namespace dfq {

// ---- decoding ----------------------------------------------------------------------------------
ImageU8 decode_image_rgb(const uint8_t* bytes, int64_t size, const std::string& name) {
  if (size <= 0) throw std::runtime_error("dfq: cannot decode image " + name + ": empty file");
  if (size > INT32_MAX) throw std::runtime_error("dfq: cannot decode image " + name + ": file too large");
  int w = 0, h = 0, channels = 0;
  // req_comp 3: grey is replicated, alpha dropped (stb's conversion, as PIL's convert('RGB')).
  std::unique_ptr<stbi_uc, void (*)(void*)> px(
      stbi_load_from_memory(bytes, static_cast<int>(size), &w, &h, &channels, 3), stbi_image_free);
  if (!px) {
    const char* why = stbi_failure_reason();
    throw std::runtime_error("dfq: cannot decode image " + name + ": " + (why ? why : "unknown reason") +
                             " (supported: JPEG, PNG, BMP, PPM/PGM)");
  }
  ImageU8 img;
  img.h = h;
  img.w = w;
  img.data.assign(px.get(), px.get() + static_cast<std::size_t>(w) * h * 3);
  return img;
}

ImageU8 load_image_rgb(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw std::runtime_error("dfq: cannot decode image " + path + ": cannot open (" + std::strerror(errno) + ")");
  std::streamoff n = f.tellg();
  if (n < 0) throw std::runtime_error("dfq: cannot decode image " + path + ": cannot read");
  std::vector<uint8_t> bytes(static_cast<std::size_t>(n));
  f.seekg(0);
  if (n > 0 && !f.read(reinterpret_cast<char*>(bytes.data()), n))
    throw std::runtime_error("dfq: cannot decode image " + path + ": read error");
  return decode_image_rgb(bytes.data(), static_cast<int64_t>(bytes.size()), path);
}

void save_png(const std::string& path, const ImageU8& img) {
  if (img.h <= 0 || img.w <= 0 || static_cast<int64_t>(img.data.size()) != img.h * img.w * 3)
    throw std::runtime_error("dfq: save_png " + path + ": malformed image");
  std::string tmp = path + ".tmp";
  if (!stbi_write_png(tmp.c_str(), static_cast<int>(img.w), static_cast<int>(img.h), 3, img.data.data(),
                      static_cast<int>(img.w * 3))) {
    std::remove(tmp.c_str());
    throw std::runtime_error("dfq: cannot write PNG " + path);
  }
  rename_into_place(tmp, path);
}

// ---- PIL bilinear resample ---------------------------------------------------------------------
namespace {
constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's PRECISION_BITS

struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;  // (out, 2): first input index, count
  std::vector<int32_t> k;   // (out, ksize) fixed-point weights
};

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

// precompute_coeffs + normalize_coeffs_8bpc for the box [0, in_size) and the bilinear filter.
Coeffs precompute_coeffs(int in_size, int out_size) {
  const double support_1 = 1.0;  // bilinear support
  double scale = static_cast<double>(static_cast<float>(in_size) - 0.0f) / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  double support = support_1 * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(static_cast<std::size_t>(out_size) * 2);
  c.k.assign(static_cast<std::size_t>(out_size) * c.ksize, 0);
  std::vector<double> kk(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    double center = 0.0 + (xx + 0.5) * scale;
    double ww = 0.0, ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    int x = 0;
    for (; x < xmax; ++x) {
      double w = bilinear_filter((x + xmin - center + 0.5) * ss);
      kk[x] = w;
      ww += w;
    }
    for (x = 0; x < xmax; ++x)
      if (ww != 0.0) kk[x] /= ww;
    for (; x < c.ksize; ++x) kk[x] = 0;
    c.bounds[xx * 2] = xmin;
    c.bounds[xx * 2 + 1] = xmax;
    for (x = 0; x < c.ksize; ++x) {
      double v = kk[x] * (1 << kPrecisionBits);
      c.k[static_cast<std::size_t>(xx) * c.ksize + x] = static_cast<int32_t>(kk[x] < 0 ? -0.5 + v : 0.5 + v);
    }
  }
  return c;
}

inline uint8_t clip8(int32_t v) {
  v >>= kPrecisionBits;  // arithmetic shift, as Pillow's lookup index
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}
}  // namespace

ImageU8 resize_bilinear_pil(const ImageU8& in, int64_t out_h, int64_t out_w) {
  if (in.h <= 0 || in.w <= 0 || out_h <= 0 || out_w <= 0)
    throw std::runtime_error("dfq: resize of an empty image or to an empty size");
  if (out_h == in.h && out_w == in.w) return in;  // Image.resize returns a copy
  Coeffs ch = precompute_coeffs(static_cast<int>(in.w), static_cast<int>(out_w));
  Coeffs cv = precompute_coeffs(static_cast<int>(in.h), static_cast<int>(out_h));
  bool need_h = out_w != in.w, need_v = out_h != in.h;
  int y_first = cv.bounds[0];
  int y_last = cv.bounds[(out_h - 1) * 2] + cv.bounds[(out_h - 1) * 2 + 1];

  ImageU8 cur;
  const ImageU8* src = &in;
  if (need_h) {
    for (int64_t i = 0; i < out_h; ++i) cv.bounds[i * 2] -= y_first;
    cur.h = y_last - y_first;
    cur.w = out_w;
    cur.data.resize(static_cast<std::size_t>(cur.h * cur.w * 3));
    for (int64_t yy = 0; yy < cur.h; ++yy) {
      const uint8_t* row = in.px(yy + y_first, 0);
      uint8_t* orow = cur.px(yy, 0);
      for (int64_t xx = 0; xx < out_w; ++xx) {
        int xmin = ch.bounds[xx * 2], xmax = ch.bounds[xx * 2 + 1];
        const int32_t* k = &ch.k[static_cast<std::size_t>(xx) * ch.ksize];
        int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
        for (int x = 0; x < xmax; ++x) {
          const uint8_t* p = row + (x + xmin) * 3;
          s0 += p[0] * k[x];
          s1 += p[1] * k[x];
          s2 += p[2] * k[x];
        }
        orow[xx * 3] = clip8(s0);
        orow[xx * 3 + 1] = clip8(s1);
        orow[xx * 3 + 2] = clip8(s2);
      }
    }
    src = &cur;
  }
  if (!need_v) return need_h ? cur : in;
  ImageU8 out;
  out.h = out_h;
  out.w = src->w;
  out.data.resize(static_cast<std::size_t>(out.h * out.w * 3));
  for (int64_t yy = 0; yy < out_h; ++yy) {
    int ymin = cv.bounds[yy * 2], ymax = cv.bounds[yy * 2 + 1];
    const int32_t* k = &cv.k[static_cast<std::size_t>(yy) * cv.ksize];
    uint8_t* orow = out.px(yy, 0);
    for (int64_t xx = 0; xx < out.w; ++xx) {
      int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
      for (int y = 0; y < ymax; ++y) {
        const uint8_t* p = src->px(y + ymin, xx);
        s0 += p[0] * k[y];
        s1 += p[1] * k[y];
        s2 += p[2] * k[y];
      }
      orow[xx * 3] = clip8(s0);
      orow[xx * 3 + 1] = clip8(s1);
      orow[xx * 3 + 2] = clip8(s2);
    }
  }
  return out;
}

std::array<int64_t, 2> resized_shorter_side(int64_t h, int64_t w, int64_t size) {
  int64_t shorter = std::min(h, w), longer = std::max(h, w);
  // Python: int(size * long / short), a double division truncated.
  int64_t new_long = static_cast<int64_t>(static_cast<double>(size * longer) / static_cast<double>(shorter));
  return w <= h ? std::array<int64_t, 2>{new_long, size} : std::array<int64_t, 2>{size, new_long};
}

namespace {
// Where crop pixel 0 sits in the source along one axis (negative: zero padding before the image).
int64_t crop_offset(int64_t size, int64_t crop) {
  if (crop > size) return -((crop - size) / 2);  // torchvision pads (crop - size) // 2 before
  int64_t d = size - crop;  // int(round(d / 2.0)), Python rounds half to even
  int64_t k = d / 2;
  if (d % 2 == 1 && k % 2 == 1) ++k;
  return k;
}
}  // namespace

ImageU8 center_crop(const ImageU8& img, int64_t crop_h, int64_t crop_w) {
  ImageU8 out;
  out.h = crop_h;
  out.w = crop_w;
  out.data.assign(static_cast<std::size_t>(crop_h * crop_w * 3), 0);
  int64_t top = crop_offset(img.h, crop_h), left = crop_offset(img.w, crop_w);
  for (int64_t y = 0; y < crop_h; ++y) {
    int64_t sy = y + top;
    if (sy < 0 || sy >= img.h) continue;
    int64_t x0 = std::max<int64_t>(0, -left), x1 = std::min<int64_t>(crop_w, img.w - left);
    if (x1 > x0) std::memcpy(out.px(y, x0), img.px(sy, x0 + left), static_cast<std::size_t>((x1 - x0) * 3));
  }
  return out;
}

void to_normalized_chw(const ImageU8& img, const NormalizeParams& norm, float* out) {
  const int64_t plane = img.h * img.w;
  for (int c = 0; c < 3; ++c) {
    const float m = norm.mean[c], s = norm.std[c];
    float* o = out + c * plane;
    for (int64_t i = 0; i < plane; ++i) {
      // ToTensor: float(u8) / 255; Normalize: (x - mean) / std — float32, in that order.
      float x = static_cast<float>(img.data[static_cast<std::size_t>(i * 3 + c)]) / 255.0f;
      o[i] = (x - m) / s;
    }
  }
}

void EvalTransform::apply(const ImageU8& img, float* out) const {
  auto [rh, rw] = resized_shorter_side(img.h, img.w, resize);
  ImageU8 resized = resize_bilinear_pil(img, rh, rw);
  to_normalized_chw(center_crop(resized, crop, crop), norm, out);
}

}  // namespace dfq
