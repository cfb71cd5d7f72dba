#!/usr/bin/env bash
# gdfq_kill_resume.sh — GDFQ killed for real (SIGKILL, in the middle of an epoch) and resumed,
# compared with the same run uninterrupted.
#   tools/gdfq_kill_resume.sh REF_DIR OUT_DIR [gdfq_main flags ...]
# REF_DIR holds the uninterrupted run (its --out directory, with quantized.bin and log.csv, and
# REF_DIR.json written by --json); when REF_DIR/quantized.bin is missing the uninterrupted run is
# made first with the same flags. The run in OUT_DIR is killed KILL_SECONDS (default 20) after its
# KILL_AFTER-th epoch (default 10) was logged, then resumed with --resume. Prints both results and
# whether quantized.bin and log.csv (but for its seconds column) are identical. GDFQ=path picks the
# binary (default build/train/gdfq_main).
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,10p "$0"; exit 2; }
REF=$1 OUT=$2
shift 2
G=${GDFQ:-build/train/gdfq_main}
KILL_AFTER=${KILL_AFTER:-10} KILL_SECONDS=${KILL_SECONDS:-20}
[ -x "$G" ] || { echo "gdfq_kill_resume: $G not found (build first)" >&2; exit 1; }
if [ ! -f "$REF/quantized.bin" ]; then
  echo "== uninterrupted run -> $REF"
  "$G" "$@" --out "$REF" --json "$REF.json" > "$REF.log" 2>&1
fi
rm -rf "$OUT"
echo "== run to be killed -> $OUT"
"$G" "$@" --out "$OUT" --json "$OUT.json" > "$OUT.log" 2>&1 &
pid=$!
logged() { local n; n=$(grep -c '^[0-9]' "$OUT/log.csv" 2>/dev/null) || true; echo "${n:-0}"; }
until [ "$(logged)" -ge "$KILL_AFTER" ]; do
  kill -0 $pid 2>/dev/null || { echo "gdfq_kill_resume: the run ended before epoch $KILL_AFTER" >&2; exit 1; }
  sleep 1
done
sleep "$KILL_SECONDS"
kill -9 $pid
wait $pid 2>/dev/null || true
echo "killed (SIGKILL) after $(logged) logged epochs, ${KILL_SECONDS}s into the next"
"$G" "$@" --out "$OUT" --json "$OUT.json" --resume > "$OUT.resume.log" 2>&1
echo "uninterrupted:  $(cat "$REF.json")"
echo "killed+resumed: $(cat "$OUT.json")"
if cmp -s "$REF/quantized.bin" "$OUT/quantized.bin"; then echo "quantized.bin byte-identical"; else echo "quantized.bin DIFFERS"; fi
if diff -q <(cut -d, -f1-11 "$REF/log.csv") <(cut -d, -f1-11 "$OUT/log.csv") > /dev/null; then
  echo "log.csv identical but for the seconds column"
else
  echo "log.csv DIFFERS"
fi
