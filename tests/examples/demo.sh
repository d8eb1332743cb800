# make demo's program: trains and prints the test accuracy line
. tests/examples/lib.sh
if run demo --quick; then
  between demo demo test_acc 80 100
  between demo demo seconds 0 1e9
fi
finish
