// gdfq_main.cpp — train/gdfq_main: GDFQ (a class-conditional generator trained against the float
// model's BN statistics, the quantized model fine-tuned on its images by distillation), as the
// official code does it (../shared/docs/dfq_algorithms.md §3; quant/gdfq.h). Every epoch: an atomic
// checkpoint that --resume continues from exactly, a CSV line, a progress bar; every few epochs a
// PNG grid of generated images (one row per class); at the end the report and the quantized model.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "engine/io/flags.h"
#include "engine/io/image.h"
#include "engine/io/json_out.h"
#include "engine/io/progress.h"
#include "quant/gdfq.h"
#include "quant/method_cli.h"
#include "quant/squant.h"

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
    "  -a, --arch NAME       architecture (default: the one --weights records; resnet18)\n"
    "  --weights FILE        dfq flat weight file (default weights/ARCH.bin)\n"
    "  --bits W/A            weight / activation bits (default 4/4); -qw/-qa override, -qb N biases\n"
    "  --first_last_8        first conv and last linear at 8 bits (official: at W)\n"
    "  --weight_round R      nearest (default, official) or squant: after the last epoch's fine-tuning, the\n"
    "                        weights rounded once by SQuant's flips (fixed grid) before the final\n"
    "                        evaluation and save (may differ on --resume: it changes only that step)\n"
    "  --weight_scheme S     asym (default, official: min/max grid with a zero point) or sym (zero point 0,\n"
    "                        codes in [-(2^(W-1)-1), 2^(W-1)-1], step max|w| / (2^(W-1)-1); W >= 2)\n"
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
    "  --stop_after N        stop after epoch N (checkpoint written; --resume continues the same run)\n"
    "  --save FILE           also write the final quantized model to FILE\n"    "  --packed              --save writes each quantized weight as integer codes (W <= 8: 1 byte, or 2\n"
    "                        codes a byte at W <= 4) with per-channel scales, not float32\n"
    "  --int8                also evaluate the quantized model in integers on the CPU (oneDNN; as evaluate\n"
    "                        does) and print both with their argmax agreement\n"
    "  --eval_batch N        evaluation batch size (default 256)\n"
    "  --json PATH           write {method, arch, bits, seed, fp_top1, final_top1, best_top1, best_epoch, seconds, blas}\n"
    "  --device D            cpu (default) or cuda\n"
    "--resume refuses a checkpoint made with other settings (every option that changes what is computed,\n"
    "and the float model's file). Exit status: 0 done, 1 error, 2 bad flag, 3 training diverged (non-finite\n"
    "loss; the last epoch's checkpoint is kept).\n";

namespace {
std::vector<int> parse_int_list(const std::string& s, const Flags& flags, const std::string& name) {
  std::vector<int> v;
  try {
    for (double x : parse_number_list(s, name)) {
      if (x < 0 || x != std::floor(x) || x > 1e9) throw std::invalid_argument("not an epoch");
      v.push_back(static_cast<int>(x));
    }
  } catch (const std::invalid_argument&) {
    flags.fail(name + ": '" + s + "' is not a list of epochs");
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
    int epoch = -1;
    if (!header && std::sscanf(line.c_str(), "%d,", &epoch) != 1) throw std::runtime_error(csv.string() + ": malformed line '" + line + "'");
    if (header || epoch < epochs_kept) kept += line + "\n";
    header = false;
  }
  write_file_atomic(csv.string(), kept);
}
}  // namespace

