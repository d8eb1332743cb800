#!/usr/bin/env bash
# Runs each libFuzzer target for SECONDS, one after another (never in parallel).
# Usage: fuzz/run.sh BUILD_DIR SECONDS [SUMMARY_FILE] [TARGET...]
#   BUILD_DIR/fuzz/<target>          the fuzzer binaries (fuzz/fuzz.mk builds them)
#   BUILD_DIR/fuzz/corpus/<target>/  the growing corpus (seeded from fuzz/corpus/<target>/)
#   BUILD_DIR/fuzz/<target>.log      libFuzzer's output, with -print_final_stats=1
#   BUILD_DIR/fuzz/stats.txt         one line per run: target seconds executions exec/s new-units
#   BUILD_DIR/fuzz/artifacts/        crashing / leaking / slow inputs, if any
# SUMMARY_FILE gets one line "fuzz <passed> <failed>" (targets), for scripts/run_tests.sh.
# A target fails when libFuzzer exits non-zero (crash, sanitizer report, leak, abort() from an
# invariant check, timeout of one input > 10 s, more than 2 GB of memory).
set -u
build=$1; seconds=$2; summary=${3:-}
shift 2; [ $# -gt 0 ] && shift
targets=("$@"); [ ${#targets[@]} -eq 0 ] && targets=(fuzz_idx fuzz_model fuzz_checkpoint fuzz_args fuzz_safetensors)
mkdir -p "$build/fuzz/artifacts"
passed=0; failed=0
for t in "${targets[@]}"; do
  bin="$build/fuzz/$t"; corpus="$build/fuzz/corpus/$t"; log="$build/fuzz/$t.log"
  mkdir -p "$corpus"
  if [ ! -x "$bin" ]; then echo "  FAIL  fuzz $t: $bin not built"; failed=$((failed + 1)); continue; fi
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
         -artifact_prefix="$build/fuzz/artifacts/$t-" "$corpus" "fuzz/corpus/$t" > "$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  units=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
  echo "$t $seconds ${execs:-0} ${rate:-0} ${units:-0}" >> "$build/fuzz/stats.txt"
  if [ $rc -eq 0 ]; then
    echo "  ok    fuzz $t: ${execs:-?} executions in ${seconds}s (${rate:-?}/s), corpus $(ls "$corpus" | wc -l) files"
    passed=$((passed + 1))
  else
    echo "  FAIL  fuzz $t (exit $rc): see $log"
    grep -E "ERROR|invariant failed|SUMMARY|Test unit written" "$log" | head -10
    failed=$((failed + 1))
  fi
done
[ -n "$summary" ] && { mkdir -p "$(dirname "$summary")"; echo "fuzz $passed $failed" > "$summary"; }
[ $failed -eq 0 ]
