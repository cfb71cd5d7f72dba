// method_cli.cpp — see method_cli.h.
#include "quant/method_cli.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "engine/blas_info.h"
#include "engine/diverged.h"
#include "engine/io/progress.h"
#include "engine/io/weights.h"
#include "engine/kernels/cpu/onednn.h"
#include "quant/int8_graph.h"

namespace dfq::quant {

namespace fs = std::filesystem;

MethodCli::MethodCli(Flags& flags, std::string method_name, const std::string& default_bits,
                     const std::string& default_round)
    : method(std::move(method_name)), bit_flags(flags, default_bits, default_round) {
  arch = flags.str("-a", flags.str("--arch", ""));
  weights = flags.str("--weights", "");
  dataset = flags.str("--dataset", "");
  data = flags.str("--data", "");
  labels = flags.str("--labels", "");
  eval_batch = flags.integer("--eval_batch", 256);
  img_size = flags.integer("--img_size", 0);
  seed = flags.integer64("--seed", 0);
  save = flags.str("--save", "");
  out = flags.str("--out", "");
  json = flags.str("--json", "");
  device = flags.choice("--device", "cpu", {"cpu", "cuda"});
  packed = flags.boolean("--packed");
  int8 = flags.boolean("--int8");
}

void MethodCli::validate(const Flags& flags) {
  cfg = bit_flags.config(flags);
  if (weights.empty()) {
    if (arch.empty()) arch = "resnet18";
    weights = "weights/" + arch + ".bin";
  }
  if (!fs::is_regular_file(weights)) flags.fail("--weights " + weights + ": no such file (convert a .pth with tools/convert_weights)");
  if (arch.empty()) {  // the flat file records its network: no -a needed
    try {
      arch = WeightFile::open(weights).arch();
    } catch (const std::exception& ex) {
      flags.fail("--weights " + weights + ": " + ex.what());
    }
  }
  if (packed && save.empty()) flags.fail("--packed needs --save FILE (it says how --save writes the weights)");
  if (!dataset.empty() && !data.empty()) flags.fail("give either --dataset or --data, not both");
  if (!dataset.empty() && dataset != "fashion-mnist") flags.fail("unknown --dataset '" + dataset + "' (known: fashion-mnist)");
  if (!data.empty() && !fs::is_directory(data)) flags.fail("--data " + data + ": not a folder");
  if (!labels.empty() && data.empty()) flags.fail("--labels needs --data (a flat folder of images)");
  if (!labels.empty() && !fs::is_regular_file(labels)) flags.fail("--labels " + labels + ": no such file");
  if (eval_batch < 1) flags.fail("--eval_batch must be >= 1");
  if (int8 && device != "cpu") flags.fail("--int8 runs on the CPU (oneDNN): drop --device " + device);
  if (int8 && !has_data()) flags.fail("--int8 evaluates the quantized model in integers: it needs --dataset or --data");
  if (int8 && !onednn::available()) flags.fail(onednn::missing_message());
  if (seed < 0) flags.fail("--seed must be >= 0");
  if (img_size != 0 && (img_size < 8 || img_size % 4)) flags.fail("--img_size must be a multiple of 4, >= 8");
  for (const auto& [flag, path] : {std::pair<std::string, std::string>{"--save", save}, {"--json", json}})
    if (!path.empty())
      if (std::string p = output_file_problem(path); !p.empty()) flags.fail(flag + " " + path + ": " + p);
  if (!out.empty())
    if (std::string p = output_dir_problem(out); !p.empty()) flags.fail("--out " + out + ": " + p);
}

int MethodCli::image_size() const { return int(img_size ? img_size : (dataset == "fashion-mnist" ? 32 : 224)); }
std::string MethodCli::bits_str() const { return std::to_string(cfg.wbits) + "/" + std::to_string(cfg.abits); }
std::string MethodCli::data_str() const {
  if (!dataset.empty()) return dataset;
  return "--data " + data + (labels.empty() ? "" : " --labels " + labels);
}

// ---- the run ---------------------------------------------------------------------------------------
MethodRun::MethodRun(const MethodCli& cli) : cli_(cli), t0_(std::chrono::steady_clock::now()) {
  dev_ = models::parse_device(cli.device);
  if (cli.has_data()) ds_ = models::open_dataset(cli.dataset, cli.data, cli.labels);
  // The BLAS kernel family decides the last bits of every CPU convolution, and low-bit results can
  // follow those bits (README "Reproducibility"): the user is told which one runs.
  if (dev_ == Device::CPU) std::printf("CPU BLAS: %s\n", blas_description().c_str());
  json_.str("method", cli.method).str("arch", cli.arch).str("bits", cli.bits_str()).num("seed", double(cli.seed));
  json_.str("weight_scheme", weight_scheme_name(cli.cfg.weight_scheme));
}

std::shared_ptr<models::Model> MethodRun::load_model() {
  auto model = models::load_model(cli_.weights, cli_.arch, dev_);
  if (ds_) models::check_labels(*ds_, *model, cli_.data_str());
  return model;
}

std::string MethodRun::result_str(const models::EvalResult& r) {
  char b[160];
  std::snprintf(b, sizeof b, "top-1 %.2f %%  top-5 %.2f %%  (%lld images", r.top1(), r.top5(), (long long)r.images);
  std::string s = b;
  if (r.nonfinite) s += ", " + std::to_string(r.nonfinite) + " with non-finite logits, counted as wrong";
  return s + ")";
}

models::EvalResult MethodRun::evaluate_float(models::Model& model) {
  if (!ds_) throw std::logic_error("evaluate_float without data");
  fp_ = models::evaluate(model, *ds_, dev_, cli_.eval_batch, "float model");
  have_fp_ = true;
  std::printf("float model:     %s\n", result_str(fp_).c_str());
  std::fflush(stdout);
  return fp_;
}

models::EvalResult MethodRun::evaluate_quantized(QuantizedModel& q, const std::string& label) {
  if (!ds_) throw std::logic_error("evaluate_quantized without data");
  bool frozen = true;
  for (ActQuantizer& a : q.acts()) frozen = frozen && !a.observing();
  {
    auto cached = q.cache_weights();  // each weight quantized once, not once per batch
    std::vector<int64_t> fake_pred, int8_pred;
    const bool int8 = cli_.int8 && frozen;
    q_ = models::evaluate(q.model(), *ds_, dev_, cli_.eval_batch, label, int8 ? &fake_pred : nullptr);
    if (cli_.int8 && !frozen) std::printf("--int8: %s not run in integers (its ranges are still observing)\n", label.c_str());
    if (int8) {
      std::string report;
      int64_t layers = 0;
      const models::EvalResult r = evaluate_int8(q, *ds_, cli_.eval_batch, "int8 " + label, &int8_pred, &report, &layers);
      const double agree = models::prediction_agreement(fake_pred, int8_pred), speedup = q_.seconds / r.seconds;
      std::printf("%s\nint8 %s: %s; against fake-quant: top-1 %+.2f, argmax agreement %.2f %%, %.2fx the speed\n",
                  report.c_str(), label.c_str(), result_str(r).c_str(), r.top1() - q_.top1(), 100.0 * agree, speedup);
      json_.num("int8_top1", r.top1()).num("int8_agreement", 100.0 * agree).num("int8_speedup", speedup);
      json_.num("int8_layers", double(layers));
    }
  }
  have_q_ = true;
  return q_;
}

double MethodRun::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

void MethodRun::report_quantization(const QuantizedModel& q) {
  const QuantizedModel::Coverage c = q.coverage();
  std::printf("%s\n", q.coverage_report().c_str());
  json_.num("quantized_convs", c.convs).num("quantized_linears", c.linears).num("act_sites", c.sites);
  json_.num("float_convs_linears", double(c.float_layers.size()));
}

void MethodRun::save(const QuantizedModel& q) {
  if (cli_.save.empty()) return;
  q.save(cli_.save, cli_.packed);
  std::printf("quantized model saved to %s%s\n", cli_.save.c_str(), cli_.packed ? " (packed: integer weight codes)" : "");
}

void MethodRun::finish(const std::string& quantized_label) {
  const double secs = seconds();
  if (have_fp_) {
    std::printf("float model:     %s\n", result_str(fp_).c_str());
    json_.num("fp_top1", fp_.top1()).num("fp_top5", fp_.top5());
  }
  if (have_q_) {
    std::printf("%s: %s\n", quantized_label.c_str(), result_str(q_).c_str());
    json_.num("q_top1", q_.top1()).num("q_top5", q_.top5()).num("q_nonfinite", double(q_.nonfinite));
  }
  if (!have_fp_ && !have_q_) std::printf("no --dataset / --data given: nothing was evaluated\n");
  std::printf("wall time %s\n", format_duration(secs).c_str());
  json_.num("seconds", secs);
  write_json();
}

void MethodRun::write_json() {
  json_.str("blas", blas_description());
  if (!cli_.json.empty()) json_.write(cli_.json);
}

int run_method_main(const std::string& prog, const std::function<void()>& body) {
  try {
    body();
  } catch (const Diverged& ex) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: %s\n", prog.c_str(), ex.what());
    return 3;
  } catch (const std::exception& ex) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: %s\n", prog.c_str(), ex.what());
    return 1;
  }
  return 0;
}

