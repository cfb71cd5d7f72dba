// test_mixed_precision.cpp — ZeroQ mixed precision (quant/mixed_precision.h): the DP frontier against
// exhaustive search on toy problems, the sensitivity measurement (only the measured layer quantized,
// the quantizer QuantizedModel uses), per-layer weight bits through save / load and train/evaluate,
// and zeroq_main's --mp_* flags (bad input refused before any work; a short run's outputs).
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "engine/io/image.h"
#include "engine/io/weights.h"
#include "models/registry.h"
#include "quant/mixed_precision.h"
#include "quant/qmodel.h"
#include "quant/zeroq.h"
#include "tests/test_util.h"

using namespace dfq;
using namespace dfq::quant;
using dfq::test::TempDir;

namespace {

// Every configuration of p: (size in bits, sum of Omega in layer order, bits).
struct Config {
  int64_t size = 0;
  double sens = 0;
  std::vector<int> bits;
};
std::vector<Config> all_configs(const MpProblem& p) {
  std::vector<Config> out = {Config{}};
  for (size_t i = 0; i < p.params.size(); ++i) {
    std::vector<Config> next;
    for (const Config& c : out)
      for (size_t j = 0; j < p.bits[i].size(); ++j) {
        Config d = c;
        d.size += p.params[i] * p.bits[i][j];
        d.sens += p.omega[i][j];
        d.bits.push_back(p.bits[i][j]);
        next.push_back(d);
      }
    out = next;
  }
  return out;
}

// A random toy problem: `layers` layers of odd sizes, candidates 2 / 4 / 8, Omega falling with bits.
MpProblem toy_problem(size_t layers, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> size(3, 400);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  MpProblem p;
  for (size_t i = 0; i < layers; ++i) {
    p.params.push_back(size(rng));
    p.bits.push_back({2, 4, 8});
    const double o8 = u(rng) * 1e-3, o4 = o8 + u(rng) * 1e-2, o2 = o4 + u(rng);
    p.omega.push_back({o2, o4, o8});
  }
  return p;
}

// The least sum of Omega within the budget by exhaustive search (NaN: nothing fits).
double exhaustive_best(const std::vector<Config>& all, int64_t budget) {
  double best = std::numeric_limits<double>::quiet_NaN();
  for (const Config& c : all)
    if (c.size <= budget && !(c.sens >= best)) best = c.sens;
  return best;
}

// Checks a point against p: its bits are candidates, its size and sensitivity are theirs.
void check_point(const MpProblem& p, const MpPoint& pt) {
  REQUIRE(pt.layer_bits.size() == p.params.size());
  int64_t size = 0;
  double sens = 0;
  for (size_t i = 0; i < p.params.size(); ++i) {
    auto it = std::find(p.bits[i].begin(), p.bits[i].end(), pt.layer_bits[i]);
    REQUIRE(it != p.bits[i].end());
    size += p.params[i] * pt.layer_bits[i];
    sens += p.omega[i][size_t(it - p.bits[i].begin())];
  }
  CHECK(pt.size_bits == size);
  CHECK(pt.sensitivity == doctest::Approx(sens).epsilon(1e-12));
}

std::shared_ptr<models::Model> random_resnet(uint64_t seed) {
  auto m = models::create_model("resnet18", 10, seed, true);
  m->eval();
  return m;
}

}  // namespace

