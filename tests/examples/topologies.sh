# topologies (TDT4265 Assignment 2 task 4): parameter counts of the five topologies (bias on the
# first layer only) and a --quick run of each (2 000 images, 2 epochs of 63 steps).
. tests/examples/lib.sh
if run topologies --quick; then
  for v in h64 h32 h128 h2x60 h10x64; do
    has topologies $v train_loss val_loss train_acc val_acc epochs steps params seconds_per_epoch seconds
    equals topologies $v steps 126
    between topologies $v train_loss 0 3
    between topologies $v val_loss 0 3
    between topologies $v train_acc 50 100
    between topologies $v val_acc 50 100
    between topologies $v seconds_per_epoch 0 60
    csv_rows topologies/$v.csv 10
  done
  equals topologies h64 params 50880
  equals topologies h32 params 25440
  equals topologies h128 params 101760
  equals topologies h2x60 params 51300
  equals topologies h10x64 params 87744
  between topologies time_ratio h10x64_over_h64 0.5 20
fi
finish
