// test_squant.cpp — SQuant (quant/squant.h): its flips against brute-force searches on small kernels
// and channels (the kernel and channel error sums it promises, at the least added error), its codes
// surviving the fixed grid, round-to-nearest equal to the min/max fake-quantizer, the activation clip
// rule recomputed from the inputs each quantizer saw, save / load of fixed grids and layer-input
// quantizers, and squant_main / zeroq_main --weight_round on the command line.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/io/weights.h"
#include "engine/kernels/quant_math.h"
#include "models/registry.h"
#include "quant/qmodel.h"
#include "quant/quantizer.h"
#include "quant/squant.h"
#include "quant/zeroq.h"
#include "tests/check.h"
#include "tests/test_util.h"

using namespace dfq;
using namespace dfq::quant;
using dfq::test::TempDir;

namespace {

// Uniform floats in [lo, hi) from the engine's generator.
std::vector<float> uniform(size_t n, float lo, float hi, uint64_t seed) {
  Generator g(seed);
  return rand({int64_t(n)}, g, Device::CPU, lo, hi).to_vector();
}

struct Best {
  double abs_sum = INFINITY, cost = INFINITY;  // |sum of errors|, sum of |errors|
};
bool better(double s, double c, const Best& b) {
  if (s < b.abs_sum - 1e-9) return true;
  return std::fabs(s - b.abs_sum) <= 1e-9 && c < b.cost - 1e-9;
}

// Every assignment of one group where each element keeps its nearest code r, or moves to r + 1 when
// its error r - x < 0 and x < tmax, or to r - 1 when its error > 0 and x > tmin (SQuant's candidate
// rules): the smallest |sum of errors|, and the smallest sum of |errors| among those.
Best brute_force_group(const float* x, size_t n, float tmin, float tmax) {
  Best b;
  std::vector<int> choice(n, 0);  // 0: r, 1: r + 1, 2: r - 1
  for (;;) {
    bool ok = true;
    double s = 0, c = 0;
    for (size_t i = 0; i < n && ok; ++i) {
      const double r = std::rint(x[i]), e = r - x[i];
      if (choice[i] == 1 && !(e < 0 && x[i] < tmax)) ok = false;
      if (choice[i] == 2 && !(e > 0 && x[i] > tmin)) ok = false;
      const double q = r + (choice[i] == 1 ? 1 : choice[i] == 2 ? -1 : 0);
      s += q - x[i];
      c += std::fabs(q - x[i]);
    }
    if (ok && better(std::fabs(s), c, b)) b = {std::fabs(s), c};
    size_t i = 0;
    while (i < n && ++choice[i] == 3) choice[i++] = 0;
    if (i == n) break;
  }
  return b;
}

double err_sum(const float* q, const float* x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += double(q[i]) - x[i];
  return s;
}
double err_cost(const float* q, const float* x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += std::fabs(double(q[i]) - x[i]);
  return s;
}

std::shared_ptr<models::Model> small_resnet(uint64_t seed = 3) { return dfq::test::resnet18_random_bn(seed, false); }

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("squant: the kernel pass reaches the brute-force minimum of each kernel's error sum, at the least added error") {
  // 2 bits (grid -2..1) with values up to 0.45 past both ends, so clamped elements are common; and 4
  // bits inside the grid, with some values exactly on it (error 0: never a candidate).
  // The symmetric grids (weight_scheme sym): -1..1 at 2 bits with clamping, -7..7 at 4 bits.
  struct Setup { float tmin, tmax, lo, hi; };
  const Setup setups[] = {{-2, 1, -2.45f, 1.45f}, {-8, 7, -7.f, 6.f}, {-1, 1, -1.45f, 1.45f}, {-7, 7, -6.5f, 6.5f}};
  int64_t flips = 0;
  for (const Setup& su : setups)
    for (int64_t RS : {2, 3, 4, 5, 6, 9}) {
      const int64_t K = 3, C = 5;
      const size_t n = size_t(K * C * RS);
      std::vector<float> x = uniform(n, su.lo, su.hi, uint64_t(RS * 31 + int64_t(su.tmax)));
      for (size_t i = 0; i < n; i += 7) x[i] = std::rint(x[i]);
      std::vector<float> q(n);
      const FlipCounts f = squant_round(x.data(), K, C, RS, su.tmin, su.tmax, {true, false}, q.data());
      CHECK(f.channel == 0);
      flips += f.kernel;
      for (int64_t k = 0; k < K * C; ++k) {
        const float* xk = x.data() + k * RS;
        const float* qk = q.data() + k * RS;
        CAPTURE(RS);
        CAPTURE(k);
        const Best b = brute_force_group(xk, size_t(RS), su.tmin, su.tmax);
        CHECK(std::fabs(err_sum(qk, xk, size_t(RS))) == doctest::Approx(b.abs_sum).epsilon(1e-5));
        CHECK(err_cost(qk, xk, size_t(RS)) == doctest::Approx(b.cost).epsilon(1e-5));
        for (int64_t i = 0; i < RS; ++i) {
          CHECK(qk[i] >= su.tmin);
          CHECK(qk[i] <= su.tmax);
          CHECK(std::fabs(qk[i] - std::rint(xk[i])) <= 1.f);
        }
      }
    }
  CHECK(flips > 20);  // the data needed flips (nearest rounding alone would miss the minimum)
  // A kernel on the grid (E == 0 exactly, where the official CUDA kernel reads out of bounds) keeps its
  // codes, and its neighbour is still flipped.
  std::vector<float> x = {0, 1, -2, 1, 0, -1, 0, 0, 1, 0.4f, 0.3f, -0.45f, 0.2f, 0.35f, 0.1f, -0.3f, 0.4f, 0.2f};
  std::vector<float> q(x.size());
  squant_round(x.data(), 1, 2, 9, -2, 1, {true, true}, q.data());
  for (size_t i = 0; i < 9; ++i) CHECK(q[i] == x[i]);
  CHECK(std::fabs(err_sum(q.data() + 9, x.data() + 9, 9)) <= 0.5 + 1e-6);
}

TEST_CASE("squant: 1x1 kernels skip the kernel pass; the channel pass reaches the brute-force minimum of each channel") {
  // The asymmetric 2-bit grid -2..1 and the symmetric one -1..1, both with clamped values.
  struct Grid { float tmin, tmax, lo, hi; };
  for (const Grid& gr : {Grid{-2, 1, -2.45f, 1.45f}, Grid{-1, 1, -1.45f, 1.45f}}) {
    CAPTURE(gr.tmin);
    const int64_t K = 6, C = 8;
    std::vector<float> x = uniform(size_t(K * C), gr.lo, gr.hi, 77);
    std::vector<float> q(x.size()), qk(x.size());
    const FlipCounts kc = squant_round(x.data(), K, C, 1, gr.tmin, gr.tmax, {true, true}, q.data());
    CHECK(kc.kernel == 0);
    CHECK(kc.channel > 0);
    const FlipCounts k_only = squant_round(x.data(), K, C, 1, gr.tmin, gr.tmax, {true, false}, qk.data());
    CHECK(k_only.kernel + k_only.channel == 0);  // nothing to do without the channel pass: nearest
    for (size_t i = 0; i < x.size(); ++i) CHECK(qk[i] == std::min(std::max(std::rint(x[i]), gr.tmin), gr.tmax));
    for (int64_t k = 0; k < K; ++k) {
      const Best b = brute_force_group(x.data() + k * C, size_t(C), gr.tmin, gr.tmax);
      CHECK(std::fabs(err_sum(q.data() + k * C, x.data() + k * C, size_t(C))) == doctest::Approx(b.abs_sum).epsilon(1e-5));
      CHECK(err_cost(q.data() + k * C, x.data() + k * C, size_t(C)) == doctest::Approx(b.cost).epsilon(1e-5));
    }
  }
}

TEST_CASE("squant: the channel pass moves one candidate per kernel and reaches the brute-force minimum of the channel's error sum") {
  // Inside the grid (no clamping), so every kernel has its candidate. Each kernel's candidate, derived
  // here from the kernel pass's result as the paper describes it: under-flipped (fewer flips than
  // |E|), its best unflipped candidate in the same direction; over-flipped, undoing its last
  // (least-priority) flip. The channel pass may move any subset of them in the direction that cancels
  // the channel's sum: the search takes the smallest |sum|, then the least sum of |errors|.
  // The asymmetric 4-bit grid -8..7 and the symmetric -7..7.
  const int64_t K = 5, C = 7;
  for (float tmin : {-8.f, -7.f})
  for (int64_t RS : {3, 4, 9}) {
    CAPTURE(RS);
    CAPTURE(tmin);
    const size_t per = size_t(C * RS);
    std::vector<float> x = uniform(size_t(K) * per, -6.5f, 5.5f, uint64_t(500 + RS));
    std::vector<float> qk(x.size()), qc(x.size());
    squant_round(x.data(), K, C, RS, tmin, 7, {true, false}, qk.data());
    const FlipCounts f = squant_round(x.data(), K, C, RS, tmin, 7, {true, true}, qc.data());
    CHECK(f.channel > 0);
    for (int64_t k = 0; k < K; ++k) {
      CAPTURE(k);
      const float* xs = x.data() + size_t(k) * per;
      const float* a = qk.data() + size_t(k) * per;
      const float* c = qc.data() + size_t(k) * per;
      struct Cand { size_t at; int move; };
      std::vector<Cand> cands;
      for (int64_t ker = 0; ker < C; ++ker) {
        const size_t b0 = size_t(ker * RS);
        double E = 0;
        for (int64_t i = 0; i < RS; ++i) E += std::rint(xs[b0 + size_t(i)]) - xs[b0 + size_t(i)];
        const int dir = E < 0 ? 1 : -1;  // the kernel pass's direction
        int flipped = 0;
        size_t last = 0, next = 0;
        double last_e = INFINITY, next_e = -1;
        for (int64_t i = 0; i < RS; ++i) {
          const size_t j = b0 + size_t(i);
          const double r = std::rint(xs[j]), e = std::fabs(r - xs[j]);
          if (a[j] == r + dir) {
            ++flipped;
            if (e < last_e) last_e = e, last = j;
          } else if ((dir > 0 ? r - xs[j] < 0 : r - xs[j] > 0) && e > next_e) {
            next_e = e, next = j;
          }
        }
        if (flipped >= std::fabs(E))
          cands.push_back({last, -dir});
        else
          cands.push_back({next, dir});
      }
      const double Ec = err_sum(a, xs, per);
      const int want = Ec < 0 ? 1 : -1;
      Best best;
      std::vector<float> trial(a, a + per);
      for (unsigned mask = 0; mask < (1u << cands.size()); ++mask) {
        std::copy(a, a + per, trial.begin());
        bool ok = true;
        for (size_t i = 0; i < cands.size(); ++i)
          if (mask >> i & 1u) {
            if (cands[i].move != want) ok = false;
            trial[cands[i].at] += float(cands[i].move);
          }
        if (!ok) continue;
        const double s = std::fabs(err_sum(trial.data(), xs, per)), co = err_cost(trial.data(), xs, per);
        if (better(s, co, best)) best = {s, co};
      }
      CHECK(std::fabs(err_sum(c, xs, per)) == doctest::Approx(best.abs_sum).epsilon(1e-5));
      CHECK(err_cost(c, xs, per) == doctest::Approx(best.cost).epsilon(1e-5));
      CHECK(std::fabs(err_sum(c, xs, per)) <= 0.5 + 1e-5);  // the channel's promise
      for (int64_t ker = 0; ker < C; ++ker) {
        const size_t b0 = size_t(ker * RS);
        int changed = 0;
        for (int64_t i = 0; i < RS; ++i) changed += c[b0 + size_t(i)] != a[b0 + size_t(i)] ? 1 : 0;
        CHECK(changed <= 1);  // one candidate per kernel
        CHECK(std::fabs(err_sum(c + b0, xs + b0, size_t(RS))) <= 1.0 + 1e-5);  // each kernel stays within 1
      }
    }
  }
}

TEST_CASE("squant: the flips are the same at any thread count and refuse non-finite input") {
  const int64_t K = 64, C = 16, RS = 9;
  std::vector<float> x = uniform(size_t(K * C * RS), -8.4f, 7.4f, 5);
  std::vector<float> a(x.size()), b(x.size());
  squant_round(x.data(), K, C, RS, -8, 7, {}, a.data());
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  squant_round(x.data(), K, C, RS, -8, 7, {}, b.data());
  omp_set_num_threads(threads);
  CHECK(bit_equal(a, b));
  x[17] = NAN;
  CHECK_THROWS_WITH(squant_round(x.data(), K, C, RS, -8, 7, {}, a.data()), doctest::Contains("non-finite"));
}

TEST_CASE("squant: weights — nearest equals the min/max fake-quantizer, SQuant's codes survive the fixed grid (both schemes)") {
 for (WeightScheme ws : {WeightScheme::Asym, WeightScheme::Sym}) {
  CAPTURE(std::string(weight_scheme_name(ws)));
  const bool sym = ws == WeightScheme::Sym;
  auto m = small_resnet();
  const std::vector<std::vector<float>> w0 = [&] {
    std::vector<std::vector<float>> v;
    for (auto& [n, c] : m->conv_layers()) v.push_back(c->weight.to_vector());
    for (auto& [n, l] : m->linear_layers()) v.push_back(l->weight.to_vector());
    return v;
  }();
  QuantConfig c;
  c.wbits = 4;
  c.abits = 32;
  c.weight_scheme = ws;
  {  // squant-e: the weights become exactly what the min/max hook gives
    auto e = small_resnet();
    QuantizedModel q(e, c);
    std::vector<std::vector<float>> want;
    for (const auto& L : q.weight_layers()) want.push_back(quantize_weight(L.weight, 4, Ste::Identity, ws).to_vector());
    const SquantWeightStats st = squant_weights(q, parse_squant_mode("squant-e"));
    CHECK(st.flips.kernel + st.flips.channel == 0);
    const auto layers = q.weight_layers();
    for (size_t i = 0; i < layers.size(); ++i) CHECK(bit_equal(layers[i].weight.to_vector(), want[i]));
  }
  QuantizedModel q(m, c);
  const SquantWeightStats st = squant_weights(q);
  const auto layers = q.weight_layers();
  CHECK(st.layers == int(layers.size()));
  CHECK(st.flips.kernel > 0);
  CHECK(st.flips.channel > 0);
  NoGradGuard ng;
  int64_t differ = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    CAPTURE(layers[i].name);
    REQUIRE(q.weight_range(i).defined());
    const std::vector<float> r = q.weight_range(i).to_vector(), wq = layers[i].weight.to_vector();
    const Tensor& W = layers[i].weight;
    const int64_t K = W.size(0), per = W.numel() / K;
    // the grid is the original weight's min / max
    for (int64_t k = 0; k < K; ++k) {
      CHECK(r[size_t(k)] == *std::min_element(w0[i].begin() + k * per, w0[i].begin() + (k + 1) * per));
      CHECK(r[size_t(K + k)] == *std::max_element(w0[i].begin() + k * per, w0[i].begin() + (k + 1) * per));
    }
    // the hook maps the stored values to themselves: every forward uses SQuant's codes
    CHECK(bit_equal(fake_quantize(W, 4, q.weight_range(i), Ste::Identity, ws).to_vector(), wq));
    // ... which differ from nearest rounding in places, and cancel each channel's error sum
    const std::vector<float> nearest = quantize_weight(Tensor::from_vector(w0[i], W.shape()), 4, Ste::Identity, ws).to_vector();
    for (size_t j = 0; j < wq.size(); ++j) differ += wq[j] != nearest[j] ? 1 : 0;
    for (int64_t k = 0; k < K; ++k) {
      const QuantParams p = grid_params(4, sym, r[size_t(k)], r[size_t(K + k)]);
      double s = 0;  // in grid units: times the scale (asym), over the step (sym)
      for (int64_t j = 0; j < per; ++j) {
        const double d = double(wq[size_t(k * per + j)] - w0[i][size_t(k * per + j)]);
        s += sym ? d / p.scale : d * p.scale;
      }
      CHECK(std::fabs(s) <= 0.5 + 1e-3);
    }
  }
  CHECK(differ > 0);
 }
}