TEST_CASE("mixed precision: the DP frontier equals exhaustive search on 4-layer toys, at every budget") {
  for (uint32_t seed : {1u, 2u, 3u, 4u, 5u}) {
    CAPTURE(seed);
    const MpProblem p = toy_problem(4, seed);
    const std::vector<Config> all = all_configs(p);
    REQUIRE(all.size() == 81);
    const MpFrontier f = solve_frontier(p);
    CHECK(f.exact);
    int64_t mn = 0, mx = 0;
    for (int64_t n : p.params) mn += 2 * n, mx += 8 * n;
    CHECK(f.min_size_bits == mn);
    CHECK(f.max_size_bits == mx);
    // every budget from below the smallest to above the largest configuration, bit by bit
    for (int64_t budget = mn - 3; budget <= mx + 3; ++budget) {
      CAPTURE(budget);
      const double want = exhaustive_best(all, budget);
      if (std::isnan(want)) {
        CHECK_THROWS_WITH_AS(f.best_within(budget), doctest::Contains("below the smallest configuration"), std::invalid_argument);
        continue;
      }
      const MpPoint& got = f.best_within(budget);
      CHECK(got.size_bits <= budget);
      CHECK(got.sensitivity == want);  // the same sums in the same order: equal, not close
      check_point(p, got);
    }
    // the frontier is exactly the exhaustive Pareto set (ascending size, strictly falling sensitivity)
    std::vector<Config> sorted = all;
    std::stable_sort(sorted.begin(), sorted.end(), [](const Config& a, const Config& b) {
      return a.size != b.size ? a.size < b.size : a.sens < b.sens;
    });
    std::vector<Config> pareto;
    for (const Config& c : sorted)
      if (pareto.empty() || c.sens < pareto.back().sens) pareto.push_back(c);
    REQUIRE(f.points.size() == pareto.size());
    for (size_t k = 0; k < pareto.size(); ++k) {
      CHECK(f.points[k].size_bits == pareto[k].size);
      CHECK(f.points[k].sensitivity == pareto[k].sens);
    }
  }
}

TEST_CASE("mixed precision: pinned layers, a coarsened grid and ill-formed problems") {
  MpProblem p = toy_problem(4, 11);
  {  // layer 0 pinned to 8 bits: the frontier is exhaustive search over the others
    MpProblem q = p;
    q.bits[0] = {8};
    q.omega[0] = {p.omega[0][2]};
    const MpFrontier f = solve_frontier(q);
    const std::vector<Config> all = all_configs(q);
    REQUIRE(all.size() == 27);
    for (const MpPoint& pt : f.points) CHECK(pt.layer_bits[0] == 8);
    for (int64_t budget = f.min_size_bits; budget <= f.max_size_bits; budget += 7)
      CHECK(f.best_within(budget).sensitivity == exhaustive_best(all, budget));
  }
  {  // a grid coarser than the gcd: never over budget, and at most layers x unit bits of size from the optimum
    const MpFrontier f = solve_frontier(p, /*max_cells=*/4 * 40);
    CHECK_FALSE(f.exact);
    CHECK(f.unit_bits > 1);
    const std::vector<Config> all = all_configs(p);
    for (int64_t budget = f.min_size_bits + int64_t(p.params.size()) * f.unit_bits; budget <= f.max_size_bits; budget += 5) {
      CAPTURE(budget);
      const MpPoint& got = f.best_within(budget);
      CHECK(got.size_bits <= budget);
      check_point(p, got);
      CHECK(got.sensitivity >= exhaustive_best(all, budget));
      CHECK(got.sensitivity <= exhaustive_best(all, budget - int64_t(p.params.size()) * f.unit_bits));
    }
    for (size_t k = 1; k < f.points.size(); ++k) {
      CHECK(f.points[k].size_bits > f.points[k - 1].size_bits);
      CHECK(f.points[k].sensitivity < f.points[k - 1].sensitivity);
    }
  }
  MpProblem bad = p;
  bad.omega[2][1] = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH_AS(solve_frontier(bad), doctest::Contains("NaN"), std::invalid_argument);
  bad = p;
  bad.bits[1].clear();
  CHECK_THROWS_AS(solve_frontier(bad), std::invalid_argument);
  CHECK_THROWS_AS(solve_frontier(MpProblem{}), std::invalid_argument);
}

