// toy.h — the pieces of tools/toy_experiment (header-only, namespace dfq::toy), shared with
// tests/test_toy.cpp: a 2-D Gaussian-mixture classification task, a small MLP teacher with
// BatchNorm, GDFQ's conditional generator scaled down to points, and the picture of both methods'
// points over the teacher's decision regions.
//
// Conventions:
//  - the task: 4 classes, each a mixture of 2 Gaussians (8 blobs on a ring of radius 3, std 0.5,
//    class k owns blobs k and k+4, i.e. two opposite blobs), standardised per axis (mean 0 / std 1
//    over the drawn set). Everything downstream (teacher inputs, generated and distilled points,
//    the plot's coordinates, distances) lives in these standardised coordinates;
//  - every random draw is dfq's Philox (engine/ops.h), so a seed fixes the whole experiment.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/io/image.h"
#include "engine/nn/optim.h"
#include "models/generator.h"
#include "models/model.h"
#include "quant/gdfq.h"

namespace dfq::toy {

constexpr int kClasses = 4;

// ---- data ----------------------------------------------------------------------------------------
struct Mixture {
  std::vector<float> xy;       // (n,2) row-major, standardised
  std::vector<int64_t> label;  // (n) in [0, kClasses)
  std::vector<int64_t> blob;   // (n) in [0, 2 * kClasses): class k's blobs are k and k + kClasses
  std::array<float, 2> mean{}, std{};  // the raw per-axis statistics the standardisation removed
  int64_t size() const { return static_cast<int64_t>(label.size()); }
  Tensor x() const { return Tensor::from_vector(xy, {size(), 2}); }
  Tensor y() const { return Tensor::from_vector_i64(label, {size()}); }
};

// n raw (unstandardised) points: label uniform, one of the class's two blobs uniform,
// N(centre, blob_std^2 I).
inline Mixture draw_raw_mixture(int64_t n, uint64_t seed, double radius = 3.0, float blob_std = 0.5f) {
  if (n < 2) throw std::invalid_argument("toy: a mixture needs n >= 2 points");
  Generator gen(seed);
  const std::vector<int64_t> cls = randint({n}, 0, kClasses, gen).to_vector_i64();
  const std::vector<int64_t> blob = randint({n}, 0, 2, gen).to_vector_i64();
  const std::vector<float> noise = randn({n, 2}, gen, Device::CPU, 0.f, blob_std).to_vector();
  Mixture m;
  m.label = cls;
  m.blob.resize(static_cast<size_t>(n));
  m.xy.resize(static_cast<size_t>(2 * n));
  const double pi = std::acos(-1.0);
  for (int64_t i = 0; i < n; ++i) {
    m.blob[i] = cls[i] + kClasses * blob[i];
    const double a = 2.0 * pi * static_cast<double>(m.blob[i]) / (2.0 * kClasses);
    m.xy[2 * i] = static_cast<float>(radius * std::cos(a)) + noise[2 * i];
    m.xy[2 * i + 1] = static_cast<float>(radius * std::sin(a)) + noise[2 * i + 1];
  }
  m.mean = {0.f, 0.f};
  m.std = {1.f, 1.f};
  return m;
}

// Applies (x - mean) / std per axis in place and records them.
inline void standardise(Mixture& m, const std::array<float, 2>& mean, const std::array<float, 2>& sd) {
  for (int64_t i = 0; i < m.size(); ++i)
    for (int d = 0; d < 2; ++d) m.xy[2 * i + d] = (m.xy[2 * i + d] - mean[d]) / sd[d];
  m.mean = mean;
  m.std = sd;
}

// The training set: n points standardised by their own per-axis mean and (biased) std.
inline Mixture make_mixture(int64_t n, uint64_t seed, double radius = 3.0, float blob_std = 0.5f) {
  Mixture m = draw_raw_mixture(n, seed, radius, blob_std);
  std::array<float, 2> mean{}, sd{};
  for (int d = 0; d < 2; ++d) {
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; ++i) s += m.xy[2 * i + d];
    const double mu = s / static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i) s2 += (m.xy[2 * i + d] - mu) * (m.xy[2 * i + d] - mu);
    mean[d] = static_cast<float>(mu);
    sd[d] = static_cast<float>(std::sqrt(s2 / static_cast<double>(n)));
  }
  standardise(m, mean, sd);
  return m;
}

