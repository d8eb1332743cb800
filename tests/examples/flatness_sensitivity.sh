# flatness_sensitivity: input-gradient sensitivity against batch size (Homework 1 HW1-3), --quick
. tests/examples/lib.sh
if run flatness_sensitivity --quick; then
  for b in 25 100 200; do
    has flatness_sensitivity batch$b params batch sensitivity frobenius train_loss train_acc test_loss test_acc seconds
    equals flatness_sensitivity batch$b params 16640
    equals flatness_sensitivity batch$b batch $b
    between flatness_sensitivity batch$b sensitivity 1e-6 100
    between flatness_sensitivity batch$b frobenius 1e-6 1e5
    between flatness_sensitivity batch$b train_loss 0 5
    between flatness_sensitivity batch$b test_loss 0 5
    between flatness_sensitivity batch$b train_acc 0 100
    between flatness_sensitivity batch$b test_acc 0 100
    csv_rows flatness_sensitivity/batch$b.csv 2
  done
  csv_rows flatness_sensitivity/sensitivity.csv 3
  # frobenius = sensitivity * sqrt(1000) on the 1000 quick test images
  s=$(value flatness_sensitivity batch100 sensitivity); f=$(value flatness_sensitivity batch100 frobenius)
  awk -v s="$s" -v f="$f" 'BEGIN { r = f / (s * sqrt(1000)); exit !(r > 0.999 && r < 1.001) }' ||
    fail "frobenius $f is not sensitivity $s * sqrt(1000)"
fi
finish
