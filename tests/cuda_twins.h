// cuda_twins.h — the harness of the CUDA twin tests: the CUDA backend against the CPU reference, one
// table of op cases (in the manner of ggml's test-backend-ops). Each row names a kernel (forward or
// backward), its shapes and parameters, and a tolerance; the runner makes fresh deterministic random
// inputs, runs the dfq::cpu kernel on host buffers and the dfq::cuda kernel on device buffers that
// carry 256-byte guard regions before and after, then checks that the guards and the inputs are
// untouched and that every output matches (dfq::test::check_close for floats, exact for integers).
// Device outputs start as NaN (0xFF bytes for integer outputs), so an element the GPU fails to
// write, or reads before writing, shows. Rows live in groups, one TEST_CASE per group, so a subset
// can run alone (e.g. under compute-sanitizer: -tc="*conv*").
// The rows come from the add_*_rows functions declared at the bottom, each defined in one .cpp:
// tests/test_cuda_twins.cpp (memory, elementwise, reduce, gemm, conv, pool, norm) and
// tests/test_cuda_twins_loss_optim_quant.cpp (loss, optim, quant). build_table() calls every one
// once, so the whole table exists whichever test runs first. Two .cpp files include this header:
// its functions are inline and the table is a function-local static (one table for the binary).
// Tolerances: element-wise 1e-5 relative; reductions / GEMM / conv 1e-4 relative with an absolute
// part that grows with sqrt(terms summed), because the output magnitude does (TF32 is off).
// Everything that uses it is in TEST_SUITE("cuda"), which tests/main.cpp excludes when there is no GPU.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/kernels/kernels.h"
#include "tests/check.h"