// Fresh points from the same distribution in the training set's coordinates (a reference).
inline Mixture make_like(const Mixture& train, int64_t n, uint64_t seed, double radius = 3.0, float blob_std = 0.5f) {
  Mixture m = draw_raw_mixture(n, seed, radius, blob_std);
  standardise(m, train.mean, train.std);
  return m;
}

// ---- the teacher -----------------------------------------------------------------------------------
// Linear(2,64) -> BN(64) -> relu -> Linear(64,64) -> BN(64) -> relu -> Linear(64,4); both BN layers
// tracked (the BN-statistics losses of GDFQ and ZeroQ read them), two activation sites.
class ToyMlp : public models::Model {
 public:
  explicit ToyMlp(uint64_t seed = 0, int hidden = 64) : Model("toy_mlp", kClasses) {
    Generator gen(seed);
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(2, hidden, true, gen));
    bn1 = register_module("bn1", std::make_shared<nn::BatchNorm>(hidden));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(hidden, hidden, true, gen));
    bn2 = register_module("bn2", std::make_shared<nn::BatchNorm>(hidden));
    fc3 = register_module("fc3", std::make_shared<nn::Linear>(hidden, kClasses, true, gen));
    track("fc1", fc1.get());
    track("bn1", bn1.get());
    track("fc2", fc2.get());
    track("bn2", bn2.get());
    track("fc3", fc3.get());
    site1_ = add_act_site("relu1");
    site2_ = add_act_site("relu2");
  }
  Tensor forward(const Tensor& x) override {
    if (x.dim() != 2 || x.size(1) != 2) throw std::invalid_argument("toy: ToyMlp expects (N,2) points, got " + x.str());
    Tensor h = act(site1_, relu(bn1->forward(fc1->forward(x))));
    h = act(site2_, relu(bn2->forward(fc2->forward(h))));
    return fc3->forward(h);
  }
  std::shared_ptr<nn::Linear> fc1, fc2, fc3;
  std::shared_ptr<nn::BatchNorm> bn1, bn2;

 private:
  int site1_ = 0, site2_ = 0;
};

// The teacher's class for each row of xy ((n,2) row-major), no grad, in whatever mode it is in.
inline std::vector<int64_t> predict(models::Model& teacher, const std::vector<float>& xy) {
  if (xy.empty()) return {};
  NoGradGuard ng;
  return argmax_rows(teacher.forward(Tensor::from_vector(xy, {static_cast<int64_t>(xy.size() / 2), 2})));
}

inline double accuracy(models::Model& teacher, const Mixture& m) {
  const std::vector<int64_t> p = predict(teacher, m.xy);
  int64_t hit = 0;
  for (size_t i = 0; i < p.size(); ++i) hit += p[i] == m.label[i];
  return static_cast<double>(hit) / static_cast<double>(p.size());
}

struct TeacherOptions {
  int steps = 400, batch = 256;
  double lr = 1e-2;  // Adam
  uint64_t seed = 0;
};

