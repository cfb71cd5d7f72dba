// depthwise_conv_impl.h — the vector kernels of depthwise_conv.cpp, which includes this file once
// per vector width, each time inside its own namespace in an anonymous one: DFQ_DW_LANES floats
// (channels) per vector: 4 (SSE, the engine's x86-64-v2), 8 (AVX2) and 16 (AVX-512F), the wide ones
// compiled when the compiler can and run when the CPU can. Nothing else includes it.
// Rules: everything here has internal linkage (an AVX2 copy must never stand in for the SSE one);
// lanes never mix and every channel's values are summed in the same order at every width, so both
// widths give the same bytes (tests/test_cpu_conv.cpp checks it).
// defines: kLanes, Vec, forward, backward_data, backward_filter

constexpr int kLanes = DFQ_DW_LANES;
using Vec = float __attribute__((vector_size(kLanes * sizeof(float))));

inline Vec load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, const Vec& v) { std::memcpy(p, &v, sizeof v); }

// p[0] + ... + p[N-1] as a balanced tree, halves left to right (short add chains)
template <int N>
inline Vec tree_sum(const Vec* p) {
  if constexpr (N == 1)
    return p[0];
  else
    return tree_sum<N / 2>(p) + tree_sum<N - N / 2>(p + N / 2);
}

// The call's outputs of `images` images (buffers img_src / img_dst pixels apart): dst (+)= the
// tree_sum over its M taps (from t0) of weight * src; Acc: dst + that sum.
template <int M, bool Acc>
void taps_kernel(const Call& c, int t0, const float* wt, const float* __restrict src, float* __restrict dst, int images,
                 int64_t img_src, int64_t img_dst) {
  Vec w[M];
  int64_t o[M];
  for (int t = 0; t < M; ++t) {
    w[t] = load(wt + int64_t(c.id[size_t(t0 + t)]) * kLanes);
    o[t] = c.off[size_t(t0 + t)] * kLanes;
  }
  const int64_t src_line = c.src_line * kLanes, src_step = c.src_step * kLanes, dst_line = c.dst_line * kLanes,
                dst_step = c.dst_step * kLanes;
  auto one = [&](const float* s, float* d) {
    Vec p[M];
#pragma GCC unroll 9
    for (int t = 0; t < M; ++t) p[t] = w[t] * load(s + o[t]);
    store(d, Acc ? load(d) + tree_sum<M>(p) : tree_sum<M>(p));
  };
  if (c.K >= images) {  // the longer loop innermost (a call on a small map has 1 or 2 outputs a line)
    for (int i = 0; i < images; ++i)
      for (int l = 0; l < c.lines; ++l) {
        const float* s = src + (i * img_src) * kLanes + l * src_line;
        float* d = dst + (i * img_dst + c.dst) * kLanes + l * dst_line;
        for (int k = 0; k < c.K; ++k, s += src_step, d += dst_step) one(s, d);
      }
  } else {
    for (int l = 0; l < c.lines; ++l)
      for (int k = 0; k < c.K; ++k) {
        const float* s = src + l * src_line + k * src_step;
        float* d = dst + c.dst * kLanes + l * dst_line + k * dst_step;
        for (int i = 0; i < images; ++i, s += img_src * kLanes, d += img_dst * kLanes) one(s, d);
      }
  }
}

