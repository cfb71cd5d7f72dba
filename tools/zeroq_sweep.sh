#!/usr/bin/env bash
# zeroq_sweep.sh — ZeroQ on a real Fashion-MNIST model (MODEL=resnet18, the default, or
# MODEL=mobilenet_v2: ../shared/golden/pth/fmnist_$MODEL.pth) at several bit-widths (BITS, which must
# include 4/4) and seeds; prints
# one table (mean over the seeds) and keeps every run's JSON and log under OUTDIR.
# Per seed the batch is distilled once (the 4/4 run, timed as a user would run it) and reused by the
# other bit-widths through --distilled (distillation does not depend on the bits).
# usage: tools/zeroq_sweep.sh [OUTDIR] [SEEDS...]      (default /tmp/zeroq_sweep, seeds 0 1 2)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/zeroq_sweep}; shift || true
SEEDS=${*:-0 1 2}
BIN=${BIN:-build/train/zeroq_main}
MODEL=${MODEL:-resnet18}
W=weights/fmnist_$MODEL.bin
[ -f "$W" ] || build/tools/convert_weights ../shared/golden/pth/fmnist_$MODEL.pth -o "$W"
mkdir -p "$OUT"
BITS=${BITS:-"8/8 4/8 4/4 3/3 2/4 4/2"}
for s in $SEEDS; do
  echo "== seed $s: 4/4 with distillation"
  $BIN -a "$MODEL" --weights $W --bits 4/4 --seed "$s" --dataset fashion-mnist --out "$OUT/seed$s" \
    --json "$OUT/s${s}_4-4.json" > "$OUT/s${s}_4-4.log" 2>&1
  tail -3 "$OUT/s${s}_4-4.log"
  for b in $BITS; do
    [ "$b" = 4/4 ] && continue
    tag=${b/\//-}
    $BIN -a "$MODEL" --weights $W --bits "$b" --seed "$s" --dataset fashion-mnist --distilled "$OUT/seed$s/distilled.npy" \
      --json "$OUT/s${s}_$tag.json" > "$OUT/s${s}_$tag.log" 2>&1
    echo "seed $s W${b%/*}A${b#*/}: $(cat "$OUT/s${s}_$tag.json")"
  done
done
PY=python3; command -v /usr/bin/python3 >/dev/null && PY=/usr/bin/python3
$PY - "$OUT" "$MODEL" "$BITS" $SEEDS <<'PYEOF'
import json, sys, statistics as st
out, model, bits, seeds = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4:]
fp = json.load(open(f"{out}/s{seeds[0]}_4-4.json"))["fp_top1"]
print(f"\nZeroQ, fmnist_{model} (FP {fp:.2f}), seeds {' '.join(seeds)}:")
print("| bits | q top-1 per seed | mean | min |")
print("|---|---|---|---|")
for b in bits:
    v = [json.load(open(f"{out}/s{s}_{b.replace('/', '-')}.json"))["q_top1"] for s in seeds]
    print(f"| W{b.split('/')[0]}A{b.split('/')[1]} | {' / '.join(f'{x:.2f}' for x in v)} | {st.mean(v):.2f} | {min(v):.2f} |")
t = [json.load(open(f"{out}/s{s}_4-4.json"))["seconds"] for s in seeds]
print(f"4/4 wall time incl. distillation and both evaluations: {' / '.join(f'{x:.0f}s' for x in t)}")
PYEOF
