#!/usr/bin/env bash
# make test-interop: models move between PyTorch and nn.h through safetensors, both ways.
#   1. tests/pytorch/interop.py export: PyTorch builds the seed networks (the MLP, LeNet, seed
#      001's custom CNN, the 28x28 ResNet-18 of bench/models.h), writes their state_dicts as
#      safetensors (ResNet's in BF16, the custom CNN's in F64), inputs and eval-mode logits;
#   2. tools/interop_check: nn.h loads each file (strict), must give PyTorch's logits to 1e-4 of
#      the largest, then trains LeNet and ResNet-18 three steps and saves them;
#   3. tests/pytorch/interop.py verify: PyTorch loads nn.h's files and must give nn.h's logits.
# Without PyTorch for /usr/bin/python3 (Debian's python3-torch) it prints SKIP and passes.
# Usage: scripts/interop_check.sh BUILD_DIR
set -u
build=${1:-build}
summary="$build/extra-checks/interop.summary"
mkdir -p "$build/extra-checks" "$build/tools"
dir="$build/interop"
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "SKIP interop: no PyTorch for /usr/bin/python3 (scripts/setup.sh torch installs python3-torch)"
  echo "interop 0 0" > "$summary"; exit 0
fi
rm -rf "$dir"; mkdir -p "$dir"
fail() { echo "  FAIL  interop: $*"; echo "interop 0 1" > "$summary"; exit 1; }
${CC:-cc} -std=c99 -O2 -Wall -Wextra -Wpedantic -Werror -fopenmp -I. -Ibench tools/interop_check.c \
  -o "$build/tools/interop_check" -lm || fail "tools/interop_check.c does not build"
/usr/bin/python3 tests/pytorch/interop.py export "$dir" || fail "PyTorch's export"
"$build/tools/interop_check" "$dir" || fail "nn.h's side"
/usr/bin/python3 tests/pytorch/interop.py verify "$dir" || fail "PyTorch loading nn.h's files"
echo "interop 1 0" > "$summary"
echo "  ok    interop: PyTorch -> nn.h (4 networks) and nn.h -> PyTorch (2 trained networks)"