// acc[id] += the sum over the call's outputs, in order, of g * src, for its M taps from t0 (g laid
// out as dst)
template <int M>
void dot_kernel(const Call& c, int t0, const float* __restrict g, const float* __restrict src, int images,
                int64_t img_src, int64_t img_dst, float* acc) {
  Vec a[M];
  int64_t o[M];
  for (int t = 0; t < M; ++t) {
    a[t] = load(acc + int64_t(c.id[size_t(t0 + t)]) * kLanes);
    o[t] = c.off[size_t(t0 + t)] * kLanes;
  }
  const int64_t src_line = c.src_line * kLanes, src_step = c.src_step * kLanes, g_line = c.dst_line * kLanes,
                g_step = c.dst_step * kLanes;
  auto one = [&](const float* s, const float* gg) {
    const Vec gv = load(gg);
#pragma GCC unroll 9
    for (int t = 0; t < M; ++t) a[t] += gv * load(s + o[t]);
  };
  if (c.K >= images) {  // the longer loop innermost, as in taps_kernel (the order follows the shape)
    for (int i = 0; i < images; ++i)
      for (int l = 0; l < c.lines; ++l) {
        const float* s = src + (i * img_src) * kLanes + l * src_line;
        const float* gg = g + (i * img_dst + c.dst) * kLanes + l * g_line;
        for (int k = 0; k < c.K; ++k, s += src_step, gg += g_step) one(s, gg);
      }
  } else {
    for (int l = 0; l < c.lines; ++l)
      for (int k = 0; k < c.K; ++k) {
        const float* s = src + l * src_line + k * src_step;
        const float* gg = g + c.dst * kLanes + l * g_line + k * g_step;
        for (int i = 0; i < images; ++i, s += img_src * kLanes, gg += img_dst * kLanes) one(s, gg);
      }
  }
  for (int t = 0; t < M; ++t) store(acc + int64_t(c.id[size_t(t0 + t)]) * kLanes, a[t]);
}

// f.template operator()<m>() for m = 1 .. kMaxTaps
template <typename F>
void with_tap_count(int m, F f) {
  [&]<int... I>(std::integer_sequence<int, I...>) {
    ((m == I + 1 ? (f.template operator()<I + 1>(), 0) : 0), ...);
  }(std::make_integer_sequence<int, kMaxTaps>{});
}

// A call over `images` images, in passes of kMaxTaps taps (none: zeros).
void run_taps(const Call& c, const float* wt, const float* src, float* dst, int images, int64_t img_src,
              int64_t img_dst) {
  const int T = static_cast<int>(c.id.size());
  if (T == 0) {
    for (int i = 0; i < images; ++i)
      for (int l = 0; l < c.lines; ++l)
        for (int k = 0; k < c.K; ++k)
          store(dst + (i * img_dst + c.dst + l * c.dst_line + k * c.dst_step) * kLanes, Vec{});
    return;
  }
  for (int t0 = 0; t0 < T; t0 += kMaxTaps)
    with_tap_count(std::min(kMaxTaps, T - t0), [&]<int M>() {
      if (t0 == 0)
        taps_kernel<M, false>(c, t0, wt, src, dst, images, img_src, img_dst);
      else
        taps_kernel<M, true>(c, t0, wt, src, dst, images, img_src, img_dst);
    });
}

void run_dot(const Call& c, const float* g, const float* src, int images, int64_t img_src, int64_t img_dst,
             float* acc) {
  const int T = static_cast<int>(c.id.size());
  for (int t0 = 0; t0 < T; t0 += kMaxTaps)
    with_tap_count(std::min(kMaxTaps, T - t0),
                   [&]<int M>() { dot_kernel<M>(c, t0, g, src, images, img_src, img_dst, acc); });
}

