// shifted_conv.cpp — convolution as shifted GEMMs on a channel-major copy of the batch, and the
// fused nearest-2x-up-sampling + 3x3 convolution of GDFQ's generator built on the same machinery.
//
// Layout "CPN": t[(c * pixels + pix) * N + n]. A convolution is a sum over kernel taps of
// (K, C) weight matrices times shifted copies of the input. For one tap and one output row, the
// output pixels whose input pixel lies inside the image form one range; with stride 1 their input
// pixels are consecutive too, so in CPN layout both are (C, len * N) blocks with leading dimension
// pixels * N: one GEMM per (tap, row) — a "run" — and consecutive rows merge into one run when both
// sides stay contiguous (full-width rows). With stride_w > 1 every output pixel is its own run.
// Only in-image terms are summed (a 3x3 pad-1 conv on a 1x1 map is one GEMM, of its centre tap),
// and there is no column matrix. The same runs serve the forward pass, the data gradient (GEMMs
// transposed, accumulated into the input side) and the filter gradient (accumulated per tap).
//
// Up-sampling fusion: conv3x3(pad 1) of nearest-up2(x) computes output pixel (2i+a, 2j+b) — phase
// (a, b) — from x rows i+a-1+u and columns j+b-1+v for u, v in {0, 1} only, with the original taps
// summed: phase a = 0 reads row i-1 with tap row 0 and row i with tap rows 1+2; a = 1 reads row i
// with tap rows 0+1 and row i+1 with tap row 2 (the same for columns). So it is four 2x2
// convolutions of x with 16 summed (K, C) matrices: 4/9 of the multiply-adds of the up-sampled
// conv, on a 4x smaller input copy. The output is produced phase-major, (K, 4 phases, H, W, N), and
// interleaved on the way back to NCHW; the data gradient lands on x directly (the up-sampling's
// gradient, a 2x2 sum, is folded in), the filter gradient sums each summed matrix's gradient back
// into the taps it was made of. Results equal the unfused ops up to float summation order.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/kernels/cpu/common.h"
#include "engine/kernels/cpu/shifted_conv.h"

