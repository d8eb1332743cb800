# ce_vs_mse (ENGR 510 homework Q15, Deep Learning Assignment 1 Q1-2): model A with cross-entropy vs
# softmax + MSE; --quick is 1 epoch of batch 10 on 10 000 images. Under plain SGD, MSE has not left
# chance level when cross-entropy is near 80 %.
. tests/examples/lib.sh
if run ce_vs_mse --quick; then
  for v in ce mse ce_sgd mse_sgd; do
    has ce_vs_mse $v train_loss train_ce train_acc test_acc steps_to_90 steps_to_95 steps seconds
    equals ce_vs_mse $v steps 1000
    between ce_vs_mse $v train_ce 0 2.4
    between ce_vs_mse $v test_acc 5 100
    csv_rows ce_vs_mse/$v.csv 10
  done
  between ce_vs_mse ce test_acc 85 100
  between ce_vs_mse mse test_acc 80 100
  between ce_vs_mse ce_sgd test_acc 65 95
  between ce_vs_mse mse_sgd test_acc 0 30
  between ce_vs_mse mse train_loss 0 0.1
fi
finish
