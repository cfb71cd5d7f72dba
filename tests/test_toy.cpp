// test_toy.cpp — the pieces of tools/toy_experiment (tools/toy.h) at small sizes: the teacher learns
// the mixture, GDFQ's point generator learns the class regions (and an untrained one does not),
// ZeroQ distils finite points from the MLP, and the picture is a PNG of the expected size.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "engine/io/image.h"
#include "quant/zeroq.h"
#include "tests/test_util.h"
#include "tools/toy.h"

using namespace dfq;

namespace {
// One teacher for every case (trained once: ~0.5 s).
struct Trained {
  toy::Mixture data = toy::make_mixture(2000, 11);
  std::shared_ptr<toy::ToyMlp> teacher = std::make_shared<toy::ToyMlp>(12);
  double acc = 0;
  Trained() {
    toy::TeacherOptions o;
    o.steps = 300;
    o.seed = 13;
    acc = toy::train_teacher(*teacher, data, o);
  }
};
Trained& trained() {
  static Trained t;
  return t;
}
}  // namespace

TEST_CASE("toy: mixture is standardised, labelled and deterministic") {
  const toy::Mixture a = toy::make_mixture(1000, 5), b = toy::make_mixture(1000, 5), c = toy::make_mixture(1000, 6);
  CHECK(a.xy == b.xy);
  CHECK(a.label == b.label);
  CHECK(a.xy != c.xy);
  for (int d = 0; d < 2; ++d) {
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < a.size(); ++i) s += a.xy[2 * i + d];
    for (int64_t i = 0; i < a.size(); ++i) s2 += a.xy[2 * i + d] * a.xy[2 * i + d];
    CHECK(std::abs(s / a.size()) < 1e-4);
    CHECK(std::abs(s2 / a.size() - 1.0) < 1e-3);
  }
  int64_t per_class[toy::kClasses] = {};
  for (int64_t i = 0; i < a.size(); ++i) {
    REQUIRE(a.label[i] >= 0);
    REQUIRE(a.label[i] < toy::kClasses);
    CHECK(a.blob[i] % toy::kClasses == a.label[i]);
    ++per_class[a.label[i]];
  }
  for (int64_t n : per_class) CHECK(n > 150);
}

TEST_CASE("toy: the MLP teacher learns the mixture (> 90 % train accuracy, eval mode)") {
  Trained& t = trained();
  CHECK(t.acc > 0.90);
  CHECK_FALSE(t.teacher->is_training());
  CHECK(t.teacher->bn_layers().size() == 2);
  // An untrained teacher is near chance: the check can fail.
  toy::ToyMlp fresh(99);
  fresh.eval();
  CHECK(toy::accuracy(fresh, t.data) < 0.6);
}

TEST_CASE("toy: GDFQ's point generator learns the teacher's class regions") {
  Trained& t = trained();
  toy::PointGenerator untrained(21), g(21);
  const double before = toy::label_agreement(*t.teacher, toy::sample_points(untrained, 50, 22));
  toy::GeneratorOptions o;
  o.iters = 500;
  o.batch = 64;
  o.seed = 23;
  const toy::GeneratorStats st = toy::train_generator(g, *t.teacher, o);
  CHECK(std::isfinite(st.ce));
  CHECK(std::isfinite(st.bns));
  const toy::Points p = toy::sample_points(g, 50, 22);
  REQUIRE(p.size() == 200);
  const double after = toy::label_agreement(*t.teacher, p);
  MESSAGE("label agreement: untrained ", before, ", trained ", after);
  CHECK(after > 0.80);
  CHECK(after > before + 0.2);
  // The teacher is left frozen (GDFQ: no gradient into it).
  for (const Tensor& w : t.teacher->parameters()) CHECK_FALSE(w.requires_grad());
  // Generated points are near real points of their class, compared with the data's own spread.
  CHECK(toy::mean_nearest_distance(p, t.data, true) < 0.5);
}

TEST_CASE("toy: ZeroQ distils finite (N,2) points from the MLP") {
  Trained& t = trained();
  quant::ZeroQOptions o;
  o.batch_size = 64;
  o.iters = 100;
  o.seed = 31;
  o.sample_shape = {2};
  const Tensor x = quant::distill(*t.teacher, o, Device::CPU);
  REQUIRE(x.shape() == Shape{64, 2});
  for (float v : x.to_vector()) REQUIRE(std::isfinite(v));
  // The input term pulls the batch towards mean 0 / std 1 per axis (the standardised convention).
  const std::vector<float> v = x.to_vector();
  double sx = 0;
  for (size_t i = 0; i < v.size(); i += 2) sx += v[i];
  CHECK(std::abs(sx / 64) < 0.5);
}

TEST_CASE("toy: render_png writes a PNG of two panels of the expected size") {
  Trained& t = trained();
  dfq::test::TempDir dir("toy");
  toy::Points a{{0.f, 0.f, 1.f, -1.f, 9.f, 9.f}, {0, 3, 1}};  // the last lies outside the view: clipped
  toy::Points b{{-1.f, 1.f, 2.4f, 2.4f}, {-1, -1}};
  toy::RenderOptions ro;
  ro.panel_px = 120;
  ro.gap = 4;
  const std::string path = dir / "toy.png";
  const ImageU8 img = toy::render_png(path, *t.teacher, t.data, {{"GDFQ", a}, {"ZEROQ", b}}, ro);
  const ImageU8 back = load_image_rgb(path);
  CHECK(back.h == 120);
  CHECK(back.w == 2 * 120 + 4);
  CHECK(back.data == img.data);
  // The gap is white; the panels hold more than one region colour.
  for (int64_t y = 0; y < back.h; ++y) CHECK(back.px(y, 121)[0] == 255);
  int64_t differing = 0;
  for (int64_t y = 30; y < back.h; ++y) differing += back.px(y, 60)[0] != back.px(60, 60)[0];
  CHECK(differing > 0);
  CHECK_THROWS(toy::render_png("", *t.teacher, t.data, {}, ro));
}
