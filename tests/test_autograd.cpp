// test_autograd.cpp — the autograd tape (accumulation, no-grad, detach, shared inputs, one walk
// per graph, zero_grad, retain_grad), Philox generators, Tensor basics, CUDA requests on a
// GPU-less build, and .npy round trips. Every TEST_CASE is named "autograd: ...", "rng: ...",
// "tensor: ...", "device: ..." or "npy: ...".
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "engine/device.h"
#include "engine/io/npy.h"
#include "engine/ops.h"
#include "tests/check.h"

using namespace dfq;
using dfq::test::check_close;

namespace {
Tensor leaf(const std::vector<float>& v, const Shape& s) {
  Tensor t = Tensor::from_vector(v, s);
  t.set_requires_grad(true);
  return t;
}
std::vector<float> scaled(const std::vector<float>& v, float s) {
  std::vector<float> o(v);
  for (auto& x : o) x *= s;
  return o;
}
// Runs f, which must throw; returns the exception's message.
template <class F>
std::string message_of(F f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  FAIL_CHECK("expected an exception");
  return "";
}
}  // namespace

// ---- autograd ----------------------------------------------------------------------------------
TEST_CASE("autograd: gradients accumulate over two backward calls") {
  std::vector<float> xv = {1.f, -2.f, 3.f};
  Tensor x = leaf(xv, {3});
  sum(mul(x, x)).backward();
  check_close("first backward: 2x", x.grad().to_vector(), scaled(xv, 2.f), 0, 0);
  sum(mul(x, x)).backward();  // a fresh graph: adds into .grad
  check_close("second backward: 4x", x.grad().to_vector(), scaled(xv, 4.f), 0, 0);
}

TEST_CASE("autograd: a tensor used twice gets the summed gradient") {
  std::vector<float> xv = {0.5f, -1.5f}, av = {2.f, 3.f};
  Tensor x = leaf(xv, {2}), a = leaf(av, {2});
  sum(add(mul(x, a), x)).backward();  // d/dx = a + 1, d/da = x
  check_close("x used twice", x.grad().to_vector(), {3.f, 4.f}, 0, 0);
  check_close("a", a.grad().to_vector(), xv, 0, 0);
  Tensor y = leaf(xv, {2});
  sum(mul(y, y)).backward();  // both operands are the same tensor
  check_close("mul(y, y)", y.grad().to_vector(), scaled(xv, 2.f), 0, 0);
  // A shared intermediate: z feeds two branches.
  Tensor w = leaf(xv, {2});
  Tensor z = mul_scalar(w, 3.f);
  sum(add(mul(z, z), z)).backward();  // d/dw = 3 * (2z + 1)
  check_close("shared intermediate", w.grad().to_vector(), {3.f * (2 * 1.5f + 1), 3.f * (2 * -4.5f + 1)}, 1e-6, 1e-6);
}

TEST_CASE("autograd: NoGradGuard records nothing and restores the mode") {
  Tensor x = leaf({1.f, 2.f}, {2});
  REQUIRE(grad_enabled());
  {
    NoGradGuard g;
    CHECK_FALSE(grad_enabled());
    Tensor y = mul(x, x);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
    CHECK(y.is_leaf());
    Tensor v = x.reshape({2, 1});
    CHECK(v.grad_fn() == nullptr);
    {
      NoGradGuard nested;
      CHECK_FALSE(grad_enabled());
    }
    CHECK_FALSE(grad_enabled());
  }
  CHECK(grad_enabled());
  Tensor y = mul(x, x);
  CHECK(y.requires_grad());
  CHECK(y.grad_fn() != nullptr);
  CHECK_FALSE(y.is_leaf());
}