TEST_CASE("mixed precision: a layer's sensitivity quantizes that layer alone, with QuantizedModel's quantizer") {
  auto m = random_resnet(7);
  Generator g(3);
  const Tensor x = randn({3, 3, 32, 32}, g);
  const std::vector<MpLayer> layers = mp_layers(*m);
  REQUIRE(layers.size() == 21);  // 20 convs, the fc
  CHECK(layers.front().name == "conv1");
  CHECK(layers.back().name == "fc");
  CHECK(layers.back().params == 512 * 10);
  std::vector<float> ref;
  {
    NoGradGuard ng;
    ref = m->forward(x).to_vector();
  }
  int64_t steps = 0;
  const Sensitivity s = measure_sensitivity(*m, x, {2, 8, 32}, [&steps](int64_t done, int64_t total) {
    steps = done;
    CHECK(total == 63);
  });
  CHECK(steps == 63);
  REQUIRE(s.omega.size() == 21);
  for (size_t i = 0; i < s.omega.size(); ++i) {
    CAPTURE(layers[i].name);
    CHECK(s.omega[i][2] == 0.0);            // 32 bits: the float model
    CHECK(s.omega[i][0] > s.omega[i][1]);   // 2 bits perturb more than 8
    CHECK(s.omega[i][1] > 0.0);
  }
  // the hooks are gone: the model is float again
  {
    NoGradGuard ng;
    CHECK(m->forward(x).to_vector() == ref);
  }
  // the joint KL of "only layer i at 2 bits" is Omega_i(2), and a QuantizedModel with those per-layer
  // bits (activations float) computes the same logits
  for (size_t i : {size_t(0), size_t(9), size_t(20)}) {
    CAPTURE(i);
    std::vector<int> bits(21, 32);
    bits[i] = 2;
    CHECK(joint_sensitivity(*m, x, bits) == s.omega[i][0]);
    QuantConfig c;
    c.abits = 32;
    c.layer_wbits = bits;
    std::vector<float> q;
    {
      QuantizedModel qm(m, c);
      NoGradGuard ng;
      q = qm.forward(x).to_vector();
      // a QuantizedModel alive on the model: measuring would silently replace its hooks, so it is refused
      CHECK_THROWS_AS(measure_sensitivity(*m, x, {4}), std::logic_error);
    }
    CHECK(mean_kl(ref, q, 3, 10) == s.omega[i][0]);
  }
  // additivity is an assumption, not an identity: two layers at 2 bits are not the sum exactly
  std::vector<int> two(21, 32);
  two[1] = two[2] = 2;
  CHECK(joint_sensitivity(*m, x, two) != s.omega[1][0] + s.omega[2][0]);
}

