// image.h — decoding images (stb_image: JPEG baseline/progressive, PNG, BMP, PNM) to 8-bit RGB, and
// torchvision's ImageNet eval transform done exactly as PIL / torchvision do it:
//   Resize(256)      shorter side to 256, the other int(256 * long / short) (torchvision's rounding),
//                    PIL's ImagingResample with the bilinear (triangle) filter: support scaled by the
//                    downscale factor (antialiasing), horizontal pass then vertical pass, 22-bit
//                    fixed-point coefficients and a round-to-uint8 between the passes;
//   CenterCrop(224)  offsets int(round((size - 224) / 2.0)) with Python's half-to-even round; zero
//                    padding (torchvision's split) where the image is smaller than the crop;
//   ToTensor         u8 / 255 (float32);  Normalize  (x - mean) / std (float32), CHW layout.
// Rules: images are interleaved (H,W,3) uint8, rows top to bottom. Grey and grey+alpha images are
// replicated to RGB, alpha is dropped (as PIL's convert('RGB')); EXIF orientation and colour profiles
// are ignored (as PIL without exif_transpose). 16-bit PNGs are reduced to 8 bits by stb (>> 8);
// 16-bit PGM/PPM are refused.
// Hostile files: the format is told by content (any other, e.g. GIF or TGA, is refused whatever the
// file is called); known stb 2.27 failures are checked for first (image.cpp); the header's width x
// height is checked (stbi_info) against a pixel limit before anything is decoded, so a small file
// claiming giant dimensions is refused, never allocated; the eval transform computes only the
// pixels its crop keeps, so extreme aspect ratios cost nothing. Decoding is bounded by the pixel
// limit, not by the file size: stb fills a BMP cut short with zeros (PIL would refuse it).
// Every error names the file. All functions are thread-safe (no global state).
// The Tensor-making parts (image_grid, EvalTransform::operator()) are in image_tensor.cpp, so that
// the fuzz target (tests/fuzz/fuzz_image.cpp) builds the decoders without the engine core.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace dfq {

struct ImageU8 {
  int64_t h = 0, w = 0;
  std::vector<uint8_t> data;  // (H,W,3) interleaved RGB
  uint8_t* px(int64_t y, int64_t x) { return data.data() + (y * w + x) * 3; }
  const uint8_t* px(int64_t y, int64_t x) const { return data.data() + (y * w + x) * 3; }
};

// Images of more pixels are refused before decoding: PIL's decompression-bomb limit (Image.open
// raises DecompressionBombError above 2 * Image.MAX_IMAGE_PIXELS = 2 * 89478485 pixels).
constexpr int64_t kMaxImagePixels = 2 * 89478485;

// Decodes a file to RGB. Throws std::runtime_error("dfq: cannot decode image <path>: <reason>"),
// also for a file whose header claims more than max_pixels pixels (checked before decoding).
ImageU8 load_image_rgb(const std::string& path, int64_t max_pixels = kMaxImagePixels);
// Decodes an in-memory encoded image; `name` only appears in error messages.
ImageU8 decode_image_rgb(const uint8_t* bytes, int64_t size, const std::string& name,
                         int64_t max_pixels = kMaxImagePixels);
// Writes an RGB PNG (written to a temporary name, then renamed). Throws naming the file on failure.
void save_png(const std::string& path, const ImageU8& img);

// A grid of images for people to look at: x (N,C,H,W) float, C = 1 or 3, any device. Each image is
// stretched to 0..255 by its own min / max (distilled and generated images are not in [0, 1]),
// `cols` per row (rows follow), each pixel drawn as a scale x scale block, 2-pixel grey gutters.
ImageU8 image_grid(const Tensor& x, int64_t cols, int scale = 1);

// PIL's Image.resize(size, BILINEAR) on an RGB image (bit-exact with Pillow's 8-bit path).
ImageU8 resize_bilinear_pil(const ImageU8& img, int64_t out_h, int64_t out_w);
// torchvision Resize(size) for an int size: the output (h, w) for an input (h, w).
std::array<int64_t, 2> resized_shorter_side(int64_t h, int64_t w, int64_t size);
// torchvision CenterCrop((crop_h, crop_w)), zero-padded where the image is smaller.
ImageU8 center_crop(const ImageU8& img, int64_t crop_h, int64_t crop_w);
// center_crop(resize_bilinear_pil(img, out_h, out_w), crop_h, crop_w), the same bytes, computing
// only the resized pixels inside the crop (memory and time follow the crop, not out_h x out_w).
ImageU8 resize_center_crop_pil(const ImageU8& img, int64_t out_h, int64_t out_w, int64_t crop_h, int64_t crop_w);

struct NormalizeParams {
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};  // ImageNet
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};
};
// ToTensor + Normalize: writes (3,H,W) float32 to out.
void to_normalized_chw(const ImageU8& img, const NormalizeParams& norm, float* out);

// The ImageNet eval transform (Resize(resize) + CenterCrop(crop) + ToTensor + Normalize).
// apply() throws std::invalid_argument for resize or crop < 1 or an empty image.
struct EvalTransform {
  int64_t resize = 256, crop = 224;
  NormalizeParams norm;
  Shape out_shape() const { return {3, crop, crop}; }
  void apply(const ImageU8& img, float* out) const;  // out: (3,crop,crop)
  Tensor operator()(const ImageU8& img) const;       // f32 (3,crop,crop) CPU
};

}  // namespace dfq
