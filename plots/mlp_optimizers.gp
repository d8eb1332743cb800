# mlp_optimizers: ENGR 510 homework Q12-14, convergence of model A with Adam 1e-3, SGD 1e-3 and
# SGD 1e-2, and of the shallow model B with Adam (the report's Figures 2-5), 10 points per epoch.
# gnuplot -e "results='results/mlp_optimizers'; out='docs/figures'" plots/mlp_optimizers.gp
if (!exists("results")) results = 'results/mlp_optimizers'
if (!exists("out")) out = 'docs/figures'
set datafile separator ","
set grid
set xlabel "epoch"
names = "adam_lr1e-3 sgd_lr1e-3 sgd_lr1e-2 shallow_adam_lr1e-3"
titles = "'A, Adam 1e-3' 'A, SGD 1e-3' 'A, SGD 1e-2' 'B (784-256-10), Adam 1e-3'"
array colors[4] = ["#1f77b4", "#d62728", "#ff7f0e", "#2ca02c"]
f(i) = results . '/' . word(names, i) . '.csv'

set terminal pngcairo size 1200,460 font "sans,10"
set output out . '/mlp_optimizers.png'
set multiplot layout 1,2 title "784-64-32-10 (A) and 784-256-10 (B) on MNIST, batch 10, inputs in [0, 1]"
set key top right
set ylabel "training loss (cross-entropy, mean over each tenth of an epoch)"
set logscale y
plot for [i=1:4] f(i) skip 1 using 1:3 with linespoints pt 7 ps 0.5 lw 1.5 lc rgb colors[i] title word(titles, i)
unset logscale y
set key bottom right
set ylabel "test accuracy (%)"
set yrange [0:100]
plot for [i=1:4] f(i) skip 1 using 1:6 with linespoints pt 7 ps 0.5 lw 1.5 lc rgb colors[i] title word(titles, i)
unset multiplot
