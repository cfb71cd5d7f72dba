// fuzz_pth.cpp — libFuzzer target for the checkpoint reader (engine/io/pth.h, pickle.h, zip.h):
// any input must either parse or throw std::runtime_error; never crash, hang, leak or allocate
// without bound. Tensors of parsed inputs are converted too (up to 1 MiB each).
// Built by CMake with clang++ -fsanitize=fuzzer,address,undefined; run: see docs/weights_format.md.
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "engine/io/pth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    dfq::PthCheckpoint ck = dfq::read_pth(dfq::Bytes{data, size, nullptr}, "fuzz");
    std::vector<uint8_t> buf;
    for (const dfq::PthTensor& t : ck.tensors) {
      if (t.nbytes() > (1u << 20)) continue;
      buf.resize(t.nbytes());
      t.read_into(buf.data());
    }
  } catch (const std::runtime_error&) {
  }
  return 0;
}
