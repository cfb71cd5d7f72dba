// pth_tensor.cpp — PthTensor::load (pth.h): the one part of the checkpoint reader that makes engine
// Tensors (kept apart so the fuzz target can build the reader without the engine core).
#include "engine/io/pth.h"

namespace dfq {

Tensor PthTensor::load() const {
  if (const void* p = direct()) {
    // keep the storage (and through it the mapping or inflated buffer) alive as long as the tensor
    std::shared_ptr<void> keep = std::const_pointer_cast<PthStorage>(storage);
    return Tensor::borrow(const_cast<void*>(p), shape, dtype, Device::CPU, std::move(keep));
  }
  Tensor t = Tensor::empty(shape, dtype);
  read_into(t.raw_data());
  return t;
}

}  // namespace dfq
