// idx.cpp — IDX reader through zlib's gzread (reads plain files too).
#include "engine/io/idx.h"

#include <zlib.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <vector>

namespace dfq {

namespace {
std::vector<uint8_t> read_all(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("dfq: cannot open " + path);
  std::unique_ptr<gzFile_s, int (*)(gzFile)> guard(f, gzclose);
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + n);
  if (n < 0) throw std::runtime_error("dfq: " + path + ": corrupt gzip stream");
  return out;
}
uint32_t be32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }
}  // namespace

Tensor load_idx_images(const std::string& path) {
  std::vector<uint8_t> d = read_all(path);
  if (d.size() < 16 || be32(d.data()) != 0x00000803) throw std::runtime_error("dfq: " + path + ": not an IDX image file");
  int64_t n = be32(d.data() + 4), h = be32(d.data() + 8), w = be32(d.data() + 12);
  int64_t count = -1;  // n * h * w can pass int64 (and, wrapped, match a short file): numel_of checks
  try {
    count = numel_of({n, h, w});
  } catch (const std::length_error&) {
  }
  if (count < 0 || d.size() - 16 != static_cast<uint64_t>(count))
    throw std::runtime_error("dfq: " + path + ": truncated IDX image file");
  return Tensor::from_vector_u8(std::vector<uint8_t>(d.begin() + 16, d.end()), {n, h, w});
}

std::string fashion_mnist_dir() {
  const char* env = std::getenv("DFQ_FASHION_MNIST_DIR");
  return env && *env ? std::string(env) : std::string(kFashionMnistDir);
}

Tensor load_idx_labels(const std::string& path) {
  std::vector<uint8_t> d = read_all(path);
  if (d.size() < 8 || be32(d.data()) != 0x00000801) throw std::runtime_error("dfq: " + path + ": not an IDX label file");
  int64_t n = be32(d.data() + 4);
  if (static_cast<int64_t>(d.size()) != 8 + n) throw std::runtime_error("dfq: " + path + ": truncated IDX label file");
  std::vector<int64_t> l(d.begin() + 8, d.end());
  return Tensor::from_vector_i64(l, {n});
}

}  // namespace dfq
