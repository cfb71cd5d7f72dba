// gemm_conv.cpp — CPU reference GEMM and 2-D convolution (NCHW, weight (K,C/g,R,S), groups,
// stride, padding, dilation). Convolution is im2col + cblas_sgemm (OpenBLAS), one GEMM per group
// over a chunk of Nb images at once (so small P*Q still gives wide GEMMs); backward data is
// GEMM + col2im, backward filter accumulates over chunks with beta = 1.
// Rules: cblas is called inside an OpenMP parallel region only where each thread owns whole GEMMs
// (OpenBLAS's OpenMP build then runs them single-threaded); elsewhere through blocked_gemm, which
// cuts a big GEMM into blocks by its shape alone and spreads them over the threads, never letting
// OpenBLAS split it by the thread count (whose Haswell kernels sum differently per split).
// Every GEMM's shape is a function of the problem, never of the thread count: a result is the same
// bytes at any thread count (tests/test_repro.cpp).
// The engine links OpenBLAS's OpenMP build, so BLAS and these loops share one OpenMP thread pool:
// im2col / col2im / the (K, nb*PQ) packing are parallel over independent rows / planes (with the
// pthread build of OpenBLAS the two pools fought for the cores, 10-50x slower on 2 cores).
//
// Column layout of a chunk of Nb images: col (C*R*S, Nb*P*Q), row (c*R + r)*S + s, column
// nb*P*Q + p*Q + q. Group g owns rows [g*Cg*R*S, (g+1)*Cg*R*S).
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "engine/kernels/cpu/common.h"
#include "engine/kernels/cpu/onednn.h"
#include "engine/kernels/cpu/shifted_conv.h"
#include "engine/kernels/kernels.h"

namespace dfq::cpu {
using detail::kFixedSplit;
using detail::kParMin;
using detail::valid_q_range;

namespace {
// OpenBLAS runs a GEMM of at most this many multiply-adds single-threaded whatever its thread
// count (its threshold, 65536 * GEMM_MULTITHREAD_THRESHOLD 4: measured, 1 and 2 threads give the
// same bytes up to 64x64x64 and differ from 64x64x65 on with the Haswell kernels).
constexpr int64_t kSerialGemm = int64_t(1) << 18;
constexpr int kGemmBlocks = 4;  // blocks of a bigger GEMM (independent of the thread count)

void blocked_gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                  const float* B, int ldb, float beta, float* C, int ldc) {
  const CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  const bool by_rows = M >= N;
  const int len = by_rows ? M : N;
  const int blocks = int64_t(M) * N * K <= kSerialGemm ? 1 : std::min(kGemmBlocks, (len + 15) / 16);
  if (blocks <= 1) {
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const int per = (len + blocks - 1) / blocks;
  // Each block is one single-threaded GEMM inside the parallel region. At one OpenMP thread the
  // region is inactive and the blocks run in turn, single-threaded as long as OpenBLAS's own count
  // is 1 too (OMP_NUM_THREADS sets both; so does openblas_set_num_threads).
#pragma omp parallel for schedule(static)
  for (int b = 0; b < blocks; ++b) {
    const int i0 = std::min(len, b * per), n = std::min(len, i0 + per) - i0;
    if (n <= 0) continue;
    if (by_rows)  // rows i0.. of op(A) and C
      cblas_sgemm(CblasRowMajor, ta, tb, n, N, K, alpha, trans_a ? A + i0 : A + int64_t(i0) * lda, lda, B, ldb, beta,
                  C + int64_t(i0) * ldc, ldc);
    else  // columns i0.. of op(B) and C
      cblas_sgemm(CblasRowMajor, ta, tb, M, n, K, alpha, A, lda, trans_b ? B + int64_t(i0) * ldb : B + i0, ldb, beta,
                  C + i0, ldc);
  }
}
}  // namespace

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
          int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.f) {  // C = beta * C (beta == 0 clears NaNs, as BLAS does)
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) C[int64_t(i) * ldc + j] = beta == 0.f ? 0.f : beta * C[int64_t(i) * ldc + j];
    return;
  }
  blocked_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void add_bias_rows(int M, int N, const float* bias, float* y) {
#pragma omp parallel for schedule(static) if (int64_t(M) * N > kParMin && M > 1)
  for (int i = 0; i < M; ++i) {
    float* yr = y + int64_t(i) * N;
    for (int j = 0; j < N; ++j) yr[j] += bias[j];
  }
}

