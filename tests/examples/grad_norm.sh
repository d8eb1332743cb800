# grad_norm --quick: loss and gradient 2-norm per epoch on sin(5 pi x)/(5 pi x), the report
# notebook's 572-parameter model; then --per-step with mini-batches
. tests/examples/lib.sh
if run grad_norm --quick; then
  has grad_norm notebook params dense_layers epochs steps final_loss first_grad_norm max_grad_norm final_grad_norm loss_100 seconds
  equals grad_norm notebook params 572
  equals grad_norm notebook dense_layers 8
  equals grad_norm notebook epochs 400
  between grad_norm notebook final_loss 0 0.1
  between grad_norm notebook max_grad_norm 1e-6 100
  between grad_norm notebook final_grad_norm 0 100
  csv_rows grad_norm/grad_norm.csv 400
fi
if run grad_norm --quick --per-step --batch 64 --epochs 5 --model deep --optimizer rmsprop --lr 1e-2; then
  equals grad_norm deep params 571
  equals grad_norm deep steps 25
  csv_rows grad_norm/steps.csv 25
  csv_rows grad_norm/grad_norm.csv 5
fi
"$BIN/grad_norm" --model huge > /dev/null 2>&1; [ $? -eq 2 ] || fail "grad_norm --model huge should exit 2"
finish
