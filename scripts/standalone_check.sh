#!/usr/bin/env bash
# Builds tests/standalone/*.c next to a copy of nn.h in an empty directory (nothing else on the
# include path), runs train_save (trains, saves, writes its predictions) and load_predict (rebuilds
# the model with nn_model_load and must predict the same classes). Exit 0 when both succeed.
# Usage: scripts/standalone_check.sh [BUILD_DIR]
set -u
build=${1:-build}
dir="$build/standalone"
cc=${CC:-cc}
rm -rf "$dir" && mkdir -p "$dir" || exit 1
cp nn.h tests/standalone/train_save.c tests/standalone/load_predict.c "$dir/" || exit 1
cd "$dir" || exit 1
# -O0 and both at once: compiling nn.h twice at -O2 takes ~18 s here, at -O0 ~3 s each (the header builds at every
# level are scripts/check_header.sh's job)
"$cc" -std=c99 -O0 -Wall -Wextra -Wpedantic -Werror train_save.c -o train_save -lm & first=$!
"$cc" -std=c99 -O0 -Wall -Wextra -Wpedantic -Werror load_predict.c -o load_predict -lm; second=$?
wait $first; first=$?
if [ $first -ne 0 ] || [ $second -ne 0 ]; then
  echo "  FAIL  standalone: the programs do not build from nn.h alone"; exit 1
fi
if ./train_save model.nn predictions.txt && ./load_predict model.nn predictions.txt; then
  echo "  ok    standalone: a model trained and saved by one program predicts the same classes in another (nn_model_load)"
else
  echo "  FAIL  standalone: see the output above"; exit 1
fi