// N x N transposes (N = 4, 8, 16 floats) of the vectors at src[0], src[sstep], ...: dst[i * dstep]
// = the vector of their elements i. Named temporaries (an array of vectors stayed on the stack);
// the 8 and 16 ones are used only where the vectors are that wide.
using Vec4 = float __attribute__((vector_size(4 * sizeof(float))));
using Vec8 = float __attribute__((vector_size(8 * sizeof(float))));
template <typename V>
inline V vload(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename V>
inline void vstore(float* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}

[[gnu::always_inline]] inline void transpose4(const float* src, int64_t sstep, float* dst, int64_t dstep) {
  const Vec4 a0 = vload<Vec4>(src), a1 = vload<Vec4>(src + sstep), a2 = vload<Vec4>(src + 2 * sstep),
             a3 = vload<Vec4>(src + 3 * sstep);
  const Vec4 l01 = __builtin_shufflevector(a0, a1, 0, 4, 1, 5), h01 = __builtin_shufflevector(a0, a1, 2, 6, 3, 7);
  const Vec4 l23 = __builtin_shufflevector(a2, a3, 0, 4, 1, 5), h23 = __builtin_shufflevector(a2, a3, 2, 6, 3, 7);
  vstore(dst, __builtin_shufflevector(l01, l23, 0, 1, 4, 5));
  vstore(dst + dstep, __builtin_shufflevector(l01, l23, 2, 3, 6, 7));
  vstore(dst + 2 * dstep, __builtin_shufflevector(h01, h23, 0, 1, 4, 5));
  vstore(dst + 3 * dstep, __builtin_shufflevector(h01, h23, 2, 3, 6, 7));
}

#if DFQ_DW_LANES >= 8
// pairs interleaved within each 4-float quarter, then quadruples (4 x 4 blocks transposed in
// place), then the quarters moved
#define DFQ_DW_LO(a, b) __builtin_shufflevector(a, b, 0, 8, 1, 9, 4, 12, 5, 13)
#define DFQ_DW_HI(a, b) __builtin_shufflevector(a, b, 2, 10, 3, 11, 6, 14, 7, 15)
#define DFQ_DW_LO2(a, b) __builtin_shufflevector(a, b, 0, 1, 8, 9, 4, 5, 12, 13)
#define DFQ_DW_HI2(a, b) __builtin_shufflevector(a, b, 2, 3, 10, 11, 6, 7, 14, 15)
[[gnu::always_inline]] inline void transpose8(const float* src, int64_t sstep, float* dst, int64_t dstep) {
  auto a = [&](int i) { return vload<Vec8>(src + i * sstep); };
  const Vec8 a0 = a(0), a1 = a(1), a2 = a(2), a3 = a(3), a4 = a(4), a5 = a(5), a6 = a(6), a7 = a(7);
  const Vec8 t0 = DFQ_DW_LO(a0, a1), t1 = DFQ_DW_HI(a0, a1), t2 = DFQ_DW_LO(a2, a3), t3 = DFQ_DW_HI(a2, a3);
  const Vec8 t4 = DFQ_DW_LO(a4, a5), t5 = DFQ_DW_HI(a4, a5), t6 = DFQ_DW_LO(a6, a7), t7 = DFQ_DW_HI(a6, a7);
  const Vec8 u0 = DFQ_DW_LO2(t0, t2), u1 = DFQ_DW_HI2(t0, t2), u2 = DFQ_DW_LO2(t1, t3), u3 = DFQ_DW_HI2(t1, t3);
  const Vec8 u4 = DFQ_DW_LO2(t4, t6), u5 = DFQ_DW_HI2(t4, t6), u6 = DFQ_DW_LO2(t5, t7), u7 = DFQ_DW_HI2(t5, t7);
  vstore(dst, __builtin_shufflevector(u0, u4, 0, 1, 2, 3, 8, 9, 10, 11));
  vstore(dst + dstep, __builtin_shufflevector(u1, u5, 0, 1, 2, 3, 8, 9, 10, 11));
  vstore(dst + 2 * dstep, __builtin_shufflevector(u2, u6, 0, 1, 2, 3, 8, 9, 10, 11));
  vstore(dst + 3 * dstep, __builtin_shufflevector(u3, u7, 0, 1, 2, 3, 8, 9, 10, 11));
  vstore(dst + 4 * dstep, __builtin_shufflevector(u0, u4, 4, 5, 6, 7, 12, 13, 14, 15));
  vstore(dst + 5 * dstep, __builtin_shufflevector(u1, u5, 4, 5, 6, 7, 12, 13, 14, 15));
  vstore(dst + 6 * dstep, __builtin_shufflevector(u2, u6, 4, 5, 6, 7, 12, 13, 14, 15));
  vstore(dst + 7 * dstep, __builtin_shufflevector(u3, u7, 4, 5, 6, 7, 12, 13, 14, 15));
}
#undef DFQ_DW_LO
#undef DFQ_DW_HI
#undef DFQ_DW_LO2
#undef DFQ_DW_HI2
#endif

#if DFQ_DW_LANES == 16
// as transpose8 within each 4-float quarter (rows in groups of 4), then the 4 x 4 grid of quarters
#define DFQ_DW_LO(a, b) __builtin_shufflevector(a, b, 0, 16, 1, 17, 4, 20, 5, 21, 8, 24, 9, 25, 12, 28, 13, 29)
#define DFQ_DW_HI(a, b) __builtin_shufflevector(a, b, 2, 18, 3, 19, 6, 22, 7, 23, 10, 26, 11, 27, 14, 30, 15, 31)
#define DFQ_DW_LO2(a, b) __builtin_shufflevector(a, b, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29)
#define DFQ_DW_HI2(a, b) __builtin_shufflevector(a, b, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31)
#define DFQ_DW_Q01(a, b) __builtin_shufflevector(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23)
#define DFQ_DW_Q23(a, b) __builtin_shufflevector(a, b, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31)
#define DFQ_DW_H0(a, b) __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23)
#define DFQ_DW_H1(a, b) __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31)
// b<4g + k>, quarter q: element 4q + k of rows 4g .. 4g+3
#define DFQ_DW_GROUP(g, b0, b1, b2, b3)                                                                           \
  Vec b0, b1, b2, b3;                                                                                             \
  {                                                                                                               \
    const Vec r0 = load(src + (4 * g) * sstep), r1 = load(src + (4 * g + 1) * sstep);                             \
    const Vec r2 = load(src + (4 * g + 2) * sstep), r3 = load(src + (4 * g + 3) * sstep);                         \
    const Vec t0 = DFQ_DW_LO(r0, r1), t1 = DFQ_DW_HI(r0, r1), t2 = DFQ_DW_LO(r2, r3), t3 = DFQ_DW_HI(r2, r3);     \
    b0 = DFQ_DW_LO2(t0, t2), b1 = DFQ_DW_HI2(t0, t2), b2 = DFQ_DW_LO2(t1, t3), b3 = DFQ_DW_HI2(t1, t3);           \
  }
// result 4q + k: quarter q of b<k>, b<4 + k>, b<8 + k>, b<12 + k>
#define DFQ_DW_QUARTERS(k, p0, p1, p2, p3)                                                                        \
  {                                                                                                               \
    const Vec c0 = DFQ_DW_Q01(p0, p1), c1 = DFQ_DW_Q23(p0, p1), c2 = DFQ_DW_Q01(p2, p3), c3 = DFQ_DW_Q23(p2, p3); \
    store(dst + (k)*dstep, DFQ_DW_H0(c0, c2));                                                                    \
    store(dst + (4 + k) * dstep, DFQ_DW_H1(c0, c2));                                                              \
    store(dst + (8 + k) * dstep, DFQ_DW_H0(c1, c3));                                                              \
    store(dst + (12 + k) * dstep, DFQ_DW_H1(c1, c3));                                                             \
  }
[[gnu::always_inline]] inline void transpose16(const float* src, int64_t sstep, float* dst, int64_t dstep) {
  DFQ_DW_GROUP(0, b0, b1, b2, b3)
  DFQ_DW_GROUP(1, b4, b5, b6, b7)
  DFQ_DW_GROUP(2, b8, b9, b10, b11)
  DFQ_DW_GROUP(3, b12, b13, b14, b15)
  DFQ_DW_QUARTERS(0, b0, b4, b8, b12)
  DFQ_DW_QUARTERS(1, b1, b5, b9, b13)
  DFQ_DW_QUARTERS(2, b2, b6, b10, b14)
  DFQ_DW_QUARTERS(3, b3, b7, b11, b15)
}
#undef DFQ_DW_GROUP
#undef DFQ_DW_QUARTERS
#undef DFQ_DW_LO
#undef DFQ_DW_HI
#undef DFQ_DW_LO2
#undef DFQ_DW_HI2
#undef DFQ_DW_Q01
#undef DFQ_DW_Q23
#undef DFQ_DW_H0
#undef DFQ_DW_H1
#endif

// transpose of kLanes x kLanes
[[gnu::always_inline]] inline void transpose(const float* src, int64_t sstep, float* dst, int64_t dstep) {
#if DFQ_DW_LANES == 4
  transpose4(src, sstep, dst, dstep);
#elif DFQ_DW_LANES == 8
  transpose8(src, sstep, dst, dstep);
#elif DFQ_DW_LANES == 16
  transpose16(src, sstep, dst, dstep);
#else
#error "DFQ_DW_LANES: 4, 8 or 16"
#endif
}

// The nv <= kLanes planes at `planes` (`pixels` floats each, one after the other) into the lanes of
// `pixels` consecutive vectors of buf. A full block goes kLanes pixels at a time through transpose,
// the rest 8 and 4 at a time (maps of 2x2) through the smaller ones, then one by one.
void interleave(const float* planes, int nv, int64_t pixels, float* buf) {
  int64_t i = 0;
  if (nv == kLanes) {
    for (; i + kLanes <= pixels; i += kLanes) transpose(planes + i, pixels, buf + i * kLanes, kLanes);
#if DFQ_DW_LANES > 8
    for (; i + 8 <= pixels; i += 8)
      for (int j = 0; j < kLanes; j += 8) transpose8(planes + j * pixels + i, pixels, buf + i * kLanes + j, kLanes);
#endif
    for (; i + 4 <= pixels; i += 4)
      for (int j = 0; j < kLanes; j += 4) transpose4(planes + j * pixels + i, pixels, buf + i * kLanes + j, kLanes);
  }
  for (; i < pixels; ++i)
    for (int j = 0; j < nv; ++j) buf[i * kLanes + j] = planes[j * pixels + i];
}

// The lanes [0, nv) of `pixels` consecutive vectors of buf out to nv planes at `planes`.
void deinterleave(const float* buf, int nv, int64_t pixels, float* planes) {
  int64_t i = 0;
  if (nv == kLanes) {
    for (; i + kLanes <= pixels; i += kLanes) transpose(buf + i * kLanes, kLanes, planes + i, pixels);
#if DFQ_DW_LANES > 8
    for (; i + 8 <= pixels; i += 8)
      for (int j = 0; j < kLanes; j += 8) transpose8(buf + i * kLanes + j, kLanes, planes + j * pixels + i, pixels);
#endif
    for (; i + 4 <= pixels; i += 4)
      for (int j = 0; j < kLanes; j += 4) transpose4(buf + i * kLanes + j, kLanes, planes + j * pixels + i, pixels);
  }
  for (; i < pixels; ++i)
    for (int j = 0; j < nv; ++j) planes[j * pixels + i] = buf[i * kLanes + j];
}

// All blocks' weights: wt[(block * taps + t) * kLanes + j] = w[block*kLanes + j, tap t] (0 past C).
std::vector<float> block_weights(const Conv2dArgs& a, const float* w) {
  const int blocks = (a.C + kLanes - 1) / kLanes, taps = a.R * a.S;
  std::vector<float> wt(size_t(blocks) * taps * kLanes, 0.f);
  for (int c = 0; c < a.C; ++c)
    for (int t = 0; t < taps; ++t) wt[(size_t(c / kLanes) * taps + t) * kLanes + c % kLanes] = w[int64_t(c) * taps + t];
  return wt;
}

std::vector<float> zeros(int64_t vectors) {
  return std::vector<float>(size_t(std::max<int64_t>(vectors, 1) * kLanes), 0.f);
}

// f(bufs, n0, nb, c0, nv) for every task: a chunk of nb images at n0 (pl.B, fewer in the last) and
// a block of nv channels at c0 (kLanes, fewer in the last), parallel over tasks, the channel block
// innermost (a task's planes follow the previous task's in memory); init() makes a thread's buffers.
template <typename Init, typename F>
void for_each_task(const Conv2dArgs& a, const DwPlan& pl, Init init, F f) {
  const int blocks = (a.C + kLanes - 1) / kLanes;
  const int64_t tasks = int64_t(pl.chunks) * blocks, work = int64_t(a.N) * a.C * a.P * a.Q * a.R * a.S;
#pragma omp parallel if (work > kParMin && tasks > 1)
  {
    auto bufs = init();
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int n0 = static_cast<int>(t / blocks) * pl.B, c0 = static_cast<int>(t % blocks) * kLanes;
      f(bufs, n0, std::min(pl.B, a.N - n0), c0, std::min(kLanes, a.C - c0));
    }
  }
}