namespace dfq::cpu {
using detail::kParMin;

namespace {

struct Run {
  int mat;               // which (K, Cg) weight matrix
  int64_t out, in, len;  // first output pixel, first input pixel, pixels
};

// The GEMM problem: `mats` weight matrices (K, Cg) per group, runs between an input of in_pixels
// and an output of out_pixels (both CPN), N images.
struct Shifted {
  int64_t N, C, K, Cg, Kg, in_pixels, out_pixels;
  int groups, mats;
  std::vector<Run> runs;
  // whether matrix m has a run: a 3x3 conv on a 1x1 map only uses its centre tap, and then only
  // that tap's matrix is made from the weights (its gradient is the only non-zero one)
  std::vector<char> used() const {
    std::vector<char> u(size_t(mats), 0);
    for (const Run& r : runs) u[size_t(r.mat)] = 1;
    return u;
  }
  void add(const Run& r) {  // merges with the previous run when both sides continue it
    Run* last = runs.empty() ? nullptr : &runs.back();
    if (last && last->mat == r.mat && last->out + last->len == r.out && last->in + last->len == r.in)
      last->len += r.len;
    else
      runs.push_back(r);
  }
};

std::unique_ptr<float[]> buffer(int64_t n) { return std::unique_ptr<float[]>(new float[std::max<int64_t>(n, 1)]); }

// (N, C, pixels) <-> (C, pixels, N), a transpose of (N, C*pixels) in B x B tiles (both sides touch
// B lines per tile). `map` (optional) renumbers the CPN side's pixels: NCHW pixel pix is CPN pixel
// map[pix] (the fused up-sampling conv's phase-major output).
constexpr int64_t kTile = 16;

void to_cpn(int64_t N, int64_t C, int64_t pixels, const float* x, float* t, const int64_t* map = nullptr) {
  const int64_t rows = C * pixels, row_tiles = (rows + kTile - 1) / kTile, n_tiles = (N + kTile - 1) / kTile;
#pragma omp parallel for collapse(2) schedule(static) if (N * rows > kParMin)
  for (int64_t rt = 0; rt < row_tiles; ++rt)
    for (int64_t nt = 0; nt < n_tiles; ++nt) {
      const int64_t r1 = std::min(rows, rt * kTile + kTile), n0 = nt * kTile, n1 = std::min(N, n0 + kTile);
      for (int64_t r = rt * kTile; r < r1; ++r) {
        const int64_t cpn_row = map ? (r / pixels) * pixels + map[r % pixels] : r;
        float* dst = t + cpn_row * N;
        const float* src = x + r;
        for (int64_t n = n0; n < n1; ++n) dst[n] = src[n * rows];
      }
    }
}

void from_cpn(int64_t N, int64_t C, int64_t pixels, const float* t, float* x, const int64_t* map = nullptr) {
  const int64_t rows = C * pixels, row_tiles = (rows + kTile - 1) / kTile, n_tiles = (N + kTile - 1) / kTile;
#pragma omp parallel for collapse(2) schedule(static) if (N * rows > kParMin)
  for (int64_t nt = 0; nt < n_tiles; ++nt)
    for (int64_t rt = 0; rt < row_tiles; ++rt) {
      const int64_t r0 = rt * kTile, r1 = std::min(rows, r0 + kTile), n1 = std::min(N, nt * kTile + kTile);
      for (int64_t n = nt * kTile; n < n1; ++n) {
        float* dst = x + n * rows;
        if (map)
          for (int64_t r = r0; r < r1; ++r) dst[r] = t[((r / pixels) * pixels + map[r % pixels]) * N + n];
        else
          for (int64_t r = r0; r < r1; ++r) dst[r] = t[r * N + n];
      }
    }
}

// The runs' GEMMs are split over the threads by rows of their output: the rows (K for the forward
// and the filter gradient, Cg for the data gradient) are cut into kFixedSplit blocks whatever the
// thread count (common.h: GEMM heights that followed the thread count made results follow it),
// each thread takes whole blocks and makes every run's GEMM for them, single-threaded (OpenBLAS's
// OpenMP build runs serially inside a parallel region). One fork per pass instead of a two-thread
// GEMM per run, each of which synchronises its threads with sched_yield (15-25 % of the time of
// these small GEMMs in perf).
template <typename F>
void split_rows(int64_t rows, int64_t work, F f) {
  const bool split = work > kParMin && rows >= 16;
  const int64_t blocks = split ? detail::kFixedSplit : 1, per = (rows + blocks - 1) / blocks;
#pragma omp parallel for schedule(static) if (split)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t r0 = std::min(rows, b * per), r1 = std::min(rows, r0 + per);
    if (r0 < r1) f(r0, r1);
  }
}

int64_t run_flops(const Shifted& sg) {
  int64_t f = 0;
  for (const Run& r : sg.runs) f += r.len;
  return f * sg.N * sg.Kg * sg.Cg * sg.groups;
}

// yt (K, out_pixels, N) = sum over runs of wt[mat] x xt-block
void run_forward(const Shifted& sg, const float* wt, const float* xt, float* yt) {
  const int64_t ldx = sg.in_pixels * sg.N, ldy = sg.out_pixels * sg.N;
  split_rows(sg.Kg, run_flops(sg), [&](int64_t k0, int64_t k1) {
    for (int g = 0; g < sg.groups; ++g)
      std::fill(yt + (g * sg.Kg + k0) * ldy, yt + (g * sg.Kg + k1) * ldy, 0.f);
    for (const Run& r : sg.runs)
      for (int g = 0; g < sg.groups; ++g)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k1 - k0, r.len * sg.N, sg.Cg, 1.f,
                    wt + (r.mat * sg.K + g * sg.Kg + k0) * sg.Cg, sg.Cg, xt + g * sg.Cg * ldx + r.in * sg.N, ldx, 1.f,
                    yt + (g * sg.Kg + k0) * ldy + r.out * sg.N, ldy);
  });
}

