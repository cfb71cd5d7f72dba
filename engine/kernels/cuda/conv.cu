// conv.cu — the one translation unit that owns cuDNN: the handle, the descriptors, the algorithm
// cache, and the CUDA twins conv2d_forward / conv2d_backward_data / conv2d_backward_filter (NCHW
// float, weight (K, C/groups, R, S), groups, stride, padding, dilation) through the cuDNN v9 legacy
// API. Bias add (forward) and bias gradient gb are small kernels of this file.
// Rules:
//  - Handle and descriptors are move-only RAII owners; destructors never throw. The handle is bound
//    to the engine stream and, like the rest of the process-wide CUDA state, never destroyed.
//  - One Plan per shape: key = every Conv2dArgs field + the TF32 flag. It holds the descriptors and,
//    per direction, the algorithm picked once by cudnnGet*Algorithm_v7 (heuristics, no benchmark
//    runs): the first result that succeeded, uses an allowed math type (TF32 off: CUDNN_FMA_MATH
//    only) and whose workspace query succeeds under 1 GiB; deterministic algorithms first.
//  - Workspace comes from the caching allocator, released stream-ordered right after the call.
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/kernels/cuda/common.cuh"

namespace dfq::cuda {

int cudnn_version() { return static_cast<int>(cudnnGetVersion()); }

namespace {

// ---- RAII owners -----------------------------------------------------------------------------------
template <typename T, cudnnStatus_t (*Create)(T*), cudnnStatus_t (*Destroy)(T)>
class CudnnOwner {
 public:
  CudnnOwner() { DFQ_CUDNN_CHECK(Create(&h_)); }
  CudnnOwner(const CudnnOwner&) = delete;
  CudnnOwner& operator=(const CudnnOwner&) = delete;
  CudnnOwner(CudnnOwner&& o) noexcept : h_(o.h_) { o.h_ = nullptr; }
  CudnnOwner& operator=(CudnnOwner&& o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  ~CudnnOwner() {
    if (h_) (void)Destroy(h_);  // never throws
  }
  T get() const { return h_; }

 private:
  T h_ = nullptr;
};

using Handle = CudnnOwner<cudnnHandle_t, cudnnCreate, cudnnDestroy>;
using TensorDesc = CudnnOwner<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDesc = CudnnOwner<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvDesc =
    CudnnOwner<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor, cudnnDestroyConvolutionDescriptor>;

constexpr size_t kMaxWorkspace = size_t(1) << 30;

struct Algo {
  bool chosen = false;
  int algo = 0;  // cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t
  size_t workspace = 0;
};

struct Plan {
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv[3];  // per direction: the math type is set to the chosen algorithm's
  Algo algo[3];
};
enum Dir { kFwd = 0, kBwdData = 1, kBwdFilter = 2 };

using Key = std::array<int, 17>;

struct CudnnState {
  std::mutex mu;
  Handle* handle = nullptr;
  std::map<Key, std::unique_ptr<Plan>> plans;
};

CudnnState& cstate() {
  static CudnnState* s = new CudnnState;  // never destroyed: see runtime.cpp
  return *s;
}

// Caller holds the mutex.
cudnnHandle_t handle_locked(CudnnState& s) {
  if (!s.handle) {
    auto h = std::make_unique<Handle>();
    DFQ_CUDNN_CHECK(cudnnSetStream(h->get(), stream()));
    s.handle = h.release();
  }
  return s.handle->get();
}

std::string shape_string(const Conv2dArgs& a) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "N=%d C=%d H=%d W=%d K=%d R=%d S=%d stride=%d,%d pad=%d,%d dil=%d,%d groups=%d P=%d Q=%d", a.N, a.C,
                a.H, a.W, a.K, a.R, a.S, a.stride_h, a.stride_w, a.pad_h, a.pad_w, a.dil_h, a.dil_w, a.groups, a.P,
                a.Q);
  return buf;
}

std::unique_ptr<Plan> make_plan(const Conv2dArgs& a, bool tf32) {
  if (a.groups <= 0 || a.C % a.groups != 0 || a.K % a.groups != 0)
    throw std::invalid_argument("dfq: cuda conv2d: channels not divisible by groups (" + shape_string(a) + ")");
  auto p = std::make_unique<Plan>();
  DFQ_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x.get(), CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, a.N, a.C, a.H, a.W));
  DFQ_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->y.get(), CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, a.N, a.K, a.P, a.Q));
  DFQ_CUDNN_CHECK(
      cudnnSetFilter4dDescriptor(p->w.get(), CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, a.K, a.C / a.groups, a.R, a.S));
  for (auto& cd : p->conv) {
    DFQ_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(cd.get(), a.pad_h, a.pad_w, a.stride_h, a.stride_w, a.dil_h,
                                                    a.dil_w, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    DFQ_CUDNN_CHECK(cudnnSetConvolutionGroupCount(cd.get(), a.groups));
    DFQ_CUDNN_CHECK(cudnnSetConvolutionMathType(cd.get(), tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
  }
  int n = 0, k = 0, pp = 0, q = 0;
  DFQ_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->conv[0].get(), p->x.get(), p->w.get(), &n, &k, &pp, &q));
  if (n != a.N || k != a.K || pp != a.P || q != a.Q)
    throw std::invalid_argument("dfq: cuda conv2d: cuDNN output " + std::to_string(pp) + "x" + std::to_string(q) +
                                " does not match the arguments (" + shape_string(a) + ")");
  return p;
}

