// gdfq_main.cpp — train/gdfq_main: GDFQ (a class-conditional generator trained against the float
// model's BN statistics, the quantized model fine-tuned on its images by distillation), as the
// official code does it (../shared/docs/dfq_algorithms.md §3; quant/gdfq.h). Every epoch: an atomic
// checkpoint that --resume continues from exactly, a CSV line, a progress bar; every few epochs a
// PNG grid of generated images (one row per class); at the end the report and the quantized model.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/io/flags.h"
#include "engine/io/image.h"
#include "engine/io/json_out.h"
#include "engine/io/progress.h"
#include "models/eval.h"
#include "quant/gdfq.h"

using namespace dfq;
namespace fs = std::filesystem;

static const char* kUsage =
    "usage: gdfq_main [-a ARCH] [--weights FILE] [--bits W/A] [-qw N] [-qa N] [-qb N] [--n_epochs N]\n"
    "                 [--n_iter N] [--batch_size N] [--q_lr X] [--g_lr X] [--warmup_epochs N]\n"
    "                 [--bns_weight X] [--kd_temperature X] [--seed N]\n"
    "                 [(--dataset fashion-mnist | --data DIR [--labels FILE])] [--out DIR] [--resume]\n"
    "                 [--json PATH] [--device cpu|cuda] [options]\n"
    "GDFQ data-free quantization: trains a class-conditional generator against the float model's\n"
    "BatchNorm statistics and fine-tunes the quantized model on its images by distillation.\n"
    "Defaults are the official ImageNet ResNet-18 settings. Without --dataset/--data no data is used\n"
    "at all: the quantized model is saved and nothing is evaluated.\n"
    "  -a, --arch NAME       torchvision architecture (default resnet18)\n"
    "  --weights FILE        dfq flat weight file (default weights/ARCH.bin)\n"
    "  --bits W/A            weight / activation bits (default 4/4); -qw/-qa override, -qb N biases\n"
    "  --first_last_8        first conv and last linear at 8 bits (official: at W)\n"
    "  --n_epochs N          default 400      --n_iter N      iterations per epoch, default 200\n"
    "  --batch_size N        default 16       --warmup_epochs N  epochs before Q learns, default 50\n"
    "  --q_lr X              default 1e-6     --g_lr X        default 1e-3\n"
    "  --milestones A,B,..   epochs where both learning rates drop x0.1 (default n_epochs/4, /2, 3/4)\n"
    "  --range_epochs N      epochs in which activation ranges are observed (default 4, official)\n"
    "  --bns_weight X        default 0.1      --kd_temperature X  default 20\n"
    "  --no_bns              drop the BNS term of the generator loss (ablation)\n"
    "  --no_kd               drop the KD term of the student loss (CE only; ablation)\n"
    "  --ste identity|clip   fake quantizers' backward: identity passes every gradient (official),\n"
    "                        clip zeroes it where the value was clipped to the range\n"
    "  --img_size N          generated image size (default 32 for fashion-mnist, else 224)\n"
    "  --seed N              default 0\n"
    "  --dataset NAME        fashion-mnist: evaluate on its 10,000 test images\n"
    "  --data DIR            ImageNet-style folder to evaluate on\n"
    "  --eval_every N        evaluate every N epochs once Q learns (default 1) and after the last\n"
    "  --sample_every N      PNG grid of generated images every N epochs (default 5) and at the end\n"
    "  --out DIR             checkpoint, log.csv, samples, quantized.bin (default runs/gdfq_ARCH_wWaA)\n"
    "  --resume              continue from DIR/checkpoint.bin\n"
    "  --json PATH           write {fp_top1, final_top1, best_top1, bits, seconds}\n"
    "  --device D            cpu (default) or cuda\n";

namespace {
std::vector<int> parse_int_list(const std::string& s, const Flags& flags, const std::string& name) {
  std::vector<int> v;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    size_t pos = 0;
    int x = -1;
    try {
      x = std::stoi(item, &pos);
    } catch (const std::exception&) {
      pos = 0;
    }
    if (item.empty() || pos != item.size() || x < 0) flags.fail(name + ": '" + s + "' is not a list of epochs");
    v.push_back(x);
  }
  return v;
}