namespace {

struct ConvPlan {
  int64_t PQ, HW, CRS, Cg, Kg, CgRS;
  int nb;       // images per chunk
  bool direct;  // 1x1, stride 1, pad 0, one image per chunk: x itself is the column matrix
};

// Bad arguments throw std::invalid_argument before anything is touched (as the CUDA twins do).
void check_conv_args(const Conv2dArgs& a) {
  bool ok = a.N >= 0 && a.C >= 0 && a.H >= 0 && a.W >= 0 && a.K >= 0 && a.R >= 1 && a.S >= 1 && a.stride_h >= 1 &&
            a.stride_w >= 1 && a.pad_h >= 0 && a.pad_w >= 0 && a.dil_h >= 1 && a.dil_w >= 1 && a.groups >= 1 &&
            a.C % a.groups == 0 && a.K % a.groups == 0 && a.P >= 0 && a.Q >= 0;
  if (ok) {
    Conv2dArgs b = a;
    conv2d_out_size(b);
    ok = (b.P == a.P && b.Q == a.Q) || (a.P == 0 && b.P <= 0) || (a.Q == 0 && b.Q <= 0);
  }
  if (!ok)
    throw std::invalid_argument("dfq: bad conv2d arguments (N,C,H,W=" + std::to_string(a.N) + "," + std::to_string(a.C) +
                                "," + std::to_string(a.H) + "," + std::to_string(a.W) + " K=" + std::to_string(a.K) +
                                " RxS=" + std::to_string(a.R) + "x" + std::to_string(a.S) +
                                " groups=" + std::to_string(a.groups) + " PxQ=" + std::to_string(a.P) + "x" +
                                std::to_string(a.Q) + ")");
}

ConvPlan plan_conv(const Conv2dArgs& a) {
  check_conv_args(a);
  ConvPlan p;
  p.PQ = int64_t(a.P) * a.Q;
  p.HW = int64_t(a.H) * a.W;
  p.Cg = a.C / a.groups;
  p.Kg = a.K / a.groups;
  p.CgRS = p.Cg * a.R * a.S;
  p.CRS = int64_t(a.C) * a.R * a.S;
  // Aim for GEMMs about 1024 columns wide, with the column buffer at most 32M floats.
  int64_t want = std::max<int64_t>(1, (1024 + p.PQ - 1) / std::max<int64_t>(p.PQ, 1));
  int64_t cap = std::max<int64_t>(1, (int64_t(32) << 20) / std::max<int64_t>(p.CRS * p.PQ, 1));
  p.nb = static_cast<int>(std::min<int64_t>({want, cap, std::max(a.N, 1)}));
  p.direct = a.R == 1 && a.S == 1 && a.stride_h == 1 && a.stride_w == 1 && a.pad_h == 0 && a.pad_w == 0 &&
             p.nb == 1;
  return p;
}

std::unique_ptr<float[]> scratch(int64_t n) { return std::unique_ptr<float[]>(new float[std::max<int64_t>(n, 1)]); }

// col (CRS, nb*PQ) from images x[0..nb) (each (C,H,W)).
void im2col(const Conv2dArgs& a, const ConvPlan& pl, int nb, const float* x, float* col) {
  const int RS = a.R * a.S;
  const int64_t rows = pl.CRS, ld = int64_t(nb) * pl.PQ;
#pragma omp parallel for schedule(static) if (rows * ld > kParMin && rows > 1)
  for (int64_t row = 0; row < rows; ++row) {
    const int c = static_cast<int>(row / RS), r = static_cast<int>(row % RS) / a.S, s = static_cast<int>(row % a.S);
    const int w_off = s * a.dil_w - a.pad_w;
    int q_lo, q_hi;
    valid_q_range(a, w_off, &q_lo, &q_hi);
    for (int n = 0; n < nb; ++n) {
      const float* xc = x + (int64_t(n) * a.C + c) * pl.HW;
      float* dst = col + row * ld + int64_t(n) * pl.PQ;
      // plain loops for short rows (ResNet's small feature maps: a call costs more than the copy),
      // memcpy for long ones
      for (int p = 0; p < a.P; ++p) {
        int h = p * a.stride_h - a.pad_h + r * a.dil_h;
        float* d = dst + int64_t(p) * a.Q;
        if (h < 0 || h >= a.H) {
          for (int q = 0; q < a.Q; ++q) d[q] = 0.f;
          continue;
        }
        const float* xr = xc + int64_t(h) * a.W + w_off;
        for (int q = 0; q < q_lo; ++q) d[q] = 0.f;
        if (a.stride_w == 1 && q_hi - q_lo >= 16) {
          std::memcpy(d + q_lo, xr + q_lo, sizeof(float) * (q_hi - q_lo));  // long rows: memcpy wins
        } else if (a.stride_w == 1) {
          for (int q = q_lo; q < q_hi; ++q) d[q] = xr[q];
        } else {
          for (int q = q_lo; q < q_hi; ++q) d[q] = xr[int64_t(q) * a.stride_w];
        }
        for (int q = q_hi; q < a.Q; ++q) d[q] = 0.f;
      }
    }
  }
}

// gx[0..nb) (each (C,H,W)) = col2im(col); parallel over (image, channel) planes.
void col2im(const Conv2dArgs& a, const ConvPlan& pl, int nb, const float* col, float* gx) {
  const int64_t ld = int64_t(nb) * pl.PQ;
  const int64_t planes = int64_t(nb) * a.C;
#pragma omp parallel for schedule(static) if (planes * pl.HW > kParMin && planes > 1)
  for (int64_t t = 0; t < planes; ++t) {
    int n = static_cast<int>(t / a.C), c = static_cast<int>(t % a.C);
    float* g = gx + t * pl.HW;
    std::fill(g, g + pl.HW, 0.f);
    for (int r = 0; r < a.R; ++r) {
      for (int s = 0; s < a.S; ++s) {
        const float* src = col + ((int64_t(c) * a.R + r) * a.S + s) * ld + int64_t(n) * pl.PQ;
        int w_off = s * a.dil_w - a.pad_w;
        int q_lo, q_hi;
        valid_q_range(a, w_off, &q_lo, &q_hi);
        for (int p = 0; p < a.P; ++p) {
          int h = p * a.stride_h - a.pad_h + r * a.dil_h;
          if (h < 0 || h >= a.H) continue;
          float* gr = g + int64_t(h) * a.W + w_off;
          const float* sr = src + int64_t(p) * a.Q;
          for (int q = q_lo; q < q_hi; ++q) gr[int64_t(q) * a.stride_w] += sr[q];
        }
      }
    }
  }
}

// images (nb, K, PQ) -> cols (K, nb*PQ)
void gather_kpq(int64_t K, int64_t PQ, int nb, const float* images, float* cols) {
  const int64_t ld = int64_t(nb) * PQ;
#pragma omp parallel for collapse(2) schedule(static) if (K * ld > kParMin)
  for (int n = 0; n < nb; ++n)
    for (int64_t k = 0; k < K; ++k) std::memcpy(cols + k * ld + n * PQ, images + (n * K + k) * PQ, sizeof(float) * PQ);
}

// cols (K, nb*PQ) -> images (nb, K, PQ)
void scatter_kpq(int64_t K, int64_t PQ, int nb, const float* cols, float* images) {
  const int64_t ld = int64_t(nb) * PQ;
#pragma omp parallel for collapse(2) schedule(static) if (K * ld > kParMin)
  for (int n = 0; n < nb; ++n)
    for (int64_t k = 0; k < K; ++k) std::memcpy(images + (n * K + k) * PQ, cols + k * ld + n * PQ, sizeof(float) * PQ);
}

ConvAlgo g_conv_algo = ConvAlgo::Auto;

bool use_shifted(const Conv2dArgs& a, const ConvPlan& pl) {
  switch (g_conv_algo) {
    case ConvAlgo::Im2col: return false;
    case ConvAlgo::Shifted: return true;
    case ConvAlgo::Auto:
    case ConvAlgo::Direct:
    case ConvAlgo::Depthwise:
    case ConvAlgo::OneDnn: break;  // never set (set_conv_algo refuses them)
  }
  // Measured with tools/bench --only conv_algos (resnet18 at 32x32, batch 256; GDFQ's generator,
  // batch 64), forward + both backwards: shifted GEMMs take 0.55x (1x1 map) .. 0.8x (8x8) of
  // im2col's time for stride-1 3x3 convs from 64 channels up, and 0.96x at 16x16; at 32x32 they lose
  // (1.17x). With stride 2 each output pixel is its own GEMM: a draw at 4x4 and 2x2 outputs, a win
  // at 1x1, a 3x loss for the 1x1 downsample convs. A 3-channel stem starves the GEMMs.
  if (pl.Cg < 32 || (a.R == 1 && a.S == 1)) return false;
  return a.stride_w == 1 ? pl.PQ <= 256 : pl.PQ <= 1;
}

}  // namespace

