#!/usr/bin/env bash
# Runs every example at its report's settings (each program's defaults), one after another (not
# demo and serve_mnist, which belong to no report), keeping stdout in results/<name>/stdout.txt
# and stderr in results/<name>/log.txt.
# Usage: scripts/run_experiments.sh [BIN_DIR]   (EXPERIMENTS="a b" runs only those)
set -u
bin=${1:-build/examples}
names=${EXPERIMENTS:-$(ls "$bin" | grep -vE '^(demo|serve_mnist)$')}
status=0
for name in $names; do
  mkdir -p "results/$name"
  echo "== $name" >&2
  start=$(date +%s)
  if "$bin/$name" > "results/$name/stdout.txt" 2> "results/$name/log.txt"; then
    grep '^RESULT' "results/$name/stdout.txt"
  else
    echo "FAILED: $name (see results/$name/log.txt)" >&2; status=1
  fi
  echo "   $(( $(date +%s) - start )) s" >&2
done
exit $status
