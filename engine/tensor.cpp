// tensor.cpp — Tensor, Storage and the allocators; the views (reshape, narrow, select) and device
// copies, each recording its backward when its input requires grad.
#include "engine/tensor.h"

#include <malloc.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "engine/autograd.h"
#include "engine/dispatch.h"

namespace dfq {

int64_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::I64: return 8;
    case DType::U8: return 1;
  }
  return 0;
}
const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::I64: return "i64";
    case DType::U8: return "u8";
  }
  return "?";
}

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}
// Checked: a shape from a file or a flag can hold dimensions whose product overflows int64 (undefined
// behaviour; a product that wraps to a small number would describe more elements than the storage
// holds). The product with zeros taken as ones must fit too, so contiguous_strides never overflows.
int64_t numel_of(const Shape& s) {
  int64_t n = 1, bound = 1;
  for (int64_t d : s) {
    if (__builtin_mul_overflow(n, d, &n) || __builtin_mul_overflow(bound, d > 1 ? d : 1, &bound))
      throw std::length_error("dfq: shape " + shape_str(s) + " has more elements than int64 can count");
  }
  return n;
}
Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(shape.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= shape[i];
  }
  return st;
}

// ---- allocators -----------------------------------------------------------------------------
namespace {
struct CpuAllocator final : Allocator {
  // Training allocates and frees the same large activations every step. By default glibc serves
  // blocks over its (adaptive) mmap threshold with fresh mmaps and returns the heap top to the
  // system, so each step faults its memory in again, zeroed by the kernel: a GDFQ run on
  // Fashion-MNIST took 21.3M minor page faults and 96 s of system time (of 1445 s CPU). Serving
  // blocks up to 32 MB (glibc's maximum threshold) from the heap and keeping up to 1 GB of freed
  // heap makes the memory be reused instead. Process-wide, set once, before the first tensor.
  CpuAllocator() {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
  void* allocate(std::size_t bytes) override {
    if (bytes == 0) return nullptr;
    std::size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) throw std::runtime_error("dfq: out of host memory allocating " + std::to_string(bytes) + " bytes");
    return p;
  }
  void deallocate(void* p, std::size_t) override { std::free(p); }
  Device device() const override { return Device::CPU; }
};
struct CudaAllocator final : Allocator {
  void* allocate(std::size_t bytes) override { return bytes ? cuda::alloc(bytes) : nullptr; }
  void deallocate(void* p, std::size_t bytes) override {
    if (p) cuda::release(p, bytes);
  }
  Device device() const override { return Device::CUDA; }
};
}  // namespace

Allocator* allocator_for(Device d) {
  static CpuAllocator cpu_alloc;
  static CudaAllocator cuda_alloc;
  return d == Device::CPU ? static_cast<Allocator*>(&cpu_alloc) : static_cast<Allocator*>(&cuda_alloc);
}

Storage::Storage(std::size_t bytes, Device dev) : bytes_(bytes), device_(dev), alloc_(allocator_for(dev)) {
  data_ = alloc_->allocate(bytes);
}
Storage::Storage(void* data, std::size_t bytes, Device dev, std::shared_ptr<void> keep_alive)
    : data_(data), bytes_(bytes), device_(dev), keep_alive_(std::move(keep_alive)) {}
Storage::~Storage() {
  if (alloc_ && data_) alloc_->deallocate(data_, bytes_);
}