// gxt (C, in_pixels, N) = sum over runs of wt[mat]^T x gyt-block
void run_backward_data(const Shifted& sg, const float* wt, const float* gyt, float* gxt) {
  const int64_t ldx = sg.in_pixels * sg.N, ldy = sg.out_pixels * sg.N;
  split_rows(sg.Cg, run_flops(sg), [&](int64_t c0, int64_t c1) {
    for (int g = 0; g < sg.groups; ++g)
      std::fill(gxt + (g * sg.Cg + c0) * ldx, gxt + (g * sg.Cg + c1) * ldx, 0.f);
    for (const Run& r : sg.runs)
      for (int g = 0; g < sg.groups; ++g)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c1 - c0, r.len * sg.N, sg.Kg, 1.f,
                    wt + (r.mat * sg.K + g * sg.Kg) * sg.Cg + c0, sg.Cg, gyt + g * sg.Kg * ldy + r.out * sg.N, ldy, 1.f,
                    gxt + (g * sg.Cg + c0) * ldx + r.in * sg.N, ldx);
  });
}

// gwt[mat] (K, Cg) = sum over that matrix's runs of gyt-block x xt-block^T (the matrices without a
// run are left alone: nothing reads them)
void run_backward_filter(const Shifted& sg, const float* xt, const float* gyt, float* gwt) {
  const std::vector<char> used = sg.used();
  const int64_t ldx = sg.in_pixels * sg.N, ldy = sg.out_pixels * sg.N;
  split_rows(sg.Kg, run_flops(sg), [&](int64_t k0, int64_t k1) {
    for (int m = 0; m < sg.mats; ++m)
      if (used[size_t(m)])
        for (int g = 0; g < sg.groups; ++g)
          std::fill(gwt + (m * sg.K + g * sg.Kg + k0) * sg.Cg, gwt + (m * sg.K + g * sg.Kg + k1) * sg.Cg, 0.f);
    for (const Run& r : sg.runs)
      for (int g = 0; g < sg.groups; ++g)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, k1 - k0, sg.Cg, r.len * sg.N, 1.f,
                    gyt + (g * sg.Kg + k0) * ldy + r.out * sg.N, ldy, xt + g * sg.Cg * ldx + r.in * sg.N, ldx, 1.f,
                    gwt + (r.mat * sg.K + g * sg.Kg + k0) * sg.Cg, sg.Cg);
  });
}

// ---- plain convolution: one matrix per tap ------------------------------------------------------
Shifted conv_runs(const Conv2dArgs& a) {
  Shifted sg{a.N, a.C, a.K, a.C / a.groups, a.K / a.groups, int64_t(a.H) * a.W, int64_t(a.P) * a.Q, a.groups,
             a.R * a.S, {}};
  for (int r = 0; r < a.R; ++r)
    for (int s = 0; s < a.S; ++s) {
      const int w_off = s * a.dil_w - a.pad_w;
      int q_lo, q_hi;
      detail::valid_q_range(a, w_off, &q_lo, &q_hi);
      if (q_hi <= q_lo) continue;
      const int step = a.stride_w == 1 ? q_hi - q_lo : 1;
      for (int p = 0; p < a.P; ++p) {
        const int h = p * a.stride_h - a.pad_h + r * a.dil_h;
        if (h < 0 || h >= a.H) continue;
        for (int q = q_lo; q < q_hi; q += step)
          sg.add({r * a.S + s, int64_t(p) * a.Q + q, int64_t(h) * a.W + int64_t(q) * a.stride_w + w_off, step});
      }
    }
  return sg;
}

// weights (K, Cg, RS) <-> (RS, K, Cg), in blocks of 64 input channels: the (K, Cg, RS) side of a
// block is 64 * RS consecutive floats (stays in L1 while each tap takes its stride-RS column), the
// other side a 64-float line per tap. (Tap by tap over all of Cg re-read the whole tensor RS times,
// 4 % of a GDFQ step in perf; channel by channel wrote RS streams 1 MB apart, in one cache set.)
constexpr int64_t kChannelBlock = 64;

