// zeroq_main.cpp — train/zeroq_main: ZeroQ (distil one batch from the model's BN statistics,
// calibrate the activation ranges of the fake-quantized model on it, evaluate), as the official
// code does it (../shared/docs/dfq_algorithms.md §2; quant/zeroq.h).
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "engine/io/flags.h"
#include "engine/io/image.h"
#include "engine/io/npy.h"
#include "engine/io/progress.h"
#include "quant/method_cli.h"
#include "quant/mixed_precision_cli.h"
#include "quant/squant.h"
#include "quant/zeroq.h"

using namespace dfq;

static const char* kUsage =
    "usage: zeroq_main -a ARCH [--weights FILE] --bits W/A [-qw N] [-qa N] [-qb N] [--batch_size N]\n"
    "                  [--iters N] [--seed N] [--distilled FILE] [(--dataset fashion-mnist | --data DIR [--labels FILE])]\n"
    "                  [--save FILE] [--out DIR] [--json PATH] [--device cpu|cuda] [options]\n"
    "                  [(--mp_size MB | --mp_avg_bits B) [--mp_bits 2,4,8] [--mp_check B1,B2,...]]\n"
    "ZeroQ data-free quantization: distils one batch of images from the model's BatchNorm statistics,\n"
    "calibrates the per-call-site activation ranges of the fake-quantized model on it and evaluates\n"
    "the float and the quantized model. Without --dataset/--data nothing is evaluated.\n"
    "  -a, --arch NAME     architecture (default: the one --weights records; resnet18)\n"
    "  --weights FILE      dfq flat weight file (default weights/ARCH.bin)\n"
    "  --bits W/A          weight / activation bits (default 8/8); 32 keeps float\n"
    "  -qw N, -qa N        override the weight / activation bits of --bits\n"
    "  -qb N               quantize biases to N bits (default: float, as the official code)\n"
    "  --first_last_8      keep the first conv and the last linear at 8 bits (official: quantized to W)\n"
    "  --fold_bn           fold BN into the convolutions before quantizing (official: BN kept in float)\n"
    "  --weight_round R    nearest (default, official: min/max grid at every forward) or squant (SQuant's\n"
    "                      kernel / channel flips on a fixed per-channel grid, before calibration)\n"    "  --weight_scheme S   asym (default, official: min/max grid with a zero point) or sym (zero point 0,\n"
    "                      codes in [-(2^(W-1)-1), 2^(W-1)-1], step max|w| / (2^(W-1)-1); W >= 2)\n"
    "  --batch_size N      distilled images (default 32; the official run.sh uses 64)\n"
    "  --iters N           distillation iterations (default 500)\n"
    "  --lr X              distillation Adam learning rate (default 0.5)\n"
    "  --img_size N        distilled image size (default 32 for fashion-mnist, else 224)\n"
    "  --seed N            distillation seed (default 0)\n"
    "  --zeroq_1x1 MODE    BN layers with 1x1 inputs (layer4 at 32x32), where the official per-image\n"
    "                      std is NaN: batch (default: statistics over the images), mean (mean term\n"
    "                      only), nan (as the official code: the loss is NaN, and dfq stops with exit 3)\n"
    "  --distilled FILE    reuse a distilled batch (.npy from an earlier --out) instead of distilling\n"
    "  --dataset NAME      fashion-mnist: evaluate on its 10,000 test images\n"
    "  --data DIR          ImageNet-style folder to evaluate on (class sub-folders, or flat + --labels)\n"
    "  --eval_batch N      evaluation batch size (default 256)\n"
    "  --save FILE         write the quantized model (weights, ranges, bits) for train/evaluate\n"    "  --packed            --save writes each quantized weight as integer codes (W <= 8: 1 byte, or 2\n"
    "                      codes a byte at W <= 4) with per-channel scales, not float32\n"
    "  --int8              also evaluate the quantized model in integers on the CPU (oneDNN; as evaluate\n"
    "                      does) and print both with their argmax agreement\n"
    "  --out DIR           write the distilled batch (distilled.npy) and a PNG grid of it\n"
    "  --json PATH         write {method, arch, bits, seed, fp_top1, fp_top5, q_top1, q_top5, q_nonfinite,\n"
    "                      seconds, blas}\n"
    "  --device D          cpu (default) or cuda\n"
    "mixed precision (ZeroQ's Pareto frontier; activations at the A bits of --bits / -qa, the W bits unused):\n"
    "  --mp_size MB        weight-size budget: sum of conv / linear weights x bits, MB = 2^20 bytes\n"
    "  --mp_avg_bits B     ... or as average bits per weight (within the candidates' range)\n"
    "  --mp_bits LIST      candidate weight bit-widths (default 2,4,8)\n"
    "  --mp_check LIST     budgets (average bits) at which to check the layers' independence: the\n"
    "                      predicted (sum of KL) against the measured KL, and each model's top-1\n"
    "  Each layer's KL at each candidate is measured on the distilled batch (only that layer quantized),\n"
    "  the bits of least total KL within the budget found by dynamic programming over size; --out gets\n"
    "  mp_frontier.csv, mp_frontier.png, mp_sensitivity.csv (and mp_check.csv); --first_last_8 pins\n"
    "  the first conv and the last linear to 8 bits; --save keeps the per-layer bits for evaluate.\n"
    "Output paths are checked before any work. Exit status: 0 done, 1 error, 2 bad flag, 3 the\n"
    "distillation diverged (non-finite loss).\n";

