// train_fp.cpp — train/train_fp: trains a registry model (full precision) with the engine on
// Fashion-MNIST: SGD with Nesterov momentum, a one-cycle or cosine learning-rate schedule, random
// flips and shifts; evaluates on the test set and writes an atomic checkpoint in dfq's flat weight
// format after every epoch (the weights the quantization tools start from).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "engine/blas_info.h"
#include "engine/diverged.h"
#include "engine/io/flags.h"
#include "engine/io/json_out.h"
#include "engine/io/loader.h"
#include "engine/io/progress.h"
#include "engine/io/weights.h"
#include "engine/nn/optim.h"
#include "models/eval.h"
#include "models/registry.h"
#include "quant/method_cli.h"

using namespace dfq;

static const char* kUsage =
    "usage: train_fp -a ARCH --dataset fashion-mnist [--epochs N] [--batch_size N] [--lr X] [--wd X]\n"
    "                [--schedule onecycle|cosine] [--shift N] [--no_flip] [--seed N] [--device cpu|cuda]\n"
    "                [--eval_every N] [--out FILE] [--json PATH]\n"
    "Trains ARCH from scratch on Fashion-MNIST (32x32, 3 channels, the golden input convention) and\n"
    "writes its weights in dfq's flat format after every epoch.\n"
    "  -a, --arch NAME   registry model (default resnet18)\n"
    "  --epochs N        default 4\n"
    "  --batch_size N    default 128\n"
    "  --lr X            peak learning rate (default 0.1); momentum 0.9 Nesterov\n"
    "  --wd X            weight decay (default 5e-4)\n"
    "  --schedule S      onecycle (default: linear warm-up over 15 % of the steps, cosine down) or cosine\n"
    "  --shift N         random shift by up to N pixels (default 2); --no_flip disables the flips\n"
    "  --out FILE        default weights/<arch>_fmnist.bin\n"
    "  --eval_every N    evaluate on the test set every N epochs (default 1; the last epoch always)\n"
    "  --train_images N  use only N images of each epoch's shuffle (default: all 60,000; a quick look)\n"
    "  --json PATH       write {\"top1\", \"top5\", \"seconds\", \"epochs\"} at the end\n"
    "Exit status: 0 done, 1 error, 2 bad flag, 3 training diverged (non-finite loss; the weights of the\n"
    "last finished epoch stay in --out).\n";

