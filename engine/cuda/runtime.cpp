// runtime.cpp — the CUDA runtime behind engine/device.h (namespace dfq::cuda): device detection,
// the engine stream, the cuBLAS handle, the caching device allocator, copies, TF32 switch, pinned
// host memory.
// Rules:
//  - available() never throws: cudaGetDeviceCount with the count initialised to 0, and any error
//    (no driver, no device, context creation failing) means "no GPU". The answer is cached.
//  - One engine stream (non-blocking) carries all work, so a block released to the allocator can be
//    handed out again at once: every later use is ordered after every earlier use on that stream.
//  - Allocator: sizes rounded (512 B steps up to 1 MiB, then 4 steps per power of two), exact-size
//    free lists, LIFO; nothing is cudaFree'd per op, empty_cache() returns the cached blocks. It is
//    guarded by one mutex. release() never throws (it is called from destructors).
//  - The process-wide state is created on first use and deliberately never destroyed: at exit the
//    CUDA runtime may already be unloading, and destroying handles then can fail or crash. The
//    handle types are still RAII owners whose destructors never throw.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "engine/device.h"

namespace dfq::cuda {
namespace detail {
const char* cublas_status_string(int status) { return cublasGetStatusString(static_cast<cublasStatus_t>(status)); }
}  // namespace detail

namespace {

// ---- RAII owners ---------------------------------------------------------------------------------
class Stream {
 public:
  Stream() { DFQ_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  Stream(Stream&& o) noexcept : s_(o.s_) { o.s_ = nullptr; }
  ~Stream() {
    if (s_) (void)cudaStreamDestroy(s_);  // never throws
  }
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

class CublasHandle {
 public:
  explicit CublasHandle(cudaStream_t s) {
    DFQ_CUBLAS_CHECK(cublasCreate(&h_));
    cublasStatus_t st = cublasSetStream(h_, s);
    if (st != CUBLAS_STATUS_SUCCESS) {
      (void)cublasDestroy(h_);
      DFQ_CUBLAS_CHECK(st);
    }
  }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  CublasHandle(CublasHandle&& o) noexcept : h_(o.h_) { o.h_ = nullptr; }
  ~CublasHandle() {
    if (h_) (void)cublasDestroy(h_);
  }
  cublasHandle_t get() const { return h_; }

 private:
  cublasHandle_t h_ = nullptr;
};

// ---- process-wide state ----------------------------------------------------------------------------
struct State {
  std::mutex mu;  // guards everything below
  Stream* stream = nullptr;
  CublasHandle* cublas = nullptr;
  std::unordered_map<std::size_t, std::vector<void*>> free_blocks;  // rounded size -> blocks
  std::unordered_map<void*, std::size_t> live;                      // block -> rounded size
  std::size_t in_use = 0, cached = 0;
};

State& state() {
  static State* s = new State;  // never destroyed (see the file comment)
  return *s;
}

std::atomic<bool> g_tf32{false};
std::atomic<int> g_sm_count{1};

struct Probe {
  bool ok = false;
  std::string line;
};

Probe probe_device() {
  Probe p;
  int count = 0;  // cudaGetDeviceCount may leave it untouched on error
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    p.line = std::string("no usable GPU: cudaGetDeviceCount: ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
    return p;
  }
  if (count <= 0) {
    p.line = "no usable GPU: no CUDA device";
    return p;
  }
  e = cudaSetDevice(0);
  if (e == cudaSuccess) e = cudaFree(nullptr);  // creates the context: fails on a broken setup
  cudaDeviceProp prop{};
  if (e == cudaSuccess) e = cudaGetDeviceProperties(&prop, 0);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    p.line = std::string("no usable GPU: device 0: ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
    return p;
  }
  g_sm_count.store(prop.multiProcessorCount > 0 ? prop.multiProcessorCount : 1);
  int rt = 0, drv = 0;
  (void)cudaRuntimeGetVersion(&rt);
  (void)cudaDriverGetVersion(&drv);
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s, sm_%d%d, %.0f GiB, %d SMs, runtime %d.%d, driver %d.%d", prop.name, prop.major,
                prop.minor, prop.totalGlobalMem / 1073741824.0, prop.multiProcessorCount, rt / 1000, (rt % 1000) / 10,
                drv / 1000, (drv % 1000) / 10);
  p.ok = true;
  p.line = buf;
  return p;
}

const Probe& probe() {
  static const Probe p = probe_device();  // thread-safe, computed once
  return p;
}

std::size_t round_size(std::size_t b) {
  if (b <= (std::size_t(1) << 20)) return (b + 511) & ~std::size_t(511);
  std::size_t p = std::size_t(1) << 20;
  while (p <= b / 2) p <<= 1;  // largest power of two <= b
  std::size_t step = p / 4;
  return (b + step - 1) / step * step;
}

// Frees every cached block; caller holds the mutex.
void free_cached_locked(State& s) {
  if (s.stream) (void)cudaStreamSynchronize(s.stream->get());
  for (auto& [size, blocks] : s.free_blocks) {
    for (void* p : blocks) (void)cudaFree(p);
    s.cached -= size * blocks.size();
  }
  s.free_blocks.clear();
}

}  // namespace

// ---- device.h --------------------------------------------------------------------------------------
bool available() { return probe().ok; }
bool built() { return true; }

std::string describe() {
  const Probe& p = probe();
  if (!p.ok) return p.line;
  return p.line + ", cuDNN " + std::to_string(cudnn_version());
}

int sm_count() {
  (void)probe();  // fills g_sm_count on first use
  return g_sm_count.load(std::memory_order_relaxed);
}

cudaStream_t stream() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.stream) s.stream = new Stream();
  return s.stream->get();
}

