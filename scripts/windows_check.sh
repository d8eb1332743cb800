#!/usr/bin/env bash
# The unit tests built for Windows x86-64 with mingw-w64 (cmocka's API from tests/cmocka_shim,
# OpenMP from mingw's libgomp, everything linked statically) and run under wine: on the best
# backend, which must be the one Linux picks on this CPU (AVX-512 where the CPU has it), and on
# scalar. Run by `make test-windows` (tests/tests.mk), which `make test` calls.
# Usage: scripts/windows_check.sh BUILD_DIR TEST_NAME...
# Writes BUILD_DIR/extra-checks/windows.summary, one line per backend ("avx512(windows) P F") for
# scripts/run_tests.sh. Without x86_64-w64-mingw32-gcc or a wine that can run a program here it
# skips: prints "SKIP windows: ...", writes "windows 0 0" and exits 0 (scripts/setup.sh windows
# installs both).
set -u
build=$1; shift
tests=("$@")
make=${MAKE:-make}
out="$build/tests-win64"; logs="$out/logs"
summary="$build/extra-checks/windows.summary"
mkdir -p "$logs" "$build/extra-checks"
skip() { echo "SKIP windows: $*"; echo "windows 0 0" > "$summary"; exit 0; }

echo "== Windows x86-64 (mingw-w64) under wine"
command -v x86_64-w64-mingw32-gcc >/dev/null || skip "no x86_64-w64-mingw32-gcc (scripts/setup.sh windows installs it)"
command -v wine >/dev/null || skip "no wine (scripts/setup.sh windows installs it)"
export WINEDEBUG=-all # wine's own diagnostics (a first run creates ~/.wine) would bury the tests' output
printf '#include <stdio.h>\nint main(void) { puts("wine runs programs"); return 0; }\n' > "$out/wine_probe.c"
x86_64-w64-mingw32-gcc "$out/wine_probe.c" -o "$out/wine_probe.exe" > "$logs/probe.log" 2>&1 ||
  skip "x86_64-w64-mingw32-gcc cannot build a program (see $logs/probe.log)"
timeout 300 wine "$out/wine_probe.exe" >> "$logs/probe.log" 2>&1
grep -q "wine runs programs" "$logs/probe.log" || skip "wine cannot run a program here (see $logs/probe.log)"

exes=()
for t in "${tests[@]}"; do exes+=("$out/$t.exe"); done
if ! $make --no-print-directory -j2 "${exes[@]}" > "$logs/build.log" 2>&1; then
  echo "  FAIL  windows: the mingw-w64 build of the tests (see $logs/build.log)"; grep -E "error|warning" "$logs/build.log" | head -20
  echo "windows 0 1" > "$summary"; exit 1
fi

# the backend nn.h picks on Linux for this CPU, which wine must pick too
expect=scalar
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
if grep -qw avx2 <<<"$flags" && grep -qw fma <<<"$flags"; then expect=avx2; fi
if grep -qw avx512f <<<"$flags" && grep -qw avx512bw <<<"$flags" && grep -qw avx512dq <<<"$flags" &&
   grep -qw avx512vl <<<"$flags"; then expect=avx512; fi

: > "$summary"
status=0
# One wineserver for the whole run (-p: persistent), so that it does not stop and start between
# programs; a program whose wine connection still breaks ("wine client error", wine's own fault:
# no summary line) runs once more, and the log says so.
wineserver -p 2>/dev/null
trap 'wineserver -k 2>/dev/null' EXIT
run_wine() { # backend test log
  if [ "$1" = best ]; then env -u NN_BACKEND timeout 600 wine "$out/$2.exe" > "$3" 2>&1
  else timeout 600 wine "$out/$2.exe" "$1" > "$3" 2>&1; fi
}
for backend in best scalar; do
  passed=0; failed=0; label=""
  for t in "${tests[@]}"; do
    log="$logs/$t.$backend.log"
    run_wine "$backend" "$t" "$log"
    rc=$?
    if ! grep -q '^SUMMARY ' "$log" && grep -q 'wine client error' "$log"; then
      echo "  note  windows $backend $t: wine's connection broke (wine client error); running it again"
      run_wine "$backend" "$t" "$log"
      rc=$?
    fi
    line=$(grep -m1 '^SUMMARY ' "$log" | tr -d '\r')
    if [ -z "$line" ]; then
      echo "  FAIL  windows $backend $t: exited $rc without a summary"; tail -20 "$log"; failed=$((failed + 1)); continue
    fi
    name=$(awk '{print $2}' <<<"$line")
    label="$name(windows)"
    p=$(sed -E 's/.*passed=([0-9]+).*/\1/' <<<"$line"); f=$(sed -E 's/.*failed=([0-9]+).*/\1/' <<<"$line")
    if [ "$backend" = best ] && [ "$name" != "$expect" ]; then
      echo "  FAIL  windows $t: the best backend under wine is $name, on Linux $expect"; f=$((f + 1))
    fi
    if [ "$f" -ne 0 ] || [ "$rc" -ne 0 ]; then
      echo "  FAIL  $label $t"; grep -E "FAIL|ERROR" "$log" | head -30
      [ "$f" -eq 0 ] && f=1
    else
      echo "  ok    $label $t ($p)"
    fi
    passed=$((passed + p)); failed=$((failed + f))
  done
  echo "${label:-$backend(windows)} $passed $failed" >> "$summary"
  [ "$failed" -eq 0 ] || status=1
done
exit $status
