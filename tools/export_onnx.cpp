// export_onnx.cpp — tools/export_onnx: a quantized dfq model (zeroq_main / gdfq_main / squant_main
// --save) as an ONNX QDQ model (quant/onnx_export.h, docs/onnx_export.md).
#include <cstdio>
#include <algorithm>
#include <filesystem>

#include "engine/io/flags.h"
#include "engine/io/json_out.h"
#include "engine/io/npy.h"
#include "models/eval.h"
#include "quant/method_cli.h"
#include "quant/onnx_export.h"

using namespace dfq;

static const char* kUsage =
    "usage: export_onnx Q.bin -o MODEL.onnx [--profile faithful|ort|trt|float] [--calib FILE.npy | --calib noise]\n"
    "                   [--img_size N] [--seed N] [--dataset fashion-mnist | --data DIR [--labels FILE]]\n"
    "                   [--input_range R] [--score] [--dump DIR [--dump_images N]] [--json PATH] [--verbose]\n"
    "Writes a quantized dfq model as an ONNX QDQ graph (opset 13).\n"
    "  -o FILE            the .onnx file to write (written atomically)\n"
    "  --profile P        faithful (default): dfq's fake-quantized graph exactly (Q/DQ where dfq quantizes,\n"
    "                     asymmetric weights allowed, float elsewhere); ort: what ONNX Runtime runs in int8\n"
    "                     (symmetric int8 weights with BN folded, int32 biases, uint8 activations, every conv\n"
    "                     and linear between DequantizeLinear and QuantizeLinear); trt: as ort with int8\n"
    "                     activations at zero point 0 (TensorRT's rule); float: the same network unquantized\n"
    "                     (the float32 baseline for speed)\n"
    "  --calib SRC        ort / trt: the images that calibrate the quantizers they add (the image input, conv\n"
    "                     outputs entering residual adds, the pooled classifier input): a .npy (N,3,H,W)\n"
    "                     batch (zeroq_main --out writes distilled.npy), or 'noise' (256 images N(0, 1))\n"
    "  --input_range R    ort / trt: the image quantizer's range from the preprocessing instead of --calib:\n"
    "                     fashion-mnist, imagenet (torchvision's normalisation) or LO,HI. Distilled images span\n"
    "                     a far wider range than real ones, which costs the input most of its codes\n"
    "  --img_size N       the size of the --calib noise images (default 224; the graph takes any size)\n"
    "  --seed N           the noise of --calib noise (default 0)\n"
    "  --dataset NAME     evaluation data for --score / --dump: fashion-mnist (the 10,000 test images)\n"
    "  --data DIR         ... or an ImageNet-style folder (--labels FILE for a flat one)\n"
    "  --score            score the dfq model and the exported graph (run by dfq's ONNX interpreter) on the data\n"
    "  --dump DIR         write DIR/images.npy (the data, preprocessed as dfq feeds it), labels.npy and\n"
    "                     dfq_logits.npy (the dfq model's logits): what tools/check_onnx.py compares a runtime with\n"
    "  --dump_images N    the first N images only (default: all)\n"
    "  --json PATH        write {profile, nodes, int_convs, int_gemms, bytes, [dfq_top1, graph_top1]}\n"
    "  --verbose          print the notes and sizes in full\n";