int main(int argc, char** argv) {
  Flags flags(argc, argv, kUsage);
  std::string arch = flags.str("-a", flags.str("--arch", "resnet18"));
  std::string dataset = flags.str("--dataset", "");
  int epochs = static_cast<int>(flags.integer("--epochs", 4));
  int batch = static_cast<int>(flags.integer("--batch_size", 128));
  double lr = flags.number("--lr", 0.1), wd = flags.number("--wd", 5e-4);
  std::string schedule = flags.choice("--schedule", "onecycle", {"onecycle", "cosine"});
  int shift = static_cast<int>(flags.integer("--shift", 2));
  bool no_flip = flags.boolean("--no_flip");
  const long long seed_flag = flags.integer64("--seed", 0);
  const uint64_t seed = static_cast<uint64_t>(seed_flag);
  int eval_every = static_cast<int>(flags.integer("--eval_every", 1));
  const long long train_images = flags.integer("--train_images", 0);
  std::string device = flags.choice("--device", "cpu", {"cpu", "cuda"});
  std::string out = flags.str("--out", "weights/" + arch + "_fmnist.bin"), json = flags.str("--json", "");
  flags.done();
  if (dataset != "fashion-mnist") flags.fail("--dataset fashion-mnist is required (the only training set dfq ships with)");
  if (epochs < 1 || batch < 2 || lr <= 0 || wd < 0 || shift < 0 || eval_every < 1) flags.fail("bad --epochs / --batch_size / --lr / --wd / --shift");
  if (seed_flag < 0) flags.fail("--seed must be >= 0");
  if (train_images < 0 || (train_images > 0 && train_images < batch))
    flags.fail("--train_images must be at least --batch_size (" + std::to_string(batch) + ")");
  if (std::string p = output_file_problem(out); !p.empty()) flags.fail("--out " + out + ": " + p);
  if (!json.empty())
    if (std::string p = output_file_problem(json); !p.empty()) flags.fail("--json " + json + ": " + p);
  return quant::run_method_main("train_fp", [&] {
    Device dev = models::parse_device(device);
    auto model = models::create_model(arch, 10, seed);
    model->to(dev);
    FashionMnistAugment aug;
    aug.hflip = !no_flip;
    aug.max_shift = shift;
    FashionMnistDataset train_ds("train", kFashionMnistDir, aug);
    FashionMnistDataset test_ds("test");
    LoaderOptions lo;
    lo.batch_size = batch;
    lo.shuffle = true;
    lo.drop_last = true;
    lo.workers = 1;  // Fashion-MNIST items are cheap; leave the cores to the model
    DataLoader loader(train_ds, lo);
    SgdOptions so;
    so.lr = static_cast<float>(lr);
    so.momentum = 0.9f;
    so.nesterov = true;
    so.weight_decay = static_cast<float>(wd);
    SGD opt(model->parameters(), so);
    // --train_images: the epoch stops after that many images of its shuffle (the loader abandons the
    // rest cleanly at the next start_epoch), so each epoch sees a different subset.
    const int64_t steps_per_epoch =
        train_images ? std::min<int64_t>(loader.num_batches(), train_images / batch) : loader.num_batches();
    const int64_t total = steps_per_epoch * epochs;
    auto lr_at = [&](int64_t step) {
      double t = static_cast<double>(step) / total;
      if (schedule == "cosine") return lr * 0.5 * (1 + std::cos(M_PI * t));
      const double warm = 0.15;  // one-cycle: linear warm-up from lr/25, then cosine to ~0
      if (t < warm) return lr * (0.04 + 0.96 * t / warm);
      return lr * 0.5 * (1 + std::cos(M_PI * (t - warm) / (1 - warm)));
    };
    if (dev == Device::CPU) std::printf("CPU BLAS: %s\n", blas_description().c_str());
    std::printf("train_fp: %s (%lld parameters) on Fashion-MNIST, %d epochs x %lld steps of %d, %s lr %.3g, on %s\n",
                arch.c_str(), (long long)model->num_parameters(), epochs, (long long)steps_per_epoch, batch,
                schedule.c_str(), lr, device_name(dev));
    Generator gen(seed + 1);
    auto t0 = std::chrono::steady_clock::now();
    models::EvalResult r;
    for (int e = 0; e < epochs; ++e) {
      model->train();
      loader.start_epoch(&gen);
      Progress bar("epoch " + std::to_string(e + 1) + "/" + std::to_string(epochs), steps_per_epoch);
      double loss_sum = 0;
      int64_t seen = 0;
      for (Batch b; seen < steps_per_epoch && loader.next(b);) {
        opt.set_lr(static_cast<float>(lr_at(e * steps_per_epoch + b.index)));
        Tensor loss = cross_entropy(model->forward(b.images.to(dev)), b.labels.to(dev));
        require_finite_loss(loss.item(), "train_fp, epoch " + std::to_string(e + 1) + " of " + std::to_string(epochs) +
                                             ", step " + std::to_string(b.index + 1) + " of " + std::to_string(steps_per_epoch));
        opt.zero_grad();
        loss.backward();
        opt.step();
        loss_sum += loss.item();
        ++seen;
        char st[64];
        std::snprintf(st, sizeof st, "loss %.4f lr %.4f", loss_sum / seen, opt.lr());
        bar.update(b.index + 1, st);
      }
      bar.finish();
      bool eval_now = (e + 1) % eval_every == 0 || e + 1 == epochs;
      if (eval_now) r = models::evaluate(*model, test_ds, dev, 500, "test");
      double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (eval_now)
        std::printf("epoch %d: train loss %.4f, test top-1 %.2f %% top-5 %.2f %%, %s elapsed\n", e + 1, loss_sum / seen,
                    r.top1(), r.top5(), format_duration(el).c_str());
      else
        std::printf("epoch %d: train loss %.4f, %s elapsed\n", e + 1, loss_sum / seen, format_duration(el).c_str());
      std::vector<std::pair<std::string, Tensor>> sd;
      for (auto& [name, t] : model->state_dict()) sd.push_back({name, t.cpu()});
      write_weight_file(out, arch, 10, sd);  // atomic: temporary name, then rename
      std::fflush(stdout);
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("done: %s test top-1 %.2f %%, top-5 %.2f %% after %d epochs in %s; weights in %s\n", arch.c_str(), r.top1(),
                r.top5(), epochs, format_duration(secs).c_str(), out.c_str());
    if (!json.empty())
      JsonReport().num("top1", r.top1()).num("top5", r.top5()).num("seconds", secs).num("epochs", epochs).write(json);
  });
}
