// toy_experiment.cpp — tools/toy_experiment: a small MLP with BatchNorm trained on a 2-D
// Gaussian-mixture classification task (4 classes, 2 blobs each), then GDFQ's generated points and
// ZeroQ's distilled points drawn over the classifier's decision regions in one PNG, so a person can
// see whether the generator learned the class boundaries. The pieces live in tools/toy.h.
#include <chrono>
#include <cstdio>
#include <string>

#include "engine/io/flags.h"
#include "engine/io/json_out.h"
#include "quant/zeroq.h"
#include "tools/toy.h"

using namespace dfq;

static const char* kUsage =
    "usage: toy_experiment [--out PATH] [--seed N] [--g_iters N] [--zeroq_iters N] [--points N]\n"
    "                      [--zeroq_batch N]\n"
    "Trains a Linear-BN-ReLU MLP (2 -> 64 -> 64 -> 4) on a 2-D mixture of 4 classes x 2 Gaussian blobs\n"
    "(4000 points, standardised per axis), then GDFQ's conditional generator (its generator loss: CE +\n"
    "0.1 * BN statistics) and ZeroQ's distillation (BN statistics only) against it, and draws both\n"
    "methods' points over the teacher's decision regions, side by side, in one PNG.\n"
    "  --out PATH          the PNG (default /tmp/toy_experiment.png)\n"
    "  --seed N            seed of every random draw (default 0); a seed gives the same run\n"
    "  --g_iters N         GDFQ generator iterations, batch 128 (default 2000; 0: untrained)\n"
    "  --zeroq_iters N     ZeroQ distillation iterations (default 500)\n"
    "  --points N          GDFQ points drawn per class (default 100)\n"
    "  --zeroq_batch N     ZeroQ points distilled (default 200)\n";

