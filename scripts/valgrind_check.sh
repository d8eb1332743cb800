#!/usr/bin/env bash
# valgrind memcheck of a short training run: no errors, no definite or indirect leaks.
# Usage: scripts/valgrind_check.sh [BUILD_DIR]      (default build)
#   Builds BUILD_DIR/valgrind/valgrind_train from tests/valgrind_train.c (MLP + CNN + other
#   losses on synthetic data, nn_fit, save/load, IDX files, kernels; a few seconds under
#   valgrind) and runs it under
#     valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect
#   with NN_BACKEND=avx2: valgrind does not support AVX-512 instructions, so the AVX-512 kernels
#   cannot run under it (on a CPU without AVX2 the library falls back to the best it has).
#   VALGRIND_DEMO=1 also runs BUILD_DIR/examples/demo --quick --epochs 1 (needs MNIST in
#   data/mnist; about 4 minutes under valgrind on a loaded 2-core machine).
# Writes BUILD_DIR/extra-checks/valgrind.summary: "valgrind <passed> <failed>" (programs), and
# the full valgrind output to BUILD_DIR/valgrind/<program>.log.
set -u
build=${1:-build}
out="$build/valgrind"; mkdir -p "$out" "$build/extra-checks"
summary="$build/extra-checks/valgrind.summary"
CC=${CC:-cc}
passed=0; failed=0
if ! command -v valgrind >/dev/null; then
  echo "  FAIL  valgrind: not installed (scripts/setup.sh test installs it)"
  echo "valgrind 0 1" > "$summary"; exit 1
fi
backend=avx2
grep -qw avx2 /proc/cpuinfo 2>/dev/null || backend=scalar

run() { # name command...
  local name=$1; shift
  local log="$out/$name.log"
  NN_BACKEND=$backend valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
    --log-file="$log.vg" "$@" > "$log" 2>&1
  local rc=$?
  cat "$log.vg" >> "$log"; rm -f "$log.vg"
  local errors leaks
  errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | tail -1)
  leaks=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tail -1)
  if [ $rc -eq 0 ] && [ "${errors:-1}" = 0 ]; then
    echo "  ok    valgrind $name (NN_BACKEND=$backend): 0 errors, definitely lost ${leaks:-0} bytes"
    passed=$((passed + 1))
  else
    echo "  FAIL  valgrind $name (exit $rc, ${errors:-?} errors): see $log"
    grep -E "Invalid|uninitialised|definitely|indirectly|FAILED|returned" "$log" | head -20
    failed=$((failed + 1))
  fi
}

if $CC -std=c99 -O2 -g -Wall -Wextra -Werror -fopenmp -I. tests/valgrind_train.c -o "$out/valgrind_train" -lm; then
  run valgrind_train "$out/valgrind_train"
else
  echo "  FAIL  valgrind: tests/valgrind_train.c does not build"; failed=$((failed + 1))
fi
if [ "${VALGRIND_DEMO:-0}" != 0 ]; then
  if [ -x "$build/examples/demo" ]; then
    NN_THREADS=1 run demo "$build/examples/demo" --quick --epochs 1 --out "$out/demo-results"
  else
    echo "  FAIL  valgrind demo: $build/examples/demo not built"; failed=$((failed + 1))
  fi
fi
echo "valgrind $passed $failed" > "$summary"
[ $failed -eq 0 ]
