// dispatch.h — calls the CPU or the CUDA twin of a kernel by the tensor's device. There is no
// fallback: on a build without CUDA the cuda:: kernels throw "not implemented on CUDA".
#pragma once
#include "engine/kernels/kernels.h"

#define DFQ_DISPATCH(dev, fn, ...)                  \
  do {                                              \
    if ((dev) == ::dfq::Device::CPU)                \
      ::dfq::cpu::fn(__VA_ARGS__);                  \
    else                                            \
      ::dfq::cuda::fn(__VA_ARGS__);                 \
  } while (0)