// Workspace size of `algo` in direction `dir` (status of the query returned).
cudnnStatus_t workspace_size(cudnnHandle_t h, const Plan& p, Dir dir, int algo, size_t* bytes) {
  const cudnnConvolutionDescriptor_t cd = p.conv[dir].get();
  switch (dir) {
    case kFwd:
      return cudnnGetConvolutionForwardWorkspaceSize(h, p.x.get(), p.w.get(), cd, p.y.get(),
                                                     static_cast<cudnnConvolutionFwdAlgo_t>(algo), bytes);
    case kBwdData:
      return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p.w.get(), p.y.get(), cd, p.x.get(),
                                                          static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), bytes);
    default:
      return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p.x.get(), p.y.get(), cd, p.w.get(),
                                                            static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), bytes);
  }
}

// Picks from heuristic or measured results (any of the three perf struct types), in their order.
template <typename Perf>
void pick(cudnnHandle_t h, Plan& p, Dir dir, const std::vector<Perf>& perf, bool tf32, const Conv2dArgs& a) {
  const cudnnConvolutionDescriptor_t cd = p.conv[dir].get();
  const cudnnMathType_t want = tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
  for (int pass = 0; pass < 3; ++pass) {  // 0: deterministic, 1: any, 2: any, math type forced
    for (const Perf& r : perf) {
      if (r.status != CUDNN_STATUS_SUCCESS) continue;
      if (pass == 0 && r.determinism != CUDNN_DETERMINISTIC) continue;
      cudnnMathType_t m = r.mathType;
      if (pass < 2) {
        if (!tf32 && m != CUDNN_FMA_MATH) continue;  // no TF32 / tensor-op math unless asked for
      } else {
        m = want;
      }
      if (cudnnSetConvolutionMathType(cd, m) != CUDNN_STATUS_SUCCESS) continue;
      size_t ws = 0;
      if (workspace_size(h, p, dir, static_cast<int>(r.algo), &ws) != CUDNN_STATUS_SUCCESS) continue;
      if (ws > kMaxWorkspace) continue;
      p.algo[dir] = Algo{true, static_cast<int>(r.algo), ws};
      return;
    }
  }
  static const char* names[3] = {"forward", "backward data", "backward filter"};
  throw std::runtime_error(std::string("dfq: cuda conv2d ") + names[dir] + ": cuDNN offers no usable algorithm (" +
                           shape_string(a) + (tf32 ? ", tf32 on)" : ", tf32 off)"));
}