void prefer_passive_omp_wait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  if (::setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
  ::execv("/proc/self/exe", argv);
  // exec failed: go on (OpenMP already read its environment; only the speed under load differs)
}

// ---- run options (resume) --------------------------------------------------------------------------
std::string encode_options(const RunOptions& o) {
  std::string s;
  for (const auto& [k, v] : o) {
    if (k.find_first_of("=\n") != std::string::npos || v.find('\n') != std::string::npos)
      throw std::invalid_argument("run option " + k + ": no '=' in names, no newline in values");
    s += k + "=" + v + "\n";
  }
  return s;
}

RunOptions decode_options(const std::string& text) {
  RunOptions o;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const size_t eq = line.find('=');
    if (eq == std::string::npos) throw std::runtime_error("malformed run options line '" + line + "'");
    o.push_back({line.substr(0, eq), line.substr(eq + 1)});
  }
  return o;
}

void require_same_options(const RunOptions& recorded, const RunOptions& current, const std::string& checkpoint) {
  for (const auto& [k, v] : current) {
    const std::string* was = nullptr;
    for (const auto& [rk, rv] : recorded)
      if (rk == k) was = &rv;
    if (!was)
      throw std::runtime_error("--resume: " + checkpoint + " does not record " + k + " (made by another dfq version); "
                               "it cannot be continued safely");
    if (*was != v)
      throw std::runtime_error("--resume: " + checkpoint + " was made with " + k + " " + *was + ", this run has " + k + " " +
                               v + "; a resumed run must compute the same thing (start a new --out instead)");
  }
}

}  // namespace dfq::quant
