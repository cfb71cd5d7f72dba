// tensor.h — the engine's Tensor: dtype (float32 / int64 / uint8), shape and strides, a storage
// offset, a device tag, and autograd state (requires_grad, grad, grad_fn).
//
// Rules:
//  - A Tensor is a cheap handle (shared_ptr to TensorImpl); copies alias. Views (reshape of a
//    contiguous tensor, flatten, narrow along dim 0, select along dim 0) share storage.
//  - Storage memory comes from an Allocator (CPU: 64-byte aligned; CUDA: the caching allocator),
//    or is borrowed (memory-mapped weights) with a keep-alive handle.
//  - Kernels see only raw pointers: data<T>() is the first element (storage + offset).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"

namespace dfq {

enum class DType : int { F32 = 0, I64 = 1, U8 = 2 };
int64_t dtype_size(DType t);
const char* dtype_name(DType t);

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t numel_of(const Shape& s);

// Allocation on one device. The CPU allocator is 64-byte aligned; the CUDA one caches blocks.
struct Allocator {
  virtual ~Allocator() = default;
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* p, std::size_t bytes) = 0;
  virtual Device device() const = 0;
};
Allocator* allocator_for(Device d);

// A block of memory on one device. Either owned (from an Allocator) or borrowed (keep_alive holds
// whatever keeps the memory valid, e.g. a memory mapping).
class Storage {
 public:
  Storage(std::size_t bytes, Device dev);                                         // owned
  Storage(void* data, std::size_t bytes, Device dev, std::shared_ptr<void> keep_alive);  // borrowed
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  Device device_ = Device::CPU;
  Allocator* alloc_ = nullptr;
  std::shared_ptr<void> keep_alive_;
};

class Tensor;
struct Node;  // autograd node, see autograd.h

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape, strides;
  DType dtype = DType::F32;
  Device device = Device::CPU;
  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient (leaf, or retain_grad)
  std::shared_ptr<Node> grad_fn;     // the op that produced this tensor (non-leaf)
  bool retain_grad = false;
  std::string name;  // optional, for error messages and parameter lists
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- construction ----
  static Tensor empty(const Shape& shape, DType dt = DType::F32, Device dev = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dt = DType::F32, Device dev = Device::CPU);
  static Tensor ones(const Shape& shape, Device dev = Device::CPU);
  static Tensor full(const Shape& shape, float value, Device dev = Device::CPU);
  static Tensor from_vector(const std::vector<float>& v, const Shape& shape, Device dev = Device::CPU);
  static Tensor from_vector_i64(const std::vector<int64_t>& v, const Shape& shape, Device dev = Device::CPU);
  static Tensor from_vector_u8(const std::vector<uint8_t>& v, const Shape& shape, Device dev = Device::CPU);
  // Wraps external memory (e.g. mmap'ed weights) without copying; keep_alive owns the mapping.
  static Tensor borrow(void* data, const Shape& shape, DType dt, Device dev, std::shared_ptr<void> keep_alive);

  // ---- metadata ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return numel_of(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().device; }
  bool is_cuda() const { return device() == Device::CUDA; }
  bool is_contiguous() const;
  int64_t offset() const { return impl().offset; }
  const std::string& name() const { return impl().name; }
  Tensor& set_name(std::string n) { impl().name = std::move(n); return *this; }
  std::string str() const;  // "f32[2, 3] cpu"

  // ---- raw access (first element; the tensor must be of that dtype) ----
  template <class T> T* data() const;
  void* raw_data() const;

  // ---- views and copies ----
  Tensor reshape(const Shape& shape) const;    // a view if contiguous, else a copy; one dim may be -1
  Tensor view(const Shape& shape) const;       // a view; throws if not contiguous
  Tensor flatten(int64_t start_dim = 1) const; // (N, ...) -> (N, rest)
  Tensor narrow(int64_t start, int64_t length) const;  // along dim 0, a view
  Tensor select(int64_t index) const;          // along dim 0, drops the dim, a view
  Tensor contiguous() const;                   // self if already contiguous
  Tensor clone() const;                        // a contiguous copy (differentiable)
  Tensor to(Device d) const;                   // a copy on d (differentiable), self if already there
  Tensor cpu() const { return to(Device::CPU); }
  Tensor cuda() const { return to(Device::CUDA); }
  Tensor detach() const;                       // shares storage, no autograd history
  // Host copies of the values (synchronises on CUDA).
  std::vector<float> to_vector() const;
  std::vector<int64_t> to_vector_i64() const;
  std::vector<uint8_t> to_vector_u8() const;
  float item() const;  // the value of a one-element float tensor

  // In-place (no autograd; used by optimizers, initialisers and loaders)
  void copy_(const Tensor& src);  // same shape; any devices
  void fill_(float v);
  void zero_();

  // ---- autograd ----
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool r);
  Tensor grad() const;                     // undefined Tensor if none yet
  void set_grad(const Tensor& g);
  void zero_grad();                        // drops the gradient (like set_to_none=True)
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  void retain_grad() { impl().retain_grad = true; }
  // Reverse-mode: d(this)/d(leaves). this must be a one-element tensor unless grad_output given.
  void backward(const Tensor& grad_output = Tensor()) const;

  TensorImpl& impl() const;
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Contiguous strides for a shape.
Shape contiguous_strides(const Shape& shape);

}  // namespace dfq