int main(int argc, char** argv) {
  Flags flags(argc, argv, kUsage);
  const std::string out = flags.str("-o", "");
  const std::string profile_s = flags.choice("--profile", "faithful", {"faithful", "ort", "trt", "float"});
  const std::string calib = flags.str("--calib", "");
  const std::string input_range = flags.str("--input_range", "");
  const long long img_size = flags.integer("--img_size", 0), seed = flags.integer64("--seed", 0);
  const std::string dataset = flags.str("--dataset", ""), data = flags.str("--data", ""), labels = flags.str("--labels", "");
  const std::string json = flags.str("--json", "");
  const bool score = flags.boolean("--score");
  const std::string dump = flags.str("--dump", "");
  const long long dump_images = flags.integer("--dump_images", 0);
  const bool verbose = flags.boolean("--verbose");
  const std::vector<std::string> pos = flags.positional();
  flags.done();
  if (pos.size() != 1) flags.fail("give exactly one quantized model file (Q.bin)");
  const std::string in = pos[0];
  if (!std::filesystem::is_regular_file(in)) flags.fail(in + ": no such file");
  if (out.empty()) flags.fail("-o MODEL.onnx is required");
  if (std::string p = output_file_problem(out); !p.empty()) flags.fail("-o " + out + ": " + p);
  if (!json.empty())
    if (std::string p = output_file_problem(json); !p.empty()) flags.fail("--json " + json + ": " + p);
  const quant::OnnxProfile profile = quant::parse_onnx_profile(profile_s);
  const bool needs_calib = profile == quant::OnnxProfile::Ort || profile == quant::OnnxProfile::Trt;
  if (needs_calib && calib.empty())
    flags.fail("--profile " + profile_s + " needs --calib FILE.npy or --calib noise (it calibrates the quantizers it adds)");
  if (!needs_calib && !calib.empty()) flags.fail("--calib is for the ort / trt profiles (" + profile_s + " adds no quantizer)");
  if ((score || !dump.empty()) && dataset.empty() && data.empty()) flags.fail("--score / --dump need --dataset or --data");
  if (!dump.empty() && !std::filesystem::is_directory(dump)) flags.fail("--dump " + dump + ": no such folder");
  if (dump_images < 0) flags.fail("--dump_images must be >= 0");
  if (!calib.empty() && calib != "noise" && !std::filesystem::is_regular_file(calib)) flags.fail("--calib " + calib + ": no such file");
  if (img_size < 0) flags.fail("--img_size must be positive");
  std::pair<float, float> range{0.f, 0.f};
  if (!input_range.empty()) {
    if (!needs_calib) flags.fail("--input_range is for the ort / trt profiles");
    try {
      range = quant::parse_input_range(input_range);
    } catch (const std::exception& ex) {
      flags.fail(std::string("--input_range: ") + ex.what());
    }
  }
  if (img_size && calib != "noise") flags.fail("--img_size is the size of the --calib noise images");
  return quant::run_method_main("export_onnx", [&] {
    if (!quant::is_quantized_file(in))
      throw std::runtime_error(in + " is a float model, not a quantized one (quantize it with zeroq_main, gdfq_main or "
                                    "squant_main --save)");
    auto q = quant::load_quantized(in, "", Device::CPU);
    std::printf("%s: %s, %s\n", in.c_str(), q->model().arch.c_str(), q->config().str().c_str());
    quant::OnnxExportOptions o;
    o.profile = profile;
    o.input_range = range;
    if (!calib.empty()) {
      if (calib == "noise") {
        Generator gen(static_cast<uint64_t>(seed));
        const int64_t s = img_size ? img_size : 224;
        o.calib = randn({256, 3, s, s}, gen);
      } else {
        o.calib = load_npy(calib);
        if (o.calib.dtype() != DType::F32 || o.calib.dim() != 4 || o.calib.size(1) != 3 || o.calib.size(0) < 1 ||
            o.calib.size(2) != o.calib.size(3))
          throw std::runtime_error("--calib " + calib + ": expected float images (N,3,H,H), got " + o.calib.str());
      }
    }
    quant::OnnxExport e = quant::export_onnx(*q, o);
    e.model.producer_version = "dfq export_onnx " + std::string(quant::onnx_profile_name(profile));
    e.model.doc = "dfq " + q->model().arch + " " + q->config().str() + ", profile " + quant::onnx_profile_name(profile);
    const std::vector<uint8_t> bytes = onnx::serialize(e.model);
    std::printf("profile %s: %zu nodes, %zu initializers; %d convs and %d linears with int8 weights and inputs%s\n",
                profile_s.c_str(), e.model.nodes.size(), e.model.initializers.size(), e.int_convs, e.int_gemms,
                e.float_layers ? (", " + std::to_string(e.float_layers) + " float layers").c_str() : "");
    for (const auto& n : e.notes) std::printf("note: %s\n", n.c_str());
    JsonReport report;
    report.str("profile", profile_s).num("nodes", double(e.model.nodes.size())).num("int_convs", e.int_convs)
        .num("int_gemms", e.int_gemms).num("added_quantizers", e.added_quantizers).num("bytes", double(bytes.size()));
    std::unique_ptr<Dataset> ds;  // the evaluation data of --score and --dump, opened once
    if (score || !dump.empty()) {
      ds = models::open_dataset(dataset, data, labels);
      models::check_labels(*ds, q->model(), data.empty() ? dataset : "--data " + data);
    }
    if (score) {
      models::EvalResult rq;
      {
        auto cached = q->cache_weights();
        rq = models::evaluate(q->model(), *ds, Device::CPU, 256, "dfq model");
      }
      auto gm = quant::onnx_graph_model(e.model, q->model().arch, q->model().num_classes);
      const models::EvalResult rg = models::evaluate(*gm, *ds, Device::CPU, 256, "ONNX graph");
      std::printf("dfq model   %s\nONNX graph  %s (dfq's interpreter)\n", quant::MethodRun::result_str(rq).c_str(),
                  quant::MethodRun::result_str(rg).c_str());
      report.num("dfq_top1", rq.top1()).num("graph_top1", rg.top1());
    }
    if (!dump.empty()) {
      const int64_t n = dump_images ? std::min<int64_t>(dump_images, ds->size()) : ds->size();
      const Shape item = ds->item_shape();
      Shape shape = {n};
      shape.insert(shape.end(), item.begin(), item.end());
      Tensor images = Tensor::empty(shape);
      std::vector<int64_t> lab(static_cast<size_t>(n));
      const int64_t per = images.numel() / std::max<int64_t>(n, 1);
      for (int64_t i = 0; i < n; ++i) lab[size_t(i)] = ds->get(i, images.data<float>() + i * per);
      Tensor logits = Tensor::empty({n, q->model().num_classes});
      {
        NoGradGuard ng;
        auto cached = q->cache_weights();
        for (int64_t i = 0; i < n; i += 256) {
          const int64_t b = std::min<int64_t>(256, n - i);
          logits.narrow(i, b).copy_(q->forward(images.narrow(i, b)));
        }
      }
      save_npy(dump + "/images.npy", images);
      save_npy(dump + "/labels.npy", Tensor::from_vector_i64(lab, {n}));
      save_npy(dump + "/dfq_logits.npy", logits);
      std::printf("wrote %s/{images,labels,dfq_logits}.npy (%lld images)\n", dump.c_str(), (long long)n);
    }
    onnx::write_model(out, e.model);
    std::printf("wrote %s (%.2f MB)\n", out.c_str(), double(bytes.size()) / 1e6);
    if (verbose)
      std::printf("input 'input': (N, 3, H, W) float32, normalised as the model's training images; output 'logits' (N, %d)\n",
                  q->model().num_classes);
    if (!json.empty()) report.write(json);
  });
}
