// main.cpp — the doctest runner of the one test binary. GPU cases live in the test suite "cuda";
// without a usable GPU they are excluded and exactly one line says so.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "engine/device.h"

int main(int argc, char** argv) {
  doctest::Context ctx;
  bool gpu = dfq::cuda::available();
  if (!gpu) {
    ctx.addFilter("test-suite-exclude", "cuda");
    std::printf("[dfq] CUDA test suite skipped: no usable GPU (%s)\n", dfq::cuda::describe().c_str());
  } else {
    std::printf("[dfq] CUDA test suite enabled: %s\n", dfq::cuda::describe().c_str());
  }
  std::fflush(stdout);
  ctx.applyCommandLine(argc, argv);
  return ctx.run();
}
