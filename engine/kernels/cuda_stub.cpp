// cuda_stub.cpp — compiled only when the CUDA backend is not built: every dfq::cuda kernel throws
// "not implemented on CUDA", so asking for CUDA never falls back to the CPU quietly.
#include <stdexcept>
#include <string>

#include "engine/kernels/kernels.h"

namespace dfq::cuda {
#define DFQ_KERNEL(name, params) \
  void name params { throw std::runtime_error("dfq: " #name " not implemented on CUDA (CUDA backend not built)"); }
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "engine/kernels/kernel_list.inc"
#pragma GCC diagnostic pop
#undef DFQ_KERNEL
}  // namespace dfq::cuda