TEST_CASE("squant: the activation clip rule, recomputed from what each quantizer saw (mobilenet_v2: signed inputs too)") {
  auto m = models::create_model("mobilenet_v2", 10, 5);
  m->eval();
  QuantConfig c;
  c.wbits = 4;
  c.abits = 4;
  c.act_placement = ActPlacement::LayerInputs;
  QuantizedModel q(m, c);
  REQUIRE(q.acts().size() == 53);  // 52 convs + the classifier
  CHECK(q.acts().front().bits() == 32);
  CHECK(q.acts().back().bits() == 8);
  CHECK(q.acts()[1].bits() == 4);
  squant_weights(q);
  const Tensor noise = squant_noise(6, 32, 9, Device::CPU);
  const double k = squant_sigma_for_bits(4);
  CHECK(k == 12.0);
  CHECK(squant_sigma_for_bits(6) == 14.0);
  CHECK(squant_sigma_for_bits(8) == 25.0);
  const ClipStats cs = squant_clip_activations(q, noise, k);
  CHECK(cs.ranges == 52);
  // The same forward again (every range frozen, so every quantizer sees what it saw then).
  std::vector<std::vector<float>> seen(q.acts().size());
  q.act_observer = [&](size_t a, const Tensor& x) {
    if (seen[a].empty()) seen[a] = x.to_vector();
  };
  {
    NoGradGuard ng;
    q.forward(noise);
  }
  q.act_observer = nullptr;
  int signed_inputs = 0, capped = 0;
  for (size_t a = 1; a < q.acts().size(); ++a) {
    CAPTURE(a);
    CHECK_FALSE(q.acts()[a].observing());
    const std::vector<float>& v = seen[a];
    REQUIRE(!v.empty());
    const double mn = *std::min_element(v.begin(), v.end()), mx = *std::max_element(v.begin(), v.end());
    const bool sgn = mn < 0;
    double s = 0, s2 = 0, n = 0;
    for (float f : v)
      if (sgn || f > 0) s += f, n += 1;
    for (float f : v)
      if (sgn || f > 0) s2 += (f - s / n) * (f - s / n);
    double alpha = k * std::sqrt(s2 / (n - 1)) / (sgn ? 1.25 : 1.0);
    if (q.acts()[a].bits() < 6 && alpha > mx) alpha = mx, ++capped;
    signed_inputs += sgn ? 1 : 0;
    const auto r = q.acts()[a].range();
    CHECK(r.second == doctest::Approx(alpha).epsilon(1e-5));
    CHECK(r.first == (sgn ? -r.second : 0.f));
  }
  CHECK(signed_inputs >= 17);  // the expansion / head convs read linear-bottleneck outputs
  CHECK(capped > 0);
  CHECK(q.acts().front().range().second == 0.f);  // the image: never given a range
}

