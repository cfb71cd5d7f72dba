// evaluate.cpp — train/evaluate: top-1 / top-5 of a model in dfq's flat weight format on
// Fashion-MNIST's test set or an ImageNet-style folder, with images per second.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <vector>

#include "engine/blas_info.h"
#include "engine/io/flags.h"
#include "engine/io/json_out.h"
#include "engine/kernels/cpu/onednn.h"
#include "models/eval.h"
#include "quant/int8_graph.h"
#include "quant/method_cli.h"
#include "quant/qmodel.h"
#include "quant/weight_codes.h"

using namespace dfq;

static const char* kUsage =
    "usage: evaluate -a ARCH --weights FILE (--dataset fashion-mnist | --data DIR [--labels FILE])\n"
    "                [--batch_size N] [--device cpu|cuda] [--int8 [--compare]] [--json PATH] [--verbose]\n"
    "Evaluates a model (weights from tools/convert_weights, or a quantized model saved by\n"
    "zeroq_main / gdfq_main --save) and prints top-1 / top-5.\n"
    "  -a, --arch NAME     torchvision architecture; checked against the weight file (optional)\n"
    "  --weights FILE      dfq flat weight file (.bin)\n"
    "  --dataset NAME      fashion-mnist (the 10,000 test images)\n"
    "  --data DIR          ImageNet-style folder: one sub-folder per class, or flat with --labels\n"
    "  --labels FILE       labels file for a flat folder ('file label' lines or one label per line)\n"
    "  --batch_size N      default 256\n"
    "  --device D          cpu (default) or cuda\n"
    "  --int8              a quantized model's convs / linears in integers on the CPU (oneDNN, u8 x s8 -> s32;\n"
    "                      quant/int8_inference.h): same results as the fake-quant evaluation up to float\n"
    "                      rounding; a layer whose input lies on no activation grid (the image) stays float\n"
    "  --compare           with --int8: also run the fake-quant evaluation and print both, the argmax\n"
    "                      agreement and the speed-up\n"
    "  --json PATH         also write {\"top1\": .., \"top5\": .., \"images\": .., \"nonfinite\": ..}\n"
    "                      (--int8: also int8_layers, and with --compare fake_top1, agreement, speedup)\n"
    "  --verbose           also print the file's size, the float32 size of its conv / linear weights and\n"
    "                      the bytes it spends per weight (packed files: codes, scales, zero points)\n"
    "Images whose logits hold a NaN or an infinity count as wrong and are reported.\n";

int main(int argc, char** argv) {
  Flags flags(argc, argv, kUsage);
  std::string arch = flags.str("-a", flags.str("--arch", ""));
  std::string weights = flags.str("--weights", "");
  std::string dataset = flags.str("--dataset", ""), data = flags.str("--data", ""), labels = flags.str("--labels", "");
  long long batch = flags.integer("--batch_size", 256);
  std::string device = flags.choice("--device", "cpu", {"cpu", "cuda"}), json = flags.str("--json", "");
  const bool verbose = flags.boolean("--verbose");
  const bool int8 = flags.boolean("--int8"), compare = flags.boolean("--compare");
  flags.done();
  if (compare && !int8) flags.fail("--compare goes with --int8 (it compares the integer run with the fake-quant one)");
  if (int8 && device != "cpu") flags.fail("--int8 runs on the CPU (oneDNN): drop --device " + device);
  if (int8 && !onednn::available()) flags.fail(onednn::missing_message());
  if (weights.empty()) flags.fail("--weights FILE is required");
  if (!std::filesystem::is_regular_file(weights)) flags.fail("--weights " + weights + ": no such file");
  if (batch < 1) flags.fail("--batch_size must be >= 1");
  if (!json.empty())
    if (std::string p = output_file_problem(json); !p.empty()) flags.fail("--json " + json + ": " + p);
  try {
    Device dev = models::parse_device(device);
    auto ds = models::open_dataset(dataset, data, labels);
    // A quantized model (zeroq_main / gdfq_main --save) carries its bits and ranges: rebuilt as such.
    std::unique_ptr<quant::QuantizedModel> qm;
    std::shared_ptr<models::Model> model;
    if (int8 && !quant::is_quantized_file(weights))
      throw std::invalid_argument("--int8: " + weights + " is a float model; give a quantized one (a method's --save)");
    if (quant::is_quantized_file(weights)) {
      qm = quant::load_quantized(weights, arch, dev);
      model = qm->model_ptr();
      std::printf("quantized model: %s\n%s\n", qm->config().str().c_str(), qm->coverage_report().c_str());
    } else {
      model = models::load_model(weights, arch, dev);
    }
    models::check_labels(*ds, *model, data.empty() ? dataset : "--data " + data);
    if (verbose) std::printf("%s: %s\n", weights.c_str(), quant::weight_storage(WeightFile::open(weights), *model).str().c_str());
    if (dev == Device::CPU) std::printf("CPU BLAS: %s\n", blas_description().c_str());
    std::printf("%s, %d classes, %lld parameters, on %s; %lld images\n", model->arch.c_str(), model->num_classes,
                (long long)model->num_parameters(), device_name(dev), (long long)ds->size());
    std::optional<quant::QuantizedModel::CachedWeights> cached;
    if (qm) cached.emplace(*qm);  // each weight quantized once, not once per batch
    JsonReport rep;
    std::vector<int64_t> fake_pred, int8_pred;
    models::EvalResult fake;
    if (compare) {
      fake = models::evaluate(*model, *ds, dev, batch, "fake-quant", &fake_pred);
      std::printf("fake-quant: %s, %.1f images/s, %.1f s\n", quant::MethodRun::result_str(fake).c_str(), fake.images_per_s(),
                  fake.seconds);
    }
    models::EvalResult r;
    std::string int8_report;
    int64_t int8_layers = 0;
    if (int8) {  // ResNets and MobileNetV2s as one compiled integer pipeline, other models layer by layer
      r = quant::evaluate_int8(*qm, *ds, batch, "int8", compare ? &int8_pred : nullptr, &int8_report, &int8_layers);
      std::printf("%s\n", int8_report.c_str());
    } else {
      r = models::evaluate(*model, *ds, dev, batch, "evaluate");
    }
    std::printf("%s%s, %.1f images/s, %.1f s\n", int8 ? "int8: " : "", quant::MethodRun::result_str(r).c_str(),
                r.images_per_s(), r.seconds);
    rep.num("top1", r.top1()).num("top5", r.top5()).num("images", double(r.images)).num("nonfinite", double(r.nonfinite));
    if (int8) rep.num("int8_layers", double(int8_layers));
    if (compare) {
      const double agree = models::prediction_agreement(fake_pred, int8_pred), speedup = fake.seconds / r.seconds;
      std::printf("int8 against fake-quant: top-1 %.2f vs %.2f (diff %+.2f), argmax agreement %.2f %%, %.2fx the speed\n",
                  r.top1(), fake.top1(), r.top1() - fake.top1(), 100.0 * agree, speedup);
      rep.num("fake_top1", fake.top1()).num("agreement", 100.0 * agree).num("speedup", speedup);
    }
    if (!json.empty()) rep.write(json);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "evaluate: %s\n", ex.what());
    return 1;
  }
  return 0;
}
