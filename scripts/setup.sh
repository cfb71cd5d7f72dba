#!/usr/bin/env bash
# setup.sh — installs everything dfq needs from Debian's packages (run as root on a fresh
# machine; sudo is used when not root). libdnnl-dev (oneDNN) runs int8 inference (evaluate --int8). python3-venv serves the ONNX check's virtualenv (scripts/check_onnx.sh). The CUDA toolkit (nvcc, cuBLAS, cuDNN 9) is optional:
# CMake builds the CUDA backend when it finds it under /usr/local/cuda. clang, its sanitizer runtimes
# (libclang-rt-14-dev) and its OpenMP runtime (libomp-dev) serve the sanitizer build.
set -euo pipefail
pkgs=(build-essential cmake libopenblas-openmp-dev libopenblas-dev doctest-dev libstb-dev zlib1g-dev dataset-fashion-mnist clang libclang-rt-14-dev libomp-dev python3 python3-venv libdnnl-dev)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update
  $SUDO apt-get install -y "${missing[@]}"
fi
echo "setup: dependencies present"
