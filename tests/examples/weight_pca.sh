# weight_pca --quick: 3 runs of the 784-10-20-10 MLP (8240 weights), 6 epochs on 10000 images,
# weights every 3 epochs, PCA to 2-D of the whole model and of the first layer
. tests/examples/lib.sh
if run weight_pca --quick; then
  for r in run1 run2 run3; do
    has weight_pca $r params weights final_acc final_loss whole_evr1 whole_evr2 layer1_evr1 layer1_evr2 seconds
    equals weight_pca $r params 8280
    equals weight_pca $r weights 8240
    between weight_pca $r final_acc 10 100
    between weight_pca $r whole_evr1 0 1
    between weight_pca $r layer1_evr2 0 1
  done
  has weight_pca pca snapshots whole_evr1 whole_evr2 layer1_evr1 layer1_evr2
  equals weight_pca pca snapshots 6
  equals weight_pca pca layer1_weights 7840
  awk -v a="$(value weight_pca pca whole_evr1)" -v b="$(value weight_pca pca whole_evr2)" \
    'BEGIN { exit !(a >= b && a + b <= 1.0001) }' || fail "explained-variance ratios not ordered or sum > 1"
  csv_rows weight_pca/pca_whole.csv 6
  csv_rows weight_pca/pca_layer1.csv 6
  csv_rows weight_pca/run1.csv 6
fi
finish
