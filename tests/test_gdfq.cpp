// test_gdfq.cpp — GDFQ: the BNS loss against PyTorch (../shared/golden/losses/gdfq_bns_*), the
// trainer's schedule (warm-up, range freezing, learning-rate drops), exact resume from a
// checkpoint, and train/gdfq_main's command line. The KD loss golden is in test_golden_kd.cpp.
// TEST_CASEs that read the real Fashion-MNIST model have "fmnist" in their names.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/io/npy.h"
#include "engine/io/weights.h"
#include "models/registry.h"
#include "quant/gdfq.h"
#include "tests/check.h"
#include "tests/test_util.h"

using namespace dfq;
using dfq::test::check_close;
using dfq::test::TempDir;

namespace {
const std::string kLosses = std::string(DFQ_GOLDEN_DIR) + "/losses/";

std::vector<float> all_values(nn::Module& m) {
  std::vector<float> v;
  for (auto& [name, t] : m.state_dict())
    if (t.dtype() == DType::F32) {
      std::vector<float> x = t.to_vector();
      v.insert(v.end(), x.begin(), x.end());
    }
  return v;
}

quant::GdfqOptions tiny_options() {
  quant::GdfqOptions o;
  o.n_epochs = 3;
  o.n_iter = 2;
  o.batch_size = 4;
  o.q_lr = 1e-2;
  o.g_lr = 1e-3;
  o.warmup_epochs = 1;
  o.range_epochs = 2;
  o.milestones = {2};
  o.seed = 5;
  return o;
}

std::unique_ptr<quant::GdfqTrainer> tiny_trainer(const quant::GdfqOptions& o) {
  auto teacher = models::create_model("resnet18", 10, 2, true);
  auto student = models::create_model("resnet18", 10, 2, true);
  quant::QuantConfig c;
  c.wbits = c.abits = 4;
  return std::make_unique<quant::GdfqTrainer>(teacher, student, c, o, Device::CPU, 16);
}
}  // namespace

TEST_CASE("gdfq fmnist: BNS loss and its input gradient equal PyTorch's (golden)") {
  auto m = dfq::test::load_fmnist_resnet18();
  m->eval();
  for (auto& p : m->parameters()) p.set_requires_grad(false);
  Tensor x = load_npy(kLosses + "gdfq_bns_input8.npy");
  x.set_requires_grad(true);
  quant::TeacherOut t = quant::teacher_with_bns(*m, x);
  check_close("gdfq bns loss", std::vector<float>{t.bns.item()}, load_npy(kLosses + "gdfq_bns_loss.npy").to_vector(),
              1e-4, 1e-4);
  t.bns.backward();
  std::vector<float> r = load_npy(kLosses + "gdfq_bns_grad_input.npy").to_vector();
  double maxr = 0;
  for (float v : r) maxr = std::max(maxr, double(std::fabs(v)));
  check_close("gdfq bns d loss / d input", x.grad().to_vector(), r, 1e-4 * maxr, 1e-3);
  for (auto& [name, bn] : m->bn_layers()) CHECK_FALSE(bn->input_hook);
}

TEST_CASE("gdfq: warm-up keeps Q fixed, ranges are observed only in the first epochs, lr drops at milestones") {
  quant::GdfqOptions o = tiny_options();
  auto tr = tiny_trainer(o);
  std::vector<float> q0 = all_values(tr->qmodel().model());
  std::vector<float> g0 = all_values(tr->generator());
  quant::EpochStats e0 = tr->train_epoch();
  CHECK_FALSE(e0.q_trained);
  CHECK(e0.ranges_observed);
  CHECK(all_values(tr->qmodel().model()) == q0);  // warm-up: Q not stepped
  CHECK(all_values(tr->generator()) != g0);       // G learns from the start
  CHECK(std::isfinite(e0.g_loss));
  CHECK(e0.bns > 0);
  for (auto& a : tr->qmodel().acts()) {
    CHECK_FALSE(a.observing());  // frozen after every epoch
    CHECK(a.updates() == o.n_iter);
    CHECK(a.range().second > 0.f);
  }
  quant::EpochStats e1 = tr->train_epoch();
  CHECK(e1.q_trained);
  CHECK(e1.ranges_observed);
  CHECK(all_values(tr->qmodel().model()) != q0);
  CHECK(e1.q_lr == doctest::Approx(1e-2));
  std::vector<std::pair<float, float>> r1;
  for (auto& a : tr->qmodel().acts()) r1.push_back(a.range());
  quant::EpochStats e2 = tr->train_epoch();  // past range_epochs and the milestone
  CHECK_FALSE(e2.ranges_observed);
  CHECK(e2.q_lr == doctest::Approx(1e-3));
  CHECK(e2.g_lr == doctest::Approx(1e-4));
  for (size_t i = 0; i < r1.size(); ++i) CHECK(tr->qmodel().acts()[i].range() == r1[i]);
  CHECK(tr->epoch() == 3);
  // Default milestones: the official 100/200/300 of 400 epochs.
  quant::GdfqOptions d;
  CHECK(quant::effective_milestones(d) == std::vector<int>{100, 200, 300});
}