// ---- construction ---------------------------------------------------------------------------
namespace {
// Bytes of a contiguous `shape` of `dt`, checked like numel_of.
std::size_t nbytes_of(const Shape& shape, DType dt) {
  const int64_t n = numel_of(shape);
  if (n > INT64_MAX / dtype_size(dt))
    throw std::length_error("dfq: shape " + shape_str(shape) + " of " + dtype_name(dt) + " has more bytes than int64 can count");
  return static_cast<std::size_t>(n * dtype_size(dt));
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dt, Device dev) {
  for (int64_t d : shape)
    if (d < 0) throw std::invalid_argument("dfq: negative dimension in shape " + shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(nbytes_of(shape, dt), dev);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dt;
  impl->device = dev;
  return Tensor(impl);
}
Tensor Tensor::zeros(const Shape& shape, DType dt, Device dev) {
  Tensor t = empty(shape, dt, dev);
  if (dt == DType::F32) {
    t.fill_(0.f);
  } else if (dt == DType::I64) {
    DFQ_DISPATCH(dev, fill_i64, t.numel(), int64_t{0}, t.data<int64_t>());
  } else if (dev == Device::CPU) {
    std::memset(t.raw_data(), 0, t.numel());
  } else {
    std::vector<uint8_t> z(t.numel(), 0);
    cuda::copy_h2d(t.raw_data(), z.data(), z.size());
  }
  return t;
}
Tensor Tensor::ones(const Shape& shape, Device dev) { return full(shape, 1.f, dev); }
Tensor Tensor::full(const Shape& shape, float value, Device dev) {
  Tensor t = empty(shape, DType::F32, dev);
  t.fill_(value);
  return t;
}
namespace {
Tensor from_host(const void* src, std::size_t count, const Shape& shape, DType dt, Device dev) {
  if (static_cast<int64_t>(count) != numel_of(shape))
    throw std::invalid_argument("dfq: " + std::to_string(count) + " values do not fill shape " + shape_str(shape));
  Tensor t = Tensor::empty(shape, dt, dev);
  std::size_t bytes = count * dtype_size(dt);
  if (bytes == 0) return t;
  if (dev == Device::CPU)
    std::memcpy(t.raw_data(), src, bytes);
  else
    cuda::copy_h2d(t.raw_data(), src, bytes);
  return t;
}
}  // namespace
Tensor Tensor::from_vector(const std::vector<float>& v, const Shape& shape, Device dev) {
  return from_host(v.data(), v.size(), shape, DType::F32, dev);
}
Tensor Tensor::from_vector_i64(const std::vector<int64_t>& v, const Shape& shape, Device dev) {
  return from_host(v.data(), v.size(), shape, DType::I64, dev);
}
Tensor Tensor::from_vector_u8(const std::vector<uint8_t>& v, const Shape& shape, Device dev) {
  return from_host(v.data(), v.size(), shape, DType::U8, dev);
}
Tensor Tensor::borrow(void* data, const Shape& shape, DType dt, Device dev, std::shared_ptr<void> keep_alive) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(data, nbytes_of(shape, dt), dev, std::move(keep_alive));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dt;
  impl->device = dev;
  return Tensor(impl);
}

// ---- metadata -------------------------------------------------------------------------------
TensorImpl& Tensor::impl() const {
  if (!impl_) throw std::logic_error("dfq: use of an undefined Tensor");
  return *impl_;
}
int64_t Tensor::size(int64_t d) const {
  int64_t n = dim();
  if (d < 0) d += n;
  if (d < 0 || d >= n) throw std::out_of_range("dfq: dim " + std::to_string(d) + " out of range for " + str());
  return impl().shape[d];
}
bool Tensor::is_contiguous() const {
  const auto& s = impl().shape;
  const auto& st = impl().strides;
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(s.size()) - 1; i >= 0; --i) {
    if (s[i] != 1 && st[i] != acc) return false;
    acc *= s[i];
  }
  return true;
}
std::string Tensor::str() const {
  if (!impl_) return "undefined";
  return std::string(dtype_name(dtype())) + shape_str(shape()) + " " + device_name(device());
}
void* Tensor::raw_data() const {
  auto& im = impl();
  if (!im.storage->data()) return nullptr;
  return static_cast<char*>(im.storage->data()) + im.offset * dtype_size(im.dtype);
}
template <class T>
T* Tensor::data() const {
  constexpr DType want = std::is_same_v<T, float> ? DType::F32 : std::is_same_v<T, int64_t> ? DType::I64 : DType::U8;
  if (dtype() != want)
    throw std::invalid_argument(std::string("dfq: tensor is ") + dtype_name(dtype()) + ", accessed as " + dtype_name(want));
  return static_cast<T*>(raw_data());
}
template float* Tensor::data<float>() const;
template int64_t* Tensor::data<int64_t>() const;
template uint8_t* Tensor::data<uint8_t>() const;