cublasHandle_t cublas() {
  cudaStream_t st = stream();
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.cublas) {
    auto* h = new CublasHandle(st);
    cublasStatus_t m = cublasSetMathMode(h->get(), g_tf32.load() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
    if (m != CUBLAS_STATUS_SUCCESS) {
      delete h;
      DFQ_CUBLAS_CHECK(m);
    }
    s.cublas = h;
  }
  return s.cublas->get();
}

void* alloc(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  const std::size_t rs = round_size(bytes);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.free_blocks.find(rs);
  if (it != s.free_blocks.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    s.cached -= rs;
    s.live.emplace(p, rs);
    s.in_use += rs;
    return p;
  }
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, rs);
  if (e == cudaErrorMemoryAllocation && s.cached > 0) {
    (void)cudaGetLastError();
    free_cached_locked(s);
    e = cudaMalloc(&p, rs);
  }
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    char buf[256];
    std::snprintf(buf, sizeof buf, " (asked %zu bytes, rounded %zu; in use %zu, cached %zu)", bytes, rs, s.in_use,
                  s.cached);
    detail::throw_error("CUDA", "cudaMalloc(&p, rs)", __FILE__, __LINE__,
                        std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")" + buf);
  }
  s.live.emplace(p, rs);
  s.in_use += rs;
  return p;
}

void release(void* p, std::size_t bytes) {
  if (!p) return;
  try {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.live.find(p);
    if (it == s.live.end()) {
      std::fprintf(stderr, "dfq: cuda::release of a pointer the allocator does not own (%p, %zu bytes) ignored\n", p,
                   bytes);
      return;
    }
    const std::size_t rs = it->second;
    if (round_size(bytes) != rs)
      std::fprintf(stderr, "dfq: cuda::release(%p): size %zu does not match the block (%zu bytes)\n", p, bytes, rs);
    s.live.erase(it);
    s.in_use -= rs;
    s.free_blocks[rs].push_back(p);
    s.cached += rs;
  } catch (...) {
    std::fprintf(stderr, "dfq: cuda::release(%p) failed\n", p);
  }
}

void empty_cache() {
  if (!available()) return;
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  free_cached_locked(s);
}

std::size_t bytes_in_use() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.in_use;
}

// h2d also synchronises: the host buffer (pageable or pinned) may be reused as soon as it returns.
void copy_h2d(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  cudaStream_t st = stream();
  DFQ_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, st));
  DFQ_CUDA_CHECK(cudaStreamSynchronize(st));
}

void copy_d2h(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  cudaStream_t st = stream();
  DFQ_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, st));
  DFQ_CUDA_CHECK(cudaStreamSynchronize(st));
}

void copy_d2d(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0 || dst == src) return;
  DFQ_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
}

void synchronize() {
  if (!available()) return;
  DFQ_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void set_tf32(bool on) {
  g_tf32.store(on);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.cublas) DFQ_CUBLAS_CHECK(cublasSetMathMode(s.cublas->get(), on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  // cuDNN reads tf32() when it picks an algorithm; the algorithm cache is keyed by the flag.
}

bool tf32() { return g_tf32.load(); }

namespace {
std::atomic<bool> g_conv_benchmark{false};
}
void set_conv_benchmark(bool on) { g_conv_benchmark = on; }
bool conv_benchmark() { return g_conv_benchmark; }

void* alloc_pinned(std::size_t bytes) {
  void* p = nullptr;
  if (bytes == 0) return nullptr;
  DFQ_CUDA_CHECK(cudaMallocHost(&p, bytes));
  return p;
}

void free_pinned(void* p) {
  if (!p) return;
  cudaError_t e = cudaFreeHost(p);  // never throws: called from destructors
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    std::fprintf(stderr, "dfq: cudaFreeHost failed: %s\n", cudaGetErrorString(e));
  }
}

}  // namespace dfq::cuda