TEST_CASE("mixed precision: per-layer weight bits survive save / load, and evaluate reports them") {
  TempDir dir("mp_save");
  auto m = random_resnet(5);
  Generator g(9);
  const Tensor x = randn({2, 3, 32, 32}, g);
  QuantConfig c;
  c.abits = 8;
  c.wbits = 4;
  for (int i = 0; i < 21; ++i) c.layer_wbits.push_back(i % 3 == 0 ? 2 : i % 3 == 1 ? 8 : 4);
  std::vector<float> want, uniform;
  {
    QuantizedModel q(m, c);
    calibrate(q, x);
    NoGradGuard ng;
    want = q.forward(x).to_vector();
    q.save(dir / "mp.bin");
    CHECK(q.coverage_report().find("mixed W bits (7 at W2, 7 at W4, 7 at W8") != std::string::npos);
    CHECK(c.str().find("W{2,4,8}A8") != std::string::npos);
  }
  {
    QuantConfig u = c;
    u.layer_wbits.clear();
    QuantizedModel q(m, u);
    calibrate(q, x);
    q.save(dir / "uniform.bin");
    NoGradGuard ng;
    uniform = q.forward(x).to_vector();
  }
  CHECK(want != uniform);  // the per-layer bits are what the model computes with
  auto back = load_quantized(dir / "mp.bin", "resnet18", Device::CPU);
  CHECK(back->config().layer_wbits == c.layer_wbits);
  {
    NoGradGuard ng;
    CHECK(back->forward(x).to_vector() == want);
  }
  // a uniform file has no per-layer bits (and loads as before)
  CHECK(load_quantized(dir / "uniform.bin", "", Device::CPU)->config().layer_wbits.empty());
  {  // a per-layer list that does not fit the model is refused, in memory and in a file
    QuantConfig bad = c;
    bad.layer_wbits.pop_back();
    CHECK_THROWS_WITH_AS(QuantizedModel(m, bad), doctest::Contains("has 21 convs and linears"), std::invalid_argument);
    WeightFile f = WeightFile::open(dir / "mp.bin");
    std::vector<std::pair<std::string, Tensor>> t;
    for (const auto& [name, tensor] : m->state_dict()) t.push_back({name, tensor});
    t.push_back({"quant.config", f.get("quant.config")});
    t.push_back({"quant.act_ranges", f.get("quant.act_ranges")});
    t.push_back({"quant.layer_wbits", Tensor::from_vector_i64({2, 4}, {2})});
    write_weight_file(dir / "bad.bin", "resnet18", 10, t);
    CHECK_THROWS_WITH(load_quantized(dir / "bad.bin", "", Device::CPU), doctest::Contains("does not fit"));
    t.pop_back();  // a version-2 file without its per-layer bits
    write_weight_file(dir / "bad2.bin", "resnet18", 10, t);
    CHECK_THROWS_WITH(load_quantized(dir / "bad2.bin", "", Device::CPU), doctest::Contains("without quant.layer_wbits"));
  }
  // train/evaluate rebuilds it with its bits and says so
  dfq::test::write_two_class_folder(dir.p / "val");
  REQUIRE(dfq::test::run_program(DFQ_EVALUATE, "--weights " + (dir / "mp.bin") + " --data " + (dir / "val"), dir / "log.txt") == 0);
  const std::string log = dfq::test::read_text(dir / "log.txt");
  CAPTURE(log);
  CHECK(log.find("mixed weight bits per layer: 7 at W2, 7 at W4, 7 at W8") != std::string::npos);
  CHECK(log.find("mixed W bits (7 at W2, 7 at W4, 7 at W8") != std::string::npos);
}

TEST_CASE("zeroq_main mixed precision: bad --mp_* input gets one message, exit 2 and no output") {
  TempDir dir("mp_cli");
  auto m = models::create_model("resnet18", 10, 1, false);
  write_weight_file(dir / "r18.bin", "resnet18", 10, m->state_dict());
  const std::string w = "--weights " + (dir / "r18.bin") + " --iters 1 --batch_size 2 --img_size 32 ";
  const std::string outs = " --save " + (dir / "q.bin") + " --json " + (dir / "r.json") + " --out " + (dir / "o");
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      {"--mp_size 3 --mp_avg_bits 3", "not both"},
      {"--mp_avg_bits 9", "outside the candidates' range [2, 8]"},
      {"--mp_avg_bits 1.5", "outside the candidates' range"},
      {"--mp_avg_bits 3 --mp_bits 4,8", "outside the candidates' range [4, 8]"},
      {"--mp_size 0", "--mp_size must be > 0"},
      {"--mp_size 0.5", "below the smallest configuration"},  // resnet18 at W2 everywhere: 2.66 MB
      {"--mp_avg_bits 2.005 --first_last_8", "with the first / last layer at 8 bits"},  // 2.0078 with them pinned
      {"--mp_avg_bits 3 --mp_bits 2,x", "not a number"},
      {"--mp_avg_bits 3 --mp_bits 2,4,", "comma-separated"},
      {"--mp_avg_bits 3 --mp_bits 2,27", "27 bits"},
      {"--mp_avg_bits 3 --mp_bits 2,2.5", "whole number"},
      {"--mp_avg_bits 3 --mp_bits 2,4,4", "twice"},
      {"--mp_avg_bits 3 --mp_check 1", "--mp_check 1 is outside"},
      {"--mp_check 3", "--mp_check needs --mp_size or --mp_avg_bits"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.args);
    const int rc = dfq::test::run_program(DFQ_ZEROQ_MAIN, w + c.args + outs, dir / "log.txt");
    const std::string log = dfq::test::read_text(dir / "log.txt");
    CAPTURE(log);
    CHECK(rc == 2);
    CHECK(log.find(c.message) != std::string::npos);
    CHECK(log.find("distilled") == std::string::npos);  // refused before the distillation
    CHECK_FALSE(std::filesystem::exists(dir / "q.bin"));
    CHECK_FALSE(std::filesystem::exists(dir / "r.json"));
    CHECK_FALSE(std::filesystem::exists(dir / "o"));
  }
}