namespace detail {

void add_channel_bias(int64_t N, int64_t K, int64_t PQ, const float* b, float* y) {
  const int64_t planes = N * K;
#pragma omp parallel for schedule(static) if (planes * PQ > kParMin && planes > 1)
  for (int64_t t = 0; t < planes; ++t) {
    float bk = b[t % K];
    float* yp = y + t * PQ;
    for (int64_t i = 0; i < PQ; ++i) yp[i] += bk;
  }
}

void channel_sums(int64_t N, int64_t K, int64_t PQ, const float* gy, float* gb) {
#pragma omp parallel for schedule(static) if (N * K * PQ > kParMin && K > 1)
  for (int64_t k = 0; k < K; ++k) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n) {
      const float* p = gy + (n * K + k) * PQ;
      for (int64_t i = 0; i < PQ; ++i) s += p[i];
    }
    gb[k] = static_cast<float>(s);
  }
}

}  // namespace detail

void set_conv_algo(ConvAlgo algo) {
  if (algo == ConvAlgo::Direct || algo == ConvAlgo::Depthwise || algo == ConvAlgo::OneDnn)
    throw std::invalid_argument("dfq: the direct, depthwise and oneDNN convs are only chosen by ConvAlgo::Auto, per shape");
  g_conv_algo = algo;
}

