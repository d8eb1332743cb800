#!/usr/bin/env bash
# Draws every figure: plots/<name>.gp reads results/<name>/*.csv and writes docs/figures/<name>*.png.
# Examples whose results are missing are skipped with a note. Then rebuilds docs/experiments.md.
set -u
mkdir -p docs/figures
for gp in plots/*.gp; do
  name=$(basename "$gp" .gp)
  if [ ! -d "results/$name" ]; then echo "skip $name: no results/$name (run the example first)"; continue; fi
  if gnuplot -e "results='results/$name'; out='docs/figures'" "$gp"; then echo "drew $name"; else echo "FAILED $name"; fi
done
scripts/gen_experiments_doc.sh
