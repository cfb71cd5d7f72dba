// pth.h — PyTorch checkpoints read without Python: the three containers of
// ../shared/docs/pth_format.md (ZIP of torch >= 1.6, the legacy magic-number stream of
// torch 0.1.10-1.5, the TAR container of torch <= 0.1.9), through the safe pickle machine of pickle.h.
//
// Rules:
//  - The input is memory-mapped; tensors are descriptors into it (or into an inflated ZIP member)
//    until asked for, so converting never holds the checkpoint twice.
//  - Accepted shapes: a bare state dict, or a dict holding it under "state_dict" or "model";
//    a "module." prefix (DataParallel) is stripped; non-tensor values are skipped with a note.
//  - dtypes: float32, int64 and uint8 are kept; float16, bfloat16 and float64 become float32 (noted);
//    anything else is refused with the tensor's name.
//  - Every tensor is bounds-checked at read time (storage offset + extent within its storage,
//    no overlapping strides), and the converted tensors may not total more than 8x the file
//    (plus 64 MiB), so no hostile file can cause a huge allocation. Errors are std::runtime_error
//    naming the file and the problem.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/io/mapped_file.h"
#include "engine/io/pickle.h"
#include "engine/tensor.h"

namespace dfq {

// One storage of a checkpoint, resolved to bytes.
struct PthStorage {
  std::string key;
  pickle::ElemType type = pickle::ElemType::F32;
  int64_t numel = 0;
  Bytes bytes;  // at least numel * elem_size(type) bytes
  bool big_endian = false;
  bool resolved = false;
};

struct PthTensor {
  std::string name;
  pickle::ElemType src_type = pickle::ElemType::F32;  // as stored in the checkpoint
  DType dtype = DType::F32;                           // after conversion
  Shape shape, stride;                                // stride in elements
  int64_t offset = 0;                                 // in elements, into the storage
  std::shared_ptr<const PthStorage> storage;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  size_t nbytes() const;            // of the converted, contiguous tensor
  bool converted() const;           // float16 / bfloat16 / float64 -> float32
  // The stored bytes when they can be used as they are (no conversion, contiguous, little-endian,
  // aligned), else nullptr.
  const void* direct() const;
  void read_into(void* dst) const;  // writes nbytes() bytes: converted, gathered, contiguous
  Tensor load() const;              // a CPU tensor; borrows the checkpoint's memory when direct() (pth_tensor.cpp)
};

struct PthCheckpoint {
  std::string container;            // "zip", "legacy stream" or "tar"
  std::vector<PthTensor> tensors;   // in the checkpoint's order
  std::vector<std::string> notes;   // conversions, prefixes stripped, entries skipped
};

PthCheckpoint read_pth(const std::string& path);
PthCheckpoint read_pth(const Bytes& file, const std::string& label);  // label names it in errors

}  // namespace dfq