// Trains in train mode (batch statistics) on uniformly drawn minibatches with cross-entropy, then
// switches to eval mode and returns the train accuracy there.
inline double train_teacher(ToyMlp& teacher, const Mixture& data, const TeacherOptions& o = {}) {
  if (o.steps < 0 || o.batch < 2) throw std::invalid_argument("toy: train_teacher needs steps >= 0 and batch >= 2");
  Generator gen(o.seed);
  teacher.train();
  AdamOptions ao;
  ao.lr = o.lr;
  Adam opt(teacher.parameters(), ao);
  std::vector<float> bx(static_cast<size_t>(2 * o.batch));
  std::vector<int64_t> by(static_cast<size_t>(o.batch));
  for (int s = 0; s < o.steps; ++s) {
    const std::vector<int64_t> idx = randint({o.batch}, 0, data.size(), gen).to_vector_i64();
    for (int i = 0; i < o.batch; ++i) {
      bx[2 * i] = data.xy[2 * idx[i]];
      bx[2 * i + 1] = data.xy[2 * idx[i] + 1];
      by[i] = data.label[idx[i]];
    }
    Tensor loss = cross_entropy(teacher.forward(Tensor::from_vector(bx, {o.batch, 2})), Tensor::from_vector_i64(by, {o.batch}));
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  teacher.eval();
  return accuracy(teacher, data);
}

// ---- GDFQ's generator, for points ----------------------------------------------------------------------
// z (N,latent) -> Linear(latent,64) -> CBN -> LeakyReLU 0.2 -> Linear(64,64) -> CBN -> LeakyReLU 0.2
// -> Linear(64,2) -> BatchNorm(2, eps 1e-5, affine=false), always in train mode (as GDFQ's G): the
// final BN puts every batch at mean 0 / std 1 per axis, the task's input convention. The CBNs use
// GDFQ's hidden-layer eps 0.8 (models/generator.h). models::CondBatchNorm takes (N,C,H,W): the
// hidden (N,64) activations pass through it as (N,64,1,1).
class PointGenerator : public nn::Module {
 public:
  explicit PointGenerator(uint64_t seed = 0, int latent = 8, int hidden = 64, float cbn_eps = 0.8f)
      : latent_dim(latent), hidden_dim(hidden) {
    Generator gen(seed);
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(latent, hidden, true, gen));
    cbn1 = register_module("cbn1", std::make_shared<models::CondBatchNorm>(hidden, cbn_eps, kClasses));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(hidden, hidden, true, gen));
    cbn2 = register_module("cbn2", std::make_shared<models::CondBatchNorm>(hidden, cbn_eps, kClasses));
    fc3 = register_module("fc3", std::make_shared<nn::Linear>(hidden, 2, true, gen));
    out_bn = register_module("out_bn", std::make_shared<nn::BatchNorm>(2, 1e-5f, 0.1f, /*affine=*/false));
  }
  // z (N,latent) float, labels (N) int64 -> points (N,2)
  Tensor forward(const Tensor& z, const Tensor& labels) {
    if (z.dim() != 2 || z.size(1) != latent_dim || z.size(0) < 2)
      throw std::invalid_argument("toy: PointGenerator: z must be (N>=2," + std::to_string(latent_dim) + "), got " + z.str());
    const int64_t N = z.size(0);
    auto cbn = [&](models::CondBatchNorm& m, const Tensor& h) {
      return m.forward(h.reshape({N, hidden_dim, 1, 1}), labels).reshape({N, hidden_dim});
    };
    Tensor h = leaky_relu(cbn(*cbn1, fc1->forward(z)), 0.2f);
    h = leaky_relu(cbn(*cbn2, fc2->forward(h)), 0.2f);
    return out_bn->forward(fc3->forward(h));
  }
  int latent_dim, hidden_dim;
  std::shared_ptr<nn::Linear> fc1, fc2, fc3;
  std::shared_ptr<models::CondBatchNorm> cbn1, cbn2;
  std::shared_ptr<nn::BatchNorm> out_bn;
};

struct GeneratorOptions {
  int iters = 2000, batch = 128;
  double lr = 1e-3, beta1 = 0.5, beta2 = 0.999;  // GDFQ's generator Adam
  float bns_weight = 0.1f;
  uint64_t seed = 0;
};
struct GeneratorStats {
  double ce = 0, bns = 0;  // means over the last 100 iterations (or all, if fewer)
};

