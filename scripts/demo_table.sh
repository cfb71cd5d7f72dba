#!/usr/bin/env bash
# demo_table.sh — the demo's table from the JSON reports its programs wrote into OUT:
#   scripts/demo_table.sh [--quick] OUT trained|reused TOTAL_SECONDS
# (trained: the float model's time is OUT/train_fp.json's; reused: weights/ was already there)
# (scripts/demo.sh calls it at the end; run it again to reprint a finished demo's table; --quick:
# the table of scripts/demo_quick.sh.)
set -euo pipefail
quick=0
[ "${1:-}" = --quick ] && { quick=1; shift; }
[ $# -eq 3 ] && { [ "$2" = trained ] || [ "$2" = reused ]; } || { sed -n 2,5p "$0"; exit 2; }
OUT=$1 FP=$2 TOTAL=$3
val() {
  local v
  v=$(sed -n "s/.*\"$2\": \([-0-9.e+]*\).*/\1/p" "$1")
  [ -n "$v" ] || { echo "demo_table: no \"$2\" in $1" >&2; exit 1; }
  echo "$v"
}
pct() { printf "%.2f" "$1"; }
dur() { local s; s=$(printf "%.0f" "$1"); printf "%dm%02ds" $((s / 60)) $((s % 60)); }
row() { printf "%-30s %8s  %9s  %s\n" "$@" | sed "s/ *$//"; }
if [ $quick = 1 ]; then
  echo
  echo "dfq quick look: resnet18 trained briefly on Fashion-MNIST, quantized without data (10,000 test images)"
  row "model" "top-1 %" "wall time" ""
  row "float (1 epoch on 20,480 images)" "$(pct "$(val "$OUT/train_fp.json" top1)")" "$(dur "$(val "$OUT/train_fp.json" seconds)")" ""
  row "ZeroQ W4A4" "$(pct "$(val "$OUT/zeroq_w4a4.json" q_top1)")" "$(dur "$(val "$OUT/zeroq_w4a4.json" seconds)")" ""
  row "SQuant W4A4" "$(pct "$(val "$OUT/squant_w4a4.json" q_top1)")" "$(dur "$(val "$OUT/squant_w4a4.json" seconds)")" "(no data, no back-propagation)"
  row "ZeroQ mixed W3 (avg) A8" "$(pct "$(val "$OUT/zeroq_mp3a8.json" q_top1)")" "$(dur "$(val "$OUT/zeroq_mp3a8.json" seconds)")" "(bits per layer from 2/4/8 under a 3-bit budget)"
  echo "total $(dur "$TOTAL") from the start of the quick look; logs in $OUT/ (scripts/demo.sh without --quick: the full demo)"
  exit 0
fi
[ "$FP" = reused ] && fp_time="(reused)" || fp_time=$(dur "$(val "$OUT/train_fp.json" seconds)")
echo
echo "dfq demo: resnet18 on Fashion-MNIST (10,000 test images), quantized without data"
row "model" "top-1 %" "wall time" ""
row "float (trained by train_fp)" "$(pct "$(val "$OUT/zeroq_w4a4.json" fp_top1)")" "$fp_time" ""
for tag in w4a4 w3a3; do
  note=""
  [ "$tag" = w3a3 ] && note="(calibrated on the W4A4 run's distilled images)"
  row "ZeroQ ${tag^^}" "$(pct "$(val "$OUT/zeroq_$tag.json" q_top1)")" "$(dur "$(val "$OUT/zeroq_$tag.json" seconds)")" "$note"
done
for tag in w4a4 w3a3; do
  row "GDFQ ${tag^^} (final epoch)" "$(pct "$(val "$OUT/gdfq_$tag.json" final_top1)")" \
    "$(dur "$(val "$OUT/gdfq_$tag.json" seconds)")" "(best epoch $(pct "$(val "$OUT/gdfq_$tag.json" best_top1)"), selected on the test set)"
done
echo "total $(dur "$TOTAL") from the start of the demo; images, logs and quantized models in $OUT/"