namespace dfq::twins {

// The kernels of one backend as static members, so a generic lambda can call either.
struct CpuK {
#define DFQ_KERNEL(name, params) static constexpr auto name = &dfq::cpu::name;
#include "engine/kernels/kernel_list.inc"
#undef DFQ_KERNEL
};
struct CudaK {
#define DFQ_KERNEL(name, params) static constexpr auto name = &dfq::cuda::name;
#include "engine/kernels/kernel_list.inc"
#undef DFQ_KERNEL
};

enum class DType { F32, I64, I32, U8 };
enum class Role { In, Out, InOut };
enum class Init { Uniform, Away, ProbsZero, Ints, Zero };

struct BufSpec {
  std::string name;
  DType type;
  int64_t n;
  Role role;
  Init init;
  double lo, hi;
};

inline size_t elem_size(DType t) { return t == DType::F32 || t == DType::I32 ? 4 : t == DType::I64 ? 8 : 1; }

inline BufSpec in_f(const char* name, int64_t n, double lo = -1, double hi = 1) { return {name, DType::F32, n, Role::In, Init::Uniform, lo, hi}; }
inline BufSpec in_pos(const char* name, int64_t n) { return {name, DType::F32, n, Role::In, Init::Uniform, 0.5, 2.0}; }
// |x| in [0.1, 1), random sign: away from the kinks of relu / abs / leaky relu
inline BufSpec in_away(const char* name, int64_t n) { return {name, DType::F32, n, Role::In, Init::Away, 0.1, 1.0}; }
// probabilities in [0, 1) with about 20% exact zeros (kl_div's t == 0 branch)
inline BufSpec in_probs0(const char* name, int64_t n) { return {name, DType::F32, n, Role::In, Init::ProbsZero, 0, 1}; }
inline BufSpec in_i64(const char* name, int64_t n, int64_t lo, int64_t hi) { return {name, DType::I64, n, Role::In, Init::Ints, double(lo), double(hi)}; }
inline BufSpec in_u8(const char* name, int64_t n) { return {name, DType::U8, n, Role::In, Init::Ints, 0, 256}; }
inline BufSpec io_f(const char* name, int64_t n, double lo = -1, double hi = 1) { return {name, DType::F32, n, Role::InOut, Init::Uniform, lo, hi}; }
inline BufSpec out_f(const char* name, int64_t n) { return {name, DType::F32, n, Role::Out, Init::Zero, 0, 0}; }
inline BufSpec out_i32(const char* name, int64_t n) { return {name, DType::I32, n, Role::Out, Init::Zero, 0, 0}; }
inline BufSpec out_i64(const char* name, int64_t n) { return {name, DType::I64, n, Role::Out, Init::Zero, 0, 0}; }
inline BufSpec out_u8(const char* name, int64_t n) { return {name, DType::U8, n, Role::Out, Init::Zero, 0, 0}; }

struct Bufs {
  std::vector<void*> p;
  float* f(int i) const { return static_cast<float*>(p[i]); }
  int64_t* l(int i) const { return static_cast<int64_t*>(p[i]); }
  int32_t* i32(int i) const { return static_cast<int32_t*>(p[i]); }
  uint8_t* u8(int i) const { return static_cast<uint8_t*>(p[i]); }
};

struct Case {
  std::string group, name;
  std::vector<BufSpec> bufs;
  double atol, rtol;
  std::function<void(const Bufs&)> cpu, gpu;
};

inline std::vector<Case>& table() {
  static std::vector<Case> t;
  return t;
}

// One row: f(k, b) calls k.<kernel>(...) with b's buffers; k is CpuK{} or CudaK{}.
template <typename F>
void row(const std::string& group, const std::string& name, std::vector<BufSpec> bufs, double atol, double rtol, F f) {
  table().push_back(Case{group, name, std::move(bufs), atol, rtol, [f](const Bufs& b) { f(CpuK{}, b); },
                         [f](const Bufs& b) { f(CudaK{}, b); }});
}

inline constexpr size_t kGuardBytes = 256;  // 64 floats each side
inline constexpr unsigned char kGuardByte = 0xA5;

inline uint64_t name_seed(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

inline std::vector<unsigned char> make_data(const BufSpec& s, std::mt19937_64& rng) {
  std::vector<unsigned char> d(size_t(s.n) * elem_size(s.type), 0);
  auto u01 = [&] { return double(rng() >> 40) * (1.0 / 16777216.0); };
  for (int64_t i = 0; i < s.n; ++i) {
    if (s.init == Init::Zero) break;
    if (s.type == DType::F32) {
      double v = s.lo + (s.hi - s.lo) * u01();
      if (s.init == Init::Away) v = (rng() & 1) ? v : -v;
      if (s.init == Init::ProbsZero && u01() < 0.2) v = 0;
      float fv = float(v);
      std::memcpy(d.data() + 4 * i, &fv, 4);
    } else {
      int64_t v = int64_t(s.lo) + int64_t(rng() % uint64_t(int64_t(s.hi) - int64_t(s.lo)));
      if (s.type == DType::I64) std::memcpy(d.data() + 8 * i, &v, 8);
      if (s.type == DType::I32) { int32_t w = int32_t(v); std::memcpy(d.data() + 4 * i, &w, 4); }
      if (s.type == DType::U8) d[i] = static_cast<unsigned char>(v);
    }
  }
  return d;
}

inline std::string describe_first_mismatch(const std::vector<unsigned char>& a, const std::vector<unsigned char>& r, size_t es) {
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != r[i]) return "first difference at element " + std::to_string(i / es);
  return "";
}

inline void run_case(const Case& c) {
  INFO("case [" << c.group << "] " << c.name);
  std::mt19937_64 rng(name_seed(c.group + "/" + c.name));
  const size_t nb = c.bufs.size();
  std::vector<std::vector<unsigned char>> init(nb), host(nb), dev_img(nb);
  Bufs hb, db;
  std::vector<void*> dev_base(nb, nullptr);
  std::vector<size_t> dev_bytes(nb, 0);
  for (size_t i = 0; i < nb; ++i) {
    const BufSpec& s = c.bufs[i];
    const size_t bytes = size_t(s.n) * elem_size(s.type);
    init[i] = make_data(s, rng);
    host[i] = init[i];
    host[i].resize(std::max<size_t>(bytes, 1));
    hb.p.push_back(host[i].data());
    // device image: guard | data (outputs: NaN / 0xFF) | guard
    std::vector<unsigned char> img(bytes + 2 * kGuardBytes, kGuardByte);
    if (s.role == Role::Out) std::memset(img.data() + kGuardBytes, 0xFF, bytes);  // 0xFFFFFFFF is a NaN
    else std::memcpy(img.data() + kGuardBytes, init[i].data(), bytes);
    dev_bytes[i] = img.size();
    dev_base[i] = cuda::alloc(img.size());
    cuda::copy_h2d(dev_base[i], img.data(), img.size());
    db.p.push_back(static_cast<unsigned char*>(dev_base[i]) + kGuardBytes);
  }
  bool ran = false;
  try {
    c.cpu(hb);
    c.gpu(db);
    cuda::synchronize();
    ran = true;
  } catch (const std::exception& e) {
    FAIL_CHECK("threw: " << e.what());
  }
  for (size_t i = 0; i < nb && ran; ++i) {
    const BufSpec& s = c.bufs[i];
    const size_t es = elem_size(s.type), bytes = size_t(s.n) * es;
    std::vector<unsigned char> img(dev_bytes[i]);
    cuda::copy_d2h(img.data(), dev_base[i], img.size());
    bool guards = true;
    for (size_t j = 0; j < kGuardBytes; ++j)
      guards &= img[j] == kGuardByte && img[kGuardBytes + bytes + j] == kGuardByte;
    if (!guards) FAIL_CHECK(s.name << ": a guard region around the device buffer was overwritten");
    std::vector<unsigned char> got(img.begin() + kGuardBytes, img.begin() + kGuardBytes + bytes);
    const std::string label = c.name + " / " + s.name;
    if (s.role == Role::In) {
      if (got != init[i]) FAIL_CHECK(label << ": the CUDA kernel wrote into an input (" << describe_first_mismatch(got, init[i], es) << ")");
      continue;
    }
    if (s.type == DType::F32) {
      dfq::test::check_close(label, reinterpret_cast<const float*>(got.data()), reinterpret_cast<const float*>(host[i].data()),
                             s.n, c.atol, c.rtol);
    } else {
      std::vector<unsigned char> want(host[i].begin(), host[i].begin() + bytes);
      if (got != want) FAIL_CHECK(label << ": integer output differs (" << describe_first_mismatch(got, want, es) << ")");
    }
  }
  for (size_t i = 0; i < nb; ++i) cuda::release(dev_base[i], dev_bytes[i]);
}

// ---- helpers for the argument structs -------------------------------------------------------------
inline Conv2dArgs conv(int N, int C, int H, int W, int K, int R, int S, int sh, int sw, int ph, int pw, int dh, int dw, int g) {
  Conv2dArgs a{N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw, g, 0, 0};
  conv2d_out_size(a);
  return a;
}
inline Pool2dArgs pool(int N, int C, int H, int W, int R, int S, int sh, int sw, int ph, int pw) {
  Pool2dArgs a{N, C, H, W, R, S, sh, sw, ph, pw, 0, 0};
  pool2d_out_size(a);
  return a;
}
// Dense broadcast of shapes sa and sb (same length, 1 = broadcast) to their elementwise max.
inline BroadcastArgs bcast(std::vector<int64_t> sa, std::vector<int64_t> sb, int64_t* na, int64_t* nb, int64_t* nout) {
  BroadcastArgs a{};
  a.ndim = int(sa.size());
  int64_t ea = 1, eb = 1, eo = 1;
  for (int d = a.ndim - 1; d >= 0; --d) {
    a.shape[d] = sa[d] == 1 ? sb[d] : sa[d];  // broadcasting: 1 stretches, 0 stays empty
    a.stride_a[d] = sa[d] == 1 ? 0 : ea;
    a.stride_b[d] = sb[d] == 1 ? 0 : eb;
    ea *= sa[d];
    eb *= sb[d];
    eo *= a.shape[d];
  }
  *na = ea;
  *nb = eb;
  *nout = eo;
  return a;
}
inline ReduceArgs red(std::vector<int64_t> shape, std::vector<int> mask, int64_t* n_in, int64_t* n_out) {
  ReduceArgs a{};
  a.ndim = int(shape.size());
  *n_in = 1;
  *n_out = 1;
  for (int d = 0; d < a.ndim; ++d) {
    a.shape[d] = shape[d];
    a.reduce[d] = mask[d];
    *n_in *= shape[d];
    if (!mask[d]) *n_out *= shape[d];
  }
  return a;
}
inline const char* unary_name(UnaryOp op) {
  static const char* n[] = {"relu", "leaky_relu", "tanh", "sqrt", "square", "exp", "log", "neg", "add_scalar", "mul_scalar", "abs", "sigmoid", "relu6"};
  return n[int(op)];
}

// ---- the table --------------------------------------------------------------------------------------
// Each adds one group's rows; defined in test_cuda_twins.cpp ...
void add_memory_rows();
void add_elementwise_rows();
void add_reduce_rows();
void add_gemm_rows();
void add_conv_rows();
void add_pool_rows();
void add_norm_rows();
// ... and in test_cuda_twins_loss_optim_quant.cpp
void add_loss_rows();
void add_optim_rows();
void add_quant_rows();

inline void build_table() {
  static bool built = false;
  if (built) return;
  built = true;
  add_memory_rows();
  add_elementwise_rows();
  add_reduce_rows();
  add_gemm_rows();
  add_conv_rows();
  add_pool_rows();
  add_norm_rows();
  add_loss_rows();
  add_optim_rows();
  add_quant_rows();
}

inline void run_group(const char* group) {
  build_table();
  cuda::set_tf32(false);
  int n = 0;
  for (const Case& c : table())
    if (c.group == group) {
      run_case(c);
      ++n;
    }
  CHECK(n > 0);
}

}  // namespace dfq::twins
