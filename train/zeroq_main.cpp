// zeroq_main.cpp — train/zeroq_main: ZeroQ (distil one batch from the model's BN statistics,
// calibrate the activation ranges of the fake-quantized model on it, evaluate), as the official
// code does it (../shared/docs/dfq_algorithms.md §2; quant/zeroq.h).
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "engine/io/flags.h"
#include "engine/io/image.h"
#include "engine/io/json_out.h"
#include "engine/io/npy.h"
#include "engine/io/progress.h"
#include "models/eval.h"
#include "quant/qmodel.h"
#include "quant/zeroq.h"

using namespace dfq;

static const char* kUsage =
    "usage: zeroq_main -a ARCH [--weights FILE] --bits W/A [-qw N] [-qa N] [-qb N] [--batch_size N]\n"
    "                  [--iters N] [--seed N] [--distilled FILE] [(--dataset fashion-mnist | --data DIR [--labels FILE])]\n"
    "                  [--save FILE] [--out DIR] [--json PATH] [--device cpu|cuda] [options]\n"
    "ZeroQ data-free quantization: distils one batch of images from the model's BatchNorm statistics,\n"
    "calibrates the per-call-site activation ranges of the fake-quantized model on it and evaluates\n"
    "the float and the quantized model. Without --dataset/--data nothing is evaluated.\n"
    "  -a, --arch NAME     torchvision architecture (default resnet18)\n"
    "  --weights FILE      dfq flat weight file (default weights/ARCH.bin)\n"
    "  --bits W/A          weight / activation bits (default 8/8); 32 keeps float\n"
    "  -qw N, -qa N        override the weight / activation bits of --bits\n"
    "  -qb N               quantize biases to N bits (default: float, as the official code)\n"
    "  --first_last_8      keep the first conv and the last linear at 8 bits (official: quantized to W)\n"
    "  --fold_bn           fold BN into the convolutions before quantizing (official: BN kept in float)\n"
    "  --batch_size N      distilled images (default 32; the official run.sh uses 64)\n"
    "  --iters N           distillation iterations (default 500)\n"
    "  --lr X              distillation Adam learning rate (default 0.5)\n"
    "  --img_size N        distilled image size (default 32 for fashion-mnist, else 224)\n"
    "  --seed N            distillation seed (default 0)\n"
    "  --zeroq_1x1 MODE    BN layers with 1x1 inputs (layer4 at 32x32), where the official per-image\n"
    "                      std is NaN: batch (default: statistics over the images), mean (mean term\n"
    "                      only), nan (as the official code: the distillation diverges)\n"
    "  --distilled FILE    reuse a distilled batch (.npy from an earlier --out) instead of distilling\n"
    "  --dataset NAME      fashion-mnist: evaluate on its 10,000 test images\n"
    "  --data DIR          ImageNet-style folder to evaluate on (class sub-folders, or flat + --labels)\n"
    "  --eval_batch N      evaluation batch size (default 256)\n"
    "  --save FILE         write the quantized model (weights, ranges, bits) for train/evaluate\n"
    "  --out DIR           write the distilled batch (distilled.npy) and a PNG grid of it\n"
    "  --json PATH         write {fp_top1, fp_top5, q_top1, q_top5, bits, seconds}\n"
    "  --device D          cpu (default) or cuda\n";