TEST_CASE("squant: fixed grids and layer-input ranges save and load back with the same logits; old files still load") {
  TempDir dir("squant_save");
  auto m = small_resnet();
  QuantConfig c;
  c.wbits = 4;
  c.abits = 4;
  c.act_placement = ActPlacement::LayerInputs;
  QuantizedModel q(m, c);
  squant_weights(q);
  squant_clip_activations(q, squant_noise(4, 32, 1, Device::CPU), 12);
  Generator g(3);
  Tensor x = randn({3, 3, 32, 32}, g);
  NoGradGuard ng;
  const std::vector<float> want = q.forward(x).to_vector();
  q.save(dir / "q.bin");
  auto back = load_quantized(dir / "q.bin", "resnet18", Device::CPU);
  CHECK(back->config().act_placement == ActPlacement::LayerInputs);
  REQUIRE(back->acts().size() == q.acts().size());
  for (size_t i = 0; i < q.weight_layers().size(); ++i) CHECK(back->weight_range(i).defined());
  CHECK(bit_equal(back->forward(x).to_vector(), want));
  CHECK(back->coverage_report().find("21 on fixed grids") != std::string::npos);
  CHECK(back->coverage_report().find("20 conv / linear inputs (the last layer's at A8") != std::string::npos);
  // Without the fixed grids the same file would re-round by min/max: the grids matter.
  {
    auto plain = load_quantized(dir / "q.bin", "resnet18", Device::CPU);
    for (size_t i = 0; i < plain->weight_layers().size(); ++i) plain->fix_weight_range(i, Tensor());
    CHECK(plain->forward(x).to_vector() != want);
  }
  // A file written before fixed grids and placements existed (ReLU sites, no extra tensors).
  QuantConfig old;
  old.wbits = old.abits = 4;
  auto m2 = small_resnet();
  QuantizedModel qo(m2, old);
  calibrate(qo, x);
  qo.save(dir / "old.bin");
  auto ob = load_quantized(dir / "old.bin", "resnet18", Device::CPU);
  CHECK(ob->config().act_placement == ActPlacement::ReluSites);
  CHECK_FALSE(ob->weight_range(0).defined());
  CHECK(bit_equal(ob->forward(x).to_vector(), qo.forward(x).to_vector()));
}

