#!/usr/bin/env bash
# check_onnx.sh — the ONNX consumer check (run by .ci/run after the test suite): a Python virtualenv
# with onnx and onnxruntime from PyPI (the only place they come from: Debian 12 has no onnxruntime),
# then for fmnist_resnet18 and fmnist_mobilenet_v2 at W8A8 and W4A4:
#   ZeroQ (one distillation per model, then the official asymmetric weights and --weight_scheme sym
#   on the same distilled batch), export_onnx faithful (asym) / ort and trt (sym, calibrated on the
#   distilled batch) / float, and tools/check_onnx.py: onnx.checker full_check on every file;
#   faithful under ONNX Runtime with optimisations off = dfq's logits (1e-4 of max |logit|); ort
#   fused into QLinearConv / QGemm for every conv and linear, its top-1 within 0.2 of dfq's sym
#   model (MobileNetV2 W4A4: the mean of seeds 0 / 1 / 2 within 0.2, each seed within 0.4);
#   ONNX Runtime int8 / fp32 latency at batch 1 and 64.
# Then one SQuant (W4A4) and one GDFQ model (W4A8, a short run) of resnet18 exported faithfully and
# checked the same way: every method's saved model exports.
# Usage: scripts/check_onnx.sh [BUILD_DIR] [WORK_DIR]
#   DFQ_ONNX_ITERS   ZeroQ distillation iterations (default 500, the official)
#   DFQ_ONNX_MODELS  models to check (default "resnet18 mobilenet_v2")
#   DFQ_ONNX_BITS    bit settings (default "8/8 4/4")
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
work=${2:-$build/check_onnx}
iters=${DFQ_ONNX_ITERS:-500}
models=${DFQ_ONNX_MODELS:-"resnet18 mobilenet_v2"}
bitsets=${DFQ_ONNX_BITS:-"8/8 4/4"}
golden=../shared/golden/pth

cmake --build "$build" -j"$(nproc)" --target export_onnx zeroq_main squant_main gdfq_main convert_weights pack_weights >/dev/null

venv=$build/onnx-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import onnx, onnxruntime" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check onnx==1.23.2 onnxruntime==1.32.0 numpy==2.4.6
fi
py=$venv/bin/python
"$py" -c "import onnx, onnxruntime; print('check_onnx: onnx', onnx.__version__, '/ onnxruntime', onnxruntime.__version__)"

rm -rf "$work"
mkdir -p "$work" weights
json_top1() { "$py" -c "import json,sys; print(json.load(open(sys.argv[1]))['q_top1'])" "$1"; }
status=0
check() { "$py" tools/check_onnx.py "$@" || status=1; }
# step LOG COMMAND...: the command's output (progress bars included) into LOG; on failure its tail
step() {
  local log=$1
  shift
  "$@" >>"$log" 2>&1 || { echo "check_onnx: FAILED: $* (exit $?); the end of $log:" >&2; tail -n 20 "$log" >&2; exit 1; }
}