namespace {
// Few output channels (<= 8; the generator's 64 -> 3 conv): direct loops beat a GEMM 3 rows high
// ~5x, forward and filter gradient (direct_conv.cpp). Only under ConvAlgo::Auto, so that a forced
// algorithm is tested as itself.
bool use_direct(const Conv2dArgs& a) { return g_conv_algo == ConvAlgo::Auto && detail::direct_conv_applies(a); }
// Depthwise convs (MobileNetV2's): im2col makes them C GEMMs one row high, one per group; direct
// loops vectorised across channels instead (depthwise_conv.cpp). Only under ConvAlgo::Auto, as the
// direct conv.
bool use_depthwise(const Conv2dArgs& a) { return g_conv_algo == ConvAlgo::Auto && detail::depthwise_conv_applies(a); }
// The forward of an ungrouped conv with a kernel above 1x1 and more than 8 output channels on a map
// larger than 8x8, from 8 input channels, when dfq is built with oneDNN: its blocked-layout kernels,
// the NCHW reorders counted, took 0.05-0.5x the engine's time on resnet18's 224 px shapes (batch 1:
// 3x3 convs on 56x56..14x14 maps 0.05-0.2x; batch 8: 0.45-0.6x) and 0.45-0.55x on 8x8 / 4x4 maps at
// batch 256, but 1.4x on the 224 px stem at batch 1 (3 channels) and 1.4-2.5x on 2x2 / 1x1 maps; a
// 1x1 conv is one GEMM on the NCHW map already, and the reorders around it made MobileNetV2's
// forward at 224 px batch 32 1.75x slower (measured). The bounds keep every conv of the 32 px
// ResNets (8x8 maps after the stem, whose 3 channels stay below the channel bound), MobileNetV2s
// (no ungrouped conv above 1x1 but the stem) and GDFQ's generator (its fused up-sampling convs, and
// its 64 -> 3 conv on the direct kernel) on the engine's kernels, so the Fashion-MNIST results are
// the engine's own. The backward passes stay the engine's (their results are the same bytes at any
// thread count: tests/test_repro.cpp).
bool use_onednn_forward(const Conv2dArgs& a) {
  return g_conv_algo == ConvAlgo::Auto && onednn::available() && a.groups == 1 && a.C >= 8 && a.K > 8 &&
         (a.R > 1 || a.S > 1) && int64_t(a.H) * a.W > 64;
}
}  // namespace