// GDFQ's generator step: L = CE(teacher(G(z, y)), y) + bns_weight * BNS (quant::teacher_with_bns),
// z ~ N(0, I), y uniform, the teacher in eval mode with frozen parameters, G in train mode.
inline GeneratorStats train_generator(PointGenerator& g, models::Model& teacher, const GeneratorOptions& o = {}) {
  if (o.iters < 0 || o.batch < 2) throw std::invalid_argument("toy: train_generator needs iters >= 0 and batch >= 2");
  teacher.eval();
  for (auto& p : teacher.parameters()) p.set_requires_grad(false);
  g.train();
  AdamOptions ao;
  ao.lr = o.lr;
  ao.beta1 = o.beta1;
  ao.beta2 = o.beta2;
  Adam opt(g.parameters(), ao);
  Generator gen(o.seed);
  GeneratorStats st;
  int counted = 0;
  for (int it = 0; it < o.iters; ++it) {
    Tensor z = randn({o.batch, g.latent_dim}, gen);
    Tensor y = randint({o.batch}, 0, kClasses, gen);
    quant::TeacherOut t = quant::teacher_with_bns(teacher, g.forward(z, y));
    Tensor ce = cross_entropy(t.logits, y);
    Tensor loss = add(ce, mul_scalar(t.bns, o.bns_weight));
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (it >= o.iters - 100) {
      ++counted;
      st.ce += (ce.item() - st.ce) / counted;
      st.bns += (t.bns.item() - st.bns) / counted;
    }
  }
  return st;
}

struct Points {
  std::vector<float> xy;       // (n,2) row-major
  std::vector<int64_t> label;  // conditioning class, or -1 (no class)
  int64_t size() const { return static_cast<int64_t>(xy.size() / 2); }
};

// per_class points for each class, class-major, in one train-mode batch (as GDFQ samples), no grad.
inline Points sample_points(PointGenerator& g, int per_class, uint64_t seed) {
  if (per_class < 1) throw std::invalid_argument("toy: sample_points needs per_class >= 1");
  NoGradGuard ng;
  g.train();
  Points p;
  for (int c = 0; c < kClasses; ++c)
    for (int k = 0; k < per_class; ++k) p.label.push_back(c);
  Generator gen(seed);
  const int64_t n = static_cast<int64_t>(p.label.size());
  Tensor z = randn({n, g.latent_dim}, gen);
  p.xy = g.forward(z, Tensor::from_vector_i64(p.label, {n})).to_vector();
  return p;
}

// Fraction of labelled points the teacher puts in the region of their label.
inline double label_agreement(models::Model& teacher, const Points& p) {
  const std::vector<int64_t> pred = predict(teacher, p.xy);
  int64_t hit = 0, n = 0;
  for (size_t i = 0; i < pred.size(); ++i)
    if (p.label[i] >= 0) {
      ++n;
      hit += pred[i] == p.label[i];
    }
  return n ? static_cast<double>(hit) / static_cast<double>(n) : 0.0;
}

// Mean Euclidean distance of each point to the nearest real point (of its label when
// same_class and the point has one; of any class otherwise).
inline double mean_nearest_distance(const Points& p, const Mixture& data, bool same_class) {
  if (p.size() == 0) return 0.0;
  double total = 0;
  for (int64_t i = 0; i < p.size(); ++i) {
    const float px = p.xy[2 * i], py = p.xy[2 * i + 1];
    double best = std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < data.size(); ++j) {
      if (same_class && p.label[i] >= 0 && data.label[j] != p.label[i]) continue;
      const double dx = px - data.xy[2 * j], dy = py - data.xy[2 * j + 1];
      best = std::min(best, dx * dx + dy * dy);
    }
    total += std::sqrt(best);
  }
  return total / static_cast<double>(p.size());
}

// For each of the 2 * kClasses blobs, how many points have their nearest real point in it (a
// point's "blob"; shows whether a method covers both blobs of a class or collapses onto one).
inline std::vector<int64_t> blob_histogram(const Points& p, const Mixture& data) {
  std::vector<int64_t> h(2 * kClasses, 0);
  for (int64_t i = 0; i < p.size(); ++i) {
    double best = std::numeric_limits<double>::infinity();
    int64_t b = -1;
    for (int64_t j = 0; j < data.size(); ++j) {
      const double dx = p.xy[2 * i] - data.xy[2 * j], dy = p.xy[2 * i + 1] - data.xy[2 * j + 1];
      if (dx * dx + dy * dy < best) {
        best = dx * dx + dy * dy;
        b = data.blob[j];
      }
    }
    if (b >= 0) ++h[b];
  }
  return h;
}

