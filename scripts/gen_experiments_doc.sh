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
  for f in docs/experiments/*.md; do
    [ -f "$f" ] || continue
    cat "$f"; echo
  done
} > docs/experiments.md