ConvAlgo conv_algo_for(const Conv2dArgs& a) {
  const ConvPlan pl = plan_conv(a);
  if (use_onednn_forward(a)) return ConvAlgo::OneDnn;  // the forward's; the backward passes run the rest
  if (use_depthwise(a)) return ConvAlgo::Depthwise;
  if (use_direct(a)) return ConvAlgo::Direct;
  return use_shifted(a, pl) ? ConvAlgo::Shifted : ConvAlgo::Im2col;
}

namespace {

// Forward and data gradient take disjoint images per chunk, so with several chunks each thread
// takes whole chunks (its own column buffer, single-threaded GEMMs inside the parallel region, as
// the shifted runs do) instead of every GEMM synchronising two threads. The chunks are cut the
// same way whatever the thread count: at least kFixedSplit of them when the work is big enough
// (common.h: GEMM widths that followed the thread count made results follow it).
int parallel_chunks(const Conv2dArgs& a, ConvPlan& pl) {
  if (a.N >= 2 && int64_t(a.N) * a.K * pl.PQ * pl.CgRS > kParMin) {
    pl.nb = std::max(1, std::min(pl.nb, (a.N + kFixedSplit - 1) / kFixedSplit));
    pl.direct = pl.direct && pl.nb == 1;
  }
  return (a.N + pl.nb - 1) / pl.nb;
}

// A chunk's GEMM: inside the parallel region over chunks a plain (single-threaded) one; when the
// batch is one chunk (no region) blocked_gemm's, so that OpenBLAS never splits it by the thread count.
void chunk_gemm(bool only_chunk, bool trans_a, bool trans_b, int M, int N, int K, const float* A, int lda,
                const float* B, int ldb, float beta, float* C, int ldc) {
  if (only_chunk)
    blocked_gemm(trans_a, trans_b, M, N, K, 1.f, A, lda, B, ldb, beta, C, ldc);
  else
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, 1.f,
                A, lda, B, ldb, beta, C, ldc);
}

// f(n0, nb, col, buf) for every chunk of nb images at n0, each thread with its own column buffer
// col (CRS x nb*PQ, unless pl.direct) and image-packing buffer buf (K x nb*PQ, when nb > 1).
template <typename F>
void for_each_chunk(const Conv2dArgs& a, ConvPlan& pl, F f) {
  const int chunks = parallel_chunks(a, pl);
#pragma omp parallel if (chunks > 1 && int64_t(a.N) * a.K * pl.PQ * pl.CgRS > kParMin)
  {
    std::unique_ptr<float[]> col, buf;
    if (!pl.direct) col = scratch(pl.CRS * pl.nb * pl.PQ);
    if (pl.nb > 1) buf = scratch(int64_t(a.K) * pl.PQ * pl.nb);
#pragma omp for schedule(static)
    for (int ci = 0; ci < chunks; ++ci) f(ci * pl.nb, std::min(pl.nb, a.N - ci * pl.nb), col.get(), buf.get());
  }
}

