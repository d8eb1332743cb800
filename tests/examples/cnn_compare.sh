# cnn_compare: LeNet vs the custom CNN (Homework 1 HW1-1), --quick
. tests/examples/lib.sh
if run cnn_compare --quick; then
  for v in lenet custom; do
    has cnn_compare $v params train_loss train_acc test_loss test_acc seconds
    between cnn_compare $v train_loss 0 5
    between cnn_compare $v test_loss 0 5
    between cnn_compare $v train_acc 0 100
    between cnn_compare $v test_acc 0 100
    between cnn_compare $v seconds 0 1e9
    csv_rows cnn_compare/$v.csv 1
  done
  equals cnn_compare lenet params 44426
  equals cnn_compare custom params 468170
fi
finish