int main(int argc, char** argv) {
  Flags flags(argc, argv, kUsage);
  quant::MethodCli cli(flags, "GDFQ", "4/4");
  quant::GdfqOptions o;
  o.n_epochs = int(flags.integer("--n_epochs", 400));
  o.n_iter = int(flags.integer("--n_iter", 200));
  o.batch_size = int(flags.integer("--batch_size", 16));
  o.q_lr = flags.number("--q_lr", 1e-6);
  o.g_lr = flags.number("--g_lr", 1e-3);
  o.warmup_epochs = int(flags.integer("--warmup_epochs", 50));
  const std::string milestones = flags.str("--milestones", "");
  o.range_epochs = int(flags.integer("--range_epochs", 4));
  o.bns_weight = float(flags.number("--bns_weight", 0.1));
  o.kd_temperature = float(flags.number("--kd_temperature", 20));
  o.use_bns = !flags.boolean("--no_bns");
  o.use_kd = !flags.boolean("--no_kd");
  const std::string ste = flags.choice("--ste", "identity", {"identity", "clip"});
  const long long eval_every = flags.integer("--eval_every", 1), sample_every = flags.integer("--sample_every", 5);
  const bool resume = flags.boolean("--resume");
  const long long stop_after = flags.integer("--stop_after", 0);
  flags.done();
  cli.validate(flags);
  if (o.n_epochs < 1 || o.n_epochs > 1000000) flags.fail("--n_epochs must be in 1..1000000");
  if (o.n_iter < 1) flags.fail("--n_iter must be >= 1");
  if (o.batch_size < 2) flags.fail("--batch_size must be >= 2 (the generator uses batch statistics)");
  if (!(o.q_lr >= 0) || !(o.g_lr >= 0)) flags.fail("--q_lr and --g_lr must be >= 0");
  if (o.warmup_epochs < 0) flags.fail("--warmup_epochs must be >= 0");
  if (o.range_epochs < 1)
    flags.fail("--range_epochs must be >= 1: with 0 no activation range is ever observed and every one stays [0, 0]");
  if (!(o.bns_weight >= 0)) flags.fail("--bns_weight must be >= 0");
  if (!(o.kd_temperature > 0)) flags.fail("--kd_temperature must be > 0");
  if (eval_every < 1 || sample_every < 1) flags.fail("--eval_every and --sample_every must be >= 1");
  if (stop_after < 0) flags.fail("--stop_after must be >= 1 (an epoch)");
  if (!milestones.empty()) o.milestones = parse_int_list(milestones, flags, "--milestones");
  o.seed = uint64_t(cli.seed);
  quant::QuantConfig cfg = cli.cfg;
  cfg.ste = quant::parse_ste(ste);
  const std::string out = cli.out.empty() ? "runs/gdfq_" + cli.arch + "_w" + std::to_string(cfg.wbits) + "a" +
                                                std::to_string(cfg.abits)
                                          : cli.out;
  if (cli.out.empty())
    if (std::string p = output_dir_problem(out); !p.empty()) flags.fail("--out " + out + ": " + p);
  const fs::path dir(out), ckpt = dir / "checkpoint.bin", csv = dir / "log.csv";
  const int isz = cli.image_size();
  return quant::run_method_main("gdfq_main", [&] {
    if (resume && !fs::exists(ckpt)) throw std::runtime_error("--resume: no checkpoint in " + out);
    if (!resume && fs::exists(ckpt))
      throw std::runtime_error(out + " already holds a run (checkpoint.bin): pass --resume to continue it or choose another --out");
    // Everything that changes what the run computes; --eval_every, --sample_every, --json, --save
    // and the folder's name may differ on --resume.
    auto num = [](double v) {
      char b[32];
      std::snprintf(b, sizeof b, "%.17g", v);
      return std::string(b);
    };
    std::string ms_str;
    for (int m : quant::effective_milestones(o)) ms_str += (ms_str.empty() ? "" : ",") + std::to_string(m);
    const quant::RunOptions run_options = {
        {"-a", cli.arch}, {"--weights (FNV-1a of the file)", file_fingerprint(cli.weights)},
        {"--bits", cli.bits_str()}, {"-qb", std::to_string(cfg.bias_bits)},
        {"--first_last_8", cfg.first_last_bits ? "on" : "off"}, {"--ste", ste},
        {"--weight_scheme", quant::weight_scheme_name(cfg.weight_scheme)},
        {"--n_epochs", std::to_string(o.n_epochs)}, {"--n_iter", std::to_string(o.n_iter)},
        {"--batch_size", std::to_string(o.batch_size)}, {"--q_lr", num(o.q_lr)}, {"--g_lr", num(o.g_lr)},
        {"--warmup_epochs", std::to_string(o.warmup_epochs)}, {"--milestones", ms_str},
        {"--range_epochs", std::to_string(o.range_epochs)}, {"--bns_weight", num(o.bns_weight)},
        {"--kd_temperature", num(o.kd_temperature)}, {"--no_bns", o.use_bns ? "off" : "on"},
        {"--no_kd", o.use_kd ? "off" : "on"}, {"--img_size", std::to_string(isz)}, {"--seed", std::to_string(cli.seed)},
        {"--device", cli.device}, {"evaluation data", cli.has_data() ? cli.data_str() : "none"}};
    if (resume) {
      quant::RunOptions recorded = quant::decode_options(quant::GdfqTrainer::checkpoint_options(ckpt.string()));
      // checkpoints written before --weight_scheme existed were asymmetric
      if (std::none_of(recorded.begin(), recorded.end(), [](const auto& kv) { return kv.first == "--weight_scheme"; }))
        recorded.push_back({"--weight_scheme", "asym"});
      quant::require_same_options(recorded, run_options, ckpt.string());
    }
    quant::MethodRun run(cli);
    const Device dev = run.device();
    auto teacher = run.load_model();
    auto student = run.load_model();
    quant::GdfqTrainer tr(teacher, student, cfg, o, dev, isz);
    tr.set_run_options(quant::encode_options(run_options));
    fs::create_directories(dir);
    std::vector<int> ms = quant::effective_milestones(o);
    std::printf("GDFQ %s (%d classes) from %s on %s; %s\n", cli.arch.c_str(), teacher->num_classes, cli.weights.c_str(),
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
      write_file_atomic(csv.string(), "epoch,g_loss,g_ce,bns,q_loss,g_lr,q_lr,q_trained,ranges_observed,top1,top5,nonfinite,seconds\n");
    }
    run.report_quantization(tr.qmodel());
    const double secs_before = rec[8];
    if (run.data() && rec[0] < 0) {
      models::EvalResult fp = run.evaluate_float(*teacher);
      rec[0] = float(fp.top1());
      rec[1] = float(fp.top5());
    }
    auto elapsed = [&] { return secs_before + run.seconds(); };
    auto sample = [&](const std::string& name) {
      save_png((dir / name).string(), image_grid(tr.sample_grid_images(isz < 64 ? 8 : 4, 777), isz < 64 ? 8 : 4, isz < 64 ? 2 : 1));
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
      long long nonfinite = -1;
      const bool last = e + 1 == o.n_epochs;
      if (last) {  // --weight_round: on the fine-tuned weights, before the final evaluation and save
        const std::string rounded = quant::apply_weight_round(tr.qmodel(), cli.bit_flags.weight_round);
        if (!rounded.empty()) std::printf("%s\n", rounded.c_str());
      }
      if (run.data() && (last || (st.q_trained && (e - o.warmup_epochs) % eval_every == 0) || e == o.warmup_epochs - 1)) {
        models::EvalResult r = run.evaluate_quantized(tr.qmodel());
        top1 = r.top1();
        top5 = r.top5();
        nonfinite = r.nonfinite;
        rec[6] = float(top1), rec[7] = float(top5), rec[5] = float(e);
        // An epoch whose model gives a NaN or Inf on any test image is never the best one.
        if (r.nonfinite == 0 && top1 > rec[2]) rec[2] = float(top1), rec[3] = float(top5), rec[4] = float(e);
      }
      rec[8] = float(elapsed());
      char line[512];
      std::snprintf(line, sizeof line, "%d,%.6f,%.6f,%.6f,%.6f,%.3g,%.3g,%d,%d,%s,%s,%s,%.1f\n", e, st.g_loss, st.g_ce, st.bns,
                    st.q_loss, st.g_lr, st.q_lr, st.q_trained ? 1 : 0, st.ranges_observed ? 1 : 0,
                    top1 >= 0 ? std::to_string(top1).c_str() : "", top5 >= 0 ? std::to_string(top5).c_str() : "",
                    nonfinite >= 0 ? std::to_string(nonfinite).c_str() : "", rec[8]);
      append_file(csv.string(), line);
      std::printf("epoch %d/%d: G %.4f (CE %.4f, BNS %.4f)  Q %.4f%s%s", e + 1, o.n_epochs, st.g_loss, st.g_ce, st.bns,
                  st.q_loss, st.q_trained ? "" : " (warm-up: Q not updated)", st.ranges_observed ? " [ranges observed]" : "");
      if (top1 >= 0) std::printf("  test top-1 %.2f %% top-5 %.2f %%", top1, top5);
      if (nonfinite > 0) std::printf(" (%lld non-finite: not eligible as best)", nonfinite);
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
      if (stop_after && tr.epoch() >= stop_after && tr.epoch() < o.n_epochs) {
        std::printf("stopped after epoch %d of %d (--stop_after): continue with --resume\n", tr.epoch(), o.n_epochs);
        return;
      }
    }
    const fs::path qpath = dir / "quantized.bin";
    tr.qmodel().save(qpath.string());
    run.save(tr.qmodel());
    const double secs = elapsed();
    std::printf("\n== GDFQ %s W%dA%d, %d epochs, %s\n", cli.arch.c_str(), cfg.wbits, cfg.abits, o.n_epochs,
                format_duration(secs).c_str());
    if (run.data()) {
      std::printf("float model:                  top-1 %.2f %%  top-5 %.2f %%\n", rec[0], rec[1]);
      std::printf("quantized, final epoch (%d):  top-1 %.2f %%  top-5 %.2f %%\n", int(rec[5]) + 1, rec[6], rec[7]);
      if (rec[4] >= 0)
        std::printf("quantized, best epoch (%d):   top-1 %.2f %%  top-5 %.2f %%  (selected on the test set, as the official code reports)\n",
                    int(rec[4]) + 1, rec[2], rec[3]);
      else
        std::printf("quantized, best epoch: none (every evaluated epoch gave non-finite logits)\n");
      run.json().num("fp_top1", rec[0]).num("fp_top5", rec[1]).num("final_top1", rec[6]).num("final_top5", rec[7]);
      if (rec[4] >= 0) run.json().num("best_top1", rec[2]).num("best_epoch", rec[4] + 1);
    } else {
      std::printf("no --dataset / --data given: trained data-free, nothing was evaluated\n");
    }
    std::printf("quantized model (final epoch): %s; log %s; samples in %s\n", qpath.string().c_str(), csv.string().c_str(), out.c_str());
    run.json().num("seconds", secs).num("epochs", o.n_epochs).str("weight_round", cli.bit_flags.weight_round);
    run.write_json();
  });
}
