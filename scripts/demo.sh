#!/usr/bin/env bash
# demo.sh — README's main command: install, build, then run the embedded demo (a small CNN
# trained one epoch on Fashion-MNIST by the engine, printing its test top-1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)" --target demo_fmnist
build/train/demo_fmnist "$@"
