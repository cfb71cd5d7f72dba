#!/usr/bin/env bash
# bench.sh — runs the dfq bench and the same cases in PyTorch on this machine, then prints one
# table: case, dfq ms, torch ms, dfq GFLOP/s, and the speed ratio (torch time / dfq time; > 1
# means dfq is faster). Usage: tools/bench.sh [cpu|cuda] [BUILD_DIR] [ONLY]; ONLY: just the cases
# of that name (bench --only: conv3x3_fwd, depthwise, ...). REPEATS=N: timed repeats per case on
# both sides (default 5; a busy machine wants more for steady medians).
set -euo pipefail
dev=${1:-cpu}
build=${2:-build}
only=${3:-}
here=$(cd "$(dirname "$0")/.." && pwd)
dfq_out=$(mktemp); torch_out=$(mktemp)
trap 'rm -f "$dfq_out" "$torch_out"' EXIT
# the python3 that has torch: $PYTHON, else python3, else Debian's /usr/bin/python3
py=${PYTHON:-python3}
if ! "$py" -c 'import torch' 2>/dev/null; then py=/usr/bin/python3; fi
"$here/$build/tools/bench" --device "$dev" ${only:+--only "$only"} ${REPEATS:+--repeats "$REPEATS"} | tee "$dfq_out"
"$py" "$here/tools/bench_torch.py" --device "$dev" ${only:+--only "$only"} ${REPEATS:+--repeats "$REPEATS"} | tee "$torch_out"
python3 - "$dfq_out" "$torch_out" <<'PY'
import sys
def read(p):
    r = {}
    for line in open(p):
        if line.startswith('#') or not line.strip(): continue
        f = line.split()
        r[f[0]] = (float(f[1]), float(f[3]))
    return r
d, t = read(sys.argv[1]), read(sys.argv[2])
print(f"\n{'case':<26}{'dfq ms':>10}{'torch ms':>10}{'dfq GFLOP/s':>13}{'torch/dfq time':>16}")
for k in d:
    if k in t:
        print(f"{k:<26}{d[k][0]:>10.2f}{t[k][0]:>10.2f}{d[k][1]:>13.1f}{t[k][0]/d[k][0]:>16.2f}")
# integer inference: dfq int8 against dfq float32 and against PyTorch's own int8 (speed ratios, > 1: dfq int8 faster)
rows = [k for k in d if "_int8" in k]
if rows:
    print(f"\n{'int8 case':<30}{'dfq int8 ms':>12}{'dfq fp32 ms':>12}{'torch int8 ms':>14}{'vs dfq fp32':>12}{'vs torch int8':>14}")
    for k in rows:
        fp = k.replace("_int8zq_", "_fp32_").replace("_int8_", "_fp32_")
        ti = k.replace("_int8zq_", "_int8_")
        f = f"{d[fp][0]:>12.2f}" if fp in d else f"{'-':>12}"
        tt = f"{t[ti][0]:>14.2f}" if ti in t else f"{'-':>14}"
        r1 = f"{d[fp][0]/d[k][0]:>12.2f}" if fp in d else f"{'-':>12}"
        r2 = f"{t[ti][0]/d[k][0]:>14.2f}" if ti in t else f"{'-':>14}"
        print(f"{k:<30}{d[k][0]:>12.2f}{f}{tt}{r1}{r2}")
    print("int8: every conv / linear input quantized but the image's (PyTorch's int8 model quantizes every layer input); "
          "int8zq: ZeroQ's placement, after every ReLU (MobileNetV2's expand convs stay float)")
PY
