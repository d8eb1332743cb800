# ce_vs_mse: ENGR 510 homework Q15 / Deep Learning Assignment 1 Q1-2, model A trained with
# cross-entropy and with softmax + MSE, under Adam 1e-3 and under plain SGD 1e-2.
# gnuplot -e "results='results/ce_vs_mse'; out='docs/figures'" plots/ce_vs_mse.gp
if (!exists("results")) results = 'results/ce_vs_mse'
if (!exists("out")) out = 'docs/figures'
set datafile separator ","
set grid
set xlabel "epoch"
names = "ce mse ce_sgd mse_sgd"
titles = "'cross-entropy, Adam 1e-3' 'softmax + MSE, Adam 1e-3' 'cross-entropy, SGD 1e-2' 'softmax + MSE, SGD 1e-2'"
array colors[4] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"]
array dashes[4] = [1, 1, 2, 2]
f(i) = results . '/' . word(names, i) . '.csv'

set terminal pngcairo size 1200,460 font "sans,10"
set output out . '/ce_vs_mse.png'
set multiplot layout 1,2 title "784-64-32-10 on MNIST, batch 10: cross-entropy vs softmax + mean squared error"
set key bottom left
set ylabel "training loss (each variant's own loss, log scale)"
set logscale y
plot for [i=1:4] f(i) skip 1 using 1:3 with lines lw 2 dt dashes[i] lc rgb colors[i] title word(titles, i)
unset logscale y
set key bottom right
set ylabel "test accuracy (%)"
set yrange [0:100]
plot for [i=1:4] f(i) skip 1 using 1:6 with lines lw 2 dt dashes[i] lc rgb colors[i] title word(titles, i)
unset multiplot
