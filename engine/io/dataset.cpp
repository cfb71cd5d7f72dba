// dataset.cpp — FashionMnistDataset (dataset.h); ImageFolderDataset is in image_folder.cpp.
#include "engine/io/dataset.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

namespace fs = std::filesystem;

namespace dfq {

// ---- Fashion-MNIST -------------------------------------------------------------------------------
namespace {
std::string idx_file(const std::string& dir, const std::string& base) {
  std::error_code ec;
  for (const char* suffix : {".gz", ""}) {
    std::string p = dir + "/" + base + suffix;
    if (fs::is_regular_file(p, ec)) return p;
  }
  throw std::runtime_error("dfq: Fashion-MNIST file " + dir + "/" + base + "(.gz) not found (Debian package dataset-fashion-mnist)");
}
}  // namespace

void fashion_mnist_item(const uint8_t* img28, float* out, bool flip, int64_t dy, int64_t dx) {
  // The padded [0,1] image P (32x32, 2-pixel zero border), optionally flipped left-right, then
  // shifted: out(y, x) = P(y - dy, x - dx), zero outside; then normalised and replicated.
  const float pad_value = (0.0f - FashionMnistDataset::kMean) / FashionMnistDataset::kStd;
  for (int64_t y = 0; y < 32; ++y) {
    for (int64_t x = 0; x < 32; ++x) {
      int64_t py = y - dy, px = x - dx;  // in the padded image
      if (flip) px = 31 - px;
      int64_t iy = py - 2, ix = px - 2;  // in the 28x28 image
      float v = pad_value;
      if (iy >= 0 && iy < 28 && ix >= 0 && ix < 28) {
        float u = static_cast<float>(img28[iy * 28 + ix]) / 255.0f;
        v = (u - FashionMnistDataset::kMean) / FashionMnistDataset::kStd;
      }
      out[y * 32 + x] = v;
    }
  }
  std::copy(out, out + 1024, out + 1024);
  std::copy(out, out + 1024, out + 2048);
}

FashionMnistDataset::FashionMnistDataset(const std::string& split, const std::string& dir, FashionMnistAugment aug)
    : aug_(aug) {
  std::string prefix;
  if (split == "train") prefix = "train";
  else if (split == "test") prefix = "t10k";
  else throw std::runtime_error("dfq: Fashion-MNIST split must be 'train' or 'test', got '" + split + "'");
  if (aug.max_shift < 0 || aug.max_shift > 16) throw std::runtime_error("dfq: Fashion-MNIST max_shift must be in [0, 16]");
  // the default folder may be overridden by DFQ_FASHION_MNIST_DIR (see idx.h)
  const std::string d = dir == kFashionMnistDir ? fashion_mnist_dir() : dir;
  images_ = load_idx_images(idx_file(d, prefix + "-images-idx3-ubyte"));
  labels_ = load_idx_labels(idx_file(d, prefix + "-labels-idx1-ubyte"));
  n_ = images_.size(0);
  if (images_.size(1) != 28 || images_.size(2) != 28 || labels_.size(0) != n_)
    throw std::runtime_error("dfq: Fashion-MNIST files in " + dir + ": expected 28x28 images and one label per image");
}

int64_t FashionMnistDataset::label(int64_t index) const {
  if (index < 0 || index >= n_) throw std::out_of_range("dfq: Fashion-MNIST index out of range");
  return labels_.data<int64_t>()[index];
}

void FashionMnistDataset::begin_epoch(Generator* gen) {
  if (!aug_.hflip && aug_.max_shift == 0) return;
  if (!gen) throw std::runtime_error("dfq: Fashion-MNIST augmentation needs a Generator (DataLoader::start_epoch(&gen))");
  auto draw = [&](int64_t lo, int64_t hi, std::vector<int8_t>& dst) {
    std::vector<int64_t> v = randint({n_}, lo, hi, *gen).to_vector_i64();
    dst.assign(v.begin(), v.end());
  };
  if (aug_.hflip) draw(0, 2, flip_);
  if (aug_.max_shift > 0) {
    draw(-aug_.max_shift, aug_.max_shift + 1, dy_);
    draw(-aug_.max_shift, aug_.max_shift + 1, dx_);
  }
}

int64_t FashionMnistDataset::get(int64_t index, float* out) const {
  int64_t lab = label(index);
  bool needs_draws = aug_.hflip || aug_.max_shift > 0;
  if (needs_draws && (flip_.empty() && dy_.empty()))
    throw std::runtime_error("dfq: Fashion-MNIST augmentation: begin_epoch(gen) was not called");
  bool f = !flip_.empty() && flip_[index];
  int64_t dy = dy_.empty() ? 0 : dy_[index], dx = dx_.empty() ? 0 : dx_[index];
  fashion_mnist_item(images_.data<uint8_t>() + index * 784, out, f, dy, dx);
  return lab;
}

}  // namespace dfq
