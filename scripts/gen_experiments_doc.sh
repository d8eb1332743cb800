#!/usr/bin/env bash
# docs/experiments.md = the introduction below + one section per example (docs/experiments/*.md).
set -u
{
  cat <<'TXT'
# Experiments

Every experiment of the five course reports in `shared/seeds/` runs from one example program
(`examples/<name>.c`, built by `make examples`). Each section gives the report's settings, the
report's figures beside ours, the command that produced ours, and the figures
(`make plots` redraws them from `results/`). The reports' numbers come from PyTorch or NumPy runs
with unknown seeds, so ours land near them, not on them; where a gap exceeds 1.5 accuracy points
the section says why, with evidence.

TXT
  # sections in seed order (each starts with "## Seed NNN ...")
  for f in $(for g in docs/experiments/*.md; do
               [ -f "$g" ] && printf '%s %s\n' "$(grep -m1 -o 'Seed [0-9]*' "$g" | tr -dc 0-9)" "$g"
             done | sort -k1,1n -k2 | cut -d' ' -f2); do
    cat "$f"; echo
  done
} > docs/experiments.md