// ---- the picture --------------------------------------------------------------------------------------
using Rgb = std::array<uint8_t, 3>;
inline Rgb class_colour(int64_t c) {  // saturated: blue, orange, green, red
  static const Rgb k[kClasses] = {{{31, 119, 180}}, {{255, 127, 14}}, {{44, 160, 44}}, {{214, 39, 40}}};
  return k[((c % kClasses) + kClasses) % kClasses];
}
// t of the way from c to white.
inline Rgb tint(const Rgb& c, double t) {
  Rgb r;
  for (int k = 0; k < 3; ++k) r[k] = static_cast<uint8_t>(std::lround(c[k] + (255.0 - c[k]) * t));
  return r;
}

inline void put_px(ImageU8& img, int64_t y, int64_t x, const Rgb& c, int64_t x0 = 0, int64_t x1 = -1) {
  if (x1 < 0) x1 = img.w;
  if (y < 0 || y >= img.h || x < x0 || x >= x1) return;
  uint8_t* p = img.px(y, x);
  p[0] = c[0];
  p[1] = c[1];
  p[2] = c[2];
}
// A filled disc of radius r at (cx, cy), clipped to the image and to columns [x0, x1).
inline void draw_disc(ImageU8& img, double cx, double cy, double r, const Rgb& c, int64_t x0 = 0, int64_t x1 = -1) {
  const int64_t ri = static_cast<int64_t>(std::ceil(r));
  const int64_t ix = std::lround(cx), iy = std::lround(cy);
  for (int64_t dy = -ri; dy <= ri; ++dy)
    for (int64_t dx = -ri; dx <= ri; ++dx)
      if (double(dx * dx + dy * dy) <= r * r + 0.25) put_px(img, iy + dy, ix + dx, c, x0, x1);
}
// An 'x' cross: two diagonals of half-length arm, thickness 2 px, clipped like draw_disc.
inline void draw_cross(ImageU8& img, double cx, double cy, int arm, const Rgb& c, int64_t x0 = 0, int64_t x1 = -1) {
  const int64_t ix = std::lround(cx), iy = std::lround(cy);
  for (int64_t d = -arm; d <= arm; ++d)
    for (int64_t t = 0; t <= 1; ++t) {
      put_px(img, iy + d, ix + d + t, c, x0, x1);
      put_px(img, iy + d, ix - d + t, c, x0, x1);
    }
}
// Upper-case text from a tiny 5x7 font (only the letters the titles use; others are blanks).
inline void draw_text(ImageU8& img, int64_t x, int64_t y, const std::string& s, int scale, const Rgb& c) {
  struct Glyph { char ch; uint8_t rows[7]; };
  static const Glyph font[] = {
      {'D', {0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E}}, {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}},
      {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}}, {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}},
      {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}},
      {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}}, {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}}};
  for (size_t i = 0; i < s.size(); ++i) {
    const Glyph* g = nullptr;
    for (const Glyph& f : font)
      if (f.ch == s[i]) g = &f;
    if (!g) continue;
    const int64_t gx = x + static_cast<int64_t>(i) * 6 * scale;
    for (int r = 0; r < 7; ++r)
      for (int col = 0; col < 5; ++col)
        if (g->rows[r] & (0x10 >> col))
          for (int sy = 0; sy < scale; ++sy)
            for (int sx = 0; sx < scale; ++sx) put_px(img, y + r * scale + sy, gx + col * scale + sx, c);
  }
}

struct Panel {
  std::string title;  // drawn top-left (letters of the tiny font)
  Points points;      // label >= 0: a disc of that class's colour, black outline; -1: a black cross
};
struct RenderOptions {
  int panel_px = 400, gap = 4;
  double half_width = 2.5;  // the view window is [-h, h]^2 in standardised coordinates
};

