# fnn_mnist (Deep Learning Assignment 1 Q3): 784-128-64-10 with (0.5, 0.5) normalisation and Adam;
# --quick is one epoch on 10 000 images.
. tests/examples/lib.sh
if run fnn_mnist --quick; then
  for v in fnn softmax_output; do
    has fnn_mnist $v train_loss train_acc test_loss test_acc params seconds
    equals fnn_mnist $v params 109386
    between fnn_mnist $v train_acc 80 100
    between fnn_mnist $v test_acc 80 100
    between fnn_mnist $v seconds 0 1e9
    csv_rows fnn_mnist/$v.csv 1
  done
  between fnn_mnist fnn train_loss 0 0.6
  # the softmax fed to cross-entropy bounds the loss below by about 1.46
  between fnn_mnist softmax_output train_loss 1.46 2.31
fi
finish
