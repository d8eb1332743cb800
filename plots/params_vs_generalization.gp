# Figures of examples/params_vs_generalization (Homework 1 HW1-3): final train/test loss and
# accuracy of 3-dense-layer MNIST MLPs against their parameter count.
# gnuplot -e "results='results/params_vs_generalization'; out='docs/figures'" plots/params_vs_generalization.gp
if (!exists("results")) results = 'results/params_vs_generalization'
if (!exists("out")) out = 'docs/figures'
set datafile separator ','
set terminal pngcairo size 900,540 enhanced font ',11'
set grid
set logscale x
set format x '10^{%L}'
set xlabel 'parameters (log scale)'
file = results.'/summary.csv'

set output out.'/params_vs_generalization_loss.png'
set title 'Loss after training against the number of parameters (784-h1-h2-10, Adam 1e-3, batch 50)'
set ylabel 'cross-entropy'
plot file using 4:5 skip 1 with linespoints pt 7 lw 1.5 title 'train', \
     file using 4:7 skip 1 with linespoints pt 5 lw 1.5 title 'test'

set output out.'/params_vs_generalization_accuracy.png'
set title 'Accuracy after training against the number of parameters'
set ylabel 'accuracy (%)'
set key bottom right
plot file using 4:6 skip 1 with linespoints pt 7 lw 1.5 title 'train', \
     file using 4:8 skip 1 with linespoints pt 5 lw 1.5 title 'test'