for m in $models; do
  w=weights/fmnist_$m.bin
  [ -f "$w" ] || step "$work/convert.log" "$build/tools/convert_weights" "$golden/fmnist_$m.pth" -o "$w"
  d=$work/$m
  mkdir -p "$d"
  echo "== $m: ZeroQ distillation ($iters iterations)"
  step "$d/distill.log" "$build/train/zeroq_main" --weights "$w" --bits 8/8 --iters "$iters" --img_size 32 \
    --out "$d/distill"
  for bits in $bitsets; do
    tag=${bits/\//}
    for scheme in asym sym; do
      step "$d/w${tag}_$scheme.log" "$build/train/zeroq_main" --weights "$w" --bits "$bits" \
        --distilled "$d/distill/distilled.npy" --dataset fashion-mnist --weight_scheme "$scheme" \
        --save "$d/w${tag}_$scheme.bin" --json "$d/w${tag}_$scheme.json"
    done
    x="$build/tools/export_onnx"
    mkdir -p "$d/dump$tag"
    log=$d/export$tag.log
    step "$log" "$x" "$d/w${tag}_asym.bin" -o "$d/w${tag}_faithful.onnx" --dataset fashion-mnist --dump "$d/dump$tag"
    for p in ort trt; do
      step "$log" "$x" "$d/w${tag}_sym.bin" -o "$d/w${tag}_$p.onnx" --profile $p --calib "$d/distill/distilled.npy" \
        --input_range fashion-mnist
    done
    step "$log" "$x" "$d/w${tag}_sym.bin" -o "$d/float.onnx" --profile float
    step "$log" "$build/tools/pack_weights" "$d/w${tag}_sym.bin" -o "$d/w${tag}_sym_packed.bin"
    echo "  file sizes (float model, quantized as float32 latents, packed integer codes, ONNX):"
    ls -l "$w" "$d/w${tag}_sym.bin" "$d/w${tag}_sym_packed.bin" "$d"/w${tag}_*.onnx "$d/float.onnx" |
      awk '{printf "    %-58s %10d bytes\n", $9, $5}'
    # ort's top-1 within 0.2 of dfq's sym model. MobileNetV2 W4A4 is a fragile model (85.4 float, 48
    # quantized) on which the 8-bit quantizers ort adds change 13.5 % of the predictions, so one seed's
    # top-1 moves by up to 0.25 either way (measured: +0.25, -0.18, 0.00 for seeds 0 / 1 / 2): there
    # one seed is held to 0.4 and the mean of three seeds to 0.2 (below).
    tol=0.2
    [ "$m/$tag" = mobilenet_v2/44 ] && tol=0.4
    check "$d/dump$tag" --label "$m W${bits}" --faithful "$d/w${tag}_faithful.onnx" --ort "$d/w${tag}_ort.onnx" \
      --ort_ref_top1 "$(json_top1 "$d/w${tag}_sym.json")" --top1_tol "$tol" --trt "$d/w${tag}_trt.onnx" \
      --float "$d/float.onnx" --bench --json "$d/w${tag}_ort_check.json"
    if [ "$m/$tag" = mobilenet_v2/44 ]; then
      # seeds 1 and 2: distillation, sym quantization, ort export and ONNX Runtime's top-1
      for s in 1 2; do
        ds=$d/seed$s
        mkdir -p "$ds/dump"
        step "$ds/run.log" "$build/train/zeroq_main" --weights "$w" --bits 8/8 --iters "$iters" --img_size 32 \
          --seed "$s" --out "$ds/distill"
        step "$ds/run.log" "$build/train/zeroq_main" --weights "$w" --bits "$bits" --distilled "$ds/distill/distilled.npy" \
          --dataset fashion-mnist --weight_scheme sym --save "$ds/sym.bin" --json "$ds/sym.json"
        step "$ds/run.log" "$x" "$ds/sym.bin" -o "$ds/ort.onnx" --profile ort --calib "$ds/distill/distilled.npy" \
          --input_range fashion-mnist --dataset fashion-mnist --dump "$ds/dump"
        check "$ds/dump" --label "$m W${bits} seed $s" --ort "$ds/ort.onnx" --ort_ref_top1 "$(json_top1 "$ds/sym.json")" \
          --top1_tol 0.4 --json "$ds/ort_check.json"
        rm -rf "$ds/dump"
      done
      "$py" - "$d/w${tag}_sym.json" "$d/w${tag}_ort_check.json" "$d/seed1/sym.json" "$d/seed1/ort_check.json" \
        "$d/seed2/sym.json" "$d/seed2/ort_check.json" <<'PY' || status=1
import json, sys
f = [json.load(open(p)) for p in sys.argv[1:]]
dfq = [f[i]["q_top1"] for i in (0, 2, 4)]
ort = [f[i]["ort_top1"] for i in (1, 3, 5)]
md, mo = sum(dfq) / 3, sum(ort) / 3
ok = abs(mo - md) <= 0.2
print(f"mobilenet_v2 W4A4, seeds 0 / 1 / 2: ort int8 top-1 {ort[0]:.2f} / {ort[1]:.2f} / {ort[2]:.2f} (mean {mo:.2f}), "
      f"dfq sym {dfq[0]:.2f} / {dfq[1]:.2f} / {dfq[2]:.2f} (mean {md:.2f}): |diff| of the means {abs(mo - md):.2f} "
      f"(limit 0.2)  {'ok' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
PY
    fi
    echo "  dfq fake-quant top-1: asym $(json_top1 "$d/w${tag}_asym.json"), sym $(json_top1 "$d/w${tag}_sym.json")"
    rm -rf "$d/dump$tag"
  done
done

# Every method's saved model exports (resnet18): SQuant W4A4 and a short GDFQ W4A8 run.
d=$work/methods
mkdir -p "$d/dump_squant" "$d/dump_gdfq"
w=weights/fmnist_resnet18.bin
[ -f "$w" ] || step "$work/convert.log" "$build/tools/convert_weights" "$golden/fmnist_resnet18.pth" -o "$w"
step "$d/squant.log" "$build/train/squant_main" --weights "$w" --bits 4/4 --save "$d/squant.bin"
step "$d/export_squant.log" "$build/tools/export_onnx" "$d/squant.bin" -o "$d/squant.onnx" --dataset fashion-mnist \
  --dump "$d/dump_squant" --dump_images 2000
check "$d/dump_squant" --label "resnet18 SQuant W4A4" --faithful "$d/squant.onnx"
# (W4A8, 3 epochs of 20 iterations: ~25 s; at A4 a schedule this short leaves the generator's images
# too flat, the ranges collapse and the model predicts one class, which would make the check vacuous)
step "$d/gdfq.log" "$build/train/gdfq_main" --weights "$w" --bits 4/8 --n_epochs 3 --n_iter 20 --warmup_epochs 2 \
  --range_epochs 3 --out "$d/gdfq" --save "$d/gdfq.bin"
step "$d/export_gdfq.log" "$build/tools/export_onnx" "$d/gdfq.bin" -o "$d/gdfq.onnx" --dataset fashion-mnist \
  --dump "$d/dump_gdfq" --dump_images 2000
check "$d/dump_gdfq" --label "resnet18 GDFQ W4A8 (short run)" --faithful "$d/gdfq.onnx"
rm -rf "$d/dump_squant" "$d/dump_gdfq"

if [ "$status" != 0 ]; then
  echo "check_onnx: FAILED (see the lines above)" >&2
  exit 1
fi
echo "check_onnx: passed"
