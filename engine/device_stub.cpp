// device_stub.cpp — the CUDA runtime surface when the CUDA backend is not built: no GPU is ever
// available, and anything that would need one throws instead of falling back to the CPU.
#include <stdexcept>

#include "engine/device.h"

namespace dfq::cuda {
namespace {
[[noreturn]] void not_built(const char* what) {
  throw std::runtime_error(std::string("dfq: ") + what + ": CUDA backend not built (configure with nvcc, cuBLAS and cuDNN present)");
}
}  // namespace
bool available() { return false; }
bool built() { return false; }
std::string describe() { return "CUDA backend not built"; }
void* alloc(std::size_t) { not_built("cuda::alloc"); }
void release(void*, std::size_t) { not_built("cuda::release"); }
void empty_cache() {}
std::size_t bytes_in_use() { return 0; }
void copy_h2d(void*, const void*, std::size_t) { not_built("cuda::copy_h2d"); }
void copy_d2h(void*, const void*, std::size_t) { not_built("cuda::copy_d2h"); }
void copy_d2d(void*, const void*, std::size_t) { not_built("cuda::copy_d2d"); }
void synchronize() {}
void set_tf32(bool) {}
bool tf32() { return false; }
void set_conv_benchmark(bool) {}
bool conv_benchmark() { return false; }
void* alloc_pinned(std::size_t) { not_built("cuda::alloc_pinned"); }
void free_pinned(void*) {}
}  // namespace dfq::cuda
