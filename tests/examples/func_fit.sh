# func_fit --quick: the three 571-parameter models (2, 4, 6 dense layers) fit sin(5 pi x)/(5 pi x)
. tests/examples/lib.sh
if run func_fit --quick; then
  for v in shallow medium deep; do
    has func_fit $v params dense_layers final_loss grid_loss min_loss epochs seconds
    equals func_fit $v params 571
    equals func_fit $v epochs 300
    between func_fit $v final_loss 0 0.1
    between func_fit $v grid_loss 0 0.1
    csv_rows func_fit/${v}_loss.csv 300
  done
  equals func_fit shallow dense_layers 2
  equals func_fit medium dense_layers 4
  equals func_fit deep dense_layers 6
  csv_rows func_fit/predictions.csv 2000
fi
# the sign target and a bad value
if run func_fit --quick --function sign --variant deep --epochs 50; then
  equals func_fit deep function sign
  between func_fit deep final_loss 0 2
fi
"$BIN/func_fit" --function cosine > /dev/null 2>&1; [ $? -eq 2 ] || fail "func_fit --function cosine should exit 2"
finish
