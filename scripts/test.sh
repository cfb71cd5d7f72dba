#!/usr/bin/env bash
# test.sh — install, configure, build and run the whole test suite (ctest). The CUDA backend is
# compiled when nvcc is present; on a machine without a GPU the CUDA suite prints one line and is
# skipped. Usage: scripts/test.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
scripts/setup.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure
