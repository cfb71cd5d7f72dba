// device.h — where a tensor lives (CPU or CUDA) and the small runtime surface the engine core needs
// from the CUDA backend. When CUDA is not built, device_stub.cpp defines these: available() is
// false and everything else throws "CUDA backend not built".
#pragma once
#include <cstddef>
#include <string>

namespace dfq {

enum class Device : int { CPU = 0, CUDA = 1 };
inline const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

namespace cuda {
// True when the CUDA backend is built AND a GPU is usable. Any runtime error counts as "no GPU".
bool available();
// True when the CUDA backend was compiled in (a GPU may still be absent).
bool built();
// A line describing the device ("NVIDIA H100 80GB HBM3, sm_90, 80 GiB") or why there is none.
std::string describe();
// Caching device allocator: blocks are kept for reuse, never cudaFree'd per op.
void* alloc(std::size_t bytes);
void release(void* p, std::size_t bytes);
void empty_cache();
std::size_t bytes_in_use();
// Copies on the engine stream; d2h synchronises the stream before returning.
void copy_h2d(void* dst, const void* src, std::size_t bytes);
void copy_d2h(void* dst, const void* src, std::size_t bytes);
void copy_d2d(void* dst, const void* src, std::size_t bytes);
void synchronize();
// TF32 tensor-core math in cuBLAS / cuDNN: off by default (quantization ranges are sensitive).
void set_tf32(bool on);
bool tf32();
// cuDNN convolution algorithms: by heuristics (default; the same choice every run) or measured
// once per shape with cudnnFind* (faster; like torch.backends.cudnn.benchmark). Set before use:
// a shape's choice is cached with the first call.
void set_conv_benchmark(bool on);
bool conv_benchmark();
// Pinned host memory for loaders.
void* alloc_pinned(std::size_t bytes);
void free_pinned(void* p);
}  // namespace cuda
}  // namespace dfq
