# Figures of examples/lenet5_resnet18 (Deep Learning Assignment 1, solution 4) from its CSVs:
#   gnuplot -e "results='results/lenet5_resnet18'; out='docs/figures'" plots/lenet5_resnet18.gp
# lenet5_resnet18_steps.png    every step's training loss of both models over ResNet-18's steps
#                              (thin) and its 10-step moving mean (thick)
# lenet5_resnet18_lenet5.png   LeNet-5's loss and test accuracy per epoch
if (!exists("results")) results = 'results/lenet5_resnet18'
if (!exists("out")) out = 'docs/figures'
set datafile separator ','
set terminal pngcairo size 900,500 font ',10' noenhanced
set output out.'/lenet5_resnet18_steps.png'
stats results.'/steps_resnet18.csv' skip 1 using 1 nooutput
last = STATS_max
set title sprintf('training loss per step (batch 64, Adam lr 1e-3): LeNet-5 vs ResNet-18, first %d steps', last)
set xlabel 'step'
set ylabel 'cross-entropy of the batch'
set grid
set key top right
set xrange [1:last]
set yrange [0:*]
plot results.'/steps_lenet5.csv' skip 1 using 1:3 with lines lc rgb '#9ecae1' title 'LeNet-5 (batch loss)', \
     results.'/steps_resnet18.csv' skip 1 using 1:3 with lines lc rgb '#fdae6b' title 'ResNet-18 (batch loss)', \
     results.'/steps_lenet5.csv' skip 1 using 1:4 with lines lw 2 lc rgb '#08519c' title 'LeNet-5 (mean of the last 10)', \
     results.'/steps_resnet18.csv' skip 1 using 1:4 with lines lw 2 lc rgb '#d94801' title 'ResNet-18 (mean of the last 10)'

set output out.'/lenet5_resnet18_lenet5.png'
reset
set datafile separator ','
set title 'LeNet-5: per epoch (test set as validation)'
set xlabel 'epoch'
set ylabel 'cross-entropy'
set y2label 'test accuracy (%)'
set ytics nomirror
set y2tics
set grid
set key center right
plot results.'/curves_lenet5.csv' skip 1 using 1:2 with linespoints pt 7 lw 2 title 'train loss (running)', \
     '' skip 1 using 1:4 with linespoints pt 7 lw 2 title 'test loss', \
     '' skip 1 using 1:5 axes x1y2 with linespoints pt 5 lw 2 title 'test accuracy (right)'