TEST_CASE("zeroq_main mixed precision: a short run writes the frontier and a model with the chosen bits") {
  TempDir dir("mp_run");
  auto m = models::create_model("resnet18", 10, 1, true);
  write_weight_file(dir / "r18.bin", "resnet18", 10, m->state_dict());
  const std::string args = "--weights " + (dir / "r18.bin") + " --bits 8/6 --iters 2 --batch_size 2 --img_size 32 --mp_avg_bits 3.5" +
                           " --mp_check 2.5,4 --first_last_8 --save " + (dir / "q.bin") + " --out " + (dir / "o") +
                           " --json " + (dir / "r.json");
  REQUIRE(dfq::test::run_program(DFQ_ZEROQ_MAIN, args, dir / "log.txt") == 0);
  const std::string log = dfq::test::read_text(dir / "log.txt");
  CAPTURE(log);
  CHECK(log.find("chosen") != std::string::npos);
  CHECK(log.find("layer4.1.conv2") != std::string::npos);  // the per-layer table
  for (const char* f : {"o/mp_frontier.csv", "o/mp_frontier.png", "o/mp_sensitivity.csv", "o/mp_check.csv"})
    CHECK(std::filesystem::exists(dir / f));
  const std::string csv = dfq::test::read_text(dir / "o/mp_frontier.csv");
  CHECK(csv.rfind("size_mb,avg_bits,sensitivity,conv1,", 0) == 0);
  CHECK(std::count(csv.begin(), csv.end(), '\n') > 3);
  CHECK(load_image_rgb(dir / "o/mp_frontier.png").w == 960);
  const std::string check = dfq::test::read_text(dir / "o/mp_check.csv");
  CHECK(std::count(check.begin(), check.end(), '\n') == 3);
  // the saved model carries the chosen bits: first conv and fc pinned to 8, within 3.5 bits a weight
  auto q = load_quantized(dir / "q.bin", "resnet18", Device::CPU);
  const std::vector<int>& lb = q->config().layer_wbits;
  REQUIRE(lb.size() == 21);
  CHECK(lb.front() == 8);
  CHECK(lb.back() == 8);
  CHECK(q->config().abits == 6);
  int64_t bits = 0, n = 0;
  const std::vector<MpLayer> layers = mp_layers(q->model());
  for (size_t i = 0; i < lb.size(); ++i) {
    CHECK((lb[i] == 2 || lb[i] == 4 || lb[i] == 8));
    bits += layers[i].params * lb[i];
    n += layers[i].params;
  }
  CHECK(double(bits) / double(n) <= 3.5);
  CHECK(double(bits) / double(n) > 3.0);
  const std::string js = dfq::test::read_text(dir / "r.json");
  std::string want = "\"mp_layer_bits\": \"";
  for (size_t i = 0; i < lb.size(); ++i) want += (i ? "," : "") + std::to_string(lb[i]);
  CHECK(js.find(want + "\"") != std::string::npos);
  CHECK(js.find("\"bits\": \"MP3.") != std::string::npos);
  CHECK(js.find("\"bits\":") == js.rfind("\"bits\":"));  // one key, one value
}