void choose_algo(cudnnHandle_t h, Plan& p, Dir dir, bool tf32, const Conv2dArgs& a) {
  const cudnnConvolutionDescriptor_t cd = p.conv[dir].get();
  int max_n = 0, got = 0;
  if (dir == kFwd) {
    DFQ_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max_n));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(std::max(max_n, 1));
    if (conv_benchmark())  // measured by cuDNN (sorted by time), like torch.backends.cudnn.benchmark
      DFQ_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(h, p.x.get(), p.w.get(), cd, p.y.get(), max_n, &got, perf.data()));
    else
      DFQ_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p.x.get(), p.w.get(), cd, p.y.get(), max_n, &got,
                                                             perf.data()));
    perf.resize(std::clamp(got, 0, max_n));
    pick(h, p, dir, perf, tf32, a);
  } else if (dir == kBwdData) {
    DFQ_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max_n));
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(std::max(max_n, 1));
    if (conv_benchmark())
      DFQ_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(h, p.w.get(), p.y.get(), cd, p.x.get(), max_n, &got,
                                                                perf.data()));
    else
      DFQ_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w.get(), p.y.get(), cd, p.x.get(), max_n, &got,
                                                                  perf.data()));
    perf.resize(std::clamp(got, 0, max_n));
    pick(h, p, dir, perf, tf32, a);
  } else {
    DFQ_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max_n));
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(std::max(max_n, 1));
    if (conv_benchmark())
      DFQ_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(h, p.x.get(), p.y.get(), cd, p.w.get(), max_n, &got,
                                                                  perf.data()));
    else
      DFQ_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x.get(), p.y.get(), cd, p.w.get(), max_n,
                                                                    &got, perf.data()));
    perf.resize(std::clamp(got, 0, max_n));
    pick(h, p, dir, perf, tf32, a);
  }
}

// The plan for `a` with the algorithm of `dir` chosen; the handle out. Thread-safe.
const Plan& plan_for(const Conv2dArgs& a, Dir dir, cudnnHandle_t* h_out) {
  const bool tf = tf32();
  const Key key{a.N, a.C, a.H, a.W, a.K, a.R, a.S, a.stride_h, a.stride_w, a.pad_h, a.pad_w,
                a.dil_h, a.dil_w, a.groups, a.P, a.Q, (tf ? 1 : 0) | (conv_benchmark() ? 2 : 0)};
  CudnnState& s = cstate();
  std::lock_guard<std::mutex> lock(s.mu);
  cudnnHandle_t h = handle_locked(s);
  auto it = s.plans.find(key);
  if (it == s.plans.end()) it = s.plans.emplace(key, make_plan(a, tf)).first;
  Plan& p = *it->second;
  if (!p.algo[dir].chosen) choose_algo(h, p, dir, tf, a);
  *h_out = h;
  return p;
}

// ---- bias kernels ----------------------------------------------------------------------------------
__global__ void add_bias_planes_kernel(int64_t total, int K, int64_t PQ, const float* b, float* y) {
  DFQ_GRID_LOOP(i, total) y[i] += b[(i / PQ) % K];
}

// gb[k] = sum over n, p, q of gy (N, K, PQ): partial sums in double on (k, batch split) blocks,
// then one thread per k adds the splits in order.
__global__ void bias_grad_partial_kernel(detail::ChanSplit sp, const float* gy, double* part) {
  double s = 0;
  detail::chan_for_each(sp, blockIdx.x, blockIdx.y, [&](int64_t o) { s += gy[o]; });
  s = detail::block_sum(s);
  if (threadIdx.x == 0) part[int64_t(blockIdx.x) * sp.S + blockIdx.y] = s;
}

__global__ void bias_grad_final_kernel(detail::ChanSplit sp, const double* part, float* gb) {
  DFQ_GRID_LOOP(k, sp.C) {
    double s = 0;
    for (int i = 0; i < sp.S; ++i) s += part[k * sp.S + i];
    gb[k] = static_cast<float>(s);
  }
}

void check_args(const Conv2dArgs& a, const char* what) {
  Conv2dArgs b = a;
  conv2d_out_size(b);
  if (a.R <= 0 || a.S <= 0 || a.stride_h <= 0 || a.stride_w <= 0 || a.dil_h <= 0 || a.dil_w <= 0 || a.pad_h < 0 ||
      a.pad_w < 0 || a.groups <= 0 || a.C % a.groups != 0 || a.K % a.groups != 0 || b.P != a.P || b.Q != a.Q)
    throw std::invalid_argument(std::string("dfq: cuda ") + what + ": bad arguments (" + shape_string(a) + ")");
}

}  // namespace

