#!/usr/bin/env bash
# Runs every test program on every backend and adds up their "SUMMARY <backend> <group>
# passed=N failed=M" lines. Usage: run_tests.sh BUILD_DIR TEST_NAME...
# Ends with one line per backend, "<backend>: N passed, N failed", then the totals line.
set -u
build=$1; shift
tests=("$@")
logdir="$build/test-logs"; mkdir -p "$logdir"
declare -A passed failed
order=()
total_p=0; total_f=0

record() { # label passed failed
  local label=$1
  if [ -z "${passed[$label]+x}" ]; then passed[$label]=0; failed[$label]=0; order+=("$label"); fi
  passed[$label]=$(( ${passed[$label]} + $2 )); failed[$label]=$(( ${failed[$label]} + $3 ))
  total_p=$(( total_p + $2 )); total_f=$(( total_f + $3 ))
}

run_one() { # label log command...
  local label=$1 log=$2; shift 2
  "$@" > "$log" 2>&1
  local rc=$?
  if [ $rc -eq 77 ]; then echo "  skip  $label ${log##*/}: $(grep -m1 SKIP "$log")"; return; fi
  local line; line=$(grep -m1 '^SUMMARY ' "$log")
  if [ -z "$line" ]; then
    echo "  FAIL  $label ${log##*/}: exited $rc without a summary"; tail -20 "$log"; record "$label" 0 1; return
  fi
  local p f; p=$(sed -E 's/.*passed=([0-9]+).*/\1/' <<<"$line"); f=$(sed -E 's/.*failed=([0-9]+).*/\1/' <<<"$line")
  if [ "$f" -ne 0 ] || [ $rc -ne 0 ]; then
    echo "  FAIL  $label ${log##*/}"; grep -E "FAIL|ERROR|error|mismatch" "$log" | head -30
    [ "$f" -eq 0 ] && f=1
  else
    echo "  ok    $label ${log##*/} ($p)"
  fi
  record "$label" "$p" "$f"
}

echo "== native backends"
for b in scalar avx2 avx512; do
  for t in "${tests[@]}"; do run_one "$b" "$logdir/$t.$b.log" "$build/tests/$t" "$b"; done
done

if command -v qemu-aarch64 >/dev/null && [ -x "$build/tests-arm64/${tests[0]}" ]; then
  echo "== aarch64 under qemu"
  for b in neon scalar; do
    label=$b; [ "$b" = scalar ] && label="scalar(aarch64)"
    for t in "${tests[@]}"; do
      run_one "$label" "$logdir/$t.arm64-$b.log" qemu-aarch64 "$build/tests-arm64/$t" "$b"
    done
  done
fi

echo "== AddressSanitizer + UndefinedBehaviorSanitizer (best backend, quick sizes)"
for t in "${tests[@]}"; do
  NN_TEST_QUICK=1 ASAN_OPTIONS=detect_leaks=1 run_one "asan+ubsan" "$logdir/$t.asan.log" "$build/tests-asan/$t"
done

for extra in "$build"/extra-checks/*.summary; do
  [ -f "$extra" ] || continue
  while read -r label p f; do record "$label" "$p" "$f"; done < "$extra"
done

echo
for label in "${order[@]}"; do echo "$label: ${passed[$label]} passed, ${failed[$label]} failed"; done
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