TEST_CASE("squant_main: bad input gets one message, a non-zero exit and no output") {
  TempDir dir("squant_cli");
  const std::string sq = DFQ_SQUANT_MAIN;
  auto m = models::create_model("resnet18", 10, 1, false);
  write_weight_file(dir / "r18.bin", "resnet18", 10, m->state_dict());
  const std::string w = "--weights " + (dir / "r18.bin") + " --img_size 32 --noise_batch 2";
  const std::string outs = " --save " + (dir / "q.bin") + " --json " + (dir / "r.json");
  const std::vector<dfq::test::RefusalCase> cases = {
      {"--weights " + (dir / "missing.bin"), "missing.bin", 2},
      {w + " --bits 4", "W/A", 2},
      {w + " --mode squant-x", "--mode", 2},
      {w + " --mode squant-k --weight_round nearest", "needs --weight_round squant", 2},
      {w + " --weight_round up", "--weight_round", 2},
      {w + " --sigma -1", "--sigma", 2},
      {w + " --noise_batch 1", "--noise_batch", 2},
      {w + " --act_at conv", "--act_at", 2},
      {w + " --noise gauss", "--noise", 2},
      {w + " --eval_float", "--eval_float needs", 2},
      {w + " --out " + (dir / "o"), "--out", 2},
      {"-a vgg16_bn " + w, "not a vgg16_bn", 1},
  };
  dfq::test::check_refusals(sq, cases, outs, dir / "log.txt", {dir / "q.bin", dir / "r.json"});
  CHECK(dfq::test::run_program(sq, "--help", dir / "log.txt") == 0);
  CHECK(dfq::test::read_text(dir / "log.txt").find("SQuant") != std::string::npos);
}

