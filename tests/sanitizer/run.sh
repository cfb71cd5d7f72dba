#!/usr/bin/env bash
# run.sh — runs dfq_tests of the DFQ_SANITIZE build (clang++, ASan + UBSan) and fails on any report,
# whether the test binary or a program it starts wrote it (the CLI tests run zeroq_main, gdfq_main,
# evaluate and convert_weights, all instrumented too). Reports go to files under REPORT_DIR: a program
# that a test expects to fail would otherwise hide its report behind that expected non-zero exit.
# No suppressions: none has been needed, and dfq code must never get one.
# Usage: run.sh DFQ_TESTS REPORT_DIR [doctest flags...]
set -uo pipefail
bin=$1 reports=$2
shift 2
rm -rf "$reports" && mkdir -p "$reports"
# Leak checking is on (ASan's default on Linux). allocator_may_return_null: an absurd request gets
# null, as from glibc, so dfq's "out of host memory" error runs instead of ASan's abort. UBSan's
# checks are fatal at build time (-fno-sanitize-recover=undefined); halt_on_error says so too.
export ASAN_OPTIONS="log_path=$reports/report:detect_leaks=1:allocator_may_return_null=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
export UBSAN_OPTIONS="log_path=$reports/report:halt_on_error=1:print_stacktrace=1"
"$bin" "$@"
rc=$?
n=$(find "$reports" -type f | wc -l)
if ((n)); then
  echo "sanitizer: $n report file(s) in $reports:"
  for f in "$reports"/*; do echo "== $f"; cat "$f"; done
  exit 1
fi
echo "sanitizer: no reports (dfq_tests exit $rc)"
exit "$rc"