TEST_CASE("autograd: detach cuts the graph") {
  std::vector<float> xv = {1.5f, -0.5f};
  Tensor x = leaf(xv, {2});
  Tensor d = x.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  CHECK(d.raw_data() == x.raw_data());  // shares storage
  sum(mul(d, x)).backward();             // only the non-detached path counts: d/dx = d = x
  check_close("detach", x.grad().to_vector(), xv, 0, 0);
  Tensor z = mul(x, x).detach();
  CHECK_FALSE(z.requires_grad());
  CHECK(z.grad_fn() == nullptr);
  Tensor c = mul(Tensor::from_vector({1.f, 1.f}, {2}), Tensor::from_vector({2.f, 3.f}, {2}));
  CHECK_FALSE(c.requires_grad());  // no input requires grad: nothing recorded
  CHECK_THROWS(c.backward(Tensor::ones({2})));
}

TEST_CASE("autograd: backward twice through the same graph throws") {
  Tensor x = leaf({1.f, 2.f}, {2});
  Tensor loss = sum(mul(x, x));
  loss.backward();
  std::string msg = message_of([&] { loss.backward(); });
  CHECK(msg.find("second time") != std::string::npos);
  // Also when only a shared part of the graph was already walked.
  Tensor y = leaf({1.f, 2.f}, {2});
  Tensor z = mul(y, y);
  Tensor a = sum(z), b = sum(mul_scalar(z, 2.f));
  a.backward();
  CHECK_THROWS(b.backward());
}

TEST_CASE("autograd: backward argument checks") {
  Tensor x = leaf({1.f, 2.f}, {2});
  Tensor y = mul(x, x);
  CHECK_THROWS(y.backward());                      // two elements, no gradient given
  CHECK_THROWS(y.backward(Tensor::ones({3})));     // wrong gradient shape
  y.backward(Tensor::from_vector({1.f, 10.f}, {2}));
  check_close("vector-Jacobian product", x.grad().to_vector(), {2.f, 40.f}, 0, 0);
  Tensor l = leaf({1.f, 2.f}, {2});
  l.backward(Tensor::from_vector({3.f, 4.f}, {2}));  // backward of a leaf: its gradient is the seed
  check_close("leaf backward", l.grad().to_vector(), {3.f, 4.f}, 0, 0);
}