// The CSV log, rewritten on resume without the lines of epochs the checkpoint does not hold.
void trim_csv(const fs::path& csv, int epochs_kept) {
  std::ifstream in(csv);
  if (!in) return;
  std::string line, kept;
  bool header = true;
  while (std::getline(in, line)) {
    if (header || std::stoi(line.substr(0, line.find(','))) < epochs_kept) kept += line + "\n";
    header = false;
  }
  write_file_atomic(csv.string(), kept);
}
}  // namespace

int main(int argc, char** argv) {
  Flags flags(argc, argv, kUsage);
  std::string arch = flags.str("-a", flags.str("--arch", "resnet18"));
  std::string weights = flags.str("--weights", "");
  const quant::BitFlags bit_flags(flags, "4/4");
  quant::GdfqOptions o;
  o.n_epochs = int(flags.integer("--n_epochs", 400));
  o.n_iter = int(flags.integer("--n_iter", 200));
  o.batch_size = int(flags.integer("--batch_size", 16));
  o.q_lr = flags.number("--q_lr", 1e-6);
  o.g_lr = flags.number("--g_lr", 1e-3);
  o.warmup_epochs = int(flags.integer("--warmup_epochs", 50));
  std::string milestones = flags.str("--milestones", "");
  o.range_epochs = int(flags.integer("--range_epochs", 4));
  o.bns_weight = float(flags.number("--bns_weight", 0.1));
  o.kd_temperature = float(flags.number("--kd_temperature", 20));
  o.use_bns = !flags.boolean("--no_bns");
  o.use_kd = !flags.boolean("--no_kd");
  std::string ste = flags.str("--ste", "identity");
  long long img_size = flags.integer("--img_size", 0), seed = flags.integer64("--seed", 0);
  std::string dataset = flags.str("--dataset", ""), data = flags.str("--data", ""), labels = flags.str("--labels", "");
  long long eval_every = flags.integer("--eval_every", 1), sample_every = flags.integer("--sample_every", 5);
  std::string out = flags.str("--out", ""), json = flags.str("--json", ""), device = flags.str("--device", "cpu");
  bool resume = flags.boolean("--resume");
  flags.done();
  if (weights.empty()) weights = "weights/" + arch + ".bin";
  if (o.n_epochs < 1) flags.fail("--n_epochs must be >= 1");
  if (o.n_iter < 1) flags.fail("--n_iter must be >= 1");
  if (o.batch_size < 2) flags.fail("--batch_size must be >= 2 (the generator uses batch statistics)");
  if (!(o.q_lr >= 0) || !(o.g_lr >= 0)) flags.fail("--q_lr and --g_lr must be >= 0");
  if (o.warmup_epochs < 0 || o.range_epochs < 0) flags.fail("--warmup_epochs and --range_epochs must be >= 0");
  if (!(o.kd_temperature > 0)) flags.fail("--kd_temperature must be > 0");
  if (eval_every < 1 || sample_every < 1) flags.fail("--eval_every and --sample_every must be >= 1");
  if (seed < 0) flags.fail("--seed must be >= 0");
  if (img_size != 0 && (img_size < 8 || img_size % 4)) flags.fail("--img_size must be a multiple of 4, >= 8");
  if (!milestones.empty()) o.milestones = parse_int_list(milestones, flags, "--milestones");
  o.seed = uint64_t(seed);
  quant::QuantConfig cfg = bit_flags.config(flags);
  try {
    cfg.ste = quant::parse_ste(ste);
  } catch (const std::exception& ex) {
    flags.fail(std::string("--ste: ") + ex.what());
  }
  const std::string bits_str = std::to_string(cfg.wbits) + "/" + std::to_string(cfg.abits);
  if (out.empty()) out = "runs/gdfq_" + arch + "_w" + std::to_string(cfg.wbits) + "a" + std::to_string(cfg.abits);
  const fs::path dir(out), ckpt = dir / "checkpoint.bin", csv = dir / "log.csv";
  try {
    auto t0 = std::chrono::steady_clock::now();
    Device dev = models::parse_device(device);
    if (resume && !fs::exists(ckpt)) throw std::runtime_error("--resume: no checkpoint in " + out);
    if (!resume && fs::exists(ckpt))
      throw std::runtime_error(out + " already holds a run (checkpoint.bin): pass --resume to continue it or choose another --out");
    std::unique_ptr<Dataset> ds;
    if (!dataset.empty() || !data.empty()) ds = models::open_dataset(dataset, data, labels);
    auto teacher = models::load_model(weights, arch, dev);
    auto student = models::load_model(weights, arch, dev);
    const int isz = int(img_size ? img_size : (dataset == "fashion-mnist" ? 32 : 224));
    quant::GdfqTrainer tr(teacher, student, cfg, o, dev, isz);
    fs::create_directories(dir);
    std::vector<int> ms = quant::effective_milestones(o);
    std::printf("GDFQ %s (%d classes) from %s on %s; %s\n", arch.c_str(), teacher->num_classes, weights.c_str(),
                device_name(dev), tr.qmodel().config().str().c_str());
    std::printf("%d epochs x %d iterations, batch %d, generator %dx%d; G Adam lr %g, Q SGD lr %g from epoch %d; "
                "x0.1 at epochs", o.n_epochs, o.n_iter, o.batch_size, isz, isz, o.g_lr, o.q_lr, o.warmup_epochs);
    for (int m : ms) std::printf(" %d", m);
    std::printf("; BNS %s, KD %s (T %g)\n", o.use_bns ? "on" : "OFF", o.use_kd ? "on" : "OFF", o.kd_temperature);
    // extra record in the checkpoint: fp top1/top5, best top1/top5/epoch, last top1/top5/epoch, seconds so far
    std::vector<float> rec = {-1, -1, -1, -1, -1, -1, -1, -1, 0};
    if (resume) {
      rec = tr.load_checkpoint(ckpt.string());
      if (rec.size() != 9) throw std::runtime_error(ckpt.string() + ": unexpected record");
      trim_csv(csv, tr.epoch());
      std::printf("resumed from %s at epoch %d\n", ckpt.string().c_str(), tr.epoch());
    } else {
      write_file_atomic(csv.string(), "epoch,g_loss,g_ce,bns,q_loss,g_lr,q_lr,q_trained,ranges_observed,top1,top5,seconds\n");
    }
    const double secs_before = rec[8];
    if (ds && rec[0] < 0) {
      models::EvalResult fp = models::evaluate(*teacher, *ds, dev, 256, "float model");
      rec[0] = float(fp.top1());
      rec[1] = float(fp.top5());
      std::printf("float model: top-1 %.2f %%  top-5 %.2f %%\n", fp.top1(), fp.top5());
    }
    auto elapsed = [&] { return secs_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    auto sample = [&](const std::string& name) {
      save_png((dir / name).string(), image_grid(tr.sample_grid_images(8, 777), 8, isz < 64 ? 2 : 1));
    };
    while (tr.epoch() < o.n_epochs) {
      const int e = tr.epoch();
      Progress bar("epoch " + std::to_string(e + 1) + "/" + std::to_string(o.n_epochs), o.n_iter);
      quant::EpochStats st = tr.train_epoch([&](int it, const quant::EpochStats& s) {
        char b[128];
        std::snprintf(b, sizeof b, "G %.3f (bns %.3f) Q %.3f%s", s.g_loss, s.bns, s.q_loss, s.q_trained ? "" : " (warm-up)");
        bar.update(it, b);
      });
      bar.finish();
      double top1 = -1, top5 = -1;
      const bool last = e + 1 == o.n_epochs;
      if (ds && (last || (st.q_trained && (e - o.warmup_epochs) % eval_every == 0) || e == o.warmup_epochs - 1)) {
        models::EvalResult r;
        {
          auto cached = tr.qmodel().cache_weights();  // quantized once, not once per batch
          r = models::evaluate(tr.qmodel().model(), *ds, dev, 256, "quantized model");
        }
        top1 = r.top1();
        top5 = r.top5();
        rec[6] = float(top1), rec[7] = float(top5), rec[5] = float(e);
        if (top1 > rec[2]) rec[2] = float(top1), rec[3] = float(top5), rec[4] = float(e);
      }
      rec[8] = float(elapsed());
      char line[512];
      std::snprintf(line, sizeof line, "%d,%.6f,%.6f,%.6f,%.6f,%.3g,%.3g,%d,%d,%s,%s,%.1f\n", e, st.g_loss, st.g_ce, st.bns,
                    st.q_loss, st.g_lr, st.q_lr, st.q_trained ? 1 : 0, st.ranges_observed ? 1 : 0,
                    top1 >= 0 ? std::to_string(top1).c_str() : "", top5 >= 0 ? std::to_string(top5).c_str() : "", rec[8]);
      {
        std::ofstream f(csv, std::ios::app);
        f << line;
      }
      std::printf("epoch %d/%d: G %.4f (CE %.4f, BNS %.4f)  Q %.4f%s%s", e + 1, o.n_epochs, st.g_loss, st.g_ce, st.bns,
                  st.q_loss, st.q_trained ? "" : " (warm-up: Q not updated)", st.ranges_observed ? " [ranges observed]" : "");
      if (top1 >= 0) std::printf("  test top-1 %.2f %% top-5 %.2f %%", top1, top5);
      std::printf("  [%s]\n", format_duration(rec[8]).c_str());
      if (st.ranges_observed && (e + 1 == o.range_epochs || last) && !tr.qmodel().acts().empty() &&
          tr.qmodel().acts()[0].updates() < 200)
        std::printf("warning: the activation ranges were observed for only %lld updates and are now frozen; GDFQ's\n"
                    "  compounded EMA bias correction needs ~200 to settle (dfq_algorithms.md 1.5): before that the ranges\n"
                    "  are far too wide (x3945 at update 21) and low-bit accuracy collapses. Raise --n_iter or --range_epochs.\n",
                    (long long)tr.qmodel().acts()[0].updates());
      std::fflush(stdout);
      if ((e + 1) % sample_every == 0 || last) sample("samples_epoch" + std::to_string(e + 1) + ".png");
      tr.save_checkpoint(ckpt.string(), rec);
    }
    const fs::path qpath = dir / "quantized.bin";
    tr.qmodel().save(qpath.string());
    const double secs = elapsed();
    std::printf("\n== GDFQ %s W%dA%d, %d epochs, %s\n", arch.c_str(), cfg.wbits, cfg.abits, o.n_epochs,
                format_duration(secs).c_str());
    if (ds) {
      std::printf("float model:                  top-1 %.2f %%  top-5 %.2f %%\n", rec[0], rec[1]);
      std::printf("quantized, final epoch (%d):  top-1 %.2f %%  top-5 %.2f %%\n", int(rec[5]) + 1, rec[6], rec[7]);
      std::printf("quantized, best epoch (%d):   top-1 %.2f %%  top-5 %.2f %%  (selected on the test set, as the official code reports)\n",
                  int(rec[4]) + 1, rec[2], rec[3]);
    } else {
      std::printf("no --dataset / --data given: trained data-free, nothing was evaluated\n");
    }
    std::printf("quantized model (final epoch): %s; log %s; samples in %s\n", qpath.string().c_str(), csv.string().c_str(), out.c_str());
    if (!json.empty()) {
      JsonReport j;
      if (ds) j.num("fp_top1", rec[0]).num("final_top1", rec[6]).num("best_top1", rec[2]).num("best_epoch", rec[4] + 1);
      j.str("bits", bits_str).num("seconds", secs).write(json);
    }
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "gdfq_main: %s\n", ex.what());
    return 1;
  }
  return 0;
}
