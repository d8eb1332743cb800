#!/usr/bin/env bash
# Writes docs/experiments.md, the index of the experiment pages docs/experiments/*.md: the five
# reports, then one table row per page from the four lines under its title
# ("- **Report:** ...", "- **The report's figure:** ...", "- **Ours:** ...", "- **Command:** ..."),
# ordered by report (as listed below), then by name. The pages themselves are written by hand.
set -u
cd "$(dirname "$0")/.."
# The reports, in order: the short name each page's "Report:" line starts with, then its title
# and what it covers.
reports=(
  "ENGR 510 homework|ENGR 510 Neural Networks Homework|a 784-64-32-10 MLP on MNIST, Adam against SGD, learning rates, a shallow-wide model"
  "Homework 1|Homework 1 of a deep-learning course|fitting sin(5πx)/(5πx), CNNs on MNIST, weight-trajectory PCA, gradient norm, random labels, parameters vs generalisation, flatness and sensitivity"
  "Deep Learning Assignment 1|Deep Learning Assignment 1 Solution|cross-entropy against MSE, a 784-128-64-10 network, LeNet-5 against ResNet-18"
  "Project 3|Project 3|a hand-written sigmoid MLP, over-fitting, save and load, confusion matrix, weight images; a LeNet CNN"
  "TDT4265 Assignment 2|Assignment 2 - Report (TDT4265)|normalisation, the \"tricks of the trade\" (initialisation, improved sigmoid, momentum), topologies"
)

field() { # page label: the text after "- **label:** " on the page
  sed -n "s/^- \*\*$2:\*\* //p" "$1" | head -1
}

status=0
rows=""
for page in docs/experiments/*.md; do
  report=$(field "$page" "Report")
  order=""
  for i in "${!reports[@]}"; do
    case "$report" in "${reports[$i]%%|*}"*) order=$i; break ;; esac
  done
  figure=$(field "$page" "The report's figure") ours=$(field "$page" "Ours") command=$(field "$page" "Command")
  if [ -z "$order" ] || [ -z "$figure" ] || [ -z "$ours" ] || [ -z "$command" ]; then
    echo "gen_experiments_doc.sh: $page lacks a known Report: line or a figure, ours or command line" >&2
    status=1
    continue
  fi
  title=$(sed -n '1s/^# //p' "$page")
  rows+="$order	${page##*/}	| [$title](experiments/${page##*/}) | $report | $figure | $ours | $command |"$'\n'
done
[ $status -eq 0 ] || exit $status

{
  cat <<'TXT'
# Experiments

Every experiment of five neural-network course reports runs from one example program
(`examples/<name>.c`, built by `make examples`, with the report's settings as its defaults). Each
page below gives the report's settings, the report's figures beside ours, the commands that
produced ours, and the figures (`make plots` redraws them from `results/`). The reports' numbers
come from PyTorch or NumPy runs with unknown seeds, so ours land near them, not on them; where a
gap exceeds 1.5 accuracy points the page says why, with evidence.

The reports (student write-ups, not distributed with nn.h):

| report | title | what it covers |
| --- | --- | --- |
TXT
  for entry in "${reports[@]}"; do
    IFS='|' read -r short title covers <<<"$entry"
    echo "| $short | $title | $covers |"
  done
  cat <<'TXT'

| experiment | report | the report's figure | ours | command |
| --- | --- | --- | --- | --- |
TXT
  printf '%s' "$rows" | LC_ALL=C sort -t'	' -k1,1n -k2,2 | cut -f3-
} > docs/experiments.md
