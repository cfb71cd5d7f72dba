// context.h — internal surface of the CUDA backend, shared by engine/cuda/ and engine/kernels/cuda/
// only (the engine core sees engine/device.h). What it holds:
//  - stream(): the one engine stream (non-blocking, created lazily). Every kernel, cuBLAS call,
//    cuDNN call and copy of the engine runs on it, so the caching allocator may hand a released
//    block to the next request without any synchronisation (stream order protects it).
//  - cublas(): the cuBLAS handle bound to stream(), math mode following tf32().
//  - DeviceBuffer: a move-only scratch block from the caching allocator (workspaces, partials).
//  - launch helpers for the grid-stride kernels.
// The cuDNN handle is not here: one translation unit (engine/kernels/cuda/conv.cu) owns cuDNN.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "engine/device.h"

namespace dfq::cuda {

cudaStream_t stream();
cublasHandle_t cublas();
int sm_count();
int cudnn_version();  // defined by the cuDNN TU (engine/kernels/cuda/conv.cu)

// Scratch device memory from the caching allocator; released (stream-ordered) on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes), p_(bytes ? alloc(bytes) : nullptr) {}
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : bytes_(o.bytes_), p_(o.p_) { o.p_ = nullptr; o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      bytes_ = o.bytes_;
      p_ = o.p_;
      o.p_ = nullptr;
      o.bytes_ = 0;
    }
    return *this;
  }
  ~DeviceBuffer() { reset(); }
  void* get() const { return p_; }
  template <typename T>
  T* as() const { return static_cast<T*>(p_); }
  std::size_t bytes() const { return bytes_; }

 private:
  void reset() noexcept {
    if (p_) release(p_, bytes_);  // release() never throws
    p_ = nullptr;
    bytes_ = 0;
  }
  std::size_t bytes_ = 0;
  void* p_ = nullptr;
};

// Grid for a grid-stride loop over n items with `threads` per block (n > 0).
inline unsigned grid_for(int64_t n, int threads = 256) {
  int64_t b = (n + threads - 1) / threads;
  const int64_t cap = int64_t(sm_count()) * 32;  // enough to fill the GPU; the loop does the rest
  if (b > cap) b = cap;
  return static_cast<unsigned>(b < 1 ? 1 : b);
}

}  // namespace dfq::cuda
