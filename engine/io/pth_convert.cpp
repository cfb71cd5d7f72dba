// pth_convert.cpp — PthTensor's data path (pth.h): used in place when possible, else gathered
// along its strides, byte-swapped for big-endian files, and converted float16 / bfloat16 /
// float64 -> float32. No engine Tensor here (the fuzz target builds it without the engine core).
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "engine/io/pth.h"

namespace dfq {

using pickle::ElemType;

namespace {

bool is_contiguous(const Shape& shape, const Shape& stride) {
  int64_t expect = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    if (shape[d] != 1 && stride[d] != expect) return false;
    expect *= shape[d];
  }
  return true;
}

uint64_t load_bits(const uint8_t* p, int es, bool big) {
  uint64_t u = 0;
  for (int k = 0; k < es; ++k) u |= uint64_t(p[big ? es - 1 - k : k]) << (8 * k);
  return u;
}

float half_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, f;
  if (exp == 0) {
    float v = std::ldexp(static_cast<float>(mant), -24);  // zero or subnormal
    return sign ? -v : v;
  }
  if (exp == 31) f = sign | 0x7f800000u | (mant << 13);
  else f = sign | ((exp + 112) << 23) | (mant << 13);
  float v;
  std::memcpy(&v, &f, 4);
  return v;
}

// count elements from src (stored type) to dst (converted type), contiguous on both sides.
void convert_run(const uint8_t* src, uint8_t* dst, int64_t count, ElemType t, bool big) {
  const int es = pickle::elem_size(t);
  if (!big && (t == ElemType::F32 || t == ElemType::I64 || t == ElemType::U8)) {
    std::memcpy(dst, src, static_cast<size_t>(count) * es);
    return;
  }
  for (int64_t k = 0; k < count; ++k, src += es) {
    uint64_t u = load_bits(src, es, big);
    switch (t) {
      case ElemType::F32: case ElemType::I64: case ElemType::U8:
        std::memcpy(dst, &u, es);  // little-endian host
        dst += es;
        continue;
      case ElemType::F64: {
        double x;
        std::memcpy(&x, &u, 8);
        float v = static_cast<float>(x);
        std::memcpy(dst, &v, 4);
        break;
      }
      case ElemType::F16: {
        float v = half_to_float(static_cast<uint16_t>(u));
        std::memcpy(dst, &v, 4);
        break;
      }
      case ElemType::BF16: {
        uint32_t b = static_cast<uint32_t>(u) << 16;
        std::memcpy(dst, &b, 4);
        break;
      }
      default: throw std::logic_error("dfq: convert_run: unsupported type");
    }
    dst += 4;
  }
}

}  // namespace

size_t PthTensor::nbytes() const {
  return static_cast<size_t>(numel()) * (dtype == DType::F32 ? 4 : dtype == DType::I64 ? 8 : 1);
}
bool PthTensor::converted() const {
  return src_type == ElemType::F64 || src_type == ElemType::F16 || src_type == ElemType::BF16;
}
const void* PthTensor::direct() const {
  if (converted() || storage->big_endian || !is_contiguous(shape, stride)) return nullptr;
  const uint8_t* p = storage->bytes.data + offset * pickle::elem_size(src_type);
  if (reinterpret_cast<uintptr_t>(p) % pickle::elem_size(src_type)) return nullptr;
  return p;
}
void PthTensor::read_into(void* dst_v) const {
  const int64_t n = numel();
  if (n == 0) return;
  const int es = pickle::elem_size(src_type), os = converted() ? 4 : es;
  const uint8_t* base = storage->bytes.data;
  uint8_t* dst = static_cast<uint8_t*>(dst_v);
  if (is_contiguous(shape, stride)) {
    convert_run(base + offset * es, dst, n, src_type, storage->big_endian);
    return;
  }
  // gather: walk the output in C order, the source by strides (odometer)
  std::vector<int64_t> idx(shape.size(), 0);
  int64_t src = offset;
  for (int64_t k = 0; k < n; ++k) {
    convert_run(base + src * es, dst + k * os, 1, src_type, storage->big_endian);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) {
        src += stride[d];
        break;
      }
      src -= (shape[d] - 1) * stride[d];
      idx[d] = 0;
    }
  }
}

}  // namespace dfq
