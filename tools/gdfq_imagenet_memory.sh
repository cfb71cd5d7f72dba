#!/usr/bin/env bash
# gdfq_imagenet_memory.sh — GDFQ in the ImageNet setting on the CPU: the 224 px generator
# (128*56*56 fc, 1000-class conditional BN) against a 1000-class teacher, a warm-up epoch and a Q
# epoch of a few iterations, at the given batch sizes; prints the peak resident memory (GNU time)
# and the wall time per iteration. A dev measurement (its figures go in closing notes / README),
# not a test: the weights are torchvision's random init, written by PyTorch (python3-torch), since
# no 1000-class checkpoint is on these machines.
# Usage: tools/gdfq_imagenet_memory.sh [BUILD_DIR] [ARCH ...]   (default: build resnet18 mobilenet_v2)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
archs=${*:-resnet18 mobilenet_v2}
iters=${ITERS:-2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for arch in $archs; do
  /usr/bin/python3 -c "import torch, torchvision; torch.manual_seed(0); torch.save(getattr(torchvision.models, '$arch')().state_dict(), '$tmp/$arch.pth')"
  "$build/tools/convert_weights" "$tmp/$arch.pth" -o "$tmp/$arch.bin" >/dev/null
  for b in ${BATCHES:-16 32}; do
    start=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$tmp/rss" "$build/train/gdfq_main" --weights "$tmp/$arch.bin" --img_size 224 \
      --batch_size "$b" --n_epochs 2 --n_iter "$iters" --warmup_epochs 1 --out "$tmp/run_${arch}_${b}" >"$tmp/log" 2>&1 ||
      { tail -5 "$tmp/log"; exit 1; }
    end=$(date +%s.%N)
    printf "%-14s batch %3d: peak RSS %6.2f GiB, %.1f s for %d iterations (2 epochs, incl. start-up)\n" "$arch" "$b" \
      "$(awk '{print $1 / 1048576}' "$tmp/rss")" "$(echo "$end - $start" | bc)" "$((2 * iters))"
  done
done