TEST_CASE("squant_main, zeroq_main / gdfq_main --weight_round squant: short data-free runs save models that load with fixed grids") {
  TempDir dir("squant_run");
  auto m = models::create_model("resnet18", 10, 1, true);
  write_weight_file(dir / "r18.bin", "resnet18", 10, m->state_dict());
  const std::string args = "--weights " + (dir / "r18.bin") + " --bits 4/4 --img_size 32 --noise_batch 4 --save " +
                           (dir / "q.bin") + " --json " + (dir / "r.json");
  REQUIRE(dfq::test::run_program(DFQ_SQUANT_MAIN, args, dir / "log.txt") == 0);
  const std::string log = dfq::test::read_text(dir / "log.txt");
  CAPTURE(log);
  CHECK(log.find("nothing was evaluated") != std::string::npos);
  CHECK(log.find("quantization ") != std::string::npos);
  const std::string js = dfq::test::read_text(dir / "r.json");
  CHECK(dfq::test::json_number(js, "quant_ms") > 0);
  CHECK(dfq::test::json_number(js, "kernel_flips") > 0);
  CHECK(js.find("fp_top1") == std::string::npos);
  auto q = quant::load_quantized(dir / "q.bin", "resnet18", Device::CPU);
  CHECK(q->config().act_placement == ActPlacement::LayerInputs);
  CHECK(q->weight_range(0).defined());
  for (size_t a = 1; a < q->acts().size(); ++a) CHECK(q->acts()[a].range().second > 0.f);

  const std::string zargs = "--weights " + (dir / "r18.bin") + " --bits 4/4 --iters 1 --batch_size 2 --img_size 32 "
                            "--weight_round squant --save " + (dir / "z.bin");
  REQUIRE(dfq::test::run_program(DFQ_ZEROQ_MAIN, zargs, dir / "zlog.txt") == 0);
  CHECK(dfq::test::read_text(dir / "zlog.txt").find("weights rounded by SQuant") != std::string::npos);
  auto z = quant::load_quantized(dir / "z.bin", "resnet18", Device::CPU);
  CHECK(z->config().act_placement == ActPlacement::ReluSites);
  for (size_t i = 0; i < z->weight_layers().size(); ++i) CHECK(z->weight_range(i).defined());

  // gdfq_main: rounded after the last epoch, before its save
  const std::string gargs = "--weights " + (dir / "r18.bin") + " --bits 4/4 --n_epochs 1 --n_iter 1 --batch_size 2 "
                            "--warmup_epochs 0 --img_size 32 --weight_round squant --out " + (dir / "g");
  REQUIRE(dfq::test::run_program(DFQ_GDFQ_MAIN, gargs, dir / "glog.txt") == 0);
  CHECK(dfq::test::read_text(dir / "glog.txt").find("weights rounded by SQuant") != std::string::npos);
  auto gq = quant::load_quantized(dir / "g/quantized.bin", "resnet18", Device::CPU);
  for (size_t i = 0; i < gq->weight_layers().size(); ++i) CHECK(gq->weight_range(i).defined());
}
