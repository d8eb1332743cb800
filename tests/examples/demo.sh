# make demo's program: trains and prints the test accuracy line; --summary prints the model's table
. tests/examples/lib.sh
if run demo --quick --summary; then
  between demo demo test_acc 80 100
  between demo demo seconds 0 1e9
  # one table line per layer (input, 3 linear, 2 relu) and the totals of nn_model_summary
  rows=$(awk '/^-----/{r++; next} r == 2' "$OUT/demo.stdout" | wc -l)
  [ "$rows" -eq 6 ] || fail "--summary printed $rows layer lines, expected 6"
  grep -Eq '^trainable parameters +52650$' "$OUT/demo.stdout" || fail "--summary: no 'trainable parameters 52650' line"
fi
finish