// The view half-width that shows every point (at least at_least, at most max_half).
inline double fit_half_width(const std::vector<Panel>& panels, double at_least = 2.5, double max_half = 6.0) {
  double h = at_least;
  for (const Panel& p : panels)
    for (float v : p.points.xy)
      if (std::isfinite(v)) h = std::max(h, std::abs(static_cast<double>(v)) * 1.08);
  return std::min(h, max_half);
}

// Panels side by side, each over the teacher's decision regions (eval-mode argmax on the pixel grid,
// pastel colours, thin grey boundaries) and a faint scatter of the real points; writes a PNG to
// path (unless empty) and returns the image.
inline ImageU8 render_png(const std::string& path, models::Model& teacher, const Mixture& data,
                          const std::vector<Panel>& panels, const RenderOptions& o = {}) {
  if (panels.empty() || o.panel_px < 16 || o.gap < 0 || !(o.half_width > 0))
    throw std::invalid_argument("toy: render_png needs panels, panel_px >= 16, gap >= 0 and half_width > 0");
  const int64_t P = o.panel_px, np = static_cast<int64_t>(panels.size());
  const double lo = -o.half_width, span = 2.0 * o.half_width;
  auto to_px = [&](double v) { return (v - lo) / span * static_cast<double>(P); };      // x -> column
  auto to_py = [&](double v) { return (lo + span - v) / span * static_cast<double>(P); };  // y -> row (up)
  // Decision regions at pixel centres.
  std::vector<float> grid(static_cast<size_t>(2 * P * P));
  for (int64_t r = 0; r < P; ++r)
    for (int64_t c = 0; c < P; ++c) {
      grid[2 * (r * P + c)] = static_cast<float>(lo + (c + 0.5) / P * span);
      grid[2 * (r * P + c) + 1] = static_cast<float>(lo + span - (r + 0.5) / P * span);
    }
  teacher.eval();
  const std::vector<int64_t> region = predict(teacher, grid);
  ImageU8 img;
  img.h = P;
  img.w = np * P + (np - 1) * o.gap;
  img.data.assign(static_cast<size_t>(img.h * img.w * 3), 255);
  const Rgb black{{0, 0, 0}}, boundary{{150, 150, 150}};
  for (int64_t k = 0; k < np; ++k) {
    const int64_t x0 = k * (P + o.gap), x1 = x0 + P;
    for (int64_t r = 0; r < P; ++r)
      for (int64_t c = 0; c < P; ++c) {
        const int64_t cls = region[r * P + c];
        const bool edge = (c + 1 < P && region[r * P + c + 1] != cls) || (r + 1 < P && region[(r + 1) * P + c] != cls);
        put_px(img, r, x0 + c, edge ? boundary : tint(class_colour(cls), 0.78));
      }
    for (int64_t i = 0; i < data.size(); ++i)
      draw_disc(img, x0 + to_px(data.xy[2 * i]), to_py(data.xy[2 * i + 1]), 1.0, tint(class_colour(data.label[i]), 0.45), x0, x1);
    const Points& pts = panels[k].points;
    for (int64_t i = 0; i < pts.size(); ++i) {
      const double px = x0 + to_px(pts.xy[2 * i]), py = to_py(pts.xy[2 * i + 1]);
      if (!std::isfinite(px) || !std::isfinite(py)) continue;
      if (pts.label[i] >= 0) {
        draw_disc(img, px, py, 4.5, black, x0, x1);
        draw_disc(img, px, py, 3.2, class_colour(pts.label[i]), x0, x1);
      } else {
        draw_cross(img, px, py, 4, black, x0, x1);
      }
    }
    const int64_t tw = static_cast<int64_t>(panels[k].title.size()) * 12;
    for (int64_t r = 4; r < 26 && r < P; ++r)
      for (int64_t c = 4; c < 12 + tw && c < P; ++c) put_px(img, r, x0 + c, Rgb{{255, 255, 255}});
    draw_text(img, x0 + 8, 8, panels[k].title, 2, black);
  }
  if (!path.empty()) save_png(path, img);
  return img;
}

}  // namespace dfq::toy
