# Figures of examples/grad_norm (Homework 1 HW1-2): gradient 2-norm and loss per epoch.
# gnuplot -e "results='results/grad_norm'; out='docs/figures'" plots/grad_norm.gp
if (!exists("results")) results = 'results/grad_norm'
if (!exists("out")) out = 'docs/figures'
set datafile separator ','
set terminal pngcairo size 900,760 enhanced font ',11'
set grid
set output out.'/grad_norm.png'
set multiplot layout 2,1 title 'sin(5{/Symbol p}x)/(5{/Symbol p}x), 572-parameter MLP, Adam lr 1e-3, full batch'
set xlabel 'epoch'
set ylabel 'gradient 2-norm'
set logscale y
set format y '10^{%L}'
plot results.'/grad_norm.csv' using 1:3 skip 1 with lines lw 1.2 lc rgb '#1f77b4' title 'grad norm'
set ylabel 'loss (MSE)'
plot results.'/grad_norm.csv' using 1:2 skip 1 with lines lw 1.5 lc rgb '#d62728' title 'loss'
unset multiplot
