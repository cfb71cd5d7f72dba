// dispatch.h — calls the CPU or the CUDA twin of a kernel by the tensor's device. There is no
// fallback: on a build without CUDA the cuda:: kernels throw "not implemented on CUDA".
#pragma once
#include "engine/kernels/kernels.h"
#include "engine/profile.h"

// CPU calls are timed under DFQ_PROFILE=1 (profile.h).
#define DFQ_DISPATCH(dev, fn, ...)                  \
  do {                                              \
    if ((dev) == ::dfq::Device::CPU) {              \
      ::dfq::profile::Scope dfq_prof_(#fn);         \
      ::dfq::cpu::fn(__VA_ARGS__);                  \
    } else {                                        \
      ::dfq::cuda::fn(__VA_ARGS__);                 \
    }                                               \
  } while (0)
