// depthwise_conv_impl.h — the vector kernels of depthwise_conv.cpp, which includes this file once
// per vector width, each time inside its own namespace in an anonymous one: DFQ_DW_LANES floats
// (channels) per vector, 4 (SSE, the engine's x86-64-v2) and 8 (compiled for AVX2 when the
// compiler can, run when the CPU can). Nothing else includes it.
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

// The kLanes x kLanes transpose of the vectors at src[0], src[sstep], ...: dst[i * dstep] = the
// vector of their elements i (transpose4: the same for 4 x 4). Named temporaries: an array of
// vectors stayed on the stack.
using Vec4 = float __attribute__((vector_size(4 * sizeof(float))));
inline void transpose4(const float* src, int64_t sstep, float* dst, int64_t dstep) {
  Vec4 a0, a1, a2, a3;
  std::memcpy(&a0, src, sizeof a0);
  std::memcpy(&a1, src + sstep, sizeof a1);
  std::memcpy(&a2, src + 2 * sstep, sizeof a2);
  std::memcpy(&a3, src + 3 * sstep, sizeof a3);
  const Vec4 l01 = __builtin_shufflevector(a0, a1, 0, 4, 1, 5), h01 = __builtin_shufflevector(a0, a1, 2, 6, 3, 7);
  const Vec4 l23 = __builtin_shufflevector(a2, a3, 0, 4, 1, 5), h23 = __builtin_shufflevector(a2, a3, 2, 6, 3, 7);
  const Vec4 r0 = __builtin_shufflevector(l01, l23, 0, 1, 4, 5), r1 = __builtin_shufflevector(l01, l23, 2, 3, 6, 7);
  const Vec4 r2 = __builtin_shufflevector(h01, h23, 0, 1, 4, 5), r3 = __builtin_shufflevector(h01, h23, 2, 3, 6, 7);
  std::memcpy(dst, &r0, sizeof r0);
  std::memcpy(dst + dstep, &r1, sizeof r1);
  std::memcpy(dst + 2 * dstep, &r2, sizeof r2);
  std::memcpy(dst + 3 * dstep, &r3, sizeof r3);
}

inline void transpose(const float* src, int64_t sstep, float* dst, int64_t dstep) {
#if DFQ_DW_LANES == 4
  transpose4(src, sstep, dst, dstep);
#elif DFQ_DW_LANES == 8
  // pairs interleaved within each 4-float half, then quadruples, then the halves swapped
#define DFQ_DW_LO(a, b) __builtin_shufflevector(a, b, 0, 8, 1, 9, 4, 12, 5, 13)
#define DFQ_DW_HI(a, b) __builtin_shufflevector(a, b, 2, 10, 3, 11, 6, 14, 7, 15)
#define DFQ_DW_LO2(a, b) __builtin_shufflevector(a, b, 0, 1, 8, 9, 4, 5, 12, 13)
#define DFQ_DW_HI2(a, b) __builtin_shufflevector(a, b, 2, 3, 10, 11, 6, 7, 14, 15)
  const Vec a0 = load(src), a1 = load(src + sstep), a2 = load(src + 2 * sstep), a3 = load(src + 3 * sstep);
  const Vec a4 = load(src + 4 * sstep), a5 = load(src + 5 * sstep), a6 = load(src + 6 * sstep);
  const Vec a7 = load(src + 7 * sstep);
  const Vec t0 = DFQ_DW_LO(a0, a1), t1 = DFQ_DW_HI(a0, a1), t2 = DFQ_DW_LO(a2, a3), t3 = DFQ_DW_HI(a2, a3);
  const Vec t4 = DFQ_DW_LO(a4, a5), t5 = DFQ_DW_HI(a4, a5), t6 = DFQ_DW_LO(a6, a7), t7 = DFQ_DW_HI(a6, a7);
  const Vec u0 = DFQ_DW_LO2(t0, t2), u1 = DFQ_DW_HI2(t0, t2), u2 = DFQ_DW_LO2(t1, t3), u3 = DFQ_DW_HI2(t1, t3);
  const Vec u4 = DFQ_DW_LO2(t4, t6), u5 = DFQ_DW_HI2(t4, t6), u6 = DFQ_DW_LO2(t5, t7), u7 = DFQ_DW_HI2(t5, t7);
#undef DFQ_DW_LO
#undef DFQ_DW_HI
#undef DFQ_DW_LO2
#undef DFQ_DW_HI2
  store(dst, __builtin_shufflevector(u0, u4, 0, 1, 2, 3, 8, 9, 10, 11));
  store(dst + dstep, __builtin_shufflevector(u1, u5, 0, 1, 2, 3, 8, 9, 10, 11));
  store(dst + 2 * dstep, __builtin_shufflevector(u2, u6, 0, 1, 2, 3, 8, 9, 10, 11));
  store(dst + 3 * dstep, __builtin_shufflevector(u3, u7, 0, 1, 2, 3, 8, 9, 10, 11));
  store(dst + 4 * dstep, __builtin_shufflevector(u0, u4, 4, 5, 6, 7, 12, 13, 14, 15));
  store(dst + 5 * dstep, __builtin_shufflevector(u1, u5, 4, 5, 6, 7, 12, 13, 14, 15));
  store(dst + 6 * dstep, __builtin_shufflevector(u2, u6, 4, 5, 6, 7, 12, 13, 14, 15));
  store(dst + 7 * dstep, __builtin_shufflevector(u3, u7, 4, 5, 6, 7, 12, 13, 14, 15));
#else
#error "DFQ_DW_LANES: 4 or 8"
#endif
}

