// squant_main.cpp — train/squant_main: SQuant (quant/squant.h), as the official code does it
// (clevercool/SQuant main.py): the weights rounded with SQuant's kernel- and channel-wise flips on
// their per-channel grid, the activation quantizers on every conv / linear input clipped at k times
// the std of the positive activations of one batch of noise, then the usual evaluation, JSON and
// --save. No data, no backprop: the quantization step takes milliseconds, and prints them.
#include <chrono>
#include <cstdio>

#include "engine/io/flags.h"
#include "quant/method_cli.h"
#include "quant/squant.h"

using namespace dfq;

static const char* kUsage =
    "usage: squant_main [-a ARCH] [--weights FILE] --bits W/A [-qw N] [-qa N] [-qb N] [--mode MODE]\n"
    "                   [--sigma K] [--noise normal|uniform] [--noise_batch N] [--seed N]\n"
    "                   [(--dataset fashion-mnist | --data DIR [--labels FILE]) [--eval_float]]\n"
    "                   [--save FILE] [--json PATH] [--device cpu|cuda] [options]\n"
    "SQuant data-free quantization (no data, no backprop): rounds each weight on its per-channel\n"
    "min/max grid and flips the elements that cancel the accumulated rounding error of each kernel\n"
    "and each output channel; clips every activation at k x the std of the positive activations of\n"
    "one batch of noise (official k: 12 / 14 / 25 at 4 / 6 / 8 bits); evaluates the quantized model\n"
    "(and the float one with --eval_float). As the official code: every conv and linear at W bits,\n"
    "activations quantized where they enter a conv / linear, the first layer's input float, the last\n"
    "layer's at 8 bits. Without --dataset/--data nothing is evaluated.\n"
    "  -a, --arch NAME     architecture (default: the one --weights records; resnet18)\n"
    "  --weights FILE      dfq flat weight file (default weights/ARCH.bin)\n"
    "  --bits W/A          weight / activation bits (default 4/4); 32 keeps float\n"
    "  -qw N, -qa N        override the weight / activation bits of --bits\n"
    "  -qb N               quantize biases to N bits (default: float, as the official code)\n"
    "  --first_last_8      first conv and last linear weights at 8 bits (official: at W)\n"
    "  --mode MODE         squant (default: kernel and channel flips), squant-k (kernel flips only),\n"
    "                      squant-c (channel flips only), squant-e (round to nearest), as the official\n"
    "  --weight_round R    squant (default) or nearest (the same as --mode squant-e)\n"    "  --weight_scheme S   asym (default, official: min/max grid with a zero point) or sym (zero point 0,\n"
    "                      codes in [-(2^(W-1)-1), 2^(W-1)-1], step max|w| / (2^(W-1)-1); W >= 2)\n"
    "  --sigma K           the clip multiple k (default by the activation bits: <=4: 12, 5-6: 14, >=7: 25)\n"
    "  --noise KIND        normal (default: N(0,1), the moments of normalised inputs) or uniform (the\n"
    "                      official U[0,1), fed as it is: too narrow ranges, quant/README.md)\n"
    "  --noise_batch N     noise images for the activation ranges (default 256, the official batch)\n"
    "  --act_at WHERE      inputs (default, official: every conv / linear input) or relu (after every\n"
    "                      ReLU call, as ZeroQ / GDFQ in dfq)\n"
    "  --img_size N        noise image size (default 32 for fashion-mnist, else 224)\n"
    "  --seed N            noise seed (default 0)\n"
    "  --dataset NAME      fashion-mnist: evaluate on its 10,000 test images\n"
    "  --data DIR          ImageNet-style folder to evaluate on (class sub-folders, or flat + --labels)\n"
    "  --eval_float        also evaluate the float model (fp_top1 / fp_top5; doubles the evaluation time)\n"
    "  --eval_batch N      evaluation batch size (default 256)\n"
    "  --save FILE         write the quantized model (weights, fixed grids, ranges, bits) for train/evaluate\n"    "  --packed            --save writes each quantized weight as integer codes (W <= 8: 1 byte, or 2\n"
    "                      codes a byte at W <= 4) with per-channel scales, not float32\n"
    "  --int8              also evaluate the quantized model in integers on the CPU (oneDNN; as evaluate\n"
    "                      does) and print both with their argmax agreement\n"
    "  --json PATH         write {method, arch, bits, seed, mode, sigma, noise, quant_ms, weight_ms, act_ms,\n"
    "                      kernel_flips, channel_flips, fp_top1, fp_top5, q_top1, q_top5, q_nonfinite, seconds, blas}\n"
    "  --device D          cpu (default) or cuda\n"
    "Output paths are checked before any work. Exit status: 0 done, 1 error, 2 bad flag.\n";

