// pack_weights.cpp — tools/pack_weights: rewrites a quantized model file (zeroq_main / gdfq_main /
// squant_main --save) with every quantized weight of at most 8 bits stored as its integer codes
// (per-channel scales and zero points beside them; docs/weights_format.md, "Packed weights")
// instead of float32. The packed file evaluates to exactly the same logits.
// Rules: refuses a float model, an already packed file and a missing file with one message and
// exit 1 (2 for a bad flag); the output is written atomically (no half-written file on failure).
#include <cstdio>
#include <filesystem>

#include "engine/io/flags.h"
#include "engine/io/json_out.h"
#include "engine/io/weights.h"
#include "quant/qmodel.h"
#include "quant/weight_codes.h"

using namespace dfq;

static const char* kUsage =
    "usage: pack_weights IN.bin -o OUT.bin\n"
    "Stores the weights of a quantized model (written by zeroq_main / gdfq_main / squant_main --save)\n"
    "as integer codes: 5..8-bit codes one per byte, 1..4-bit codes two per byte, with a float32 scale\n"
    "and zero point per output channel; layers above 8 bits, BN, biases and ranges stay as they are.\n"
    "train/evaluate reads the packed file and gives exactly the same logits. Prints both file sizes.\n"
    "  -o FILE     the packed file (required; written atomically)\n";

int main(int argc, char** argv) {
  Flags flags(argc, argv, kUsage);
  const std::string out = flags.str("-o", "");
  const std::vector<std::string> inputs = flags.positional();
  flags.done();
  if (inputs.size() != 1) flags.fail("expected exactly one input file (a quantized model)");
  if (out.empty()) flags.fail("-o OUT.bin is required");
  const std::string& in = inputs[0];
  if (!std::filesystem::is_regular_file(in)) flags.fail(in + ": no such file");
  if (std::string p = output_file_problem(out); !p.empty()) flags.fail("-o " + out + ": " + p);
  try {
    if (!quant::is_quantized_file(in))
      throw std::runtime_error(in + " is a float model, not a quantized one (quantize it first: zeroq_main / "
                               "squant_main / gdfq_main --save, or --save FILE --packed directly)");
    if (quant::is_packed_file(in)) throw std::runtime_error(in + " is already packed (it holds integer weight codes)");
    auto q = quant::load_quantized(in, "", Device::CPU);
    q->save(out, /*packed=*/true);
    const quant::WeightStorage a = quant::weight_storage(WeightFile::open(in), q->model());
    const quant::WeightStorage b = quant::weight_storage(WeightFile::open(out), q->model());
    std::printf("quantized model: %s\n", q->config().str().c_str());
    std::printf("%s: %s\n", in.c_str(), a.str().c_str());
    std::printf("%s: %s\n", out.c_str(), b.str().c_str());
    std::printf("packed: %.2fx smaller (%llu -> %llu bytes)\n", double(a.file_bytes) / double(b.file_bytes),
                (unsigned long long)a.file_bytes, (unsigned long long)b.file_bytes);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "pack_weights: %s\n", ex.what());
    return 1;
  }
  return 0;
}
