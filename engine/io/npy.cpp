// npy.cpp — .npy reader and writer (see npy.h). Every malformed file gets one message naming the
// file and what is wrong with it.
#include "engine/io/npy.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace dfq {

namespace {
[[noreturn]] void bad(const std::string& path, const std::string& why) {
  throw std::runtime_error("dfq: " + path + ": not a valid .npy file: " + why);
}
std::string dict_value(const std::string& header, const std::string& key) {
  size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) return "";
  size_t colon = header.find(':', k);
  if (colon == std::string::npos) return "";
  size_t start = header.find_first_not_of(' ', colon + 1);
  if (start == std::string::npos) return "";
  char open = header[start];
  size_t end;
  if (open == '\'') end = header.find('\'', start + 1) + 1;
  else if (open == '(') end = header.find(')', start) + 1;
  else end = header.find_first_of(",}", start);
  if (end == std::string::npos || end == 0) return "";
  return header.substr(start, end - start);
}
}  // namespace

Tensor load_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("dfq: cannot open " + path);
  char magic[8];
  if (!f.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) bad(path, "bad magic");
  uint32_t hlen = 0;
  if (magic[6] == 1) {
    unsigned char b[2];
    if (!f.read(reinterpret_cast<char*>(b), 2)) bad(path, "truncated header");
    hlen = b[0] | (b[1] << 8);
  } else if (magic[6] == 2 || magic[6] == 3) {
    unsigned char b[4];
    if (!f.read(reinterpret_cast<char*>(b), 4)) bad(path, "truncated header");
    hlen = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  } else {
    bad(path, "unsupported version " + std::to_string(int(magic[6])));
  }
  if (hlen > (1u << 20)) bad(path, "header too large");
  std::string header(hlen, '\0');
  if (!f.read(header.data(), hlen)) bad(path, "truncated header");
  std::string descr = dict_value(header, "descr"), order = dict_value(header, "fortran_order"),
              shape_s = dict_value(header, "shape");
  if (descr.empty() || order.empty() || shape_s.empty()) bad(path, "header lacks descr/fortran_order/shape");
  if (order != "False") bad(path, "Fortran order is not supported");
  Shape shape;
  for (size_t i = 1; i < shape_s.size();) {
    size_t j = shape_s.find_first_of(",)", i);
    std::string tok = shape_s.substr(i, j - i);
    size_t a = tok.find_first_not_of(' ');
    if (a != std::string::npos) {
      try {
        shape.push_back(std::stoll(tok.substr(a)));
      } catch (...) {
        bad(path, "bad shape " + shape_s);
      }
      if (shape.back() < 0) bad(path, "negative dimension");
    }
    if (j == std::string::npos || shape_s[j] == ')') break;
    i = j + 1;
  }
  DType dt;
  bool f64 = false;
  if (descr == "'<f4'") dt = DType::F32;
  else if (descr == "'<f8'") { dt = DType::F32; f64 = true; }
  else if (descr == "'<i8'") dt = DType::I64;
  else if (descr == "'|u1'" || descr == "'<u1'") dt = DType::U8;
  else bad(path, "unsupported dtype " + descr);
  int64_t n = 0;
  try {
    n = numel_of(shape);  // throws when the product overflows (it could wrap to a small size)
  } catch (const std::length_error&) {
    bad(path, "absurd size " + shape_s);
  }
  if (n > (int64_t{1} << 34)) bad(path, "absurd size " + shape_s);
  Tensor t = Tensor::empty(shape, dt);
  if (f64) {
    std::vector<double> tmp(n);
    if (!f.read(reinterpret_cast<char*>(tmp.data()), n * 8)) bad(path, "truncated data");
    float* p = t.data<float>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(tmp[i]);
  } else if (n > 0 && !f.read(static_cast<char*>(t.raw_data()), n * dtype_size(dt))) {
    bad(path, "truncated data");
  }
  return t;
}

void save_npy(const std::string& path, const Tensor& t_in) {
  Tensor t = t_in.contiguous().cpu();
  const char* descr = t.dtype() == DType::F32 ? "<f4" : t.dtype() == DType::I64 ? "<i8" : "|u1";
  std::string shape = "(";
  for (size_t i = 0; i < t.shape().size(); ++i) shape += std::to_string(t.shape()[i]) + (t.shape().size() == 1 ? "," : (i + 1 < t.shape().size() ? ", " : ""));
  shape += ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error("dfq: cannot write " + tmp);
    f.write("\x93NUMPY\x01\x00", 8);
    unsigned char len[2] = {static_cast<unsigned char>(header.size() & 0xff), static_cast<unsigned char>(header.size() >> 8)};
    f.write(reinterpret_cast<char*>(len), 2);
    f.write(header.data(), header.size());
    if (t.numel()) f.write(static_cast<const char*>(t.raw_data()), t.numel() * dtype_size(t.dtype()));
    f.close();  // flushes: a full disk shows here, not in the destructor
    if (f.fail()) {
      std::remove(tmp.c_str());
      throw std::runtime_error("dfq: cannot write " + path + " (disk full or not writable)");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error("dfq: cannot rename " + tmp + " to " + path);
  }
}

}  // namespace dfq