// ---- views ----------------------------------------------------------------------------------
namespace {
Tensor alias(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.impl().storage;
  impl->offset = offset;
  impl->shape = shape;
  impl->strides = strides;
  impl->dtype = t.dtype();
  impl->device = t.device();
  return Tensor(impl);
}
Shape infer_shape(const Shape& want, int64_t numel, const Tensor& t) {
  Shape s = want;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      if (infer >= 0) throw std::invalid_argument("dfq: reshape with more than one -1");
      infer = static_cast<int64_t>(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0 && known > 0) s[infer] = numel / known;
  if (numel_of(s) != numel)
    throw std::invalid_argument("dfq: cannot reshape " + t.str() + " to " + shape_str(want));
  return s;
}
}  // namespace

Tensor Tensor::view(const Shape& shape) const {
  if (!is_contiguous()) throw std::invalid_argument("dfq: view of non-contiguous " + str());
  Shape s = infer_shape(shape, numel(), *this);
  Tensor out = alias(*this, s, contiguous_strides(s), offset());
  Shape in_shape = this->shape();
  return record(out, "view", {*this}, [in_shape](const Tensor& g) {
    return std::vector<Tensor>{g.contiguous().view(in_shape)};
  });
}
Tensor Tensor::reshape(const Shape& shape) const {
  return is_contiguous() ? view(shape) : contiguous().view(shape);
}
Tensor Tensor::flatten(int64_t start_dim) const {
  Shape s(shape().begin(), shape().begin() + start_dim);
  s.push_back(-1);
  if (numel() == 0) s.back() = 0;
  return reshape(s);
}
Tensor Tensor::narrow(int64_t start, int64_t length) const {
  if (dim() < 1 || start < 0 || length < 0 || start + length > shape()[0])
    throw std::out_of_range("dfq: narrow(" + std::to_string(start) + ", " + std::to_string(length) + ") of " + str());
  Shape s = shape();
  s[0] = length;
  Tensor out = alias(*this, s, strides(), offset() + start * strides()[0]);
  Shape full = shape();
  return record(out, "narrow", {*this}, [full, start](const Tensor& g) {
    Tensor gx = Tensor::zeros(full, DType::F32, g.device());
    Tensor gc = g.contiguous();
    int64_t inner = g.numel() / std::max<int64_t>(1, g.shape()[0]);
    DFQ_DISPATCH(g.device(), block_copy, 1, gc.numel(), gc.data<float>(), 0, 0, gx.data<float>(), 0, start * inner);
    return std::vector<Tensor>{gx};
  });
}
Tensor Tensor::select(int64_t index) const {
  Tensor n = narrow(index, 1);
  Shape s(shape().begin() + 1, shape().end());
  return n.reshape(s);
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  if (requires_grad() && grad_enabled())
    throw std::logic_error("dfq: contiguous() of a non-contiguous tensor that requires grad is not supported");
  Tensor out = empty(shape(), dtype(), device());
  StridedArgs a{};
  a.ndim = static_cast<int>(dim());
  if (a.ndim > kMaxDims) throw std::invalid_argument("dfq: more than 6 dims in " + str());
  for (int i = 0; i < a.ndim; ++i) {
    a.shape[i] = shape()[i];
    a.stride[i] = strides()[i];
  }
  switch (dtype()) {
    case DType::F32: DFQ_DISPATCH(device(), strided_copy, a, data<float>(), out.data<float>()); break;
    case DType::I64: DFQ_DISPATCH(device(), strided_copy_i64, a, data<int64_t>(), out.data<int64_t>()); break;
    case DType::U8: DFQ_DISPATCH(device(), strided_copy_u8, a, data<uint8_t>(), out.data<uint8_t>()); break;
  }
  return out;
}
Tensor Tensor::clone() const {
  Tensor src = contiguous();
  Tensor out = empty(shape(), dtype(), device());
  std::size_t bytes = numel() * dtype_size(dtype());
  if (bytes) {
    if (device() == Device::CPU)
      std::memcpy(out.raw_data(), src.raw_data(), bytes);
    else
      cuda::copy_d2d(out.raw_data(), src.raw_data(), bytes);
  }
  if (dtype() != DType::F32) return out;
  return record(out, "clone", {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}
Tensor Tensor::to(Device d) const {
  if (device() == d) return *this;
  Tensor src = contiguous();
  Tensor out = empty(shape(), dtype(), d);
  std::size_t bytes = numel() * dtype_size(dtype());
  if (bytes) {
    if (d == Device::CUDA)
      cuda::copy_h2d(out.raw_data(), src.raw_data(), bytes);
    else
      cuda::copy_d2h(out.raw_data(), src.raw_data(), bytes);
  }
  if (dtype() != DType::F32) return out;
  Device from = device();
  return record(out, "to", {*this}, [from](const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
}
Tensor Tensor::detach() const {
  Tensor out = alias(*this, shape(), strides(), offset());
  out.impl().name = impl().name;
  return out;
}

template <class T>
static std::vector<T> host_values(const Tensor& t) {
  Tensor c = t.contiguous();
  std::vector<T> v(c.numel());
  if (v.empty()) return v;
  if (c.device() == Device::CPU)
    std::memcpy(v.data(), c.raw_data(), v.size() * sizeof(T));
  else
    cuda::copy_d2h(v.data(), c.raw_data(), v.size() * sizeof(T));
  return v;
}
std::vector<float> Tensor::to_vector() const {
  (void)data<float>();
  return host_values<float>(*this);
}
std::vector<int64_t> Tensor::to_vector_i64() const {
  (void)data<int64_t>();
  return host_values<int64_t>(*this);
}
std::vector<uint8_t> Tensor::to_vector_u8() const {
  (void)data<uint8_t>();
  return host_values<uint8_t>(*this);
}
float Tensor::item() const {
  if (numel() != 1) throw std::invalid_argument("dfq: item() of " + str() + " (needs one element)");
  return to_vector()[0];
}

// ---- in place -------------------------------------------------------------------------------
void Tensor::copy_(const Tensor& src) {
  if (src.shape() != shape() || src.dtype() != dtype())
    throw std::invalid_argument("dfq: copy_ from " + src.str() + " into " + str());
  if (!is_contiguous()) throw std::invalid_argument("dfq: copy_ into non-contiguous " + str());
  Tensor s = src.contiguous();
  std::size_t bytes = numel() * dtype_size(dtype());
  if (!bytes) return;
  if (device() == Device::CPU && s.device() == Device::CPU)
    std::memcpy(raw_data(), s.raw_data(), bytes);
  else if (device() == Device::CUDA && s.device() == Device::CUDA)
    cuda::copy_d2d(raw_data(), s.raw_data(), bytes);
  else if (device() == Device::CUDA)
    cuda::copy_h2d(raw_data(), s.raw_data(), bytes);
  else
    cuda::copy_d2h(raw_data(), s.raw_data(), bytes);
}
void Tensor::fill_(float v) {
  if (!is_contiguous()) throw std::invalid_argument("dfq: fill_ of non-contiguous " + str());
  DFQ_DISPATCH(device(), fill, numel(), v, data<float>());
}
void Tensor::zero_() { fill_(0.f); }

// ---- autograd accessors -----------------------------------------------------------------------
Tensor& Tensor::set_requires_grad(bool r) {
  if (r && dtype() != DType::F32) throw std::invalid_argument("dfq: only float tensors can require grad");
  impl().requires_grad = r;
  return *this;
}
Tensor Tensor::grad() const { return impl().grad ? Tensor(impl().grad) : Tensor(); }
void Tensor::set_grad(const Tensor& g) { impl().grad = g.defined() ? g.impl_ptr() : nullptr; }
void Tensor::zero_grad() { impl().grad = nullptr; }

}  // namespace dfq
