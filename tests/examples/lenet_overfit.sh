# Project 3 part 2: LeNet on 2 000 vs all training images, per-epoch accuracy, save/load
. tests/examples/lib.sh
keys="epochs train_count train_acc val_acc test_acc train_loss val_loss test_loss best_val_acc best_epoch
      first_100_epoch params train_seconds seconds"
if run lenet_overfit --quick --save "$OUT/lenet_overfit.nn"; then
  for v in first2000 full; do
    has lenet_overfit $v $keys
    equals lenet_overfit $v params 44426
    equals lenet_overfit $v epochs 2
    for k in train_acc val_acc test_acc best_val_acc; do between lenet_overfit $v $k 5 100; done
    for k in train_loss val_loss test_loss; do between lenet_overfit $v $k 0 10; done
    between lenet_overfit $v first_100_epoch 0 2
    csv_rows lenet_overfit/curves_$v.csv 2
  done
  equals lenet_overfit first2000 train_count 2000
  equals lenet_overfit full train_count 4000
  between lenet_overfit full test_acc 40 100
  saved=$(value lenet_overfit full test_acc)
  if run lenet_overfit --quick --load "$OUT/lenet_overfit.nn"; then
    has lenet_overfit loaded test_acc test_loss params seconds
    equals lenet_overfit loaded test_acc "$saved"
    equals lenet_overfit loaded params 44426
  fi
fi
"$BIN/lenet_overfit" --momentum 1.5 > /dev/null 2>&1; [ $? -eq 2 ] || fail "--momentum 1.5 did not exit 2"
"$BIN/lenet_overfit" --data "$OUT/no-such-dir" > /dev/null 2>&1; [ $? -eq 1 ] || fail "missing data did not exit 1"
finish
