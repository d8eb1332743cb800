# params_vs_generalization --quick: the four smallest of the ten MLPs (1 epoch, 6000 images);
# their parameter counts are the report notebook's
. tests/examples/lib.sh
if run params_vs_generalization --quick; then
  for m in model1 model2 model3 model4; do
    has params_vs_generalization $m hidden params train_loss train_acc test_loss test_acc seconds
    between params_vs_generalization $m train_acc 20 100
    between params_vs_generalization $m test_acc 20 100
    between params_vs_generalization $m test_loss 0 3
  done
  equals params_vs_generalization model1 params 4079
  equals params_vs_generalization model2 params 21435
  equals params_vs_generalization model3 params 45360
  equals params_vs_generalization model4 params 55630
  equals params_vs_generalization model1 hidden 5x9
  grep -q '^RESULT params_vs_generalization model5 ' "$OUT/params_vs_generalization.stdout" &&
    fail "model5 should be skipped by --quick's parameter limit"
  csv_rows params_vs_generalization/summary.csv 4
  csv_rows params_vs_generalization/model1.csv 1
fi
finish