int main(int argc, char** argv) {
  Flags flags(argc, argv, kUsage);
  std::string arch = flags.str("-a", flags.str("--arch", "resnet18"));
  std::string weights = flags.str("--weights", "");
  const quant::BitFlags bit_flags(flags, "8/8");
  bool fold_bn = flags.boolean("--fold_bn");
  long long batch = flags.integer("--batch_size", 32), iters = flags.integer("--iters", 500);
  double lr = flags.number("--lr", 0.5);
  long long img_size = flags.integer("--img_size", 0), seed = flags.integer64("--seed", 0);
  std::string dataset = flags.str("--dataset", ""), data = flags.str("--data", ""), labels = flags.str("--labels", "");
  long long eval_batch = flags.integer("--eval_batch", 256);
  std::string distilled_npy = flags.str("--distilled", "");
  std::string one_by_one = flags.str("--zeroq_1x1", "batch");
  std::string save = flags.str("--save", ""), out = flags.str("--out", ""), json = flags.str("--json", "");
  std::string device = flags.str("--device", "cpu");
  flags.done();
  if (weights.empty()) weights = "weights/" + arch + ".bin";
  if (batch < 1) flags.fail("--batch_size must be >= 1");
  if (iters < 0) flags.fail("--iters must be >= 0");
  if (eval_batch < 1) flags.fail("--eval_batch must be >= 1");
  if (img_size != 0 && img_size < 8) flags.fail("--img_size must be >= 8");
  if (seed < 0) flags.fail("--seed must be >= 0");
  if (!(lr > 0)) flags.fail("--lr must be > 0");
  quant::QuantConfig cfg = bit_flags.config(flags);
  cfg.fold_bn = fold_bn;
  cfg.observer = quant::Observer::MinMax;
  cfg.ste = quant::Ste::Identity;
  const bool have_data = !dataset.empty() || !data.empty();
  try {
    auto t0 = std::chrono::steady_clock::now();
    Device dev = models::parse_device(device);
    std::unique_ptr<Dataset> ds;
    if (have_data) ds = models::open_dataset(dataset, data, labels);
    if (!out.empty()) std::filesystem::create_directories(out);
    auto model = models::load_model(weights, arch, dev);
    std::printf("%s (%d classes) from %s, on %s; quantization %s\n", model->arch.c_str(), model->num_classes,
                weights.c_str(), device_name(dev), cfg.str().c_str());
    models::EvalResult fp;
    if (ds) {
      fp = models::evaluate(*model, *ds, dev, eval_batch, "float model");
      std::printf("float model:     top-1 %.2f %%  top-5 %.2f %%\n", fp.top1(), fp.top5());
    }
    quant::ZeroQOptions zo;
    zo.batch_size = int(batch);
    zo.iters = int(iters);
    zo.lr = lr;
    zo.seed = uint64_t(seed);
    if (one_by_one == "batch") zo.one_by_one = quant::OneByOne::BatchStats;
    else if (one_by_one == "mean") zo.one_by_one = quant::OneByOne::MeanOnly;
    else if (one_by_one == "nan") zo.one_by_one = quant::OneByOne::Nan;
    else throw std::invalid_argument("--zeroq_1x1: unknown mode '" + one_by_one + "' (batch, mean, nan)");
    zo.img_size = int(img_size ? img_size : (dataset == "fashion-mnist" ? 32 : 224));
    Tensor distilled;
    if (!distilled_npy.empty()) {
      distilled = load_npy(distilled_npy);
      if (distilled.dtype() != DType::F32 || distilled.dim() != 4 || distilled.size(1) != 3 || distilled.size(0) < 1)
        throw std::runtime_error(distilled_npy + ": expected a float32 (N,3,H,W) batch, got " + distilled.str());
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
    quant::QuantizedModel q(model, cfg);
    quant::calibrate(q, distilled);
    models::EvalResult qr;
    if (ds) {
      auto cached = q.cache_weights();  // quantized once, not once per batch
      qr = models::evaluate(q.model(), *ds, dev, eval_batch, "quantized model");
    }
    if (!out.empty()) {
      save_npy((std::filesystem::path(out) / "distilled.npy").string(), distilled);
      save_png((std::filesystem::path(out) / "distilled.png").string(), image_grid(distilled, 8, zo.img_size < 64 ? 3 : 1));
    }
    if (!save.empty()) q.save(save);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::string bits_str = std::to_string(cfg.wbits) + "/" + std::to_string(cfg.abits);
    if (ds) {
      std::printf("float model:     top-1 %.2f %%  top-5 %.2f %%\n", fp.top1(), fp.top5());
      std::printf("ZeroQ W%dA%d:     top-1 %.2f %%  top-5 %.2f %%  (%lld images)\n", cfg.wbits, cfg.abits, qr.top1(),
                  qr.top5(), (long long)qr.images);
    } else {
      std::printf("no --dataset / --data given: nothing was evaluated\n");
    }
    if (!save.empty()) std::printf("quantized model saved to %s\n", save.c_str());
    if (!out.empty()) std::printf("distilled batch in %s (distilled.npy, distilled.png)\n", out.c_str());
    std::printf("wall time %s\n", format_duration(secs).c_str());
    if (!json.empty()) {
      JsonReport j;
      if (ds) j.num("fp_top1", fp.top1()).num("fp_top5", fp.top5()).num("q_top1", qr.top1()).num("q_top5", qr.top5());
      j.str("bits", bits_str).num("seconds", secs).write(json);
    }
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "zeroq_main: %s\n", ex.what());
    return 1;
  }
  return 0;
}