// kToTaps: w -> wt, the taps without runs skipped; else wt -> w, their weights' gradient 0
template <bool kToTaps>
void transpose_taps(int64_t K, int64_t Cg, int64_t RS, const char* used, const float* src, float* dst) {
#pragma omp parallel for schedule(static) if (K * Cg * RS > kParMin && K > 1)
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c0 = 0; c0 < Cg; c0 += kChannelBlock) {
      const int64_t c1 = std::min(Cg, c0 + kChannelBlock);
      for (int64_t t = 0; t < RS; ++t) {
        const int64_t tap = (t * K + k) * Cg, w = k * Cg * RS + t;  // (c = 0)'s place on each side
        if (kToTaps && used[t])
          for (int64_t c = c0; c < c1; ++c) dst[tap + c] = src[w + c * RS];
        else if (!kToTaps)
          for (int64_t c = c0; c < c1; ++c) dst[w + c * RS] = used[t] ? src[tap + c] : 0.f;
      }
    }
}

void weights_to_taps(int64_t K, int64_t Cg, int64_t RS, const char* used, const float* w, float* wt) {
  transpose_taps<true>(K, Cg, RS, used, w, wt);
}
void weights_from_taps(int64_t K, int64_t Cg, int64_t RS, const char* used, const float* wt, float* w) {
  transpose_taps<false>(K, Cg, RS, used, wt, w);
}

// ---- up-sampling fusion: 16 summed matrices, phase-major output -------------------------------
// matrix index ((a * 2 + b) * 2 + u) * 2 + v; tap rows of (a, u): a=0: u=0 {0}, u=1 {1,2};
// a=1: u=0 {0,1}, u=1 {2} — i.e. tap row r belongs to (a, u) iff r_lo(a,u) <= r <= r_hi(a,u)
int tap_lo(int a, int u) { return a == 0 ? (u == 0 ? 0 : 1) : (u == 0 ? 0 : 2); }
int tap_hi(int a, int u) { return a == 0 ? (u == 0 ? 0 : 2) : (u == 0 ? 1 : 2); }
// whether tap (r, t) of the 3x3 kernel is summed into matrix m
bool up2_tap_in(int m, int r, int t) {
  const int ph = m >> 3, pw = (m >> 2) & 1, u = (m >> 1) & 1, v = m & 1;
  return r >= tap_lo(ph, u) && r <= tap_hi(ph, u) && t >= tap_lo(pw, v) && t <= tap_hi(pw, v);
}

Shifted up2_runs(const Up2ConvArgs& a) {
  const int64_t H = a.H, W = a.W;
  Shifted sg{a.N, a.C, a.K, a.C, a.K, H * W, 4 * H * W, 1, 16, {}};
  for (int ph = 0; ph < 2; ++ph)
    for (int pw = 0; pw < 2; ++pw)
      for (int u = 0; u < 2; ++u)
        for (int v = 0; v < 2; ++v) {
          const int dh = ph + u - 1, dw = pw + v - 1;  // input offset of this phase's tap
          const int64_t j_lo = std::max(0, -dw), j_hi = std::min<int64_t>(W, W - dw);
          for (int64_t i = std::max(0, -dh); i < std::min<int64_t>(H, H - dh); ++i)
            sg.add({((ph * 2 + pw) * 2 + u) * 2 + v, ((ph * 2 + pw) * H + i) * W + j_lo, (i + dh) * W + j_lo + dw,
                    j_hi - j_lo});
        }
  return sg;
}

// up2_tap_in as lists, in increasing order (the sums below add in that order, as a loop over all
// taps / matrices testing up2_tap_in would): the taps of each matrix, the matrices of each tap
struct Up2Lists {
  int taps[16][4], n_taps[16], mats[9][16], n_mats[9];
  Up2Lists() : n_taps(), n_mats() {
    for (int m = 0; m < 16; ++m)
      for (int i = 0; i < 9; ++i)
        if (up2_tap_in(m, i / 3, i % 3)) {
          taps[m][n_taps[m]++] = i;
          mats[i][n_mats[i]++] = m;
        }
  }
};
const Up2Lists& up2_lists() {
  static const Up2Lists lists;
  return lists;
}