TEST_CASE("autograd: zero_grad drops the gradient") {
  Tensor x = leaf({1.f, 2.f}, {2});
  sum(mul(x, x)).backward();
  REQUIRE(x.grad().defined());
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  sum(mul_scalar(x, 5.f)).backward();  // starts afresh
  check_close("after zero_grad", x.grad().to_vector(), {5.f, 5.f}, 0, 0);
  // set_grad / grad round trip
  x.set_grad(Tensor::from_vector({7.f, 8.f}, {2}));
  check_close("set_grad", x.grad().to_vector(), {7.f, 8.f}, 0, 0);
  x.set_grad(Tensor());
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("autograd: retain_grad on an intermediate") {
  Tensor x = leaf({1.f, -2.f, 0.5f}, {3});
  Tensor z = mul(x, x);
  z.retain_grad();
  Tensor w = add_scalar(x, 1.f);  // no retain_grad: keeps no gradient
  Tensor loss = sum(add(mul_scalar(z, 3.f), w));
  loss.backward();
  REQUIRE(z.grad().defined());
  check_close("retained dL/dz", z.grad().to_vector(), {3.f, 3.f, 3.f}, 0, 0);
  CHECK_FALSE(w.grad().defined());
  check_close("dL/dx", x.grad().to_vector(), {7.f, -11.f, 4.f}, 1e-6, 0);
  // retain_grad on the root itself
  Tensor x2 = leaf({2.f}, {1});
  Tensor r = mul(x2, x2);
  r.retain_grad();
  r.backward();
  check_close("root retain_grad", r.grad().to_vector(), {1.f}, 0, 0);
}

// ---- Philox RNG --------------------------------------------------------------------------------
TEST_CASE("rng: same seed gives identical tensors, other offsets and seeds differ") {
  Generator g1(42), g2(42), g3(43);
  Tensor a = randn({5, 7}, g1), b = randn({5, 7}, g2), c = randn({5, 7}, g3);
  CHECK(a.to_vector() == b.to_vector());  // bit for bit
  CHECK(a.to_vector() != c.to_vector());
  CHECK(g1.offset() == g2.offset());
  CHECK(g1.offset() == 9);  // ceil(35 / 4) counters
  Tensor a2 = randn({5, 7}, g1);  // next draw: a later offset, other numbers
  CHECK(a2.to_vector() != a.to_vector());
  Generator g4(0);
  g4.set_state(42, 9);  // restoring a saved state reproduces the second draw
  CHECK(randn({5, 7}, g4).to_vector() == a2.to_vector());
  CHECK(g4.seed() == 42);

  Generator u1(7), u2(7);
  std::vector<float> u = rand({1000}, u1, Device::CPU, -2.f, 3.f).to_vector();
  CHECK(u == rand({1000}, u2, Device::CPU, -2.f, 3.f).to_vector());
  double mean_u = 0;
  for (float v : u) {
    CHECK((v >= -2.f && v < 3.f));
    mean_u += v / 1000.0;
  }
  CHECK(mean_u == doctest::Approx(0.5).epsilon(0.1));  // 5/sqrt(12)/sqrt(1000) ~ 0.05 std error

  Generator n1(9);
  std::vector<float> nv = randn({4000}, n1, Device::CPU, 1.f, 2.f).to_vector();
  double m = 0, s2 = 0;
  for (float v : nv) m += v;
  m /= nv.size();
  for (float v : nv) s2 += (v - m) * (v - m);
  s2 /= nv.size() - 1;
  CHECK(m == doctest::Approx(1.0).epsilon(0.1));            // std error 2/sqrt(4000) ~ 0.03
  CHECK(std::sqrt(s2) == doctest::Approx(2.0).epsilon(0.05));

  Generator r1(3), r2(3);
  std::vector<int64_t> ri = randint({500}, 2, 7, r1).to_vector_i64();
  CHECK(ri == randint({500}, 2, 7, r2).to_vector_i64());
  bool seen[5] = {};
  for (int64_t v : ri) {
    REQUIRE((v >= 2 && v < 7));
    seen[v - 2] = true;
  }
  for (bool sn : seen) CHECK(sn);
  CHECK_THROWS(randint({3}, 5, 5, r1));
}

TEST_CASE("rng: a small network's loss and gradients are identical bit for bit on a rerun") {
  auto run = [] {
    Generator g(2024);
    Tensor x = randn({4, 3, 6, 6}, g), w = randn({5, 3, 3, 3}, g, Device::CPU, 0.f, 0.2f);
    Tensor fc = randn({10, 5}, g, Device::CPU, 0.f, 0.3f), gamma = rand({5}, g, Device::CPU, 0.5f, 1.5f);
    Tensor beta = randn({5}, g, Device::CPU, 0.f, 0.1f);
    Tensor labels = randint({4}, 0, 10, g);
    for (Tensor* t : {&x, &w, &fc, &gamma, &beta}) t->set_requires_grad(true);
    Conv2dOptions o;
    o.padding = {1, 1};
    Tensor h = relu(batch_norm(conv2d(x, w, Tensor(), o), gamma, beta, Tensor(), Tensor(), true));
    Tensor logits = linear(adaptive_avg_pool2d(max_pool2d(h, 2, 2), 1, 1).flatten(), fc, Tensor());
    Tensor loss = cross_entropy(logits, labels);
    loss.backward();
    std::vector<float> out = loss.to_vector();
    for (Tensor* t : {&x, &w, &fc, &gamma, &beta}) {
      std::vector<float> gv = t->grad().to_vector();
      out.insert(out.end(), gv.begin(), gv.end());
    }
    return out;
  };
  std::vector<float> a = run(), b = run();
  REQUIRE(a.size() == b.size());
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// ---- Tensor basics -----------------------------------------------------------------------------
TEST_CASE("tensor: reshape, narrow, select, contiguous, item, from_vector checks") {
  std::vector<float> v(24);
  for (int i = 0; i < 24; ++i) v[i] = static_cast<float>(i);
  Tensor x = Tensor::from_vector(v, {2, 3, 4});
  CHECK(x.str() == "f32[2, 3, 4] cpu");
  CHECK(x.strides() == Shape{12, 4, 1});
  CHECK(x.size(-1) == 4);
  CHECK_THROWS(x.size(3));

  Tensor r = x.reshape({-1, 4});
  CHECK(r.shape() == Shape{6, 4});
  CHECK(r.raw_data() == x.raw_data());  // a view
  CHECK(x.reshape({4, -1}).shape() == Shape{4, 6});
  CHECK(x.flatten().shape() == Shape{2, 12});
  CHECK_THROWS(x.reshape({-1, -1}));
  CHECK_THROWS(x.reshape({5, -1}));
  CHECK_THROWS(x.view({7}));

  Tensor n = r.narrow(2, 3);  // rows 2..4 of (6,4)
  CHECK(n.shape() == Shape{3, 4});
  CHECK(n.offset() == 8);
  CHECK(n.data<float>() == x.data<float>() + 8);  // shares storage
  CHECK(n.to_vector()[0] == 8.f);
  CHECK(n.narrow(1, 1).offset() == 12);
  CHECK(n.narrow(1, 1).to_vector() == std::vector<float>{12, 13, 14, 15});
  CHECK_THROWS(r.narrow(5, 2));
  CHECK_THROWS(r.narrow(-1, 1));

  Tensor s = x.select(1);
  CHECK(s.shape() == Shape{3, 4});
  CHECK(s.to_vector()[0] == 12.f);
  CHECK(x.select(0).select(2).to_vector() == std::vector<float>{8, 9, 10, 11});
  CHECK_THROWS(x.select(2));

  CHECK(x.is_contiguous());
  CHECK(x.contiguous().same(x));  // already contiguous: self
  CHECK(n.is_contiguous());
  Tensor cl = n.clone();
  CHECK_FALSE(cl.same(n));
  CHECK(cl.raw_data() != n.raw_data());
  CHECK(cl.to_vector() == n.to_vector());
  CHECK(cl.offset() == 0);

  CHECK(Tensor::full({1}, 2.5f).item() == 2.5f);
  CHECK(sum(x).item() == 276.f);
  CHECK(x.select(1).select(2).narrow(3, 1).item() == 23.f);
  CHECK_THROWS(x.item());

  CHECK_THROWS(Tensor::from_vector({1.f, 2.f, 3.f}, {2, 2}));
  CHECK_THROWS(Tensor::from_vector_i64({1, 2}, {3}));
  CHECK_THROWS(Tensor::from_vector_u8({1, 2}, {1}));
  CHECK_THROWS(Tensor::empty({2, -1}));
  CHECK_THROWS(x.data<int64_t>());  // wrong dtype access
  Tensor i = Tensor::from_vector_i64({5, -6}, {2});
  CHECK(i.to_vector_i64() == std::vector<int64_t>{5, -6});
  CHECK_THROWS(i.to_vector());
  CHECK_THROWS(i.set_requires_grad(true));  // only float tensors require grad
  CHECK(Tensor::zeros({2, 2}, DType::I64).to_vector_i64() == std::vector<int64_t>(4, 0));
  CHECK(Tensor::zeros({3}, DType::U8).to_vector_u8() == std::vector<uint8_t>(3, 0));
  Tensor e = Tensor::zeros({3});
  e.copy_(Tensor::from_vector({1.f, 2.f, 3.f}, {3}));
  CHECK(e.to_vector() == std::vector<float>{1, 2, 3});
  CHECK_THROWS(e.copy_(Tensor::zeros({4})));
  CHECK_FALSE(Tensor().defined());
  CHECK_THROWS(Tensor().shape());
}

TEST_CASE("tensor: a shape whose element or byte count passes int64 throws, never wraps") {
  // 2^32 * 2^32 wraps to 0 in int64 (undefined behaviour; UBSan reported it from a .npy header):
  // an empty storage behind a shape that claims 2^64 elements.
  const int64_t g = int64_t{1} << 32;
  CHECK(numel_of({g / 2, g / 2}) == int64_t{1} << 62);
  CHECK_THROWS_AS(numel_of({g, g}), std::length_error);
  CHECK_THROWS_AS(numel_of({g, 3, g, 1}), std::length_error);
  // a zero dimension does not excuse the others: contiguous strides would overflow
  CHECK_THROWS_AS(numel_of({0, g, g}), std::length_error);
  CHECK(numel_of({0, g, 7}) == 0);
  CHECK_THROWS_AS(Tensor::empty({g, g}), std::length_error);
  // 2^62 floats: the element count fits, the byte count does not
  CHECK_THROWS_AS(Tensor::empty({g / 2, g / 2}), std::length_error);
}

// ---- CUDA on a build without it ----------------------------------------------------------------
TEST_CASE("device: asking for CUDA without the CUDA backend throws, never falls back") {
  if (cuda::built()) return;  // the CUDA test suite covers real GPUs
  CHECK_FALSE(cuda::available());
  std::string m1 = message_of([] { Tensor::zeros({2}, DType::F32, Device::CUDA); });
  CHECK(m1.find("CUDA") != std::string::npos);
  std::string m2 = message_of([] { Tensor::empty({4}, DType::F32, Device::CUDA); });
  CHECK(m2.find("CUDA") != std::string::npos);
  Tensor x = Tensor::from_vector({-1.f, 2.f}, {2});
  std::string m3 = message_of([&] { x.cuda(); });
  CHECK(m3.find("CUDA") != std::string::npos);
  CHECK_THROWS(x.to(Device::CUDA));
  // A tensor tagged CUDA (borrowed host memory, never touched): ops must throw, not compute on the CPU.
  static float host[2] = {-1.f, 2.f};
  Tensor fake = Tensor::borrow(host, {2}, DType::F32, Device::CUDA, nullptr);
  CHECK(fake.is_cuda());
  std::string m4 = message_of([&] { relu(fake); });
  CHECK(m4.find("CUDA") != std::string::npos);
  CHECK_THROWS(add(fake, fake));
  CHECK_THROWS(add(fake, x));  // mixed devices
  CHECK_THROWS(fake.to_vector());
  CHECK_THROWS(fake.fill_(1.f));
  CHECK(host[0] == -1.f);
  CHECK(host[1] == 2.f);
  Generator g(1);
  CHECK_THROWS(randn({3}, g, Device::CUDA));
}

// ---- npy ---------------------------------------------------------------------------------------
namespace {
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() / ("dfq_test_npy_" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
// A version 1.0 header for descr and shape, padded to 64 bytes.
std::string npy_header(const std::string& descr, const std::string& shape) {
  std::string h = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  h.append((64 - (10 + h.size() + 1) % 64) % 64, ' ');
  h.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(h.size() & 0xff));
  out.push_back(static_cast<char>(h.size() >> 8));
  return out + h;
}
}  // namespace

TEST_CASE("npy: save and load round trips for f32, i64 and u8") {
  TempDir dir;
  Tensor f = Tensor::from_vector({1.5f, -2.25f, 3.f, 1e-30f, -0.f, 7e20f}, {2, 3});
  save_npy(dir.file("f.npy"), f);
  CHECK_FALSE(std::filesystem::exists(dir.file("f.npy.tmp")));  // written under a temporary name, renamed
  Tensor f2 = load_npy(dir.file("f.npy"));
  CHECK(f2.dtype() == DType::F32);
  CHECK(f2.shape() == Shape{2, 3});
  CHECK(std::memcmp(f2.raw_data(), f.raw_data(), 6 * sizeof(float)) == 0);  // bit for bit

  Tensor i = Tensor::from_vector_i64({0, -1, int64_t{1} << 40, 9}, {4});
  save_npy(dir.file("i.npy"), i);
  Tensor i2 = load_npy(dir.file("i.npy"));
  CHECK(i2.dtype() == DType::I64);
  CHECK(i2.shape() == Shape{4});
  CHECK(i2.to_vector_i64() == i.to_vector_i64());

  Tensor u = Tensor::from_vector_u8({0, 255, 7, 128, 1, 2, 3, 4}, {2, 2, 2});
  save_npy(dir.file("u.npy"), u);
  Tensor u2 = load_npy(dir.file("u.npy"));
  CHECK(u2.dtype() == DType::U8);
  CHECK(u2.shape() == Shape{2, 2, 2});
  CHECK(u2.to_vector_u8() == u.to_vector_u8());

  // A view (narrow) is saved as its own elements only.
  Tensor big = Tensor::from_vector({0, 1, 2, 3, 4, 5}, {3, 2});
  save_npy(dir.file("v.npy"), big.narrow(1, 2));
  CHECK(load_npy(dir.file("v.npy")).to_vector() == std::vector<float>{2, 3, 4, 5});

  // Overwriting an existing file.
  save_npy(dir.file("f.npy"), Tensor::from_vector({9.f}, {1}));
  CHECK(load_npy(dir.file("f.npy")).to_vector() == std::vector<float>{9.f});

  // float64 files are read as float32.
  std::string f8 = npy_header("<f8", "(3,)");
  double dv[3] = {0.5, -1.25, 1e10};
  f8.append(reinterpret_cast<const char*>(dv), sizeof dv);
  write_bytes(dir.file("d.npy"), f8);
  Tensor d = load_npy(dir.file("d.npy"));
  CHECK(d.dtype() == DType::F32);
  CHECK(d.to_vector() == std::vector<float>{0.5f, -1.25f, 1e10f});
}

TEST_CASE("npy: bad files give a clear error naming the file") {
  TempDir dir;
  std::string missing = dir.file("does_not_exist.npy");
  std::string m = message_of([&] { load_npy(missing); });
  CHECK(m.find(missing) != std::string::npos);

  std::string junk = dir.file("junk.npy");
  write_bytes(junk, "this is not a numpy file at all");
  m = message_of([&] { load_npy(junk); });
  CHECK(m.find(junk) != std::string::npos);
  CHECK(m.find("magic") != std::string::npos);

  std::string empty = dir.file("empty.npy");
  write_bytes(empty, "");
  CHECK_THROWS(load_npy(empty));

  std::string trunc = dir.file("trunc.npy");
  write_bytes(trunc, npy_header("<f4", "(4, 4)") + std::string(12, '\0'));  // 12 of 64 data bytes
  m = message_of([&] { load_npy(trunc); });
  CHECK(m.find("truncated") != std::string::npos);

  std::string dtype = dir.file("dtype.npy");
  write_bytes(dtype, npy_header("<c8", "(1,)") + std::string(8, '\0'));
  m = message_of([&] { load_npy(dtype); });
  CHECK(m.find("dtype") != std::string::npos);

  std::string fortran = dir.file("fortran.npy");
  std::string h = npy_header("<f4", "(2, 2)");
  h.replace(h.find("False"), 5, "True ");
  write_bytes(fortran, h + std::string(16, '\0'));
  m = message_of([&] { load_npy(fortran); });
  CHECK(m.find("Fortran") != std::string::npos);

  // dimensions whose product passes int64 (wrapped: 0 elements, so "no data" would be "complete")
  std::string huge = dir.file("huge.npy");
  write_bytes(huge, npy_header("<f4", "(4294967296, 3, 4294967296, 1)"));
  m = message_of([&] { load_npy(huge); });
  CHECK(m.find(huge) != std::string::npos);
  CHECK(m.find("absurd size") != std::string::npos);

  std::string short_header = dir.file("short_header.npy");
  write_bytes(short_header, npy_header("<f4", "(2,)").substr(0, 30));
  CHECK_THROWS(load_npy(short_header));

  // Writing into a directory that does not exist fails with a message and leaves nothing behind.
  std::string bad_out = dir.file("no_such_dir/out.npy");
  CHECK_THROWS(save_npy(bad_out, Tensor::zeros({2})));
  CHECK_FALSE(std::filesystem::exists(bad_out));
}
