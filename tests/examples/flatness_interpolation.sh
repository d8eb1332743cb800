# flatness_interpolation: interpolating between batch-100 and batch-500 MLPs (Homework 1
# HW1-3), --quick
. tests/examples/lib.sh
if run flatness_interpolation --quick; then
  for v in batch100 batch500; do
    has flatness_interpolation $v params lr batch train_loss train_acc test_loss test_acc seconds
    equals flatness_interpolation $v params 25610
    between flatness_interpolation $v train_loss 0 5
    between flatness_interpolation $v test_loss 0 5
    between flatness_interpolation $v train_acc 0 100
    between flatness_interpolation $v test_acc 0 100
    csv_rows flatness_interpolation/lr0.001_$v.csv 2
  done
  equals flatness_interpolation batch100 batch 100
  equals flatness_interpolation batch500 batch 500
  has flatness_interpolation interpolation lr points test_acc_alpha_m1 test_acc_alpha_mid min_test_acc_0_1 alpha_of_min test_acc_alpha_2
  equals flatness_interpolation interpolation points 11
  between flatness_interpolation interpolation alpha_of_min 0 1
  csv_rows flatness_interpolation/lr0.001_interpolation.csv 11
fi
finish