void im2col_forward(const Conv2dArgs& a, ConvPlan pl, const float* x, const float* w, float* y) {
  const int64_t x_img = int64_t(a.C) * pl.HW, y_img = int64_t(a.K) * pl.PQ;
  for_each_chunk(a, pl, [&](int n0, int nb, float* col, float* ybuf) {
    const int64_t ld = int64_t(nb) * pl.PQ;
    const float* cols = x + n0 * x_img;
    if (!pl.direct) {
      im2col(a, pl, nb, x + n0 * x_img, col);
      cols = col;
    }
    float* out = pl.nb > 1 ? ybuf : y + n0 * y_img;  // (K, nb*PQ)
    for (int g = 0; g < a.groups; ++g)
      chunk_gemm(nb == a.N, false, false, pl.Kg, ld, pl.CgRS, w + g * pl.Kg * pl.CgRS, pl.CgRS, cols + g * pl.CgRS * ld,
                 ld, 0.f, out + g * pl.Kg * ld, ld);
    if (pl.nb > 1) scatter_kpq(a.K, pl.PQ, nb, out, y + n0 * y_img);
  });
}

void im2col_backward_data(const Conv2dArgs& a, ConvPlan pl, const float* gy, const float* w, float* gx) {
  const int64_t x_img = int64_t(a.C) * pl.HW, y_img = int64_t(a.K) * pl.PQ;
  for_each_chunk(a, pl, [&](int n0, int nb, float* col, float* gbuf) {
    const int64_t ld = int64_t(nb) * pl.PQ;
    const float* g_cols = gy + n0 * y_img;  // (K, nb*PQ)
    if (pl.nb > 1) {
      gather_kpq(a.K, pl.PQ, nb, gy + n0 * y_img, gbuf);
      g_cols = gbuf;
    }
    float* dcol = pl.direct ? gx + n0 * x_img : col;  // (CRS, nb*PQ)
    for (int g = 0; g < a.groups; ++g)
      chunk_gemm(nb == a.N, true, false, pl.CgRS, ld, pl.Kg, w + g * pl.Kg * pl.CgRS, pl.CgRS, g_cols + g * pl.Kg * ld,
                 ld, 0.f, dcol + g * pl.CgRS * ld, ld);
    if (!pl.direct) col2im(a, pl, nb, col, gx + n0 * x_img);
  });
}

void im2col_backward_filter(const Conv2dArgs& a, const ConvPlan& pl, const float* x, const float* gy, float* gw) {
  const int64_t x_img = int64_t(a.C) * pl.HW, y_img = int64_t(a.K) * pl.PQ;
  std::unique_ptr<float[]> col, gbuf;
  if (!pl.direct) col = scratch(pl.CRS * pl.nb * pl.PQ);
  if (pl.nb > 1) gbuf = scratch(y_img * pl.nb);
  for (int n0 = 0; n0 < a.N; n0 += pl.nb) {
    const int nb = std::min(pl.nb, a.N - n0);
    const int64_t ld = int64_t(nb) * pl.PQ;
    const float* cols = x + n0 * x_img;
    if (!pl.direct) {
      im2col(a, pl, nb, x + n0 * x_img, col.get());
      cols = col.get();
    }
    const float* g_cols = gy + n0 * y_img;
    if (pl.nb > 1) {
      gather_kpq(a.K, pl.PQ, nb, gy + n0 * y_img, gbuf.get());
      g_cols = gbuf.get();
    }
    const float beta = n0 == 0 ? 0.f : 1.f;
    for (int g = 0; g < a.groups; ++g)
      blocked_gemm(false, true, pl.Kg, pl.CgRS, ld, 1.f, g_cols + g * pl.Kg * ld, ld, cols + g * pl.CgRS * ld, ld, beta,
                   gw + g * pl.Kg * pl.CgRS, pl.CgRS);
  }
}

// Few output channels (the generator's 64 -> 3 conv): im2col's data gradient would be a rank-K
// update of a (C*R*S, pixels) column matrix (BLAS at ~4 GFLOP/s here) plus col2im. The same
// gradient is the forward conv of gy with the taps flipped, K and C swapped and padding R-1-pad:
// a GEMM K*R*S deep and C wide. 15x faster for 64 -> 3 at 32x32. Only under ConvAlgo::Auto, so
// that a forced algorithm is tested as itself.
bool use_flipped_data_gradient(const Conv2dArgs& a) {
  return g_conv_algo == ConvAlgo::Auto && a.K <= 8 && a.C > a.K && a.groups == 1 && a.stride_h == 1 &&
         a.stride_w == 1 && a.dil_h == 1 && a.dil_w == 1 && a.pad_h < a.R && a.pad_w < a.S;
}