TEST_CASE("gdfq: a run resumed from a checkpoint ends bit for bit where an uninterrupted one does") {
  TempDir dir("gdfq_resume");
  quant::GdfqOptions o = tiny_options();
  auto a = tiny_trainer(o);
  for (int e = 0; e < o.n_epochs; ++e) a->train_epoch();
  auto b = tiny_trainer(o);
  b->train_epoch();
  b->save_checkpoint(dir / "ck.bin", {1.f, 2.f});
  b.reset();  // "killed"
  auto c = tiny_trainer(o);
  CHECK(c->load_checkpoint(dir / "ck.bin") == std::vector<float>{1.f, 2.f});
  CHECK(c->epoch() == 1);
  while (c->epoch() < o.n_epochs) c->train_epoch();
  CHECK(all_values(c->qmodel().model()) == all_values(a->qmodel().model()));
  CHECK(all_values(c->generator()) == all_values(a->generator()));
  for (size_t i = 0; i < a->qmodel().acts().size(); ++i)
    CHECK(c->qmodel().acts()[i].state.to_vector() == a->qmodel().acts()[i].state.to_vector());
  // A checkpoint of another architecture is refused by name.
  auto teacher = models::create_model("resnet34", 10, 2, false);
  auto student = models::create_model("resnet34", 10, 2, false);
  quant::GdfqTrainer other(teacher, student, quant::QuantConfig{}, o, Device::CPU, 16);
  CHECK_THROWS_WITH(other.load_checkpoint(dir / "ck.bin"), doctest::Contains("not a GDFQ checkpoint of resnet34"));
}

TEST_CASE("gdfq: the ImageNet setting end to end on the CPU — 224 px generator, 1000-class CBN, 1000-class teachers") {
  // The official ImageNet configuration (generator init size 224/4 = 56, a 128*56*56 fc, class
  // tables of 1000 rows) for a warm-up epoch and a Q epoch of one iteration at batch 2, with a
  // ResNet18 and a MobileNetV2 teacher (BN statistics of a fresh model: mean 0, var 1).
  for (const char* arch : {"resnet18", "mobilenet_v2"}) {
    CAPTURE(arch);
    quant::GdfqOptions o;
    o.n_epochs = 2;
    o.n_iter = 1;
    o.batch_size = 2;
    o.warmup_epochs = 1;
    o.range_epochs = 1;
    o.q_lr = 1e-3;
    o.seed = 3;
    auto teacher = models::create_model(arch, 1000, 4, false);
    auto student = models::create_model(arch, 1000, 4, false);
    quant::QuantConfig c;
    c.wbits = c.abits = 4;
    quant::GdfqTrainer tr(teacher, student, c, o, Device::CPU, 224);
    CHECK(tr.generator().fc->weight.shape() == Shape{128 * 56 * 56, 100});
    CHECK(tr.generator().cbn1->gamma->weight.shape() == Shape{1000, 128});
    std::vector<float> q0 = all_values(tr.qmodel().model());
    quant::EpochStats e0 = tr.train_epoch();
    CHECK(std::isfinite(e0.g_loss));
    CHECK(e0.bns > 0);
    quant::EpochStats e1 = tr.train_epoch();
    CHECK(e1.q_trained);
    CHECK(std::isfinite(e1.q_loss));
    CHECK(all_values(tr.qmodel().model()) != q0);
    Tensor grid = tr.sample_grid_images(1, 9);  // 10 of the 1000 classes, not all
    CHECK(grid.size(0) == 10);
    CHECK(grid.size(1) == 3);
    CHECK(grid.size(2) == 224);
    CHECK(grid.size(3) == 224);
  }
}

TEST_CASE("gdfq: dropping BNS or KD changes the losses the way the switches say") {
  quant::GdfqOptions o = tiny_options();
  o.n_epochs = 1;
  o.warmup_epochs = 0;
  auto full = tiny_trainer(o);
  quant::EpochStats f = full->train_epoch();
  CHECK(f.g_loss == doctest::Approx(f.g_ce + 0.1 * f.bns).epsilon(1e-5));
  o.use_bns = false;
  o.use_kd = false;
  auto ab = tiny_trainer(o);
  quant::EpochStats s = ab->train_epoch();
  CHECK(s.g_loss == doctest::Approx(s.g_ce).epsilon(1e-6));
  // Without KD the student loss is the CE alone: on identical logits KD adds 0, so compare shapes only.
  Tensor logits = Tensor::from_vector({1.f, 2.f, 0.5f, -1.f, 0.f, 3.f}, {2, 3});
  Tensor y = Tensor::from_vector_i64({1, 2}, {2});
  Tensor other = Tensor::from_vector({3.f, -2.f, 0.5f, 1.f, 2.f, -3.f}, {2, 3});
  const float ce = cross_entropy(logits, y).item();
  CHECK(quant::gdfq_student_loss(logits, other, y, 20.f, false).item() == ce);
  CHECK(quant::gdfq_student_loss(logits, logits, y, 20.f, true).item() == doctest::Approx(ce).epsilon(1e-5));
  CHECK(quant::gdfq_student_loss(logits, other, y, 20.f, true).item() > ce);
}

