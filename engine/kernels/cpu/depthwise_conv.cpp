// depthwise_conv.cpp — depthwise convolution (groups == C == K: one R x S filter per channel, as in
// MobileNetV2's 3x3 stride-1 and stride-2 convs), computed directly: the im2col path made it C
// GEMMs one row high, each after a column matrix R*S times the size of its plane.
//
// Vectorised across channels: a task takes a block of kLanes consecutive channels (one vector) of a
// chunk of images (one image for maps of kTaskPixels and more, more images for the small maps) and
// interleaves their planes, pixel-major, into buffers whose element is a vector of one float per
// channel. A kernel tap is then one vector multiply-add with that tap's weights of the block, for
// any stride, and only the taps inside the image are summed (no padding in the buffers: the 4x4 ..
// 1x1 maps would spend most of their time on zeros). The last block of channels may be short: its
// unused lanes compute on stale values and are dropped (lanes never mix).
// A pass is a short list of Calls made per shape: the outputs of a run of rows times a run of
// columns that take the same taps (the first and last rows and columns take fewer), each output
// the sum of those taps as a balanced tree in a fixed order. A call loops over its outputs and the
// task's images, the longer of the two innermost (small maps: 1 or 2 outputs a line, 32+ images).
//   forward:         y(p, q) = sum over taps of w(r, s) x(p*sh + r - pad_h, q*sw + s - pad_w).
//   data gradient:   gx(h, w) = the same gather from gy, per class of (h, w) modulo the strides:
//                    the taps (r, s) with p = (h + pad_h - r) / sh, q = (w + pad_w - s) / sw whole
//                    and inside [0, P) x [0, Q).
//   filter gradient: per tap, the sum over outputs of gy times the x the forward read, in float over
//                    a task's images (one partial sum per chunk and channel), the chunks added in
//                    order in double.
// Three vector widths: 4 floats (SSE, the engine's x86-64-v2 target) and, built with GCC and run
// on CPUs that have them, 8 (AVX2) and 16 (AVX-512F; no FMA either way: contraction is off); the
// kernels are depthwise_conv_impl.h, compiled once for each; lanes_for picks one per shape. Every channel's values are summed in the same order at either width and at any thread count
// (calls, chunks and blocks follow the shape only): the same bytes everywhere.
// Rules: dilation 1; any filter size, stride and padding. The bias gradient is channel_sums'
// (gemm_conv.cpp).
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "engine/kernels/cpu/common.h"
#include "engine/kernels/cpu/shifted_conv.h"

