// method_cli.h — the harness every method main (zeroq_main, gdfq_main, and the methods to come)
// is built on, so that what they share is written once:
//  - MethodCli declares the shared flags (model, data, bits and weight scheme, seed, outputs
//    (--packed: --save writes integer weight codes), device) and checks
//    every value before any work: numbers, enumerations, that --data is a folder, that the
//    weight file exists, and that --save / --json / --out can be written (a probe file is
//    created and removed), so a bad path fails in a second, not after the distillation;
//  - MethodRun opens the device and the evaluation data, loads the float model (labels checked
//    against its classifier), evaluates the float and the fake-quantized model (weights cached,
//    non-finite logit rows counted as wrong and reported), saves, prints the report and writes
//    the JSON (method, bits, seed, fp / q top-1 and top-5, non-finite rows, seconds, BLAS);
//  - run_method_main wraps the body: one message "prog: ..." and exit 1 on an error, exit 3 when a
//    training loop diverged (engine/diverged.h).
// A method main reads its own flags beside these, calls validate(), then runs its step between
// load_model() and evaluate_quantized().
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/io/dataset.h"
#include "engine/io/flags.h"
#include "engine/io/json_out.h"
#include "models/eval.h"
#include "quant/qmodel.h"

namespace dfq::quant {

struct MethodCli {
  // Declares the shared flags on `flags`; default_bits / default_round are the method's --bits and
  // --weight_round defaults.
  MethodCli(Flags& flags, std::string method, const std::string& default_bits,
            const std::string& default_round = "nearest");
  // After flags.done(): checks every shared value and output path; a bad one ends the program
  // through flags.fail (exit 2) before anything is loaded. Fills cfg from the bit flags.
  void validate(const Flags& flags);

  bool has_data() const { return !dataset.empty() || !data.empty(); }
  // The generated / distilled image size: --img_size, else 32 for fashion-mnist, else 224.
  int image_size() const;
  std::string bits_str() const;  // "4/4"
  // "fashion-mnist", "--data DIR", "--data DIR --labels FILE" (the evaluation data, in messages).
  std::string data_str() const;

  std::string method;  // "ZeroQ", "GDFQ"
  std::string arch, weights, dataset, data, labels, save, out, json, device;
  bool packed = false;  // --packed: --save writes integer weight codes (docs/weights_format.md)
  // --int8: every evaluation of the quantized model (ranges frozen) also runs in integers on the CPU
  // (quant/int8_graph.h) and prints both, with the argmax agreement; the JSON gains int8_top1,
  // int8_agreement, int8_speedup, int8_layers (of the last one). The method's q_top1 stays the
  // fake-quant model's.
  bool int8 = false;
  long long seed = 0, img_size = 0, eval_batch = 256;
  BitFlags bit_flags;
  QuantConfig cfg;  // valid after validate()
};

class MethodRun {
 public:
  // Starts the clock, opens the device and the evaluation data (if any).
  explicit MethodRun(const MethodCli& cli);
  Device device() const { return dev_; }
  Dataset* data() { return ds_.get(); }
  // The float model of --weights on the device, in eval mode; the labels are checked against it.
  std::shared_ptr<models::Model> load_model();
  // Float / quantized evaluation on the data (requires data); each prints one line.
  models::EvalResult evaluate_float(models::Model& model);
  models::EvalResult evaluate_quantized(QuantizedModel& q, const std::string& label = "quantized model");
  // "top-1 91.44 %  top-5 99.95 %  (10000 images)" (+ ", N non-finite, counted as wrong").
  static std::string result_str(const models::EvalResult& r);
  double seconds() const;
  // The JSON report, pre-filled with method, arch, bits, seed, fp_* (once evaluate_float ran);
  // finish() adds q_* (of the last evaluate_quantized unless the method set them), seconds.
  JsonReport& json() { return json_; }
  // Saves q to --save (if given; packed with --packed) and prints where; call at the end.
  // Prints q.coverage_report() and records the counts in the JSON (quantized_convs,
  // quantized_linears, act_sites, float_convs_linears).
  void report_quantization(const QuantizedModel& q);
  void save(const QuantizedModel& q);
  // Prints the closing lines (float, quantized, wall time) and writes --json.
  void finish(const std::string& quantized_label);
  // Adds the BLAS line and writes --json (if given): for a method that prints its own report.
  void write_json();

 private:
  const MethodCli& cli_;
  std::chrono::steady_clock::time_point t0_;
  Device dev_ = Device::CPU;
  std::unique_ptr<Dataset> ds_;
  JsonReport json_;
  bool have_fp_ = false, have_q_ = false;
  models::EvalResult fp_, q_;
};

// Runs body; an exception prints "prog: message" and returns 1 (3 for a diverged training loop).
int run_method_main(const std::string& prog, const std::function<void()>& body);

// Call first in main: when the environment does not set OMP_WAIT_POLICY, runs the program again
// (execv of /proc/self/exe, same arguments) with OMP_WAIT_POLICY=passive. OpenMP reads it once, at
// start-up, before main. On the shared 2-core machine, threads that spin at every barrier while
// other processes hold the cores made squant_main's quantization step 2-3 s instead of 0.5-0.9 s and
// its run 35-60 s instead of 9-15 s (load 5, results identical: no thread count or wait policy
// changes a result). If the exec fails the program goes on as it is.
void prefer_passive_omp_wait(char** argv);

// The options of a run that change what it computes, as (flag, value) pairs, written into a
// checkpoint and compared on --resume.
using RunOptions = std::vector<std::pair<std::string, std::string>>;
std::string encode_options(const RunOptions& o);
RunOptions decode_options(const std::string& text);
// Throws naming the first option whose value differs (both values), or that is missing.
void require_same_options(const RunOptions& recorded, const RunOptions& current, const std::string& checkpoint);

}  // namespace dfq::quant
