# Deep Learning Assignment 1 solution 4: LeNet-5 vs ResNet-18 (loss after the same steps,
# test accuracy)
. tests/examples/lib.sh
keys="dataset epochs steps compare_step step_loss step_loss_mean10 train_loss train_acc test_acc test_loss
      test_count params images_per_s train_seconds seconds"
if run lenet5_resnet18 --quick; then
  has lenet5_resnet18 lenet5 $keys
  has lenet5_resnet18 resnet18 $keys
  has lenet5_resnet18 compare dataset lenet5_step resnet18_step lenet5_loss resnet18_loss lenet5_loss_mean10 resnet18_loss_mean10
  equals lenet5_resnet18 lenet5 params 61706
  equals lenet5_resnet18 resnet18 params 11172810
  equals lenet5_resnet18 lenet5 dataset mnist
  equals lenet5_resnet18 lenet5 steps 63
  equals lenet5_resnet18 resnet18 steps 2
  equals lenet5_resnet18 resnet18 test_count 100
  between lenet5_resnet18 lenet5 test_acc 50 100
  between lenet5_resnet18 resnet18 test_acc 0 100
  for v in lenet5 resnet18; do
    for k in step_loss step_loss_mean10 train_loss test_loss; do between lenet5_resnet18 $v $k 0 20; done
    between lenet5_resnet18 $v images_per_s 0.1 1e7
  done
  csv_rows lenet5_resnet18/steps_lenet5.csv 63
  csv_rows lenet5_resnet18/steps_resnet18.csv 2
  csv_rows lenet5_resnet18/curves_lenet5.csv 1
fi
"$BIN/lenet5_resnet18" --dataset cifar > /dev/null 2>&1; [ $? -eq 2 ] || fail "--dataset cifar did not exit 2"
"$BIN/lenet5_resnet18" --steps -1 > /dev/null 2>&1; [ $? -eq 2 ] || fail "--steps -1 did not exit 2"
"$BIN/lenet5_resnet18" --dataset fashion --data "$OUT/no-such-dir" > /dev/null 2> "$OUT/lr18.err"; [ $? -eq 1 ] ||
  fail "missing Fashion-MNIST did not exit 1"
grep -q fetch_fashion "$OUT/lr18.err" || fail "the missing-data message does not name scripts/fetch_fashion.sh"
finish
