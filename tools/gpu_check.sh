#!/usr/bin/env bash
# gpu_check.sh — the one prepared check for a machine with a GPU (one H100, nvcc 13, CMake, PyTorch
# in python3, no network). Steps: nvidia-smi; configure build-gpu with CUDA (sm_90); build with all
# cores; the whole test suite (CUDA twins included); compute-sanitizer memcheck over the "cuda"
# test suite (when compute-sanitizer exists); the benchmarks when present. Every step has a time
# limit, so the whole script stays under ~8 minutes; a summary table (step, status, seconds) ends
# the log. Logs go to ${OUT:-/tmp}/gpu_check.log (and per-step logs beside it).
# Dependencies: headers / libraries carried in $PWD/.deps (include/doctest, include/stb, cblas.h,
# lib/libopenblas*) are used when present; otherwise the system packages. cuDNN comes from the CUDA
# toolkit or, failing that, from PyTorch's nvidia-cudnn wheel.
# Exit status: 0 when no step FAILED (a step that timed out or was skipped is reported, not fatal).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
OUTDIR=${OUT:-/tmp}
mkdir -p "$OUTDIR"
LOG=$OUTDIR/gpu_check.log
: >"$LOG"
exec > >(tee -a "$LOG") 2>&1
JOBS=$(nproc 2>/dev/null || echo 4)
BUILD=build-gpu
START=$(date +%s)

STEPS=()
STATUS=()
SECS=()
record() { STEPS+=("$1"); STATUS+=("$2"); SECS+=("$3"); }

# step NAME TIMEOUT_S CMD...: runs CMD with a time limit, its output to the log and to $OUTDIR/NAME.log.
step() {
  local name=$1 limit=$2
  shift 2
  echo
  echo "=== [$name] $* (limit ${limit}s)"
  local t0 rc=0
  t0=$(date +%s)
  set +e
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$OUTDIR/$name.log"
  rc=${PIPESTATUS[0]}
  set -e
  local dt=$(($(date +%s) - t0)) st=ok
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    st=TIMEOUT
  elif [ "$rc" -ne 0 ]; then
    st="FAIL($rc)"
  fi
  echo "=== [$name] $st in ${dt}s"
  record "$name" "$st" "$dt"
  [ "$st" = ok ]
}

# ---- environment ---------------------------------------------------------------------------------
export PATH=/usr/local/cuda/bin:$PATH
step nvidia-smi 30 nvidia-smi || true
echo "nvcc: $(nvcc --version 2>/dev/null | tail -1 || echo missing)"
echo "cmake: $(cmake --version 2>/dev/null | head -1 || echo missing)"

CMAKE_ARGS=(-DDFQ_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release)
# CMake < 3.26 has no C++20 flag for nvcc (CMAKE_CUDA_STANDARD 20 fails to configure); naming the
# flag is harmless for newer CMake, whose own setting wins.
CMAKE_ARGS+=(-DCMAKE_CUDA20_STANDARD_COMPILE_OPTION=-std=c++20 -DCMAKE_CUDA20_EXTENSION_COMPILE_OPTION=-std=c++20)
if [ -d "$ROOT/.deps" ]; then
  CMAKE_ARGS+=(-DDFQ_DEPS_PREFIX="$ROOT/.deps")
  export LD_LIBRARY_PATH=$ROOT/.deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  echo "deps: using $ROOT/.deps"
fi
# Golden fixtures: ../shared/golden does not travel to the GPU machine; a copy in .golden does.
if [ ! -d "$ROOT/../shared/golden" ] && [ -d "$ROOT/.golden" ]; then
  CMAKE_ARGS+=(-DDFQ_GOLDEN_DIR="$ROOT/.golden")
  echo "golden: using $ROOT/.golden"
fi
# cuDNN: the toolkit's, else the one PyTorch ships (nvidia-cudnn wheel: include/ and lib/libcudnn.so.9)
have_cudnn=0
for d in /usr/include /usr/local/cuda/include /usr/include/x86_64-linux-gnu; do
  [ -f "$d/cudnn.h" ] && have_cudnn=1
