#!/usr/bin/env bash
# nn.h must build warning-free as C99 (gcc, clang; at -O2, -O3 and -Os), as C++ (g++, clang++), with
# NN_STATIC, with NN_NO_SIMD, for aarch64 and for Windows (mingw-w64), with no -m flags. Prints one line per build; exits 1 on any failure.
set -u
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf '#define NN_IMPLEMENTATION\n#include "nn.h"\nint main(void) { return nn_backend_name() == 0; }\n' > "$tmp/one.c"
status=0; ok=0; bad=0
check() { # compiler and flags; -O2 unless the flags name an optimisation level
  local opt=-O2
  case " $* " in *" -O"*) opt= ;; esac
  if out=$("$@" -I. $opt -Wall -Wextra -Wpedantic -Werror -c "$tmp/one.c" -o "$tmp/one.o" 2>&1); then
    echo "header ok:   $*"; ok=$((ok + 1))
  else
    echo "header FAIL: $*"; echo "$out" | head -20; status=1; bad=$((bad + 1))
  fi
}
check gcc -std=c99
check clang -std=c99
check g++ -x c++
check clang++ -x c++
check gcc -std=c99 -DNN_STATIC
check gcc -std=c99 -DNN_NO_SIMD
check gcc -std=c99 -fopenmp
check gcc -std=c99 -O3
check gcc -std=c99 -Os
check clang -std=c99 -O3
check clang -std=c99 -Os
command -v aarch64-linux-gnu-gcc >/dev/null && check aarch64-linux-gnu-gcc -std=c99
command -v x86_64-w64-mingw32-gcc >/dev/null && check x86_64-w64-mingw32-gcc -std=c99
# an ignored nn_status is a warning (NN_NODISCARD on every public function that returns one, but
# nn_set_error), and NN_NODISCARD defined empty turns it off
missing=$(sed '/#endif \/\* NN_H_INCLUDED/q' nn.h | grep '^NNDEF nn_status ' | grep -v ' nn_set_error(')
printf '#include "nn.h"\nvoid f(void) { nn_set_threads(1); }\n' > "$tmp/ignored.c"
if [ -n "$missing" ]; then
  echo "header FAIL: public functions returning nn_status without NN_NODISCARD:"; echo "$missing"; status=1; bad=$((bad + 1))
elif gcc -std=c99 -I. -Werror -c "$tmp/ignored.c" -o "$tmp/ignored.o" 2>/dev/null ||
     clang -std=c99 -I. -Werror -c "$tmp/ignored.c" -o "$tmp/ignored.o" 2>/dev/null; then
  echo "header FAIL: ignoring an nn_status is not a warning"; status=1; bad=$((bad + 1))
elif ! out=$(gcc -std=c99 -I. -DNN_NODISCARD= -Werror -c "$tmp/ignored.c" -o "$tmp/ignored.o" 2>&1); then
  echo "header FAIL: -DNN_NODISCARD= does not silence an ignored status"; echo "$out" | head -5; status=1; bad=$((bad + 1))
else
  echo "header ok:   an ignored nn_status warns (NN_NODISCARD), -DNN_NODISCARD= silences it"; ok=$((ok + 1))
fi
# each of the README's C blocks must stay a program that builds
awk -v dir="$tmp" '/^```c$/{n++; on=1; next} /^```$/{on=0} on {print > (dir "/readme" n ".c")}' README.md
for f in "$tmp"/readme*.c; do
  n=${f##*/readme}; n=${n%.c}
  if out=$(gcc -std=c99 -O1 -Wall -Wextra -Wpedantic -Werror -fopenmp -I. "$f" -o "${f%.c}" -lm 2>&1); then
    echo "header ok:   README example $n builds"; ok=$((ok + 1))
  else
    echo "header FAIL: README example $n"; echo "$out" | head -20; status=1; bad=$((bad + 1))
  fi
done
# docs/api.md is generated from the header: it must match
if python3 scripts/gen_api_doc.py "$tmp/api.md" >/dev/null && cmp -s "$tmp/api.md" docs/api.md; then
  echo "header ok:   docs/api.md matches nn.h"; ok=$((ok + 1))
else
  echo "header FAIL: docs/api.md is stale: run python3 scripts/gen_api_doc.py"; status=1; bad=$((bad + 1))
fi
if [ -n "${1:-}" ]; then mkdir -p "$1/extra-checks"; echo "header-builds $ok $bad" > "$1/extra-checks/header.summary"; fi
exit $status
