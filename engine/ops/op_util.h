// op_util.h — argument checks shared by the op files: each throws one message naming the op and
// the offending tensor.
#pragma once
#include <stdexcept>
#include <string>

#include "engine/tensor.h"

namespace dfq {

inline void check_float(const Tensor& t, const char* op) {
  if (!t.defined()) throw std::invalid_argument(std::string("dfq: ") + op + ": undefined input tensor");
  if (t.dtype() != DType::F32)
    throw std::invalid_argument(std::string("dfq: ") + op + ": expected a float32 tensor, got " + t.str());
}
inline void check_i64(const Tensor& t, const char* op) {
  if (!t.defined() || t.dtype() != DType::I64)
    throw std::invalid_argument(std::string("dfq: ") + op + ": expected an int64 tensor, got " + t.str());
}
inline void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  if (a.defined() && b.defined() && a.device() != b.device())
    throw std::invalid_argument(std::string("dfq: ") + op + ": tensors on different devices: " + a.str() + " and " + b.str());
}
inline void check_dim(const Tensor& t, int64_t d, const char* op) {
  if (t.dim() != d)
    throw std::invalid_argument(std::string("dfq: ") + op + ": expected a " + std::to_string(d) + "-d tensor, got " + t.str());
}
inline int64_t norm_dim(int64_t d, int64_t ndim, const char* op) {
  if (d < 0) d += ndim;
  if (d < 0 || d >= ndim)
    throw std::out_of_range(std::string("dfq: ") + op + ": dim out of range");
  return d;
}
// An optional tensor as a raw float pointer (nullptr when undefined).
inline float* opt_ptr(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

}  // namespace dfq