int main(int argc, char** argv) {
  quant::prefer_passive_omp_wait(argv);  // the quantization step must stay in milliseconds on a loaded machine
  Flags flags(argc, argv, kUsage);
  quant::MethodCli cli(flags, "SQuant", "4/4", "squant");
  const std::string mode = flags.choice("--mode", "squant", {"squant", "squant-k", "squant-c", "squant-e"});
  const double sigma_flag = flags.number("--sigma", 0);
  const long long noise_batch = flags.integer("--noise_batch", 256);
  const std::string act_at = flags.choice("--act_at", "inputs", {"inputs", "relu"});
  const std::string noise_kind = flags.choice("--noise", "normal", {"normal", "uniform"});
  const bool eval_float = flags.boolean("--eval_float");
  flags.done();
  cli.validate(flags);
  if (!cli.out.empty()) flags.fail("--out: squant_main writes no folder (use --save and --json)");
  if (sigma_flag < 0) flags.fail("--sigma must be > 0 (or 0: by the activation bits)");
  if (eval_float && !cli.has_data()) flags.fail("--eval_float needs --dataset or --data");
  if (noise_batch < 2) flags.fail("--noise_batch must be >= 2 (the clip rule takes a standard deviation)");
  const bool nearest = cli.bit_flags.weight_round == "nearest";
  if (nearest && mode != "squant" && mode != "squant-e")
    flags.fail("--mode " + mode + " flips weights: it needs --weight_round squant (nearest is --mode squant-e)");
  const std::string eff_mode = nearest ? "squant-e" : mode;
  const quant::SquantPasses passes = quant::parse_squant_mode(eff_mode);
  quant::QuantConfig cfg = cli.cfg;
  cfg.act_placement = act_at == "inputs" ? quant::ActPlacement::LayerInputs : quant::ActPlacement::ReluSites;
  const double sigma = sigma_flag > 0 ? sigma_flag : quant::squant_sigma_for_bits(cfg.abits);
  return quant::run_method_main("squant_main", [&] {
    quant::MethodRun run(cli);
    const Device dev = run.device();
    auto model = run.load_model();
    std::printf("%s (%d classes) from %s, on %s; quantization %s\n", model->arch.c_str(), model->num_classes,
                cli.weights.c_str(), device_name(dev), cfg.str().c_str());
    if (run.data() && eval_float) run.evaluate_float(*model);
    quant::QuantizedModel q(model, cfg);
    run.report_quantization(q);
    // The quantization step: weights, then one noise batch through the partly quantized model.
    const auto t0 = std::chrono::steady_clock::now();
    const quant::SquantWeightStats ws = quant::squant_weights(q, passes);
    Tensor noise = quant::squant_noise(noise_batch, cli.image_size(), uint64_t(cli.seed), dev,
                                       quant::parse_noise_kind(noise_kind));
    const quant::ClipStats cs = quant::squant_clip_activations(q, noise, sigma);
    const double quant_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("SQuant (%s): %d weight layers (%lld weights) in %.1f ms, %lld kernel + %lld channel flips; "
                "%d activation ranges from %lld %s noise images (k = %g) in %.1f ms; quantization %.1f ms\n",
                eff_mode.c_str(), ws.layers, (long long)ws.weights, ws.ms, (long long)ws.flips.kernel,
                (long long)ws.flips.channel, cs.ranges, noise_batch, noise_kind.c_str(), sigma, cs.ms, quant_ms);
    std::fflush(stdout);
    run.json().str("mode", eff_mode).num("sigma", sigma).str("noise", noise_kind).num("noise_batch", double(noise_batch));
    run.json().num("quant_ms", quant_ms).num("weight_ms", ws.ms).num("act_ms", cs.ms);
    run.json().num("kernel_flips", double(ws.flips.kernel)).num("channel_flips", double(ws.flips.channel));
    if (run.data()) run.evaluate_quantized(q);
    run.save(q);
    run.finish("SQuant W" + std::to_string(cfg.wbits) + "A" + std::to_string(cfg.abits));
  });
}
