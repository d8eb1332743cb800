# tricks_of_trade (TDT4265 Assignment 2 tasks 2-3): the pre-processing statistics to 1e-9, the
# 50 880 parameters, and each trick's --quick run (2 000 images, 3 epochs of 63 steps).
. tests/examples/lib.sh
if run tricks_of_trade --quick; then
  between tricks_of_trade preprocess mean 33.318421448829934 33.318421450829934
  between tricks_of_trade preprocess std 78.56748998239798 78.56748998439798
  for v in base improved_init improved_sigmoid momentum; do
    has tricks_of_trade $v train_loss val_loss train_acc val_acc epochs steps params seconds
    equals tricks_of_trade $v params 50880
    equals tricks_of_trade $v steps 189
    equals tricks_of_trade $v epochs 3
    between tricks_of_trade $v train_loss 0 3
    between tricks_of_trade $v val_loss 0 3
    between tricks_of_trade $v train_acc 40 100
    between tricks_of_trade $v val_acc 35 100
    csv_rows tricks_of_trade/$v.csv 15
  done
  # the fan-in initialisation is the big win (81 % vs 53 % validation accuracy after 3 epochs)
  awk -v a="$(value tricks_of_trade improved_init val_acc)" -v b="$(value tricks_of_trade base val_acc)" \
    'BEGIN { exit !(a > b + 10) }' || fail "improved_init val_acc is not 10 points above base's"
fi
finish