// w (K, C, 3, 3) -> we (16, K, C)
void up2_weights(int64_t K, int64_t C, const float* w, float* we) {
  const Up2Lists& ls = up2_lists();
#pragma omp parallel for collapse(2) schedule(static) if (16 * K * C > kParMin)
  for (int m = 0; m < 16; ++m)
    for (int64_t k = 0; k < K; ++k) {
      float* dst = we + (m * K + k) * C;
      const int* taps = ls.taps[m];
      const int n = ls.n_taps[m];
      for (int64_t c = 0; c < C; ++c) {
        const float* wk = w + (k * C + c) * 9;
        float s = 0.f;
        for (int j = 0; j < n; ++j) s += wk[taps[j]];
        dst[c] = s;
      }
    }
}

// gwe (16, K, C) -> gw (K, C, 3, 3): every tap gathers the used summed matrices it is part of (on
// a 1-pixel-high or -wide input some matrices have no run, and no gradient)
void up2_weight_grads(int64_t K, int64_t C, const char* used, const float* gwe, float* gw) {
  const Up2Lists& ls = up2_lists();
#pragma omp parallel for schedule(static) if (16 * K * C > kParMin)
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < C; ++c)
      for (int i = 0; i < 9; ++i) {
        float s = 0.f;
        for (int j = 0; j < ls.n_mats[i]; ++j)
          if (used[ls.mats[i][j]]) s += gwe[(ls.mats[i][j] * K + k) * C + c];
        gw[(k * C + c) * 9 + i] = s;
      }
}

// NCHW output pixel (p, q) of the (2H, 2W) map -> phase-major pixel
std::vector<int64_t> up2_pixel_map(int64_t H, int64_t W) {
  std::vector<int64_t> map(4 * H * W);
  for (int64_t p = 0; p < 2 * H; ++p)
    for (int64_t q = 0; q < 2 * W; ++q) map[p * 2 * W + q] = (((p & 1) * 2 + (q & 1)) * H + p / 2) * W + q / 2;
  return map;
}

void check_up2(const Up2ConvArgs& a) {
  if (a.N < 0 || a.C < 1 || a.H < 1 || a.W < 1 || a.K < 1)
    throw std::invalid_argument("dfq: bad conv2d_up2 arguments (N,C,H,W=" + std::to_string(a.N) + "," +
                                std::to_string(a.C) + "," + std::to_string(a.H) + "," + std::to_string(a.W) +
                                " K=" + std::to_string(a.K) + ")");
}

// A problem = runs + how its (K, Cg) matrices come from the weights (make) and their gradients
// go back to the weights (fold) + the CPN order of the output pixels (empty: NCHW order).
struct Problem {
  Shifted sg;
  // make: the used matrices from the weights; fold: the weight gradient from the used matrices'
  // gradients (the others' taps get 0)
  void (*make)(int64_t K, int64_t Cg, int64_t mats, const char* used, const float* w, float* m);
  void (*fold)(int64_t K, int64_t Cg, int64_t mats, const char* used, const float* gm, float* gw);
  std::vector<int64_t> out_map;
  const int64_t* map() const { return out_map.empty() ? nullptr : out_map.data(); }
};

Problem conv_problem(const Conv2dArgs& a) { return {conv_runs(a), weights_to_taps, weights_from_taps, {}}; }

Problem up2_problem(const Up2ConvArgs& a) {
  check_up2(a);
  return {up2_runs(a), [](int64_t K, int64_t C, int64_t, const char*, const float* w, float* m) { up2_weights(K, C, w, m); },
          [](int64_t K, int64_t C, int64_t, const char* used, const float* gm, float* gw) { up2_weight_grads(K, C, used, gm, gw); },
          up2_pixel_map(a.H, a.W)};
}

// xt_keep (optional, C * in_pixels * N floats) receives x's CPN copy, for the filter gradient
void problem_forward(const Problem& pr, const float* x, const float* w, float* y, float* xt_keep = nullptr) {
  const Shifted& sg = pr.sg;
  std::unique_ptr<float[]> xt_own = xt_keep ? nullptr : buffer(sg.C * sg.in_pixels * sg.N);
  float* xt = xt_keep ? xt_keep : xt_own.get();
  auto yt = buffer(sg.K * sg.out_pixels * sg.N), m = buffer(sg.mats * sg.K * sg.Cg);
  to_cpn(sg.N, sg.C, sg.in_pixels, x, xt);
  pr.make(sg.K, sg.Cg, sg.mats, sg.used().data(), w, m.get());
  run_forward(sg, m.get(), xt, yt.get());
  from_cpn(sg.N, sg.K, sg.out_pixels, yt.get(), y, pr.map());
}

