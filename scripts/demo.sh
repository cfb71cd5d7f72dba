#!/usr/bin/env bash
# demo.sh — README's main command. On a fresh machine: installs (Debian packages), builds, trains
# resnet18 on the real Fashion-MNIST with the engine (or reuses weights/resnet18_fmnist.bin when it
# is there), then quantizes it data-free with ZeroQ and GDFQ at 4/4 and 3/3 bits and prints one
# table of test top-1 and wall times. Everything lands in runs/demo/ (DFQ_DEMO_OUT overrides).
# Extra flags go to every program (e.g. --device cuda). --quick (first): the few-minute first look
# of scripts/demo_quick.sh instead.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --quick ]; then shift; exec scripts/demo_quick.sh "$@"; fi
now() { date +%s; }
t0=$(now)  # the table's total counts the set-up and the build too
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)" --target train_fp zeroq_main gdfq_main
OUT=${DFQ_DEMO_OUT:-runs/demo}
W=weights/resnet18_fmnist.bin
mkdir -p "$OUT"

if [ -f "$W" ]; then
  echo "== reusing $W (delete it to train again)"
  fp=reused
else
  echo "== training resnet18 on Fashion-MNIST (5 epochs, batch 256, one-cycle lr 0.2)"
  build/train/train_fp -a resnet18 --dataset fashion-mnist --epochs 5 --batch_size 256 --lr 0.2 --eval_every 5 \
    --out "$W" --json "$OUT/train_fp.json" "$@"
  fp=trained
fi

# ZeroQ distils its images once (4/4 run); 3/3 calibrates on the same batch (--distilled): the
# distillation does not depend on the bits, so this is the result a fresh 3/3 run with seed 0 gives.
for bits in 4/4 3/3; do
  tag=w${bits%/*}a${bits#*/}
  echo "== ZeroQ $bits"
  reuse=()
  [ "$tag" = w3a3 ] && reuse=(--distilled "$OUT/zeroq_w4a4/distilled.npy")
  build/train/zeroq_main -a resnet18 --weights "$W" --bits "$bits" --dataset fashion-mnist "${reuse[@]}" \
    --out "$OUT/zeroq_$tag" --save "$OUT/zeroq_$tag/quantized.bin" --json "$OUT/zeroq_$tag.json" "$@"
done
for bits in 4/4 3/3; do
  tag=w${bits%/*}a${bits#*/}
  echo "== GDFQ $bits (short CPU schedule: 20 epochs x 50 iterations, batch 64, warm-up 4, Q lr 1e-4)"
  rm -rf "$OUT/gdfq_$tag"
  build/train/gdfq_main -a resnet18 --weights "$W" --bits "$bits" --dataset fashion-mnist --n_epochs 20 --n_iter 50 \
    --batch_size 64 --warmup_epochs 4 --q_lr 1e-4 --eval_every 4 --out "$OUT/gdfq_$tag" --json "$OUT/gdfq_$tag.json" "$@"
done

scripts/demo_table.sh "$OUT" "$fp" $(( $(now) - t0 )) | tee "$OUT/table.txt"