namespace dfq::cpu::detail {
namespace {

constexpr int kMaxTaps = 9;            // taps per kernel call (a 3x3 filter in one)
constexpr int64_t kTaskPixels = 512;  // a task takes images until their maps hold this many pixels

// Lines [0, lines) of K outputs each: output (line, k) is dst[line*dst_line + k*dst_step] and its
// taps are src[off[t] + line*src_line + k*src_step] with weights (or, for the filter gradient,
// accumulators) number id[t]; all offsets and steps count vectors. A call runs over the images of a
// task, whose buffers lie img_src / img_dst vectors apart.
struct Call {
  int64_t dst, dst_line, dst_step;
  int64_t src_line, src_step;
  int lines, K;
  std::vector<int64_t> off;
  std::vector<int> id;
};

// A task's buffers hold, per image, its maps as vectors (one float per channel of its block): x
// (H, W), y and gy (P, Q), gx (H, W). Offsets and steps in the calls count vectors.
struct DwPlan {
  int B, chunks;  // images per task (kTaskPixels of its larger map; fewer in the last), their count
  std::vector<Call> fwd, data;  // the forward's (also the filter gradient's) and the data gradient's calls
};

// Positions [0, n) cut into runs of consecutive positions with the same taps(k): f(k0, k1, taps).
template <typename Taps, typename F>
void for_each_run(int n, Taps taps, F f) {
  for (int k0 = 0; k0 < n;) {
    const auto t = taps(k0);
    int k1 = k0 + 1;
    while (k1 < n && taps(k1) == t) ++k1;
    f(k0, k1, t);
    k0 = k1;
  }
}

// The forward's calls: output (p, q) takes the taps r in [lo, hi) of row_taps(p) and s in those of
// col_taps(q), the ones inside the image; a call per run of rows times run of columns.
void forward_calls(const Conv2dArgs& a, DwPlan& pl) {
  auto row_taps = [&](int p) {
    const int h0 = p * a.stride_h - a.pad_h;
    return std::pair<int, int>{std::clamp(-h0, 0, a.R), std::clamp(a.H - h0, 0, a.R)};
  };
  auto col_taps = [&](int q) {
    const int w0 = q * a.stride_w - a.pad_w;
    return std::pair<int, int>{std::clamp(-w0, 0, a.S), std::clamp(a.W - w0, 0, a.S)};
  };
  for_each_run(a.P, row_taps, [&](int p0, int p1, std::pair<int, int> rr) {
    for_each_run(a.Q, col_taps, [&](int q0, int q1, std::pair<int, int> cc) {
      Call c{int64_t(p0) * a.Q + q0, a.Q, 1, int64_t(a.stride_h) * a.W, a.stride_w, p1 - p0, q1 - q0, {}, {}};
      for (int r = rr.first; r < rr.second; ++r)
        for (int s = cc.first; s < cc.second; ++s) {
          c.off.push_back(int64_t(p0 * a.stride_h + r - a.pad_h) * a.W + q0 * a.stride_w + s - a.pad_w);
          c.id.push_back(r * a.S + s);
        }
      pl.fwd.push_back(std::move(c));
    });
  });
}

// The data gradient's calls: input (h, w) takes the taps r = h + pad_h (mod sh) whose output row
// p = (h + pad_h - r) / sh lies in [0, P), and the same for columns; for each class of rows and of
// columns modulo the strides, a call per run of rows times run of columns of that class.
void data_calls(const Conv2dArgs& a, DwPlan& pl) {
  const int sh = a.stride_h, sw = a.stride_w;
  // [lo, hi] step `stride` of the taps t = x + pad (mod stride) with (x + pad - t) / stride in [0, n)
  auto taps = [](int x, int pad, int stride, int n, int size) {
    const int xp = x + pad;
    int lo = std::max(0, xp - (n - 1) * stride);
    lo += (xp - lo) % stride;
    return std::pair<int, int>{lo, std::min(size - 1, xp)};
  };
  for (int ca = 0; ca < sh; ++ca) {
    const int hf = ((ca - a.pad_h) % sh + sh) % sh;  // the first row h with h + pad_h = ca (mod sh)
    if (hf >= a.H) continue;
    for_each_run((a.H - hf + sh - 1) / sh, [&](int i) { return taps(hf + i * sh, a.pad_h, sh, a.P, a.R); },
                 [&](int i0, int i1, std::pair<int, int> rr) {
      const int h0 = hf + i0 * sh;
      for (int cb = 0; cb < sw; ++cb) {
        const int wf = ((cb - a.pad_w) % sw + sw) % sw;
        if (wf >= a.W) continue;
        for_each_run((a.W - wf + sw - 1) / sw, [&](int k) { return taps(wf + k * sw, a.pad_w, sw, a.Q, a.S); },
                     [&](int k0, int k1, std::pair<int, int> cc) {
          const int w0 = wf + k0 * sw;
          Call c{int64_t(h0) * a.W + w0, int64_t(sh) * a.W, sw, a.Q, 1, i1 - i0, k1 - k0, {}, {}};
          for (int r = rr.first; r <= rr.second; r += sh)
            for (int s = cc.first; s <= cc.second; s += sw) {
              const int p = (h0 + a.pad_h - r) / sh, q = (w0 + a.pad_w - s) / sw;
              c.off.push_back(int64_t(p) * a.Q + q);
              c.id.push_back(r * a.S + s);
            }
          pl.data.push_back(std::move(c));
        });
      }
    });
  }
}

DwPlan plan_of(const Conv2dArgs& a) {
  DwPlan pl;
  const int64_t pixels = std::max<int64_t>({1, int64_t(a.H) * a.W, int64_t(a.P) * a.Q});
  const int want = static_cast<int>(std::clamp<int64_t>(kTaskPixels / pixels, 1, std::max(a.N, 1)));
  pl.chunks = (a.N + want - 1) / want;
  pl.B = (a.N + pl.chunks - 1) / pl.chunks;  // the same count of chunks, balanced
  forward_calls(a, pl);
  data_calls(a, pl);
  return pl;
}

// The kernels, once per vector width (their own namespaces; internal linkage).
namespace sse {
#define DFQ_DW_LANES 4
#include "engine/kernels/cpu/depthwise_conv_impl.h"
#undef DFQ_DW_LANES
}  // namespace sse

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define DFQ_DW_WIDE 1
#pragma GCC push_options
#pragma GCC target("avx2")
namespace avx2 {
#define DFQ_DW_LANES 8
#include "engine/kernels/cpu/depthwise_conv_impl.h"
#undef DFQ_DW_LANES
}  // namespace avx2
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f")
namespace avx512 {
#define DFQ_DW_LANES 16
#include "engine/kernels/cpu/depthwise_conv_impl.h"
#undef DFQ_DW_LANES
}  // namespace avx512
#pragma GCC pop_options
#endif

// The widths this build and CPU can run.
bool runs(int lanes) {
#ifdef DFQ_DW_WIDE
  static const bool avx2 = __builtin_cpu_supports("avx2"), avx512 = __builtin_cpu_supports("avx512f");
  if (lanes == 8) return avx2;
  if (lanes == 16) return avx512;
#endif
  return lanes == 4;
}
int widest_lanes() { return runs(16) ? 16 : runs(8) ? 8 : 4; }
int g_lanes = 0;  // forced by depthwise_conv_lanes; 0: lanes_for chooses

#ifdef DFQ_DW_WIDE
// The widest width whose buffers of one image stay within 16 KB (L1), where the CPU runs it
// (measured, the kernels alone at 2 threads on Zen 5: 16 lanes take ~0.8x of 8 lanes' time on 2x2
// maps, about the same on 4x4 .. 16x16, ~1.15x on 32x32, whose 16 planes a task streams at once).
int lanes_for(const Conv2dArgs& a) {
  if (g_lanes) return g_lanes;
  const int64_t pixels = std::max(int64_t(a.H) * a.W, int64_t(a.P) * a.Q);
  if (runs(16) && pixels * 16 * int64_t(sizeof(float)) <= (16 << 10)) return 16;
  return runs(8) ? 8 : widest_lanes();
}

// call (forward(...), ...) in the kernels' namespace of the width lanes_for(a) picks
#define DFQ_DW_DISPATCH(a, call)  \
  switch (lanes_for(a)) {         \
    case 16: avx512::call; break; \
    case 8: avx2::call; break;    \
    default: sse::call; break;    \
  }
#else
#define DFQ_DW_DISPATCH(a, call) sse::call
#endif

}  // namespace

int depthwise_conv_lanes(int lanes) {
  if (lanes != 0 && !runs(lanes))
    throw std::invalid_argument("dfq: depthwise conv: " + std::to_string(lanes) + " lanes not available here");
  g_lanes = lanes;
  return widest_lanes();
}

bool depthwise_conv_applies(const Conv2dArgs& a) {
  return a.groups == a.C && a.K == a.C && a.dil_h == 1 && a.dil_w == 1 && a.P > 0 && a.Q > 0;
}

void depthwise_conv_forward(const Conv2dArgs& a, const float* x, const float* w, float* y) {
  const DwPlan pl = plan_of(a);
  DFQ_DW_DISPATCH(a, forward(a, pl, x, w, y));
}

void depthwise_conv_backward_data(const Conv2dArgs& a, const float* gy, const float* w, float* gx) {
  const DwPlan pl = plan_of(a);
  DFQ_DW_DISPATCH(a, backward_data(a, pl, gy, w, gx));
}

void depthwise_conv_backward_filter(const Conv2dArgs& a, const float* x, const float* gy, float* gw) {
  const DwPlan pl = plan_of(a);
  const int64_t taps = int64_t(a.R) * a.S;
  std::vector<double> part(size_t(pl.chunks) * a.C * taps);  // (chunks, C, R*S)
  DFQ_DW_DISPATCH(a, backward_filter(a, pl, x, gy, part.data()));
  for (int64_t i = 0; i < a.C * taps; ++i) {
    double s = 0;
    for (int ch = 0; ch < pl.chunks; ++ch) s += part[size_t(ch * a.C * taps + i)];
    gw[i] = static_cast<float>(s);
  }
}

}  // namespace dfq::cpu::detail