// `given` (a CPN copy made earlier) when not null, else t (N, C, pixels) copied to CPN into `own`
const float* cpn_or(const float* given, std::unique_ptr<float[]>& own, int64_t N, int64_t C, int64_t pixels, const float* t,
                    const int64_t* map = nullptr) {
  if (given) return given;
  own = buffer(C * pixels * N);
  to_cpn(N, C, pixels, t, own.get(), map);
  return own.get();
}

void problem_backward_data(const Problem& pr, const float* gy, const float* w, float* gx, const float* gyt_in = nullptr) {
  const Shifted& sg = pr.sg;
  std::unique_ptr<float[]> gyt_own;
  const float* gyt = cpn_or(gyt_in, gyt_own, sg.N, sg.K, sg.out_pixels, gy, pr.map());
  auto gxt = buffer(sg.C * sg.in_pixels * sg.N), m = buffer(sg.mats * sg.K * sg.Cg);
  pr.make(sg.K, sg.Cg, sg.mats, sg.used().data(), w, m.get());
  run_backward_data(sg, m.get(), gyt, gxt.get());
  from_cpn(sg.N, sg.C, sg.in_pixels, gxt.get(), gx);
}

void problem_backward_filter(const Problem& pr, const float* x, const float* gy, float* gw, const float* gyt_in = nullptr,
                             const float* xt_in = nullptr) {
  const Shifted& sg = pr.sg;
  std::unique_ptr<float[]> gyt_own;
  const float* gyt = cpn_or(gyt_in, gyt_own, sg.N, sg.K, sg.out_pixels, gy, pr.map());
  std::unique_ptr<float[]> xt_own;
  const float* xt = cpn_or(xt_in, xt_own, sg.N, sg.C, sg.in_pixels, x);
  auto gm = buffer(sg.mats * sg.K * sg.Cg);
  run_backward_filter(sg, xt, gyt, gm.get());
  pr.fold(sg.K, sg.Cg, sg.mats, sg.used().data(), gm.get(), gw);
}

}  // namespace

namespace detail {

void shifted_conv_forward(const Conv2dArgs& a, const float* x, const float* w, float* y) {
  problem_forward(conv_problem(a), x, w, y);
}

void shifted_conv_backward_data(const Conv2dArgs& a, const float* gy, const float* w, float* gx) {
  problem_backward_data(conv_problem(a), gy, w, gx);
}

void shifted_conv_backward_filter(const Conv2dArgs& a, const float* x, const float* gy, float* gw) {
  problem_backward_filter(conv_problem(a), x, gy, gw);
}

}  // namespace detail

void conv2d_up2_forward(const Up2ConvArgs& a, const float* x, const float* w, const float* b, float* y, float* xt) {
  const Problem pr = up2_problem(a);
  if (a.N == 0) return;
  problem_forward(pr, x, w, y, xt);
  if (b) detail::add_channel_bias(pr.sg.N, pr.sg.K, pr.sg.out_pixels, b, y);
}

void conv2d_up2_backward(const Up2ConvArgs& a, const float* x, const float* gy, const float* w, float* gx, float* gw, float* gb,
                         const float* xt) {
  const Problem pr = up2_problem(a);
  if (gb) detail::channel_sums(pr.sg.N, pr.sg.K, pr.sg.out_pixels, gy, gb);
  if (a.N == 0) {
    if (gw) std::fill(gw, gw + pr.sg.K * pr.sg.C * 9, 0.f);
    return;
  }
  // gy in CPN order once, for both gradients
  const Shifted& sg = pr.sg;
  auto gyt = buffer(sg.K * sg.out_pixels * sg.N);
  if (gx || gw) to_cpn(sg.N, sg.K, sg.out_pixels, gy, gyt.get(), pr.map());
  if (gx) problem_backward_data(pr, gy, w, gx, gyt.get());
  if (gw) problem_backward_filter(pr, x, gy, gw, gyt.get(), xt);
}

}  // namespace dfq::cpu
