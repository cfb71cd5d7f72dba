// weights.h — dfq's flat weight file (docs/weights_format.md): magic + version, architecture name
// and num_classes, a table of tensors (name, dtype, shape, offset, size), the data 64-byte aligned,
// CRC-32 of the table and of the data. Files are memory-mapped; tensors borrow the mapping.
//
// Rules:
//  - open() verifies magic, version, every table bound and both checksums before returning.
//  - Writing is atomic: PATH.tmp is written, then renamed over PATH; on any failure (or if the
//    writer is destroyed before commit) the temporary file is removed and PATH is untouched.
//  - load_state_dict() checks every name, shape and dtype against the module first and reports
//    every problem in one message; only then copies.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/io/mapped_file.h"
#include "engine/tensor.h"

namespace dfq {
namespace nn { class Module; }

class WeightFile {
 public:
  struct Entry {
    std::string name;
    DType dtype = DType::F32;
    Shape shape;
    uint64_t offset = 0, nbytes = 0;  // offset from the start of the data area
  };
  static WeightFile open(const std::string& path);  // throws std::runtime_error naming the problem
  const std::string& path() const { return path_; }
  const std::string& arch() const { return arch_; }
  int num_classes() const { return num_classes_; }
  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* find(const std::string& name) const;  // nullptr if absent
  Tensor get(const std::string& name) const;         // a CPU tensor borrowing the mapping; throws if absent

 private:
  std::string path_, arch_;
  int num_classes_ = 0;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;
  Bytes map_;
  const uint8_t* data_ = nullptr;
};

// Streaming writer: the table is fixed up front, then each tensor's bytes are written in table
// order (so a converter never holds more than one converted tensor).
class WeightWriter {
 public:
  struct Meta { std::string name; DType dtype; Shape shape; };
  WeightWriter(std::string path, std::string arch, int num_classes, std::vector<Meta> metas);
  ~WeightWriter();  // removes the temporary file unless commit() succeeded
  WeightWriter(const WeightWriter&) = delete;
  WeightWriter& operator=(const WeightWriter&) = delete;
  void write(const void* data, size_t nbytes);  // the next tensor, contiguous, little-endian
  void commit();                                // checksums, close, rename PATH.tmp -> PATH

 private:
  std::string path_, tmp_;
  std::vector<Meta> metas_;
  std::vector<uint64_t> offsets_;
  std::vector<uint8_t> header_;  // fixed header + table
  uint64_t data_offset_ = 0, data_bytes_ = 0, written_ = 0;
  size_t next_ = 0;
  uint32_t crc_ = 0;
  std::FILE* f_ = nullptr;
  bool committed_ = false;
  void put(const void* p, size_t n);
  void abandon();
};

void write_weight_file(const std::string& path, const std::string& arch, int num_classes,
                       const std::vector<std::pair<std::string, Tensor>>& tensors);

// Copies f's tensors into m's parameters and buffers by name. Any missing (num_batches_tracked
// excepted), unexpected (strict only) or mis-shaped tensor: one exception naming all of them.
void load_state_dict(nn::Module& m, const WeightFile& f, bool strict = true);

}  // namespace dfq
