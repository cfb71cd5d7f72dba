#!/usr/bin/env bash
# demo_quick.sh — `scripts/demo.sh --quick`: a first look in a few minutes on 2 cores. Installs the
# packages, builds the three programs it needs (CPU only unless a GPU is visible or --device cuda is
# passed: the CUDA sources alone take longer to compile than the whole quick look), trains resnet18
# on a fifth of Fashion-MNIST for one epoch, then quantizes it without data:
#   ZeroQ W4A4, SQuant W4A4 (no data, no back-propagation), and a ZeroQ mixed-precision point
#   (weights at 3 bits on average over {2,4,8} per layer, activations at 8, on ZeroQ's distilled batch),
# and prints one table of test top-1 and wall times. Everything lands in runs/demo_quick/
# (DFQ_DEMO_OUT overrides); the weights of the short training stay there, not in weights/.
# Extra flags go to every program (e.g. --device cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
now() { date +%s; }
t0=$(now)
scripts/setup.sh
cuda=OFF
if [[ " $* " == *" cuda "* || " $* " == *"--device=cuda"* ]] || { command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }; then
  cuda=ON
fi
B=build-quick
[ "$cuda" = ON ] && B=build
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DDFQ_CUDA=$cuda >/dev/null
cmake --build "$B" -j"$(nproc)" --target train_fp zeroq_main squant_main
OUT=${DFQ_DEMO_OUT:-runs/demo_quick}
rm -rf "$OUT"
mkdir -p "$OUT"
W=$OUT/resnet18_quick.bin

echo "== training resnet18 on 20,480 Fashion-MNIST images (1 epoch, batch 256, one-cycle lr 0.1)"
"$B"/train/train_fp -a resnet18 --dataset fashion-mnist --epochs 1 --batch_size 256 --lr 0.1 --train_images 20480 \
  --out "$W" --json "$OUT/train_fp.json" "$@"
echo "== ZeroQ 4/4"
"$B"/train/zeroq_main --weights "$W" --bits 4/4 --dataset fashion-mnist --out "$OUT/zeroq_w4a4" \
  --json "$OUT/zeroq_w4a4.json" "$@"
echo "== SQuant 4/4"
"$B"/train/squant_main --weights "$W" --bits 4/4 --dataset fashion-mnist --json "$OUT/squant_w4a4.json" "$@"
echo "== ZeroQ mixed precision: weights 3 bits on average (2/4/8 per layer), activations 8, same distilled batch"
"$B"/train/zeroq_main --weights "$W" --bits 8/8 --mp_avg_bits 3 --distilled "$OUT/zeroq_w4a4/distilled.npy" \
  --dataset fashion-mnist --out "$OUT/zeroq_mp3a8" --json "$OUT/zeroq_mp3a8.json" "$@"

scripts/demo_table.sh --quick "$OUT" trained $(( $(now) - t0 )) | tee "$OUT/table.txt"
