# Project 3 part 1: the sigmoid MLP, over-fitting study, confusion matrix, W1 images, save/load
. tests/examples/lib.sh
keys="grad epochs train_count train_acc val_acc test_acc train_loss val_loss test_loss best_val_acc best_epoch
      most_confused most_confused_count worst_digits worst_errors params train_seconds seconds"
if run sigmoid_mlp --quick --save "$OUT/sigmoid_mlp.nn"; then
  for v in first2000 full; do
    has sigmoid_mlp $v $keys
    equals sigmoid_mlp $v params 50890
    equals sigmoid_mlp $v grad sum
    equals sigmoid_mlp $v epochs 5
    for k in train_acc val_acc test_acc; do between sigmoid_mlp $v $k 5 100; done
    for k in train_loss val_loss test_loss; do between sigmoid_mlp $v $k 0 10; done
    between sigmoid_mlp $v most_confused_count 1 10000
    csv_rows sigmoid_mlp/curves_$v.csv 5
    csv_rows sigmoid_mlp/confusion_$v.csv 100
    [ "$(wc -l < "$OUT/sigmoid_mlp/w1_$v.csv")" = 231 ] || fail "w1_$v.csv is not 231 rows (8x8 tiles of 28 + gaps)"
  done
  equals sigmoid_mlp first2000 train_count 2000
  equals sigmoid_mlp full train_count 10000
  # the summed gradient (lr 1e-3 x 256) learns: 5 epochs on 10 000 images pass 80 %
  between sigmoid_mlp full test_acc 80 100
  saved=$(value sigmoid_mlp full test_acc)
  if run sigmoid_mlp --quick --load "$OUT/sigmoid_mlp.nn"; then
    has sigmoid_mlp loaded test_acc test_loss most_confused worst_digits params seconds
    equals sigmoid_mlp loaded test_acc "$saved"
    equals sigmoid_mlp loaded params 50890
  fi
fi
# bad input: usage and exit 2; a missing file: exit 1
"$BIN/sigmoid_mlp" --grad median > /dev/null 2>&1; [ $? -eq 2 ] || fail "--grad median did not exit 2"
"$BIN/sigmoid_mlp" --data "$DATA" --load "$OUT/no-such-file.nn" > /dev/null 2>&1; [ $? -eq 1 ] || fail "--load of a missing file did not exit 1"
"$BIN/sigmoid_mlp" --data "$OUT/no-such-dir" > /dev/null 2>&1; [ $? -eq 1 ] || fail "missing data did not exit 1"
finish