// The planes of channels [c0, c0 + nv) of image n of t (N, C, pixels) into / out of buf.
inline void load_block(const float* t, const Conv2dArgs& a, int n, int c0, int nv, int64_t pixels, float* buf) {
  interleave(t + (int64_t(n) * a.C + c0) * pixels, nv, pixels, buf);
}
inline void store_block(const float* buf, const Conv2dArgs& a, int n, int c0, int nv, int64_t pixels, float* t) {
  deinterleave(buf, nv, pixels, t + (int64_t(n) * a.C + c0) * pixels);
}

// out (N, C, out_px) from in (N, C, in_px) through the tap calls: the forward (x -> y over pl.fwd)
// and the data gradient (gy -> gx over pl.data) are the same gather with the maps swapped.
void gather(const Conv2dArgs& a, const DwPlan& pl, const std::vector<Call>& calls, const float* in, int64_t in_px,
            int64_t out_px, const float* w, float* out) {
  const std::vector<float> wt = block_weights(a, w);
  const int64_t taps = a.R * a.S;
  struct Bufs { std::vector<float> I, O; };
  for_each_task(a, pl, [&] { return Bufs{zeros(pl.B * in_px), zeros(pl.B * out_px)}; },
                [&](Bufs& b, int n0, int nb, int c0, int nv) {
                  for (int i = 0; i < nb; ++i) load_block(in, a, n0 + i, c0, nv, in_px, b.I.data() + i * in_px * kLanes);
                  for (const Call& c : calls) run_taps(c, wt.data() + c0 * taps, b.I.data(), b.O.data(), nb, in_px, out_px);
                  for (int i = 0; i < nb; ++i) store_block(b.O.data() + i * out_px * kLanes, a, n0 + i, c0, nv, out_px, out);
                });
}

