// check.h — error checking for every CUDA runtime, cuBLAS and cuDNN call of the CUDA backend.
// Rules: wrap every call; a failure throws std::runtime_error naming the call text, file, line and
// the library's error string. DFQ_LAUNCH_CHECK() follows every kernel launch (it reports launch
// configuration errors; faults inside a kernel surface at the next synchronising call).
// DFQ_CUDNN_CHECK needs <cudnn.h> included first (only the convolution TU does that).
#pragma once
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace dfq::cuda::detail {
[[noreturn]] inline void throw_error(const char* lib, const char* call, const char* file, int line,
                                     const std::string& what) {
  throw std::runtime_error(std::string("dfq: ") + lib + " error in " + call + " at " + file + ":" +
                           std::to_string(line) + ": " + what);
}
const char* cublas_status_string(int status);  // defined in engine/cuda/runtime.cpp
}  // namespace dfq::cuda::detail

#define DFQ_CUDA_CHECK(call)                                                                         \
  do {                                                                                               \
    cudaError_t dfq_err_ = (call);                                                                   \
    if (dfq_err_ != cudaSuccess)                                                                     \
      ::dfq::cuda::detail::throw_error("CUDA", #call, __FILE__, __LINE__,                            \
                                       std::string(cudaGetErrorName(dfq_err_)) + " (" +              \
                                           cudaGetErrorString(dfq_err_) + ")");                      \
  } while (0)

#define DFQ_CUBLAS_CHECK(call)                                                                       \
  do {                                                                                               \
    int dfq_st_ = static_cast<int>(call);                                                            \
    if (dfq_st_ != 0)                                                                                \
      ::dfq::cuda::detail::throw_error("cuBLAS", #call, __FILE__, __LINE__,                          \
                                       ::dfq::cuda::detail::cublas_status_string(dfq_st_));          \
  } while (0)

#define DFQ_CUDNN_CHECK(call)                                                                        \
  do {                                                                                               \
    cudnnStatus_t dfq_st_ = (call);                                                                  \
    if (dfq_st_ != CUDNN_STATUS_SUCCESS)                                                             \
      ::dfq::cuda::detail::throw_error("cuDNN", #call, __FILE__, __LINE__, cudnnGetErrorString(dfq_st_)); \
  } while (0)

// After every kernel launch: configuration / launch errors of the launch just made.
#define DFQ_LAUNCH_CHECK() DFQ_CUDA_CHECK(cudaGetLastError())
