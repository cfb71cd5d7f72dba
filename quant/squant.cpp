// squant.cpp — see squant.h. References "quant_modules.py L.." etc. are to clevercool/SQuant at 9cc77fc.
#include "quant/squant.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "engine/kernels/quant_math.h"

namespace dfq::quant {

SquantPasses parse_squant_mode(const std::string& mode) {
  // quant_modules.py L219-228
  if (mode == "squant") return {true, true};
  if (mode == "squant-k") return {true, false};
  if (mode == "squant-c") return {false, true};
  if (mode == "squant-e") return {false, false};
  throw std::invalid_argument("unknown SQuant mode '" + mode + "' (known: squant, squant-k, squant-c, squant-e)");
}

namespace {

// One channel's working arrays (quant_modules.py L111-130): the current codes and errors, and per
// direction the flipped code, the error after the flip and the priority (|error| of a candidate).
struct Channel {
  std::vector<float> num, err, up_num, up_err, up_pri, dn_num, dn_err, dn_pri;
  std::vector<int64_t> order;
  void resize(size_t n) {
    for (auto* v : {&num, &err, &up_num, &up_err, &up_pri, &dn_num, &dn_err, &dn_pri}) v->resize(n);
    order.resize(n);
  }
};

// One flip group (a kernel, or a channel) of n elements starting at `base` of the channel's arrays,
// as rounding_forward_cuda_kernel (quant_kernel.cu L90-110) with its direction chosen by
// rounding_loop_forward_cuda_kernel (L141: E < 0 flips up). `order_pri` ranks the candidates (the
// priorities as they were before the pass: the kernel pass sorts first and zeroes the priorities
// after, quant_modules.py L142-145); the priority the group leaves for the next pass goes into
// up_pri / dn_pri. Returns the number of elements flipped.
int64_t flip_group(Channel& ch, size_t base, size_t n, float E, const float* up_order_pri, const float* dn_order_pri) {
  const bool up = E < 0;
  std::vector<float>& num = up ? ch.up_num : ch.dn_num;
  std::vector<float>& err = up ? ch.up_err : ch.dn_err;
  std::vector<float>& pri = up ? ch.up_pri : ch.dn_pri;      // the direction's priorities (next pass)
  std::vector<float>& pri_1 = up ? ch.dn_pri : ch.up_pri;    // the other direction's
  const float* rank = up ? up_order_pri : dn_order_pri;
  const float a = std::fabs(E);
  const int64_t topk = static_cast<int64_t>(std::rint(a));  // __float2int_rn: half to even
  const bool over = static_cast<float>(topk) >= a;            // L93
  // torch.sort(descending=True) (quant_modules.py L142) is not stable on CUDA; dfq breaks ties by the
  // lower index, so the flips never depend on a sort's internals. Only the first topk + 1 are needed.
  int64_t* idx = ch.order.data() + base;
  std::iota(idx, idx + n, int64_t(base));
  auto before = [rank](int64_t i, int64_t j) { return rank[i] > rank[j] || (rank[i] == rank[j] && i < j); };
  const size_t m = std::min(n, size_t(topk) + 1);
  std::partial_sort(idx, idx + m, idx + n, before);
  // |E| <= n / 2 (every |e| <= 0.5 for finite inputs, which squant_round checks), so topk <= n, and
  // when not over-flipped topk < |E| makes idx[topk] exist.
  for (int64_t i = 0; i < topk; ++i) {  // L95-100
    const int64_t j = idx[i];
    ch.err[size_t(j)] = err[size_t(j)];
    ch.num[size_t(j)] = num[size_t(j)];
  }
  if (over) {  // L101-105: the last flipped element becomes the group's candidate for undoing
    int64_t c;
    if (topk > 0) {
      c = idx[topk - 1];
    } else {
      // E == 0 exactly: the CUDA kernel reads idx[topk - 1] = idx[SIZE_MAX], out of bounds (undefined);
      // dfq does what the official PyTorch fallback does (squant_function.py L88-90: order_[-1], the
      // last element of the group's order).
      c = *std::max_element(idx, idx + n, before);  // the element every other one ranks before
    }
    pri_1[size_t(c)] = std::fabs(ch.err[size_t(c)]);
  } else {  // L107-110: the next unflipped element stays a candidate
    const int64_t c = idx[topk];
    pri[size_t(c)] = std::fabs(ch.err[size_t(c)]);
  }
  return topk;
}

// One output channel: x (C, RS) -> codes q (C, RS); ch and the rank buffers are the caller's scratch.
FlipCounts squant_channel(const float* xk, int64_t C, int64_t RS, float tmin, float tmax, const SquantPasses& passes,
                          Channel& ch, std::vector<float>& up_rank, std::vector<float>& dn_rank, float* qk) {
  const size_t n = size_t(C * RS);
  ch.resize(n);
  FlipCounts f;
  for (size_t i = 0; i < n; ++i) {  // quant_modules.py L111-130
    const float xi = xk[i];
    const float r = std::rint(xi), e = r - xi;
    ch.num[i] = r;
    ch.err[i] = e;
    const bool up_c = e < 0 && xi < tmax, dn_c = e > 0 && xi > tmin;  // clamped elements: never candidates
    ch.up_num[i] = up_c ? r + 1 : r;
    ch.up_err[i] = up_c ? e + 1 : 0.f;
    ch.up_pri[i] = up_c ? std::fabs(e) : 0.f;
    ch.dn_num[i] = dn_c ? r - 1 : r;
    ch.dn_err[i] = dn_c ? e - 1 : 0.f;
    ch.dn_pri[i] = dn_c ? std::fabs(e) : 0.f;
  }
  // 1x1 kernels (and linears, viewed as (K, C, 1)) skip the kernel pass (quant_modules.py L136-138).
  if (passes.kernel && RS > 1) {  // L140-165
    up_rank = ch.up_pri;
    dn_rank = ch.dn_pri;
    std::fill(ch.up_pri.begin(), ch.up_pri.end(), 0.f);  // L144-145
    std::fill(ch.dn_pri.begin(), ch.dn_pri.end(), 0.f);
    for (int64_t c = 0; c < C; ++c) {
      const size_t base = size_t(c * RS);
      // The official sums in float32 in CUDA's order; dfq sums in double and rounds once.
      double E = 0;
      for (int64_t i = 0; i < RS; ++i) E += ch.err[base + size_t(i)];
      f.kernel += flip_group(ch, base, size_t(RS), float(E), up_rank.data(), dn_rank.data());
    }
  }
  if (passes.channel) {  // L167-191: the same over the whole output channel
    double E = 0;
    for (size_t i = 0; i < n; ++i) E += ch.err[i];
    up_rank = ch.up_pri;
    dn_rank = ch.dn_pri;
    f.channel += flip_group(ch, 0, n, float(E), up_rank.data(), dn_rank.data());
  }
  for (size_t i = 0; i < n; ++i) qk[i] = std::min(std::max(ch.num[i], tmin), tmax);  // L193
  return f;
}

}  // namespace

FlipCounts squant_round(const float* x, int64_t K, int64_t C, int64_t RS, float tmin, float tmax,
                        const SquantPasses& passes, float* q) {
  if (K < 1 || C < 1 || RS < 1) throw std::invalid_argument("squant_round: empty weight");
  const size_t n = size_t(C * RS);
  for (int64_t i = 0; i < K * C * RS; ++i)
    if (!std::isfinite(x[i])) throw std::invalid_argument("squant_round: non-finite grid value at " + std::to_string(i));
  int64_t kflips = 0, cflips = 0;
#pragma omp parallel reduction(+ : kflips, cflips)
  {
    Channel ch;
    std::vector<float> up_rank, dn_rank;
#pragma omp for schedule(dynamic, 4)
    for (int64_t k = 0; k < K; ++k) {
      const FlipCounts f = squant_channel(x + size_t(k) * n, C, RS, tmin, tmax, passes, ch, up_rank, dn_rank, q + size_t(k) * n);
      kflips += f.kernel;
      cflips += f.channel;
    }
  }
  return {kflips, cflips};
}

SquantWeightStats squant_weights(QuantizedModel& q, const SquantPasses& passes) {
  const auto t0 = std::chrono::steady_clock::now();
  SquantWeightStats st;
  NoGradGuard ng;
  // Every output channel of every layer is one task of ONE parallel loop: a loop per layer (or three)
  // made MobileNetV2's 53 layers cost 2.4 s instead of 50 ms on a loaded 2-core machine, each
  // OpenMP barrier waiting for a descheduled thread.
  struct Layer {
    size_t index;
    std::string name;
    Tensor w;
    int bits;
    int64_t K, C, RS;
    std::vector<float> v, range;  // the weight, then its dequantized codes; (2, K) min / max
  };
  std::vector<Layer> work;
  const std::vector<QuantizedModel::WeightLayer> layers = q.weight_layers();
  for (size_t li = 0; li < layers.size(); ++li) {
    const QuantizedModel::WeightLayer& L = layers[li];
    if (L.bits >= 32) continue;
    if (q.pinned(li))
      throw std::invalid_argument("squant: " + L.name + " is pinned to integer codes (a packed file's layer): "
                                  "its weights cannot be rounded again");
    Layer w{li, L.name, L.weight, L.bits, 0, 0, 0, {}, {}};
    w.K = L.weight.size(0);
    w.RS = L.weight.dim() == 4 ? L.weight.size(2) * L.weight.size(3) : 1;
    w.C = L.weight.numel() / (w.K * w.RS);
    w.v = L.weight.to_vector();
    for (float v : w.v)
      if (!std::isfinite(v)) throw std::runtime_error("squant: " + L.name + " has a non-finite weight");
    w.range.resize(size_t(2 * w.K));
    work.push_back(std::move(w));
  }
  st.layers = int(work.size());
  std::vector<std::pair<size_t, int64_t>> tasks;  // (layer, output channel)
  for (size_t l = 0; l < work.size(); ++l)
    for (int64_t k = 0; k < work[l].K; ++k) tasks.push_back({l, k});
  int64_t kflips = 0, cflips = 0, bad = 0;
  const bool sym = q.config().weight_scheme == WeightScheme::Sym;
#pragma omp parallel reduction(+ : kflips, cflips, bad)
  {
    Channel ch;
    std::vector<float> up_rank, dn_rank, x, codes;
#pragma omp for schedule(dynamic, 8)
    for (size_t t = 0; t < tasks.size(); ++t) {
      Layer& L = work[tasks[t].first];
      const int64_t k = tasks[t].second;
      const size_t per = size_t(L.C * L.RS);
      float* wk = L.v.data() + size_t(k) * per;
      // The grid of the official _quant (quant_modules.py L232-242): the channel's min / max, the ZeroQ
      // scale and zero point. dfq computes them with its fake-quantizer's arithmetic (quant_math.h: the
      // scale as reciprocal * levels, where the official divides the bit tensor's levels by the range,
      // which can differ in the last bit), so that the fixed grid maps the codes back exactly. With
      // symmetric weights (not in the official code) the same min / max give the symmetric grid:
      // x = w / step, codes clamped to [-L, L], w = q * step.
      const float lo = *std::min_element(wk, wk + per), hi = *std::max_element(wk, wk + per);
      L.range[size_t(k)] = lo;
      L.range[size_t(L.K + k)] = hi;
      const QuantParams p = grid_params(L.bits, sym, lo, hi);
      x.resize(per);
      codes.resize(per);
      for (size_t i = 0; i < per; ++i) x[i] = quant_coord(p, wk[i]);  // quant_affine.py L58
      const FlipCounts f = squant_channel(x.data(), L.C, L.RS, p.qmin, p.qmax, passes, ch, up_rank, dn_rank, codes.data());
      kflips += f.kernel;
      cflips += f.channel;
      for (size_t i = 0; i < per; ++i) {
        wk[i] = dequant_code(p, codes[i]);  // linear_dequantize (quant_affine.py L81)
        // the fixed grid must give this code back at every forward
        bad += std::rint(quant_coord(p, wk[i])) != codes[i] ? 1 : 0;
      }
    }
  }
  if (bad) throw std::logic_error("squant: " + std::to_string(bad) + " codes do not survive their grid");
  for (Layer& L : work) {
    L.w.copy_(Tensor::from_vector(L.v, L.w.shape(), L.w.device()));
    q.fix_weight_range(L.index, Tensor::from_vector(L.range, {2, L.K}, L.w.device()));
    st.weights += L.w.numel();
  }
  st.flips = {kflips, cflips};
  st.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return st;
}

double squant_sigma_for_bits(int abits) { return abits <= 4 ? 12.0 : abits <= 6 ? 14.0 : 25.0; }

NoiseKind parse_noise_kind(const std::string& s) {
  if (s == "normal") return NoiseKind::Normal;
  if (s == "uniform") return NoiseKind::Uniform;
  throw std::invalid_argument("unknown noise '" + s + "' (known: normal, uniform)");
}

Tensor squant_noise(int64_t batch, int size, uint64_t seed, Device dev, NoiseKind kind) {
  Generator g(seed);
  // main.py L85-88: torch.rand([batch, 3, 224, 224]), fed to the model as it is (not normalised);
  // dfq's default draws N(0, 1) instead (squant.h NoiseKind says why).
  if (kind == NoiseKind::Uniform) return rand({batch, 3, size, size}, g, dev, 0.f, 1.f);
  return randn({batch, 3, size, size}, g, dev, 0.f, 1.f);
}

ClipStats squant_clip_activations(QuantizedModel& q, const Tensor& noise, double sigma) {
  if (!(sigma > 0)) throw std::invalid_argument("squant: the clip multiple must be > 0");
  const auto t0 = std::chrono::steady_clock::now();
  ClipStats st;
  std::vector<char> seen(q.acts().size(), 0);
  // quant_modules.py _init_quant_para (L198-218): on the first input a quantizer sees.
  q.act_observer = [&](size_t a, const Tensor& x) {
    if (seen[a]) return;
    seen[a] = 1;
    ActQuantizer& aq = q.acts()[a];
    if (aq.bits() >= 32) {  // the first layer's input (set_first_last_layer): not quantized
      aq.freeze();
      return;
    }
    const std::vector<float> v = x.to_vector();
    double mx = -INFINITY, mn = INFINITY;
    for (float f : v) mx = std::max(mx, double(f)), mn = std::min(mn, double(f));
    const bool is_signed = mn < 0;  // updata_signed (L98-102)
    // _sigma (L88-91): torch.std (unbiased) of the positive values, of all values when signed. The
    // official sums in float32 on the GPU; dfq in double. With fewer than 2 values torch gives NaN;
    // dfq takes 0 (no positive value) or the one value.
    double s = 0, s2 = 0;
    int64_t cnt = 0;
    for (float f : v)
      if (is_signed || f > 0) s += f, ++cnt;
    const double mean = cnt ? s / double(cnt) : 0;
    for (float f : v)
      if (is_signed || f > 0) s2 += (f - mean) * (f - mean);
    const double sd = cnt >= 2 ? std::sqrt(s2 / double(cnt - 1)) : 0;
    double alpha = cnt >= 2 ? sigma * sd : cnt == 1 ? mean : 0;
    if (is_signed && cnt >= 2) alpha /= 1.25;  // L210-212
    if (aq.bits() < 6) alpha = std::min(alpha, mx);  // L214-217
    const float hi = float(alpha), lo = is_signed ? -hi : 0.f;  // L264-269
    aq.state = Tensor::from_vector({lo, hi, 1.f}, {3}, x.device());
    aq.freeze();
    ++st.ranges;
  };
  struct Reset {
    QuantizedModel& q;
    ~Reset() { q.act_observer = nullptr; }
  } reset{q};
  {
    NoGradGuard ng;
    q.forward(noise);
  }
  for (size_t a = 0; a < seen.size(); ++a)
    if (!seen[a]) throw std::runtime_error("squant: activation quantizer " + std::to_string(a) + " saw no input");
  st.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return st;
}

std::string apply_weight_round(QuantizedModel& q, const std::string& weight_round) {
  if (weight_round == "nearest") return "";
  if (weight_round != "squant") throw std::invalid_argument("unknown --weight_round '" + weight_round + "'");
  const SquantWeightStats s = squant_weights(q);
  char b[256];
  std::snprintf(b, sizeof b, "weights rounded by SQuant: %d layers, %lld weights, %lld kernel + %lld channel flips, %.1f ms",
                s.layers, (long long)s.weights, (long long)s.flips.kernel, (long long)s.flips.channel, s.ms);
  return b;
}

}  // namespace dfq::quant