// The nv <= kLanes planes at `planes` (`pixels` floats each, one after the other) into the lanes of
// `pixels` consecutive vectors of buf. A full block goes kLanes pixels at a time through transpose,
// then 4 at a time through transpose4 (maps of 2x2), then one by one.
void interleave(const float* planes, int nv, int64_t pixels, float* buf) {
  int64_t i = 0;
  if (nv == kLanes) {
    for (; i + kLanes <= pixels; i += kLanes) transpose(planes + i, pixels, buf + i * kLanes, kLanes);
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

void forward(const Conv2dArgs& a, const DwPlan& pl, const float* x, const float* w, float* y) {
  const std::vector<float> wt = block_weights(a, w);
  const int64_t HW = int64_t(a.H) * a.W, PQ = int64_t(a.P) * a.Q, taps = a.R * a.S;
  struct Bufs { std::vector<float> X, Y; };
  for_each_task(a, pl, [&] { return Bufs{zeros(pl.B * HW), zeros(pl.B * PQ)}; },
                [&](Bufs& b, int n0, int nb, int c0, int nv) {
                  for (int i = 0; i < nb; ++i) load_block(x, a, n0 + i, c0, nv, HW, b.X.data() + i * HW * kLanes);
                  for (const Call& c : pl.fwd) run_taps(c, wt.data() + c0 * taps, b.X.data(), b.Y.data(), nb, HW, PQ);
                  for (int i = 0; i < nb; ++i) store_block(b.Y.data() + i * PQ * kLanes, a, n0 + i, c0, nv, PQ, y);
                });
}

void backward_data(const Conv2dArgs& a, const DwPlan& pl, const float* gy, const float* w, float* gx) {
  const std::vector<float> wt = block_weights(a, w);
  const int64_t HW = int64_t(a.H) * a.W, PQ = int64_t(a.P) * a.Q, taps = a.R * a.S;
  struct Bufs { std::vector<float> G, GX; };
  for_each_task(a, pl, [&] { return Bufs{zeros(pl.B * PQ), zeros(pl.B * HW)}; },
                [&](Bufs& b, int n0, int nb, int c0, int nv) {
                  for (int i = 0; i < nb; ++i) load_block(gy, a, n0 + i, c0, nv, PQ, b.G.data() + i * PQ * kLanes);
                  for (const Call& c : pl.data) run_taps(c, wt.data() + c0 * taps, b.G.data(), b.GX.data(), nb, PQ, HW);
                  for (int i = 0; i < nb; ++i) store_block(b.GX.data() + i * HW * kLanes, a, n0 + i, c0, nv, HW, gx);
                });
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