void conv2d_forward(const Conv2dArgs& a, const float* x, const float* w, const float* b, float* y) {
  if (a.N <= 0 || a.K <= 0 || a.P <= 0 || a.Q <= 0) return;
  check_args(a, "conv2d_forward");
  const int64_t PQ = int64_t(a.P) * a.Q, total = int64_t(a.N) * a.K * PQ;
  if (a.C <= 0 || a.H <= 0 || a.W <= 0) {
    fill(total, 0.f, y);
  } else {
    cudnnHandle_t h = nullptr;
    const Plan& p = plan_for(a, kFwd, &h);
    const Algo& al = p.algo[kFwd];
    DeviceBuffer ws(al.workspace);
    const float one = 1.f, zero = 0.f;
    DFQ_CUDNN_CHECK(cudnnConvolutionForward(h, &one, p.x.get(), x, p.w.get(), w, p.conv[kFwd].get(),
                                            static_cast<cudnnConvolutionFwdAlgo_t>(al.algo), ws.get(), al.workspace,
                                            &zero, p.y.get(), y));
  }
  if (b) DFQ_LAUNCH(add_bias_planes_kernel, grid_for(total), detail::kThreads, total, a.K, PQ, b, y);
}

void conv2d_backward_data(const Conv2dArgs& a, const float* gy, const float* w, float* gx) {
  if (a.N <= 0 || a.C <= 0 || a.H <= 0 || a.W <= 0) return;
  check_args(a, "conv2d_backward_data");
  const int64_t total = int64_t(a.N) * a.C * a.H * a.W;
  if (a.P <= 0 || a.Q <= 0 || a.K <= 0) {
    fill(total, 0.f, gx);
    return;
  }
  cudnnHandle_t h = nullptr;
  const Plan& p = plan_for(a, kBwdData, &h);
  const Algo& al = p.algo[kBwdData];
  DeviceBuffer ws(al.workspace);
  const float one = 1.f, zero = 0.f;
  DFQ_CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, p.w.get(), w, p.y.get(), gy, p.conv[kBwdData].get(),
                                               static_cast<cudnnConvolutionBwdDataAlgo_t>(al.algo), ws.get(),
                                               al.workspace, &zero, p.x.get(), gx));
}

void conv2d_backward_filter(const Conv2dArgs& a, const float* x, const float* gy, float* gw, float* gb) {
  const int64_t PQ = int64_t(a.P) * a.Q;
  const int64_t wn = a.groups > 0 ? int64_t(a.K) * (a.C / a.groups) * a.R * a.S : 0;
  if (gb && a.K > 0) {
    if (a.N <= 0 || PQ <= 0) {
      fill(a.K, 0.f, gb);
    } else {
      if (PQ > INT32_MAX) throw std::invalid_argument("dfq: cuda conv2d_backward_filter: P*Q too large");
      const detail::ChanSplit sp = detail::chan_split(a.N, a.K, static_cast<int>(PQ));
      DeviceBuffer part(size_t(a.K) * sp.S * sizeof(double));
      DFQ_LAUNCH(bias_grad_partial_kernel, dim3(a.K, sp.S), detail::kThreads, sp, gy, part.as<double>());
      DFQ_LAUNCH(bias_grad_final_kernel, grid_for(a.K), detail::kThreads, sp, part.as<const double>(), gb);
    }
  }
  if (wn <= 0) return;
  if (a.N <= 0 || PQ <= 0 || a.H <= 0 || a.W <= 0) {
    fill(wn, 0.f, gw);
    return;
  }
  check_args(a, "conv2d_backward_filter");
  cudnnHandle_t h = nullptr;
  const Plan& p = plan_for(a, kBwdFilter, &h);
  const Algo& al = p.algo[kBwdFilter];
  DeviceBuffer ws(al.workspace);
  const float one = 1.f, zero = 0.f;
  DFQ_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, p.x.get(), x, p.y.get(), gy, p.conv[kBwdFilter].get(),
                                                 static_cast<cudnnConvolutionBwdFilterAlgo_t>(al.algo), ws.get(),
                                                 al.workspace, &zero, p.w.get(), gw));
}

}  // namespace dfq::cuda