int main(int argc, char** argv) {
  Flags flags(argc, argv, kUsage);
  const std::string out = flags.str("--out", "/tmp/toy_experiment.png");
  const long long seed = flags.integer64("--seed", 0);
  const long long g_iters = flags.integer("--g_iters", 2000);
  const long long zq_iters = flags.integer("--zeroq_iters", 500);
  const long long points = flags.integer("--points", 100);
  const long long zq_batch = flags.integer("--zeroq_batch", 200);
  flags.done();
  if (out.empty()) flags.fail("--out needs a path");
  if (std::string p = output_file_problem(out); !p.empty()) flags.fail("--out " + out + ": " + p);
  if (seed < 0) flags.fail("--seed must be >= 0");
  if (g_iters < 0 || g_iters > 1000000) flags.fail("--g_iters must be in [0, 1000000]");
  if (zq_iters < 0 || zq_iters > 1000000) flags.fail("--zeroq_iters must be in [0, 1000000]");
  if (points < 1 || points > 100000) flags.fail("--points must be in [1, 100000]");
  if (zq_batch < 2 || zq_batch > 100000) flags.fail("--zeroq_batch must be in [2, 100000]");
  try {
    const auto t0 = std::chrono::steady_clock::now();
    const uint64_t s = static_cast<uint64_t>(seed) * 1000;  // one stream per stage below
    const toy::Mixture data = toy::make_mixture(4000, s + 1);

    auto teacher = std::make_shared<toy::ToyMlp>(s + 2);
    toy::TeacherOptions to;
    to.seed = s + 3;
    const double acc = toy::train_teacher(*teacher, data, to);
    std::printf("teacher: MLP 2-64-64-4 with BatchNorm, %d Adam steps of %d; train accuracy %.2f %% (%lld points)\n",
                to.steps, to.batch, 100.0 * acc, (long long)data.size());

    toy::PointGenerator gen(s + 4);
    toy::GeneratorOptions go;
    go.iters = static_cast<int>(g_iters);
    go.seed = s + 5;
    const toy::GeneratorStats gs = toy::train_generator(gen, *teacher, go);
    const toy::Points gp = toy::sample_points(gen, static_cast<int>(points), s + 6);
    std::printf("GDFQ: generator trained %d iterations of batch %d (last iterations: CE %.4f, BNS %.4f)\n", go.iters,
                go.batch, gs.ce, gs.bns);

    quant::ZeroQOptions zo;
    zo.batch_size = static_cast<int>(zq_batch);
    zo.iters = static_cast<int>(zq_iters);
    zo.seed = s + 7;
    zo.sample_shape = {2};
    toy::Points zp;
    zp.xy = quant::distill(*teacher, zo, Device::CPU).to_vector();
    zp.label.assign(zp.xy.size() / 2, -1);

    const toy::Mixture ref = toy::make_like(data, 400, s + 8);
    toy::Points rp{ref.xy, ref.label};
    const double agree = toy::label_agreement(*teacher, gp);
    const double gd = toy::mean_nearest_distance(gp, data, /*same_class=*/true);
    const double zd = toy::mean_nearest_distance(zp, data, /*same_class=*/false);
    const double rd = toy::mean_nearest_distance(rp, data, /*same_class=*/true);
    std::printf("GDFQ: %.1f %% of generated points fall in the region of their class (%lld points, %lld per class)\n",
                100.0 * agree, (long long)gp.size(), points);
    std::printf("GDFQ: mean distance to the nearest real point of their class: %.3f\n", gd);
    // Blob coverage: a blob counts when it holds >= 10 % of the points a uniform spread would give it.
    auto coverage = [&](const toy::Points& p) {
      const std::vector<int64_t> h = toy::blob_histogram(p, data);
      std::string per;
      int covered = 0;
      for (size_t b = 0; b < h.size(); ++b) {
        covered += 10 * h[b] * int64_t(h.size()) >= p.size();
        per += (b ? " " : "") + std::to_string(h[b]);
      }
      return std::to_string(covered) + " of " + std::to_string(h.size()) + " blobs covered (points per blob 0..7, blob b of class b mod 4: " + per + ")";
    };
    std::printf("GDFQ: %s\n", coverage(gp).c_str());
    int64_t zq_count[toy::kClasses] = {};
    for (int64_t c : toy::predict(*teacher, zp.xy)) ++zq_count[c];
    std::printf("ZeroQ: %lld distilled points (%d iterations); mean distance to the nearest real point of any class: %.3f\n",
                (long long)zp.size(), zo.iters, zd);
    std::printf("ZeroQ: teacher's classes of the distilled points: %lld / %lld / %lld / %lld\n", (long long)zq_count[0],
                (long long)zq_count[1], (long long)zq_count[2], (long long)zq_count[3]);
    std::printf("ZeroQ: %s\n", coverage(zp).c_str());
    std::printf("reference: fresh real points lie %.3f from the nearest training point of their class "
                "(standardised units; blob std %.3f / %.3f per axis)\n",
                rd, 0.5 / data.std[0], 0.5 / data.std[1]);

    std::vector<toy::Panel> panels{{"GDFQ", gp}, {"ZEROQ", zp}};
    toy::RenderOptions ro;
    ro.half_width = toy::fit_half_width(panels);
    int64_t outside = 0;
    for (const auto& p : panels)
      for (float v : p.points.xy) outside += !(std::abs(v) <= ro.half_width);
    toy::render_png(out, *teacher, data, panels, ro);
    std::printf("legend: left panel GDFQ generated points (discs, black outline, coloured by the class they were "
                "conditioned on), right panel ZeroQ distilled points (black crosses, no class); background: the "
                "teacher's decision regions (pastel, grey boundaries), small dots: the real training points; "
                "blue / orange / green / red = classes 0 / 1 / 2 / 3; view [%.2f, %.2f]^2 in standardised "
                "coordinates%s\n",
                -ro.half_width, ro.half_width, outside ? " (some points lie outside and are not drawn)" : "");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("wrote %s (%.1f s)\n", out.c_str(), secs);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "toy_experiment: %s\n", ex.what());
    return 1;
  }
  return 0;
}
