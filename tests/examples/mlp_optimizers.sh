# mlp_optimizers (ENGR 510 homework Q12-14): the weight counts the report quotes (52 544 and
# 203 264), and a --quick run of the four variants (10 000 images, 1 epoch of batch 10).
. tests/examples/lib.sh
if run mlp_optimizers --quick; then
  for v in adam_lr1e-3 sgd_lr1e-3 sgd_lr1e-2 shallow_adam_lr1e-3; do
    has mlp_optimizers $v train_loss train_acc test_acc epoch_loss epoch_acc weights params seconds
    between mlp_optimizers $v train_loss 0 2.4
    between mlp_optimizers $v train_acc 5 100
    between mlp_optimizers $v test_acc 5 100
    between mlp_optimizers $v seconds 0 1e9
    csv_rows mlp_optimizers/$v.csv 10
  done
  equals mlp_optimizers adam_lr1e-3 weights 52544
  equals mlp_optimizers sgd_lr1e-3 weights 52544
  equals mlp_optimizers shallow_adam_lr1e-3 weights 203264
  equals mlp_optimizers adam_lr1e-3 params 52650
  equals mlp_optimizers shallow_adam_lr1e-3 params 203530
  # after 1 000 steps: Adam is well ahead, SGD 1e-2 learning, SGD 1e-3 still on its plateau
  between mlp_optimizers adam_lr1e-3 train_acc 85 100
  between mlp_optimizers sgd_lr1e-2 train_acc 60 95
  between mlp_optimizers sgd_lr1e-3 train_acc 5 50
fi
finish
