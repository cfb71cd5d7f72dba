// dataset.h — datasets of (image, label) items for the loader (loader.h):
//  - ImageFolderDataset: ImageNet-style photos through the eval transform (image.h), from
//      (a) a folder with one sub-folder per class, as torchvision's ImageFolder: classes = the
//          sub-folder names sorted (byte order), label = index in that list; files found recursively,
//          sorted by (folder path, file name); or
//      (b) a flat folder of images plus a labels file (see from_labels_file for the two formats).
//  - FashionMnistDataset: the golden input convention (shared/golden/README.md): 28x28 u8 / 255,
//      zero-padded by 2 to 32x32, (x - 0.2860) / 0.3530, replicated to 3 channels: items (3,32,32);
//      optional training augmentation (horizontal flip, shift) drawn per epoch from a Generator.
// Rules: get() is const and thread-safe (the loader calls it from several threads); all randomness
// is drawn in begin_epoch() on the calling thread, so results never depend on thread timing.
// Errors (missing folder, empty class, bad labels file) give one message naming the path.
// ImageFolderDataset is in image_folder.cpp (the fuzz target builds it alone), the rest in dataset.cpp.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/io/idx.h"
#include "engine/io/image.h"
#include "engine/ops.h"
#include "engine/tensor.h"

namespace dfq {

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual Shape item_shape() const = 0;  // one item, e.g. {3, 224, 224}
  virtual int64_t label(int64_t index) const = 0;
  // Classes the labels name: the class folders (or names) when the dataset has them, else the
  // largest label + 1. A model must have at least this many outputs (models::check_labels).
  virtual int64_t num_classes() const {
    int64_t n = 0;
    for (int64_t i = 0; i < size(); ++i) n = std::max(n, label(i) + 1);
    return n;
  }
  // Writes item `index` (numel(item_shape()) floats) to out and returns its label. Thread-safe.
  virtual int64_t get(int64_t index, float* out) const = 0;
  // Called once before each pass (by DataLoader::start_epoch). gen may be null when the dataset
  // draws nothing; a dataset that needs randomness then throws.
  virtual void begin_epoch(Generator* /*gen*/) {}
};

// File extensions taken as images (lower-cased compare): .jpg .jpeg .png .bmp .ppm .pgm. Files with
// the other extensions torchvision's ImageFolder takes (.tif .tiff .webp) are an error, not skipped,
// so that labels never shift silently against torchvision's.
bool is_image_file(const std::string& name);

struct ImageSample {
  std::string path;
  int64_t label = 0;
};

class ImageFolderDataset : public Dataset {
 public:
  // (a) root/<class>/**/<image>.
  static ImageFolderDataset from_class_folders(const std::string& root, EvalTransform tf = {});
  // (b) root/<image> with a labels file (detected from its first line; all lines alike):
  //   - two fields per line, "<file name> <label>" (space, tab or comma between; e.g. the
  //     validation list of the Caffe/ILSVRC devkit ports: "ILSVRC2012_val_00000001.JPEG 65");
  //     the file name is relative to root; the label is the 0-based class index, or a class name
  //     (e.g. a WordNet id "n01751748"), then mapped through the sorted set of names in the file;
  //   - one field per line: the 0-based class index of each image file of root, in sorted file-name
  //     order (the count must match).
  //   Labels are taken as written: the official ILSVRC2012_validation_ground_truth.txt (1-based
  //   devkit ids, not torchvision's order) must first be turned into torchvision class indices.
  //   Lines that are empty or start with '#' are skipped; a NUL byte is an error (not a text file).
  static ImageFolderDataset from_labels_file(const std::string& root, const std::string& labels_file,
                                             EvalTransform tf = {});

  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }
  Shape item_shape() const override { return tf_.out_shape(); }
  int64_t label(int64_t index) const override { return samples_.at(index).label; }
  int64_t get(int64_t index, float* out) const override;

  int64_t num_classes() const override;
  const std::vector<ImageSample>& samples() const { return samples_; }
  const std::vector<std::string>& classes() const { return classes_; }  // empty when labels are indices
  const EvalTransform& transform() const { return tf_; }

 private:
  std::vector<ImageSample> samples_;
  std::vector<std::string> classes_;
  EvalTransform tf_;
};

struct FashionMnistAugment {
  bool hflip = false;    // flip left-right with probability 1/2
  int64_t max_shift = 0; // shift by dy, dx uniform in [-max_shift, max_shift] (zeros shifted in)
};

class FashionMnistDataset : public Dataset {
 public:
  static constexpr float kMean = 0.2860f, kStd = 0.3530f;
  // split "train" (60,000) or "test" (10,000); dir holds the four IDX files (.gz or plain).
  explicit FashionMnistDataset(const std::string& split, const std::string& dir = kFashionMnistDir,
                               FashionMnistAugment aug = {});
  int64_t size() const override { return n_; }
  Shape item_shape() const override { return {3, 32, 32}; }
  int64_t label(int64_t index) const override;
  int64_t num_classes() const override { return 10; }
  int64_t get(int64_t index, float* out) const override;
  // With augmentation: draws a flip and a shift per item from gen (required then).
  void begin_epoch(Generator* gen) override;

  const Tensor& images() const { return images_; }  // u8 (N,28,28)
  const Tensor& labels() const { return labels_; }  // i64 (N)

 private:
  Tensor images_, labels_;
  int64_t n_ = 0;
  FashionMnistAugment aug_;
  std::vector<int8_t> flip_, dy_, dx_;  // per item, this epoch's draws (empty: none)
};

// Preprocesses one 28x28 u8 image into (3,32,32) floats (golden convention), with an optional
// flip and shift applied to the padded [0,1] image before normalisation.
void fashion_mnist_item(const uint8_t* img28, float* out, bool flip = false, int64_t dy = 0, int64_t dx = 0);

}  // namespace dfq
