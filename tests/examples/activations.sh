# activations (ENGR 510 homework Q8): every activation and its derivative from the library's
# kernels, checked against double-precision formulas and a central finite difference.
. tests/examples/lib.sh
if run activations --quick; then
  for v in relu leaky_relu sigmoid tanh scaled_tanh; do
    has activations $v fwd_err deriv_err fd_err backend_diff
    between activations $v fwd_err 0 1e-6
    between activations $v deriv_err 0 1e-6
    between activations $v fd_err 0 1e-4
    between activations $v backend_diff 0 1e-6
  done
  csv_rows activations/activations.csv 1001
fi
finish
