# random_labels: LeNet on randomly permuted MNIST labels (Homework 1 HW1-3), --quick
. tests/examples/lib.sh
if run random_labels --quick; then
  has random_labels lenet params train_size epochs train_loss train_acc test_loss test_acc epoch1_train_loss epoch1_test_loss seconds
  equals random_labels lenet params 44426
  equals random_labels lenet train_size 1000
  equals random_labels lenet epochs 3
  between random_labels lenet train_loss 1 4
  between random_labels lenet test_loss 1 4
  # random labels: nothing to learn about the test set beyond chance (10 classes)
  between random_labels lenet train_acc 0 40
  between random_labels lenet test_acc 0 40
  between random_labels lenet seconds 0 1e9
  csv_rows random_labels/lenet.csv 3
fi
finish
