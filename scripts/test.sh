#!/usr/bin/env bash
# test.sh — install, configure, build and run the whole test suite (ctest). The CUDA backend is
# compiled when nvcc is present; on a machine without a GPU the CUDA suite prints one line and is
# skipped. Then the sanitizer step: the CPU build again with clang++, ASan and UBSan (DFQ_SANITIZE)
# in BUILD_DIR-asan, only dfq_tests and the programs it runs, and the suite once more under it; any
# sanitizer report fails (tests/sanitizer/run.sh). DFQ_SANITIZE_STEP=0 skips that step. Between the
# two, the ONNX consumer check (scripts/check_onnx.sh: a virtualenv with onnx and onnxruntime from
# PyPI, every export profile under ONNX Runtime on both Fashion-MNIST models); DFQ_ONNX_CHECK=0 skips it.
# Usage: scripts/test.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
scripts/setup.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure
if [ "${DFQ_ONNX_CHECK:-1}" != 0 ]; then
  bash scripts/check_onnx.sh "$build"
fi
if [ "${DFQ_SANITIZE_STEP:-1}" != 0 ]; then
  asan="$build-asan"
  cmake -S . -B "$asan" -DCMAKE_BUILD_TYPE=Release -DDFQ_SANITIZE=ON -DDFQ_CUDA=OFF \
    -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang
  cmake --build "$asan" -j"$(nproc)" --target dfq_tests
  ctest --test-dir "$asan" --output-on-failure
fi
