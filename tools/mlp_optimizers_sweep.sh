#!/usr/bin/env bash
# Which (batch, epochs) makes the ENGR 510 homework's three optimiser results hold together? Runs
# build/examples/mlp_optimizers for model A's three optimisers at settings with the same
# number of samples seen per SGD-1e-3 plateau escape, over a few seeds, and prints one line per
# run. Used for docs/experiments/mlp_optimizers.md; about 4 minutes on 1 thread.
#   tools/mlp_optimizers_sweep.sh [seeds...]
set -eu
seeds=${*:-1 2 3}
for setting in "10 2" "16 3" "32 6" "64 12" "10 3"; do
  set -- $setting
  for s in $seeds; do
    for v in adam_lr1e-3 sgd_lr1e-3 sgd_lr1e-2; do
      build/examples/mlp_optimizers --variant $v --batch $1 --epochs $2 --seed $s --points 1 \
        --out /tmp/mlp_optimizers_sweep 2>/dev/null | sed "s/^RESULT mlp_optimizers/batch=$1 epochs=$2 seed=$s/"
    done
  done
done
