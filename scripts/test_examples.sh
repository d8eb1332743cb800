#!/usr/bin/env bash
# Runs tests/examples/<name>.sh for every example (each runs its example with --quick and checks
# the RESULT lines). Writes build/extra-checks/examples.summary for scripts/run_tests.sh.
set -u
build=${1:-build}
export BIN="$PWD/$build/examples" DATA="${DATA:-$PWD/data/mnist}"
export OUT="$PWD/$build/example-checks"
mkdir -p "$OUT" "$build/extra-checks"
passed=0; failed=0
echo "== examples (--quick)"
for check in tests/examples/*.sh; do
  name=$(basename "$check" .sh)
  [ "$name" = lib ] && continue
  start=$(date +%s.%N)
  if bash "$check"; then
    passed=$((passed + 1)); printf '  ok    %s (%.1f s)\n' "$name" "$(echo "$(date +%s.%N) - $start" | bc)"
  else
    failed=$((failed + 1)); echo "  FAIL  $name"
  fi
done
echo "examples $passed $failed" > "$build/extra-checks/examples.summary"
[ "$failed" -eq 0 ]