int main(int argc, char** argv) {
  Flags flags(argc, argv, kUsage);
  quant::MethodCli cli(flags, "ZeroQ", "8/8");
  const bool fold_bn = flags.boolean("--fold_bn");
  const long long batch = flags.integer("--batch_size", 32), iters = flags.integer("--iters", 500);
  const double lr = flags.number("--lr", 0.5);
  const std::string distilled_npy = flags.str("--distilled", "");
  const std::string one_by_one = flags.choice("--zeroq_1x1", "batch", {"batch", "mean", "nan"});
  quant::MpFlags mp_flags(flags);
  flags.done();
  cli.validate(flags);
  mp_flags.validate(flags);
  if (batch < 1) flags.fail("--batch_size must be >= 1");
  if (iters < 0) flags.fail("--iters must be >= 0");
  if (!(lr > 0)) flags.fail("--lr must be > 0");
  if (mp_flags.on() && cli.cfg.weight_scheme == quant::WeightScheme::Sym)
    for (int b : mp_flags.bits)
      if (b == 1) flags.fail("--mp_bits with --weight_scheme sym: symmetric weights need at least 2 bits");
  if (!distilled_npy.empty() && !std::filesystem::is_regular_file(distilled_npy))
    flags.fail("--distilled " + distilled_npy + ": no such file");
  quant::QuantConfig cfg = cli.cfg;
  cfg.fold_bn = fold_bn;
  cfg.observer = quant::Observer::MinMax;
  cfg.ste = quant::Ste::Identity;
  quant::ZeroQOptions zo;
  zo.batch_size = int(batch);
  zo.iters = int(iters);
  zo.lr = lr;
  zo.seed = uint64_t(cli.seed);
  zo.one_by_one = one_by_one == "batch" ? quant::OneByOne::BatchStats
                  : one_by_one == "mean" ? quant::OneByOne::MeanOnly
                                         : quant::OneByOne::Nan;
  zo.img_size = cli.image_size();
  return quant::run_method_main("zeroq_main", [&] {
    quant::MethodRun run(cli);
    const Device dev = run.device();
    auto model = run.load_model();
    std::printf("%s (%d classes) from %s, on %s; quantization %s\n", model->arch.c_str(), model->num_classes,
                cli.weights.c_str(), device_name(dev), cfg.str().c_str());
    if (run.data()) run.evaluate_float(*model);
    quant::MpStep mp(mp_flags, cli.cfg.first_last_bits == 8);
    if (mp_flags.on()) mp.plan(*model, flags);  // a budget the model cannot meet fails here, before the distillation
    Tensor distilled;
    if (!distilled_npy.empty()) {
      distilled = load_npy(distilled_npy);
      if (distilled.dtype() != DType::F32 || distilled.dim() != 4 || distilled.size(1) != 3 || distilled.size(0) < 1)
        throw std::runtime_error(distilled_npy + ": expected a float32 (N,3,H,W) batch, got " + distilled.str());
      if (!std::isfinite(sum(distilled).item())) throw std::runtime_error(distilled_npy + ": holds NaN or infinite values");
      distilled = distilled.to(dev);
      std::printf("distilled batch from %s: %s\n", distilled_npy.c_str(), shape_str(distilled.shape()).c_str());
    } else {
      Progress bar("distil", iters);
      float last_loss = 0;
      distilled = quant::distill(*model, zo, dev, [&](int it, float loss, float cur_lr) {
        last_loss = loss;
        char st[64];
        std::snprintf(st, sizeof st, "loss %.4f lr %.0e", loss, cur_lr);
        bar.update(it, st);
      });
      bar.finish();
      std::printf("distilled %d images of %dx%d in %d iterations (final loss %.4f)\n", zo.batch_size, zo.img_size,
                  zo.img_size, zo.iters, last_loss);
    }
    std::string label = "ZeroQ W" + std::to_string(cfg.wbits) + "A" + std::to_string(cfg.abits);
    if (mp_flags.on()) {
      char title[160];
      std::snprintf(title, sizeof title, "%s mixed precision frontier (ZeroQ, seed %lld, A%d)", model->arch.c_str(),
                    (long long)cli.seed, cfg.abits);
      cfg.layer_wbits = mp.run(run, model, distilled, cfg, title);
      char bits[64];
      std::snprintf(bits, sizeof bits, "MP%.2f/%d", mp.chosen_avg_bits(), cfg.abits);
      run.json().str("bits", bits);  // replaces the harness's "bits"
      label = "ZeroQ " + std::string(bits);
    }
    quant::QuantizedModel q(model, cfg);
    run.report_quantization(q);
    const std::string rounded = quant::apply_weight_round(q, cli.bit_flags.weight_round);
    if (!rounded.empty()) std::printf("%s\n", rounded.c_str());
    run.json().str("weight_round", cli.bit_flags.weight_round);
    quant::calibrate(q, distilled);
    if (run.data()) run.evaluate_quantized(q);
    if (mp_flags.on()) mp.write_outputs(cli.out);
    if (!cli.out.empty()) {
      std::filesystem::create_directories(cli.out);
      save_npy((std::filesystem::path(cli.out) / "distilled.npy").string(), distilled);
      save_png((std::filesystem::path(cli.out) / "distilled.png").string(), image_grid(distilled, 8, zo.img_size < 64 ? 3 : 1));
      std::printf("distilled batch in %s (distilled.npy, distilled.png)\n", cli.out.c_str());
    }
    run.save(q);
    run.finish(label);
  });
}
