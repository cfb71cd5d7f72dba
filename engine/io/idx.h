// idx.h — the IDX files of MNIST / Fashion-MNIST (optionally gzip-compressed, read with zlib):
// images (N,H,W) uint8 and labels (N) int64. Malformed files get one message naming the file.
#pragma once
#include <string>

#include "engine/tensor.h"

namespace dfq {

Tensor load_idx_images(const std::string& path);  // u8 (N,H,W)
Tensor load_idx_labels(const std::string& path);  // i64 (N)
// Where Debian's dataset-fashion-mnist puts the files.
inline const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
// kFashionMnistDir, unless the environment variable DFQ_FASHION_MNIST_DIR names another folder
// (e.g. a copy carried to a machine without Debian's package).
std::string fashion_mnist_dir();

}  // namespace dfq