void flipped_backward_data(const Conv2dArgs& a, const float* gy, const float* w, float* gx) {
  Conv2dArgs t{a.N, a.K, a.P, a.Q, a.C, a.R, a.S, 1, 1, a.R - 1 - a.pad_h, a.S - 1 - a.pad_w, 1, 1, 1, 0, 0};
  conv2d_out_size(t);
  const int64_t RS = int64_t(a.R) * a.S;
  auto wf = scratch(int64_t(a.K) * a.C * RS);  // (C, K, R, S), taps reversed
  for (int64_t k = 0; k < a.K; ++k)
    for (int64_t c = 0; c < a.C; ++c)
      for (int64_t i = 0; i < RS; ++i) wf[(c * a.K + k) * RS + (RS - 1 - i)] = w[(k * a.C + c) * RS + i];
  conv2d_forward(t, gy, wf.get(), nullptr, gx);
}

}  // namespace

void conv2d_forward(const Conv2dArgs& a, const float* x, const float* w, const float* b, float* y) {
  check_conv_args(a);
  if (a.N <= 0 || a.K <= 0 || a.P <= 0 || a.Q <= 0) return;
  const ConvPlan pl = plan_conv(a);
  const int64_t y_img = int64_t(a.K) * pl.PQ;
  if (pl.Cg == 0)
    std::fill(y, y + a.N * y_img, 0.f);
  else if (use_depthwise(a))
    detail::depthwise_conv_forward(a, x, w, y);
  else if (use_onednn_forward(a)) {
    onednn::f32_conv_forward_nchw({a.N, a.C, a.H, a.W, a.K, a.R, a.S, a.stride_h, a.stride_w, a.pad_h, a.pad_w, a.dil_h, a.dil_w},
                                  x, w, b, y);
    return;  // the bias is the kernel's
  } else if (use_direct(a))
    detail::direct_conv_forward(a, x, w, y);
  else if (use_shifted(a, pl))
    detail::shifted_conv_forward(a, x, w, y);
  else
    im2col_forward(a, pl, x, w, y);
  if (b) detail::add_channel_bias(a.N, a.K, pl.PQ, b, y);
}

void conv2d_backward_data(const Conv2dArgs& a, const float* gy, const float* w, float* gx) {
  check_conv_args(a);
  if (a.N <= 0 || a.C <= 0 || a.H <= 0 || a.W <= 0) return;
  const ConvPlan pl = plan_conv(a);
  if (pl.PQ == 0 || pl.Kg == 0) {
    std::fill(gx, gx + a.N * int64_t(a.C) * pl.HW, 0.f);
    return;
  }
  if (use_depthwise(a))
    detail::depthwise_conv_backward_data(a, gy, w, gx);
  else if (use_shifted(a, pl))
    detail::shifted_conv_backward_data(a, gy, w, gx);
  else if (use_flipped_data_gradient(a))
    flipped_backward_data(a, gy, w, gx);
  else
    im2col_backward_data(a, pl, gy, w, gx);
}

void conv2d_backward_filter(const Conv2dArgs& a, const float* x, const float* gy, float* gw, float* gb) {
  const ConvPlan pl = plan_conv(a);
  if (gb) detail::channel_sums(a.N, a.K, pl.PQ, gy, gb);
  const int64_t wn = int64_t(a.K) * pl.CgRS;
  if (a.N <= 0 || pl.PQ == 0 || wn == 0) {
    std::fill(gw, gw + wn, 0.f);
    return;
  }
  if (use_depthwise(a))
    detail::depthwise_conv_backward_filter(a, x, gy, gw);
  else if (use_direct(a))
    detail::direct_conv_backward_filter(a, x, gy, gw);
  else if (use_shifted(a, pl))
    detail::shifted_conv_backward_filter(a, x, gy, gw);
  else
    im2col_backward_filter(a, pl, x, gy, gw);
}

}  // namespace dfq::cpu
