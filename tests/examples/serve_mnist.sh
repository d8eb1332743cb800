# serve_mnist: one model served from T threads, each with its own nn_context; every batch must
# give the one-thread run's probabilities bit for bit (mismatches=0, else exit 1). --quick trains
# LeNet on 10 000 images and saves it as lenet.nn and lenet.safetensors: both files must then
# serve the same predictions (the same accuracy), and the safetensors file must be refused by
# the MLP (strict loading names the first missing tensor).
. tests/examples/lib.sh
if run serve_mnist --quick --threads 3; then
  for v in single parallel; do
    has serve_mnist $v source threads batch images passes accuracy images_per_s seconds
    equals serve_mnist $v source trained
    equals serve_mnist $v images 10000
    between serve_mnist $v accuracy 80 100
    between serve_mnist $v images_per_s 1 1e9
  done
  equals serve_mnist single threads 1
  equals serve_mnist parallel threads 3
  equals serve_mnist parallel mismatches 0
  acc=$(value serve_mnist single accuracy)
  equals serve_mnist parallel accuracy "$acc"
  for source in model safetensors; do
    if [ $source = model ]; then args=(--model "$OUT/serve_mnist/lenet.nn")
    else args=(--safetensors "$OUT/serve_mnist/lenet.safetensors" --arch lenet); fi
    if run serve_mnist --quick --threads 2 "${args[@]}"; then
      equals serve_mnist parallel source $source
      equals serve_mnist single accuracy "$acc"
      equals serve_mnist parallel accuracy "$acc"
      equals serve_mnist parallel mismatches 0
    fi
  done
  if "$BIN/serve_mnist" --data "$DATA" --safetensors "$OUT/serve_mnist/lenet.safetensors" --arch mlp \
       > /dev/null 2> "$OUT/serve_mnist.refused"; then
    fail "LeNet's safetensors file loaded into the MLP"
  else
    grep -q "1.weight: missing from the file" "$OUT/serve_mnist.refused" ||
      fail "the refusal does not name the missing tensor: $(head -1 "$OUT/serve_mnist.refused")"
  fi
fi
finish