TEST_CASE("gdfq_main: bad input gets one message and a non-zero exit; a short data-free run and its resume") {
  TempDir dir("gdfq_cli");
  const std::string gm = DFQ_GDFQ_MAIN;
  auto m = models::create_model("resnet18", 10, 1, true);
  write_weight_file(dir / "r18.bin", "resnet18", 10, m->state_dict());
  const std::string w = " --weights " + (dir / "r18.bin");
  const std::string tiny = " --n_iter 1 --batch_size 4 --img_size 16 --warmup_epochs 1 --milestones 9 --q_lr 0.01";
  struct Case { std::string args, message; int rc; };
  std::vector<Case> cases = {
      {"--weights " + (dir / "nope.bin") + tiny + " --out " + (dir / "a"), "nope.bin", 2},
      {w + tiny + " --bits 3" + " --out " + (dir / "a"), "W/A", 2},
      {w + tiny + " --milestones 5,x" + " --out " + (dir / "a"), "--milestones", 2},
      {w + tiny + " --batch_size 1" + " --out " + (dir / "a"), "--batch_size", 2},
      {w + tiny + " --resume --out " + (dir / "a"), "no checkpoint", 1},
      {w + tiny + " --dataset mnist --out " + (dir / "a"), "mnist", 2},
      {w + tiny + " --ste sideways --out " + (dir / "a"), "--ste", 2},
  };
  for (const Case& c : cases) {
    CAPTURE(c.args);
    const int rc = dfq::test::run_program(gm, c.args, dir / "log.txt");
    std::string log = dfq::test::read_text(dir / "log.txt");
    CAPTURE(log);
    CHECK(rc == c.rc);
    CHECK(log.find(c.message) != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir / "a/checkpoint.bin"));
  }
  // Two epochs straight, versus one epoch and a resume to two: the same quantized model, byte for byte.
  REQUIRE(dfq::test::run_program(gm, w + tiny + " --n_epochs 2 --out " + (dir / "full") + " --json " + (dir / "f.json"),
                                 dir / "log.txt") == 0);
  std::string log = dfq::test::read_text(dir / "log.txt");
  CHECK(log.find("nothing was evaluated") != std::string::npos);
  for (const char* f : {"full/checkpoint.bin", "full/quantized.bin", "full/log.csv", "full/samples_epoch2.png"})
    CHECK(std::filesystem::exists(dir / f));
  CHECK(dfq::test::read_text(dir / "f.json").find("\"bits\": \"4/4\"") != std::string::npos);
  // --ste clip reaches the quantizers (the header names it; identity is the default)
  CHECK(log.find("STE identity") != std::string::npos);
  REQUIRE(dfq::test::run_program(gm, w + tiny + " --n_epochs 1 --ste clip --out " + (dir / "clip"), dir / "log.txt") == 0);
  CHECK(dfq::test::read_text(dir / "log.txt").find("STE clip") != std::string::npos);
  REQUIRE(dfq::test::run_program(gm, w + tiny + " --n_epochs 2 --stop_after 1 --out " + (dir / "part"), dir / "log.txt") == 0);
  CHECK(dfq::test::read_text(dir / "log.txt").find("stopped after epoch 1") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir / "part/quantized.bin"));
  // Without --resume an existing run is not overwritten.
  CHECK(dfq::test::run_program(gm, w + tiny + " --n_epochs 2 --out " + (dir / "part"), dir / "log.txt") == 1);
  CHECK(dfq::test::read_text(dir / "log.txt").find("--resume") != std::string::npos);
  REQUIRE(dfq::test::run_program(gm, w + tiny + " --n_epochs 2 --resume --out " + (dir / "part"), dir / "log.txt") == 0);
  CHECK(dfq::test::read_text(dir / "log.txt").find("resumed from") != std::string::npos);
  CHECK(dfq::test::read_text(dir / "part/quantized.bin") == dfq::test::read_text(dir / "full/quantized.bin"));
  // The CSV has a header and one line per epoch.
  std::string csv = dfq::test::read_text(dir / "part/log.csv");
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 3);
}