void forward(const Conv2dArgs& a, const DwPlan& pl, const float* x, const float* w, float* y) {
  gather(a, pl, pl.fwd, x, int64_t(a.H) * a.W, int64_t(a.P) * a.Q, w, y);
}

void backward_data(const Conv2dArgs& a, const DwPlan& pl, const float* gy, const float* w, float* gx) {
  gather(a, pl, pl.data, gy, int64_t(a.P) * a.Q, int64_t(a.H) * a.W, w, gx);
}

// part[(chunk * C + c) * taps + t] = the chunk's sum for channel c, tap t
void backward_filter(const Conv2dArgs& a, const DwPlan& pl, const float* x, const float* gy, double* part) {
  const int64_t HW = int64_t(a.H) * a.W, PQ = int64_t(a.P) * a.Q, taps = a.R * a.S;
  struct Bufs { std::vector<float> X, G, acc; };
  for_each_task(a, pl, [&] { return Bufs{zeros(pl.B * HW), zeros(pl.B * PQ), zeros(taps)}; },
                [&](Bufs& b, int n0, int nb, int c0, int nv) {
                  for (int i = 0; i < nb; ++i) {
                    load_block(x, a, n0 + i, c0, nv, HW, b.X.data() + i * HW * kLanes);
                    load_block(gy, a, n0 + i, c0, nv, PQ, b.G.data() + i * PQ * kLanes);
                  }
                  std::fill(b.acc.begin(), b.acc.end(), 0.f);
                  for (const Call& c : pl.fwd) run_dot(c, b.G.data(), b.X.data(), nb, HW, PQ, b.acc.data());
                  double* out = part + (int64_t(n0 / pl.B) * a.C + c0) * taps;
                  for (int j = 0; j < nv; ++j)
                    for (int t = 0; t < taps; ++t) out[j * taps + t] = b.acc[size_t(t * kLanes + j)];
                });
}
