// mapped_file.h — read a whole file through mmap: a byte range plus a keep-alive handle that owns
// the mapping (give it to Tensor::borrow so tensors can point into the file). The mapping is
// private and writable copy-on-write, so a borrowed tensor written in place never touches the file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace dfq {

struct Bytes {
  const uint8_t* data = nullptr;
  size_t size = 0;
  std::shared_ptr<void> owner;  // keeps data valid (a mapping or a heap buffer); may be null
};

// Throws std::runtime_error "dfq: cannot open PATH: reason" (missing file, a directory, ...).
Bytes map_file(const std::string& path);

}  // namespace dfq