done
if [ "$have_cudnn" = 0 ]; then
  wheel=$(python3 -c 'import importlib.util as u; s = u.find_spec("nvidia.cudnn"); print(list(s.submodule_search_locations)[0])' 2>/dev/null || true)
  if [ -n "$wheel" ] && [ -f "$wheel/include/cudnn.h" ]; then
    lib=$(ls "$wheel"/lib/libcudnn.so* 2>/dev/null | head -1 || true)
    echo "cuDNN: using PyTorch's wheel in $wheel ($lib)"
    CMAKE_ARGS+=(-DCUDNN_INCLUDE_DIR="$wheel/include" -DCUDNN_LIBRARY="$lib")
    export LD_LIBRARY_PATH=$wheel/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  else
    echo "cuDNN: no cudnn.h found in the toolkit nor in PyTorch's wheel; configure will say more"
  fi
fi

# ---- build ---------------------------------------------------------------------------------------
built=0
if step configure 120 cmake -S "$ROOT" -B "$ROOT/$BUILD" "${CMAKE_ARGS[@]}"; then
  if step build 300 cmake --build "$ROOT/$BUILD" -j"$JOBS"; then built=1; fi
fi

# ---- tests ---------------------------------------------------------------------------------------
if [ "$built" = 1 ]; then
  # the whole suite: CPU tests, golden tests, and the CUDA twins (run from the repo root, as ctest does)
  TEST_ARGS=()
  GOLDEN=$ROOT/../shared/golden
  [ -d "$GOLDEN" ] || GOLDEN=$ROOT/.golden
  if [ ! -f "$GOLDEN/pth/fmnist_resnet18.pth" ]; then
    echo "golden: pth/fmnist_resnet18*.pth not carried (45 MB each): test cases named *fmnist* excluded"
    TEST_ARGS+=(-tce='*fmnist*')
  fi
  if [ ! -d /usr/share/datasets/fashion-mnist ] && [ -d "$ROOT/.golden/fashion-mnist" ]; then
    export DFQ_FASHION_MNIST_DIR=$ROOT/.golden/fashion-mnist
    echo "data: Fashion-MNIST test split from $DFQ_FASHION_MNIST_DIR"
  fi
  step tests 240 "$ROOT/$BUILD/dfq_tests" "${TEST_ARGS[@]}" || true
  SAN=$(command -v compute-sanitizer || true)
  [ -z "$SAN" ] && [ -x /usr/local/cuda/compute-sanitizer/compute-sanitizer ] && SAN=/usr/local/cuda/compute-sanitizer/compute-sanitizer
  if [ -n "$SAN" ]; then
    # memcheck over the cuda suite only; the caching allocator rounds blocks up (512 B), so the
    # tests' own guard regions catch small overruns that memcheck cannot see inside a block
    step memcheck 200 "$SAN" --tool memcheck --leak-check no --error-exitcode 1 "$ROOT/$BUILD/dfq_tests" -ts=cuda || true
  else
    echo "compute-sanitizer not found: memcheck skipped"
    record memcheck skipped 0
  fi
else
  record tests skipped 0
  record memcheck skipped 0
fi

# ---- benchmarks (when the programs exist) ---------------------------------------------------------
if [ "$built" = 1 ] && [ -x "$ROOT/$BUILD/tools/bench" ]; then
  if [ -f "$ROOT/tools/bench.sh" ]; then
    step bench 150 bash "$ROOT/tools/bench.sh" cuda "$BUILD" || true
  else
    step bench 90 "$ROOT/$BUILD/tools/bench" --device cuda || true
  fi
else
  record bench skipped 0
fi
if [ ! -f "$ROOT/tools/bench.sh" ] && [ -f "$ROOT/tools/bench_torch.py" ]; then
  step bench_torch 90 python3 "$ROOT/tools/bench_torch.py" --device cuda || true
fi

# ---- summary -------------------------------------------------------------------------------------
echo
echo "=== gpu_check summary ($(($(date +%s) - START))s in all; logs in $OUTDIR)"
printf '%-14s %-12s %8s\n' step status seconds
failed=0
for i in "${!STEPS[@]}"; do
  printf '%-14s %-12s %8s\n' "${STEPS[$i]}" "${STATUS[$i]}" "${SECS[$i]}"
  case "${STATUS[$i]}" in FAIL*) failed=1 ;; esac
done
exit "$failed"
